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

"""Predictor: shapes, dtypes and original-image coordinates of its Predictions."""

from mtl_perception.inference.backends import Backend
from mtl_perception.inference.checkpoint import CheckpointError, save_checkpoint
from mtl_perception.inference.predictor import Prediction, Predictor
from mtl_perception.inference.preprocess import preprocess
from mtl_perception.model_card import ModelCard
from mtl_perception.modeling import build_model
from mtl_perception.modeling.box_coder import decode
import numpy as np
import pytest
import torch
from torchvision.ops import batched_nms

ARCH = 'resnet18_ssd_fcn'
SIZE = 64
CLASSES = {'detection': ['car', 'person', 'boat'], 'segmentation': ['ground', 'road', 'water',
                                                                    'building']}
TASK_SUBSETS = [('detection', 'segmentation'), ('detection',), ('segmentation',)]
HEIGHT, WIDTH = 120, 200


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp('predictor')
    paths = {}
    for tasks in TASK_SUBSETS:
        torch.manual_seed(0)
        model = build_model(ARCH, num_classes={t: len(CLASSES[t]) for t in tasks},
                            input_size=SIZE, tasks=tasks)
        stem = folder / '_'.join(tasks)
        save_checkpoint(model, stem, {'name': stem.name, 'architecture': ARCH,
                                      'classes': {t: CLASSES[t] for t in tasks}})
        paths[tasks] = stem
    return paths


@pytest.fixture(scope='module')
def image():
    return np.random.default_rng(1).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


@pytest.mark.parametrize('tasks', TASK_SUBSETS, ids='+'.join)
def test_prediction_shapes_and_types(checkpoints, image, tasks):
    with Predictor.from_checkpoint(checkpoints[tasks], score_threshold=0.05) as predictor:
        assert predictor.tasks == tasks
        assert predictor.input_size == SIZE
        assert predictor.class_names == {t: CLASSES[t] for t in tasks}
        assert predictor.card.architecture == ARCH
        result = predictor.predict(image)
    assert isinstance(result, Prediction)
    assert set(result.timings) == {'preprocess', 'inference', 'postprocess'}
    assert all(value >= 0.0 for value in result.timings.values())
    m = len(result.scores)
    assert result.boxes.shape == (m, 4) and result.boxes.dtype == np.float32
    assert result.scores.dtype == np.float32
    assert result.labels.shape == (m,) and result.labels.dtype == np.int64
    if 'detection' in tasks:
        assert 0 < m <= 100  # random weights: many weak boxes pass 0.05
        assert np.all(result.scores >= 0.05)
        assert np.all(np.diff(result.scores) <= 0)
        assert np.all((result.labels >= 0) & (result.labels < len(CLASSES['detection'])))
        assert np.all(result.boxes[:, [0, 2]] >= 0) and np.all(result.boxes[:, [0, 2]] <= WIDTH)
        assert np.all(result.boxes[:, [1, 3]] >= 0) and np.all(result.boxes[:, [1, 3]] <= HEIGHT)
        assert np.all(result.boxes[:, 2] >= result.boxes[:, 0])
    else:
        assert m == 0
    if 'segmentation' in tasks:
        assert result.mask.shape == (HEIGHT, WIDTH) and result.mask.dtype == np.uint8
        assert result.mask.max() < len(CLASSES['segmentation'])
    else:
        assert result.mask is None


def test_boxes_are_network_boxes_scaled_to_the_image(checkpoints, image):
    with Predictor.from_checkpoint(checkpoints[TASK_SUBSETS[0]], score_threshold=0.05,
                                   max_detections=7) as predictor:
        result = predictor.predict(image)
        batch = np.concatenate([predictor.predict_batch([image])[0].boxes])
        raw = predictor.backend.run(
            preprocess(image, SIZE, predictor.card.mean, predictor.card.std))
        anchors = torch.from_numpy(predictor.backend.anchors)
    # The torch path: decode every box, threshold, torchvision's class-wise NMS.
    boxes = decode(torch.from_numpy(raw['loc'][0]), anchors).clamp(0.0, 1.0)
    foreground = torch.from_numpy(raw['scores'][0, :, 1:])
    anchor_index, labels = torch.nonzero(foreground > 0.05, as_tuple=True)
    candidates = foreground[anchor_index, labels]
    kept = batched_nms(boxes[anchor_index], candidates, labels, 0.45)[:7]
    expected = boxes[anchor_index][kept]
    assert len(result.boxes) == 7
    scale = np.array([WIDTH, HEIGHT, WIDTH, HEIGHT], dtype=np.float32)
    np.testing.assert_allclose(result.boxes, expected.numpy() * scale, atol=1e-3)
    np.testing.assert_allclose(batch, result.boxes, atol=1e-3)


def test_score_threshold_and_max_detections(checkpoints, image):
    counts = []
    for threshold in (0.02, 0.1, 0.5):
        with Predictor.from_checkpoint(checkpoints[('detection',)], score_threshold=threshold,
                                       max_detections=500) as predictor:
            result = predictor.predict(image)
        assert np.all(result.scores >= threshold)
        counts.append(len(result.scores))
    assert counts[0] >= counts[1] >= counts[2]
    assert counts[0] > 0


