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

"""ONNX export: parity with PyTorch per task subset, the files beside it, the Predictor."""

from mtl_perception.inference import artifacts
from mtl_perception.inference.backends import create_backend
from mtl_perception.inference.backends.onnxruntime_backend import select_providers
from mtl_perception.inference.checkpoint import load_card, load_checkpoint, save_checkpoint
from mtl_perception.inference.export import export_checkpoint_onnx, sample_images
from mtl_perception.inference.predictor import Predictor
from mtl_perception.model_card import TASK_OUTPUTS
from mtl_perception.modeling import build_model
import numpy as np
import onnxruntime
import pytest
import torch

SUBSETS = {'multitask': ('detection', 'segmentation'), 'detection': ('detection',),
           'segmentation': ('segmentation',)}
CLASSES = {'detection': ['car', 'truck', 'person'],
           'segmentation': ['ground', 'road', 'building', 'car']}
SIZE = 96


def make_checkpoint(directory, kind, arch='resnet18_ssd_fcn'):
    """Save a small random network whose class scores are peaked like a trained one's."""
    tasks = SUBSETS[kind]
    torch.manual_seed(0)
    model = build_model(arch, input_size=SIZE, tasks=tasks,
                        num_classes={t: len(CLASSES[t]) for t in tasks}).eval()
    if 'detection' in tasks:
        # Random predictors give near-uniform scores; sharper logits give real detections.
        with torch.no_grad():
            for layer in model.heads['detection'].conf_layers.modules():
                if isinstance(layer, torch.nn.Conv2d):
                    layer.weight.mul_(8.0)
    weights, _ = save_checkpoint(model, directory / f'{kind}_{arch}', {
        'name': kind, 'architecture': arch, 'classes': {t: CLASSES[t] for t in tasks}})
    return weights


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """Return kind -> (checkpoint, onnx path, export info); dynamic batch for multitask."""
    directory = tmp_path_factory.mktemp('export')
    result = {}
    for kind in SUBSETS:
        checkpoint = make_checkpoint(directory, kind)
        onnx_path = directory / 'onnx' / f'{kind}.onnx'
        info = export_checkpoint_onnx(checkpoint, onnx_path,
                                      dynamic_batch=kind == 'multitask')
        result[kind] = (checkpoint, onnx_path, info)
    return result


@pytest.mark.parametrize('kind', list(SUBSETS))
def test_export_parity_and_files(exported, kind):
    checkpoint, onnx_path, info = exported[kind]
    tasks = SUBSETS[kind]
    names = [n for t in tasks for n in TASK_OUTPUTS[t]]
    assert onnx_path.is_file()
    assert info['output_names'] == names and info['input_size'] == SIZE
    assert info['gflops'] > 0  # recorded for tools without torch (replay's compute limit)
    assert info['dynamic_batch'] == (kind == 'multitask')
    # Only a network with both heads gets the gate that skips its segmentation head.
    assert info['segmentation_gate'] == ('run_segmentation' if kind == 'multitask' else None)
    assert set(info['max_abs_diff']) == set(names)
    assert all(0 <= d <= 1e-3 for d in info['max_abs_diff'].values()), info['max_abs_diff']
    card = artifacts.read_export_card(onnx_path, 'onnx')
    assert card.export['onnx'] == info
    assert card.tasks == tasks and card.classes == load_card(checkpoint).classes
    session = onnxruntime.InferenceSession(str(onnx_path), providers=['CPUExecutionProvider'])
    assert [i.name for i in session.get_inputs()] == ['images']
    assert [o.name for o in session.get_outputs()] == names
    # The exported graph computes what forward_raw computes, on an independent input.
    model, _ = load_checkpoint(checkpoint)
    batch = np.random.default_rng(1).standard_normal((2, 3, SIZE, SIZE), dtype=np.float32)
    with torch.inference_mode():
        expected = [t.numpy() for t in model.forward_raw(torch.from_numpy(batch))]
    for index in range(2):
        got = session.run(names, {'images': batch[index:index + 1]})
        for name, value, reference in zip(names, got, expected):
            np.testing.assert_allclose(value, reference[index:index + 1], atol=1e-4,
                                       rtol=1e-4, err_msg=name)
    anchors = artifacts.read_anchors(onnx_path, card)
    if 'detection' in tasks:
        np.testing.assert_array_equal(anchors, model.anchors.numpy())
        assert got[0].shape[1] == len(anchors)
    else:
        assert anchors is None and not artifacts.anchors_path(onnx_path).exists()


def _matched(reference, other, threshold):
    """Return indices of ``reference`` boxes lacking a same-label twin in ``other``."""
    lonely = []
    for index, (box, score, label) in enumerate(zip(reference.boxes, reference.scores,
                                                    reference.labels)):
        if abs(score - threshold) < 1e-4:
            continue  # may fall on either side of the threshold
        twins = (other.labels == label) & (np.abs(other.boxes - box).max(axis=1) <= 1.0) \
            & (np.abs(other.scores - score) <= 1e-3)
        if not twins.any():
            lonely.append(index)
    return lonely


