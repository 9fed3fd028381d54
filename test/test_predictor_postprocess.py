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


"""The torch-free decoding (inference.decode) against torch and torchvision references."""

from mtl_perception.inference.decode import (argmax_uint8, decode_boxes,
                                             decode_image_detections, resize_nearest)
from mtl_perception.modeling.box_coder import decode
import numpy as np
from PIL import Image
import pytest
import torch
from torchvision.ops import batched_nms


def _reference(loc, scores, anchors, score_threshold, nms_threshold, max_detections,
               top_k_per_class):
    """Decode every anchor, take each class's top k, threshold, NMS."""
    boxes = decode(loc, anchors).clamp(0.0, 1.0)
    foreground = scores[:, 1:]
    k = min(top_k_per_class, foreground.shape[0])
    top_scores, top_index = foreground.topk(k, dim=0)
    labels = torch.arange(foreground.shape[1]).expand(k, -1)
    keep = top_scores > score_threshold
    cand_boxes, cand_scores, cand_labels = boxes[top_index[keep]], top_scores[keep], labels[keep]
    kept = batched_nms(cand_boxes, cand_scores, cand_labels, nms_threshold)[:max_detections]
    return cand_boxes[kept], cand_scores[kept], cand_labels[kept]


def _random_outputs(seed, num_anchors=600, num_classes=4):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.rand(num_anchors, 2, generator=gen)
    sizes = 0.05 + 0.3 * torch.rand(num_anchors, 2, generator=gen)
    anchors = torch.cat([centres, sizes], dim=1)
    loc = torch.randn(num_anchors, 4, generator=gen)
    # Sharp logits give a spread of probabilities from ~0 to ~1.
    scores = (3.0 * torch.randn(num_anchors, num_classes + 1, generator=gen)).softmax(-1)
    return loc, scores, anchors


@pytest.mark.parametrize('seed', [0, 1, 2])
@pytest.mark.parametrize('score_threshold', [0.0, 0.01, 0.1, 0.3, 0.6, 0.95])
@pytest.mark.parametrize('top_k_per_class,max_detections', [(400, 100), (30, 200), (5, 7)])
def test_fast_detections_match_reference(seed, score_threshold, top_k_per_class,
                                         max_detections):
    loc, scores, anchors = _random_outputs(seed)
    ref_boxes, ref_scores, ref_labels = _reference(
        loc, scores, anchors, score_threshold, 0.45, max_detections, top_k_per_class)
    boxes, fast_scores, labels = decode_image_detections(
        loc.numpy(), scores.numpy(), anchors.numpy(), score_threshold=score_threshold,
        nms_threshold=0.45, max_detections=max_detections, top_k_per_class=top_k_per_class)
    assert boxes.dtype == np.float32 and fast_scores.dtype == np.float32
    assert labels.dtype == np.int64
    assert labels.tolist() == ref_labels.tolist()
    np.testing.assert_allclose(fast_scores, ref_scores.numpy(), rtol=0, atol=0)
    np.testing.assert_allclose(boxes, ref_boxes.numpy(), rtol=1e-6, atol=1e-6)


def test_box_decoding_matches_torch():
    loc, _, anchors = _random_outputs(4, num_anchors=2000)
    np.testing.assert_allclose(decode_boxes(loc.numpy()[None], anchors.numpy()),
                               decode(loc[None], anchors).numpy(), rtol=1e-6, atol=1e-6)


def test_fast_detections_nothing_above_threshold():
    loc, scores, anchors = _random_outputs(3)
    boxes, found_scores, labels = decode_image_detections(
        loc.numpy(), scores.numpy(), anchors.numpy(), score_threshold=1.0)
    assert boxes.shape == (0, 4) and found_scores.shape == (0,) and labels.shape == (0,)


def test_fast_detections_shape_errors():
    with pytest.raises(ValueError, match='anchors'):
        decode_image_detections(np.zeros((5, 4), np.float32), np.zeros((5, 3), np.float32),
                                np.zeros((4, 4), np.float32))


@pytest.mark.parametrize('num_classes', [1, 2, 10, 21])
def test_argmax_uint8_matches_numpy_including_ties(num_classes):
    rng = np.random.default_rng(num_classes)
    # Small integers make ties common; argmax must pick the lowest index like numpy.
    logits = rng.integers(0, 4, size=(num_classes, 33, 47)).astype(np.float32)
    result = argmax_uint8(logits)
    assert result.dtype == np.uint8
    np.testing.assert_array_equal(result, logits.argmax(axis=0))


@pytest.mark.parametrize('source', [(256, 256), (64, 100), (37, 53)])
@pytest.mark.parametrize('target', [(480, 640), (1080, 1920), (17, 9), (256, 256), (5, 300)])
def test_resize_nearest_matches_pil(source, target):
    mask = np.random.default_rng(0).integers(0, 255, size=source, dtype=np.uint8)
    expected = np.asarray(Image.fromarray(mask).resize(target[::-1], Image.NEAREST))
    result = resize_nearest(mask, *target)
    assert result.dtype == np.uint8
    np.testing.assert_array_equal(result, expected)


@pytest.fixture(scope='module')
def shipped_outputs():
    """Raw outputs of the shipped multitask model on eight fixed synthetic aerial images."""
    from mtl_perception.data.synthetic import SyntheticAerialDataset
    from mtl_perception.inference.predictor import Predictor
    from mtl_perception.inference.preprocess import preprocess
    from mtl_perception.resources import model_file

    data = SyntheticAerialDataset(8, seed=2024, size=(320, 240))
    images = [sample['image'] for sample in data]
    with Predictor.from_checkpoint(model_file('uav_synthetic_multitask')) as predictor:
        card = predictor.card
        batch = np.concatenate([preprocess(image, card.input_size, card.mean, card.std)
                                for image in images])
        return predictor.backend.run(batch), predictor.backend.anchors


@pytest.mark.parametrize('score_threshold', [0.01, 0.3])
def test_numpy_decoding_matches_the_torch_path_on_the_shipped_model(
        shipped_outputs, score_threshold):
    outputs, anchors = shipped_outputs
    found = 0
    for loc, scores in zip(outputs['loc'], outputs['scores']):
        ref_boxes, ref_scores, ref_labels = _reference(
            torch.from_numpy(loc), torch.from_numpy(scores), torch.from_numpy(anchors),
            score_threshold, 0.45, 100, 400)
        boxes, kept_scores, labels = decode_image_detections(
            loc, scores, anchors, score_threshold=score_threshold, nms_threshold=0.45,
            max_detections=100, top_k_per_class=400)
        assert labels.tolist() == ref_labels.tolist()
        np.testing.assert_allclose(kept_scores, ref_scores.numpy(), rtol=0, atol=1e-4)
        np.testing.assert_allclose(boxes, ref_boxes.numpy(), rtol=0, atol=1e-4)
        found += len(labels)
    # The trained model does find things in these images.
    assert found >= 8
