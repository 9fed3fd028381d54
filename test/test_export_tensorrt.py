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
TensorRT engines on a GPU: build from ONNX, run through the Predictor, record the target.

These need the tensorrt package, cuda-python and a CUDA GPU, and skip with the reason
otherwise; ``test_tensorrt_runtime.py`` covers the same code without them.
"""

import subprocess
import sys

from mtl_perception.inference import artifacts
from mtl_perception.inference import tensorrt_support as support
from mtl_perception.inference.export import export_checkpoint_onnx, sample_images
from mtl_perception.inference.predictor import Predictor
import numpy as np
import pytest
from test_export_onnx import make_checkpoint
import torch

pytest.importorskip('tensorrt', reason='the tensorrt Python package is not installed '
                    '(optional dependency: pip install .[tensorrt])')


def _no_gpu() -> str | None:
    """Return why TensorRT cannot run here (cuda-python or a GPU missing), else None."""
    try:
        support.cuda_device_index('cuda')
    except support.TensorRTUnavailableError as error:
        return str(error)
    return None


pytestmark = pytest.mark.skipif(_no_gpu() is not None, reason=str(_no_gpu()))


@pytest.mark.parametrize('precision', ['fp32', 'fp16', 'int8'])
def test_engine_matches_onnxruntime(tmp_path, precision):
    from mtl_perception.inference.tensorrt_build import build_engine
    from PIL import Image

    checkpoint = make_checkpoint(tmp_path, 'multitask')
    onnx_path = tmp_path / 'model.onnx'
    export_checkpoint_onnx(checkpoint, onnx_path, dynamic_batch=True)
    calibration = tmp_path / 'calibration'
    calibration.mkdir()
    for index, image in enumerate(sample_images(8, seed=3)):
        Image.fromarray(image).save(calibration / f'{index}.png')
    engine = tmp_path / 'model.engine'
    info = build_engine(onnx_path, engine, precision=precision, max_batch=4,
                        calibration_data=calibration if precision == 'int8' else None)
    card = artifacts.read_export_card(engine, 'tensorrt')
    assert card.export['tensorrt'] == info and 'onnx' in card.export
    if torch.cuda.is_available():  # cuda-python and torch name the GPU alike
        assert info['build']['device_name'] == torch.cuda.get_device_name(0)
    if precision == 'int8':
        assert (tmp_path / 'model.calibration.cache').is_file()
        assert info['calibration_batch'] == 4 and info['calibration_images'] == 8
    images = sample_images(5, seed=4)  # more than the largest batch: runs in chunks
    with Predictor.from_checkpoint(onnx_path, backend='onnxruntime') as reference, \
            Predictor.from_checkpoint(engine, backend='tensorrt', device='cuda') as tested:
        for expected, got in zip(reference.predict_batch(images), tested.predict_batch(images)):
            agreement = (expected.mask == got.mask).mean()
            assert agreement >= (0.995 if precision == 'fp32' else 0.95), agreement
            if precision == 'fp32' and len(expected.boxes) and len(got.boxes):
                assert np.abs(expected.boxes[0] - got.boxes[0]).max() <= 1.0


def test_engine_runs_without_torch(tmp_path):
    from mtl_perception.inference.tensorrt_build import build_engine

    checkpoint = make_checkpoint(tmp_path, 'multitask')
    onnx_path = tmp_path / 'model.onnx'
    export_checkpoint_onnx(checkpoint, onnx_path, dynamic_batch=True)
    engine = tmp_path / 'model.engine'
    build_engine(onnx_path, engine, precision='fp16', max_batch=2)
    code = ('import sys\n'
            'import numpy as np\n'
            'from mtl_perception.inference.backends import create_backend\n'
            f'backend = create_backend("tensorrt", {str(engine)!r}, device="cuda")\n'
            'size = backend.card.input_size\n'
            'out = backend.run(np.zeros((3, 3, size, size), np.float32))\n'
            'assert all(v.dtype == np.float32 and len(v) == 3 for v in out.values()), out\n'
            'backend.close()\n'
            'backend.close()\n'
            'assert "torch" not in sys.modules\n')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr


def test_engine_from_another_tensorrt_is_refused(tmp_path):
    from mtl_perception.inference.backends import create_backend
    from mtl_perception.inference.tensorrt_build import build_engine
    import yaml

    checkpoint = make_checkpoint(tmp_path, 'segmentation')
    onnx_path = tmp_path / 'seg.onnx'
    export_checkpoint_onnx(checkpoint, onnx_path)
    engine = tmp_path / 'seg.engine'
    build_engine(onnx_path, engine, precision='fp32')
    card_path = artifacts.card_path(engine)
    card = yaml.safe_load(card_path.read_text())
    card['export']['tensorrt']['build']['tensorrt_version'] = '8.6.1'
    card_path.write_text(yaml.safe_dump(card))
    with pytest.raises(ValueError, match='rebuild it here with: mtl-perception export'):
        create_backend('tensorrt', engine, device='cuda')


def test_gated_engine_skips_the_segmentation_head(tmp_path):
    from mtl_perception.inference.backends import create_backend
    from mtl_perception.inference.tensorrt_build import build_engine

    checkpoint = make_checkpoint(tmp_path, 'multitask')
    onnx_path = tmp_path / 'model.onnx'
    export_checkpoint_onnx(checkpoint, onnx_path, dynamic_batch=True)
    engine = tmp_path / 'model.engine'
    info = build_engine(onnx_path, engine, precision='fp32', max_batch=2)
    assert info['segmentation_gate'] == 'run_segmentation'
    size = artifacts.read_export_card(engine, 'tensorrt').input_size
    batch = np.random.default_rng(0).standard_normal((3, 3, size, size), dtype=np.float32)
    with create_backend('onnxruntime', onnx_path) as reference, \
            create_backend('tensorrt', engine, device='cuda') as tested:
        assert tested.skips_segmentation and tested.gate == 'run_segmentation'
        expected = reference.run(batch)
        off = tested.run(batch, segmentation=False)  # chunks of 2 + 1
        on = tested.run(batch)
    assert list(off) == ['loc', 'scores'] and list(on) == ['loc', 'scores', 'seg_logits']
    for name in ('loc', 'scores'):
        np.testing.assert_allclose(off[name], expected[name], atol=1e-3, err_msg=name)
        np.testing.assert_allclose(off[name], on[name], atol=1e-5, err_msg=name)
    scale = max(1.0, float(np.abs(expected['seg_logits']).max()))
    np.testing.assert_allclose(on['seg_logits'], expected['seg_logits'], atol=1e-3 * scale)