@pytest.mark.parametrize('kind', list(SUBSETS))
def test_onnxruntime_predictions_equal_torch(exported, kind):
    checkpoint, onnx_path, _ = exported[kind]
    threshold = 0.3
    # No cap on the count: at a cap, near-equal scores may swap the last box kept.
    torch_predictor = Predictor.from_checkpoint(checkpoint, score_threshold=threshold,
                                                max_detections=5000)
    ort_predictor = Predictor.from_checkpoint(onnx_path, backend='onnxruntime',
                                              score_threshold=threshold, max_detections=5000)
    found = 0
    with torch_predictor, ort_predictor:
        assert ort_predictor.tasks == torch_predictor.tasks
        assert ort_predictor.class_names == torch_predictor.class_names
        images = sample_images(3, seed=5)
        for expected, got in zip(torch_predictor.predict_batch(images),
                                 ort_predictor.predict_batch(images)):
            found += len(expected.boxes)
            assert _matched(expected, got, threshold) == []
            assert _matched(got, expected, threshold) == []
            if 'segmentation' in SUBSETS[kind]:
                assert got.mask.shape == expected.mask.shape
                assert (got.mask == expected.mask).mean() >= 0.995
            else:
                assert got.mask is None
    if 'detection' in SUBSETS[kind]:
        assert found > 0, 'no detections: the comparison would be empty'


def test_checkpoint_name_finds_the_export_beside_it(tmp_path):
    checkpoint = make_checkpoint(tmp_path, 'segmentation')
    stem = artifacts.stem_of(checkpoint)
    with pytest.raises(FileNotFoundError, match='mtl-perception export --checkpoint'):
        create_backend('onnxruntime', stem)
    export_checkpoint_onnx(checkpoint, artifacts.export_path(checkpoint, 'onnx'))
    # The checkpoint's own card gained the export section and still loads as a checkpoint.
    assert 'onnx' in load_card(checkpoint).export
    with create_backend('onnxruntime', checkpoint, threads=1) as backend:
        batch = np.zeros((3, 3, SIZE, SIZE), np.float32)
        assert backend.run(batch)['seg_logits'].shape == (3, 4, SIZE, SIZE)
        with pytest.raises(ValueError, match=r'\[N, 3, 96, 96\]'):
            backend.run(np.zeros((1, 3, 64, 64), np.float32))


def test_other_input_size_rebuilds_default_boxes(tmp_path):
    checkpoint = make_checkpoint(tmp_path, 'multitask')
    onnx_path = tmp_path / 'large.onnx'
    info = export_checkpoint_onnx(checkpoint, onnx_path, input_size=128)
    assert info['input_size'] == 128
    card = artifacts.read_export_card(onnx_path, 'onnx')
    assert card.input_size == 128 and load_card(checkpoint).input_size == SIZE
    big = build_model('resnet18_ssd_fcn', input_size=128,
                      num_classes={t: len(CLASSES[t]) for t in SUBSETS['multitask']})
    np.testing.assert_array_equal(artifacts.read_anchors(onnx_path, card), big.anchors.numpy())
    with Predictor.from_checkpoint(onnx_path, backend='onnxruntime') as predictor:
        assert predictor.input_size == 128
        assert predictor.predict(sample_images(1)[0]).mask.shape == (240, 320)
    # Exporting at another size beside the checkpoint would break its card: refused.
    with pytest.raises(ValueError, match='refusing to overwrite'):
        export_checkpoint_onnx(checkpoint, artifacts.export_path(checkpoint, 'onnx'),
                               input_size=128)


def test_broken_exports_name_the_file(exported, tmp_path):
    _, onnx_path, _ = exported['detection']
    copy = tmp_path / 'copy.onnx'
    copy.write_bytes(onnx_path.read_bytes())
    with pytest.raises(artifacts.ExportedModelError, match='model card not found'):
        create_backend('onnxruntime', copy)
    artifacts.card_path(copy).write_text(artifacts.card_path(onnx_path).read_text())
    with pytest.raises(artifacts.ExportedModelError, match='anchors.npy'):
        create_backend('onnxruntime', copy)
    np.save(artifacts.anchors_path(copy), np.zeros((7, 4), np.float32))
    with pytest.raises(artifacts.ExportedModelError, match='7 default boxes'):
        create_backend('onnxruntime', copy).run(np.zeros((1, 3, SIZE, SIZE), np.float32))


def test_provider_selection():
    assert select_providers('cpu', False, ['CPUExecutionProvider']) == (
        ['CPUExecutionProvider'], 0)
    available = ['TensorrtExecutionProvider', 'CUDAExecutionProvider', 'CPUExecutionProvider']
    assert select_providers('cuda:1', True, available) == (available, 1)
    assert select_providers('cuda', False, available[1:]) == (available[1:], 0)
    with pytest.raises(ValueError, match='onnxruntime-gpu'):
        select_providers('cuda', False, ['CPUExecutionProvider'])
    with pytest.raises(ValueError, match='TensorRT execution provider'):
        select_providers('cuda', True, available[1:])
    with pytest.raises(ValueError, match='needs a GPU'):
        select_providers('cpu', True, available)
    with pytest.raises(ValueError, match='bad device'):
        select_providers('gpu0', False, available)