def test_predict_batch_matches_predict(checkpoints, image):
    with Predictor.from_checkpoint(checkpoints[TASK_SUBSETS[0]]) as predictor:
        small = image[:50, :90]
        batch = predictor.predict_batch([image, small])
        single = predictor.predict(small)
    assert batch[1].mask.shape == (50, 90)
    np.testing.assert_array_equal(batch[1].mask, single.mask)
    np.testing.assert_allclose(batch[1].boxes, single.boxes, atol=1e-3)


@pytest.mark.parametrize('bad, fragment', [
    (np.zeros((HEIGHT, WIDTH, 3), np.float32), 'uint8'),
    (np.zeros((HEIGHT, WIDTH), np.uint8), f'[{HEIGHT}, {WIDTH}]'),
    (np.zeros((HEIGHT, WIDTH, 4), np.uint8), f'[{HEIGHT}, {WIDTH}, 4]'),
    (np.zeros((0, WIDTH, 3), np.uint8), f'[0, {WIDTH}, 3]'),
    ([[0, 0, 0]], 'list'),
])
def test_bad_images_raise_value_error(checkpoints, bad, fragment):
    with Predictor.from_checkpoint(checkpoints[('segmentation',)]) as predictor:
        with pytest.raises(ValueError) as info:
            predictor.predict(bad)
    assert fragment in str(info.value)


def test_bad_options(checkpoints, tmp_path):
    path = checkpoints[('detection',)]
    with pytest.raises(ValueError, match='half precision needs a CUDA GPU'):
        Predictor.from_checkpoint(path, half=True)
    with pytest.raises(ValueError, match='unknown backend'):
        Predictor.from_checkpoint(path, backend='nope')
    with pytest.raises(ValueError, match='score_threshold'):
        Predictor.from_checkpoint(path, score_threshold=1.5)
    with pytest.raises(CheckpointError, match='not found'):
        Predictor.from_checkpoint(tmp_path / 'missing')


def test_closed_predictor_refuses_work(checkpoints, image):
    predictor = Predictor.from_checkpoint(checkpoints[('segmentation',)])
    predictor.close()
    predictor.close()
    with pytest.raises(RuntimeError, match='closed'):
        predictor.predict(image)


class _FixedBackend(Backend):
    """Backend returning hand-made outputs, to check the Predictor's geometry exactly."""

    def __init__(self, outputs, card, anchors=None):
        self.card = card
        self.output_names = tuple(outputs)
        self.anchors = anchors
        self._outputs = outputs

    def run(self, batch, segmentation=True):
        self.check_batch(batch)
        return {k: np.repeat(self._outputs[k], len(batch), axis=0)
                for k in self.wanted_outputs(segmentation)}


def _card(tasks, size):
    return ModelCard(name='fixed', architecture='fixed', tasks=tuple(tasks), input_size=size,
                     mean=(0.5,) * 3, std=(0.25,) * 3,
                     classes={t: tuple(CLASSES[t]) for t in tasks}).validate()


def test_box_lands_at_the_right_pixels():
    # One anchor centred at (0.5, 0.25) of size (0.2, 0.1) and zero offsets decode to
    # x1y1x2y2 = (0.4, 0.2, 0.6, 0.3) of the network input, i.e. of the whole image.
    anchors = np.array([[0.5, 0.25, 0.2, 0.1], [0.1, 0.1, 0.1, 0.1]], np.float32)
    scores = np.array([[[0.1, 0.0, 0.9, 0.0], [0.8, 0.2, 0.0, 0.0]]], np.float32)
    outputs = {'loc': np.zeros((1, 2, 4), np.float32), 'scores': scores}
    predictor = Predictor(_FixedBackend(outputs, _card(('detection',), 32), anchors),
                          _card(('detection',), 32), anchors=anchors, score_threshold=0.5)
    result = predictor.predict(np.zeros((HEIGHT, WIDTH, 3), np.uint8))
    np.testing.assert_allclose(result.boxes, [[80.0, 24.0, 120.0, 36.0]], atol=1e-3)
    np.testing.assert_allclose(result.scores, [0.9])
    assert result.labels.tolist() == [1]  # index 2 of scores = class 1 (0 = background)
    predictor.score_threshold = 0.95
    empty = predictor.predict(np.zeros((HEIGHT, WIDTH, 3), np.uint8))
    assert empty.boxes.shape == (0, 4) and empty.boxes.dtype == np.float32
    assert empty.scores.shape == (0,) and empty.labels.dtype == np.int64


def test_mask_keeps_orientation():
    # Left half class 1, bottom-right quarter class 3, top-right quarter class 2.
    logits = np.zeros((1, 4, 32, 32), np.float32)
    logits[0, 1, :, :16] = 5
    logits[0, 2, :16, 16:] = 5
    logits[0, 3, 16:, 16:] = 5
    card = _card(('segmentation',), 32)
    predictor = Predictor(_FixedBackend({'seg_logits': logits}, card), card, anchors=None)
    mask = predictor.predict(np.zeros((HEIGHT, WIDTH, 3), np.uint8)).mask
    assert mask.shape == (HEIGHT, WIDTH)
    assert np.all(mask[:, :WIDTH // 2] == 1)
    assert np.all(mask[:HEIGHT // 2, WIDTH // 2:] == 2)
    assert np.all(mask[HEIGHT // 2:, WIDTH // 2:] == 3)


def test_detection_predictor_needs_anchors():
    card = _card(('detection',), 32)
    with pytest.raises(ValueError, match='anchors'):
        Predictor(_FixedBackend({}, card), card, anchors=None)
