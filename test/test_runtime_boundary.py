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

"""
The deployment runtime imports neither torch nor torchvision.

On an embedded computer torch costs about 600 MB per process for nothing when the network
runs in ONNX Runtime or TensorRT. These tests load, in fresh interpreters, everything a node
process, the replay scorer and ``evaluate --backend onnxruntime`` load, and fail if torch or
torchvision arrives with it. (``test_ros_onnxruntime_node`` checks a running node's
memory map.)
"""

import json
import subprocess
import sys

from mtl_perception.data.synthetic import SyntheticAerialDataset, write_coco_folder
from mtl_perception.inference.export import export_checkpoint_onnx
import pytest
from ros_fixtures import make_checkpoint, make_picture

# Everything the deployment path imports: the nodes (with rclpy and the messages), the
# torch-free backends, the Predictor and its decoding, the replay scorer and messages, the
# evaluation loop and the data sets it reads, the metrics, the variants and the model card.
DEPLOYMENT_MODULES = (
    'mtl_perception.ros.nodes',
    'mtl_perception.inference.backends.onnxruntime_backend',
    'mtl_perception.inference.backends.tensorrt_backend',
    'mtl_perception.inference.tensorrt_support',
    'mtl_perception.inference.tensorrt_build',
    'mtl_perception.inference.onnx_gate',
    'mtl_perception.inference.predictor',
    'mtl_perception.inference.decode',
    'mtl_perception.inference.image_decoding',
    'mtl_perception.replay.scoring',
    'mtl_perception.replay.messages',
    'mtl_perception.replay.run_files',
    'mtl_perception.replay.tracking_scores',
    'mtl_perception.replay.node_processes',
    'mtl_perception.replay.camera_scoring',
    'mtl_perception.replay.camera_report',
    'mtl_perception.engine.evaluation',
    'mtl_perception.cli.evaluate',
    'mtl_perception.cli.datasets',
    'mtl_perception.data.coco_folder',
    'mtl_perception.data.voc',
    'mtl_perception.data.combined',
    'mtl_perception.metrics',
    'mtl_perception.variants',
    'mtl_perception.model_card',
)
# Run in a fresh interpreter: prints the torch modules loaded after running the given code.
_PROBE = """
import sys
{code}
print('LOADED', [m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision')])
"""


def _loaded_torch_modules(code: str) -> list:
    done = subprocess.run([sys.executable, '-c', _PROBE.format(code=code)], text=True,
                          capture_output=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    line = [row for row in done.stdout.splitlines() if row.startswith('LOADED ')][-1]
    return eval(line[len('LOADED '):])  # noqa: S307 (our own printed list of strings)


@pytest.mark.parametrize('module', DEPLOYMENT_MODULES)
def test_deployment_module_imports_no_torch(module):
    assert _loaded_torch_modules(f'import {module}') == []


def test_probe_sees_torch_when_it_is_imported():
    # The check above can fail: a training module does bring torch in.
    assert 'torch' in _loaded_torch_modules('import mtl_perception.engine.trainer')


def test_evaluate_with_onnxruntime_runs_without_torch(tmp_path):
    checkpoint = make_checkpoint(tmp_path, 'multitask')
    onnx_path = tmp_path / 'model.onnx'
    export_checkpoint_onnx(checkpoint, onnx_path, images=[make_picture(96, 72)])
    data = SyntheticAerialDataset(3, seed=11, size=(96, 72))
    write_coco_folder(tmp_path / 'data', data, split='val', progress=False)
    result_path = tmp_path / 'metrics.json'
    code = ('from mtl_perception.cli.main import main\n'
            f"assert main(['evaluate', '--checkpoint', {str(onnx_path)!r}, '--backend', "
            f"'onnxruntime', '--data', {str(tmp_path / 'data')!r}, '--json', "
            f"{str(result_path)!r}, '--quiet']) == 0")
    assert _loaded_torch_modules(code) == []
    result = json.loads(result_path.read_text())
    assert result['images'] == 3
    assert result['detection'] is not None and result['segmentation'] is not None
    assert 0.0 <= result['segmentation']['miou'] <= 1.0
