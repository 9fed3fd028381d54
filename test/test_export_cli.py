# Copyright 2026 The mtl_perception Authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""`mtl-perception export` from the command line: success, failure modes, TensorRT checks."""

import importlib.util

from mtl_perception.cli.main import main
from mtl_perception.inference import artifacts
from mtl_perception.inference.tensorrt_support import check_build, TensorRTUnavailableError
import pytest
from test_export_onnx import make_checkpoint


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp('cli'), 'multitask',
                           arch='mobilenet_v3_large_ssdlite_fcn')


def test_export_writes_the_files_and_prints_the_differences(checkpoint, tmp_path, capsys):
    output = tmp_path / 'out' / 'demo.onnx'
    assert main(['export', '--checkpoint', str(checkpoint), '--format', 'onnx', '--output',
                 str(output), '--dynamic-batch', '--verify-images', '2']) == 0
    printed = capsys.readouterr().out
    for name in ('loc', 'scores', 'seg_logits'):
        assert f'{name} ' in printed and 'max |diff|' in printed
    assert output.is_file() and artifacts.anchors_path(output).is_file()
    info = artifacts.read_export_card(output, 'onnx').export['onnx']
    assert info['dynamic_batch'] is True and info['verified_images'] == 2
    assert info['opset'] == 17 and info['tolerance'] == 1e-3


def test_tolerance_failure_writes_nothing(checkpoint, tmp_path, capsys):
    output = tmp_path / 'strict.onnx'
    # Float32 kernels of ONNX Runtime and PyTorch differ in rounding, so 0 cannot pass.
    assert main(['export', '--checkpoint', str(checkpoint), '--format', 'onnx', '--output',
                 str(output), '--tolerance', '0', '--verify-images', '1']) == 2
    captured = capsys.readouterr()
    assert 'FAILED' in captured.out
    error = captured.err.strip()
    assert len(error.splitlines()) == 1 and 'above the tolerance' in error
    assert list(tmp_path.iterdir()) == []


def test_missing_checkpoint_and_bad_format(tmp_path, capsys):
    assert main(['export', '--checkpoint', str(tmp_path / 'nothing'), '--format', 'onnx']) == 2
    assert 'checkpoint not found' in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(['export', '--checkpoint', str(tmp_path / 'nothing'), '--format', 'tflite'])
    assert exit_info.value.code == 2
    assert "invalid choice: 'tflite'" in capsys.readouterr().err


def test_input_size_too_small_is_refused(checkpoint, tmp_path, capsys):
    assert main(['export', '--checkpoint', str(checkpoint), '--format', 'onnx', '--output',
                 str(tmp_path / 'tiny.onnx'), '--input-size', '32']) == 2
    assert 'input_size' in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec('tensorrt') is not None,
                    reason='tensorrt is installed; this checks the message when it is not')
def test_tensorrt_missing_is_one_line(checkpoint, capsys):
    assert main(['export', '--checkpoint', str(checkpoint), '--format', 'tensorrt']) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and 'TensorRT is not installed' in error


def test_engine_built_elsewhere_names_the_rebuild_command():
    info = {'onnx': '/models/demo.onnx', 'precision': 'int8', 'max_batch': 4,
            'calibration_data': '/data/calib',
            'build': {'tensorrt_version': '10.3.0', 'device_name': 'Orin',
                      'compute_capability': '8.7'}}
    here = {'tensorrt_version': '10.8.0', 'device_name': 'Orin', 'compute_capability': '8.7'}
    with pytest.raises(TensorRTUnavailableError) as error:
        check_build(info, here, '/models/demo.engine')
    message = str(error.value)
    assert "tensorrt_version '10.3.0' (engine) vs '10.8.0' (here)" in message
    assert 'device_name' not in message
    assert message.endswith(
        'mtl-perception export --format tensorrt --onnx /models/demo.onnx --output '
        '/models/demo.engine --precision int8 --calibration-data /data/calib --max-batch 4')
    check_build(info, info['build'], '/models/demo.engine')  # built here: no error
