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
"""inference.decode: thresholds, class-wise NMS, limits, in numpy."""

from mtl_perception.inference.decode import decode_image_detections, nms
from mtl_perception.modeling.box_coder import encode
import numpy as np
import pytest
import torch


def _case(boxes, classes, probs, num_classes=3):
    """Build loc/scores/anchors where anchor i predicts ``boxes[i]`` with ``probs[i]``."""
    boxes = torch.tensor(boxes, dtype=torch.float32)
    anchors = torch.tensor([[0.5, 0.5, 0.3, 0.3]]).repeat(len(boxes), 1)
    loc = encode(boxes, anchors).unsqueeze(0)
    scores = torch.zeros(1, len(boxes), num_classes + 1)
    for i, (label, prob) in enumerate(zip(classes, probs)):
        scores[0, i, label + 1] = prob
        scores[0, i, 0] = 1.0 - prob
    return loc, scores, anchors


def decode_detections(loc, scores, anchors, **options) -> list:
    """Decode every image of a batch (torch tensors in) into dicts of numpy arrays."""
    results = []
    for image_loc, image_scores in zip(loc.numpy(), scores.numpy()):
        boxes, kept, labels = decode_image_detections(image_loc, image_scores, anchors.numpy(),
                                                      **options)
        results.append({'boxes': boxes, 'scores': kept, 'labels': labels})
    return results


def test_nms_removes_overlapping_lower_score_box_of_same_class():
    loc, scores, anchors = _case(
        [[0.1, 0.1, 0.5, 0.5], [0.12, 0.1, 0.52, 0.5], [0.6, 0.6, 0.9, 0.9]],
        [0, 0, 0], [0.9, 0.8, 0.7])
    (result,) = decode_detections(loc, scores, anchors)
    assert result['scores'].tolist() == pytest.approx([0.9, 0.7])
    assert result['labels'].tolist() == [0, 0]
    assert result['labels'].dtype == np.int64
    assert result['boxes'].dtype == np.float32
    np.testing.assert_allclose(result['boxes'][0], [0.1, 0.1, 0.5, 0.5], atol=1e-5)


def test_nms_keeps_overlapping_box_of_another_class():
    loc, scores, anchors = _case(
        [[0.1, 0.1, 0.5, 0.5], [0.12, 0.1, 0.52, 0.5]], [0, 2], [0.9, 0.8])
    (result,) = decode_detections(loc, scores, anchors)
    assert result['labels'].tolist() == [0, 2]
    assert result['scores'].tolist() == pytest.approx([0.9, 0.8])


def test_score_threshold_and_max_detections():
    boxes = [[0.1 * i, 0.0, 0.1 * i + 0.05, 0.05] for i in range(8)]
    probs = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.005]
    loc, scores, anchors = _case(boxes, [1] * 8, probs)
    (result,) = decode_detections(loc, scores, anchors)
    assert len(result['scores']) == 7  # 0.005 is under the 0.01 default
    (result,) = decode_detections(loc, scores, anchors, score_threshold=0.55)
    assert result['scores'].tolist() == pytest.approx([0.9, 0.8, 0.7, 0.6])
    (result,) = decode_detections(loc, scores, anchors, max_detections=3)
    assert result['scores'].tolist() == pytest.approx([0.9, 0.8, 0.7])


def test_nms_threshold_is_respected():
    # IoU of these two boxes is 0.6 / 1.0 = 0.6 (areas 0.08, overlap 0.06).
    loc, scores, anchors = _case(
        [[0.1, 0.1, 0.5, 0.3], [0.2, 0.1, 0.6, 0.3]], [1, 1], [0.9, 0.8])
    (kept_both,) = decode_detections(loc, scores, anchors, nms_threshold=0.7)
    (kept_one,) = decode_detections(loc, scores, anchors, nms_threshold=0.45)
    assert len(kept_both['scores']) == 2
    assert len(kept_one['scores']) == 1


def test_boxes_are_clipped_and_batch_is_per_image():
    loc, scores, anchors = _case([[-0.2, 0.1, 0.5, 1.3]], [0], [0.9])
    empty_scores = scores.clone()
    empty_scores[..., 1:] = 0.0
    results = decode_detections(torch.cat([loc, loc]), torch.cat([scores, empty_scores]),
                                anchors)
    assert len(results) == 2
    np.testing.assert_allclose(results[0]['boxes'], [[0.0, 0.1, 0.5, 1.0]], atol=1e-5)
    assert results[1]['boxes'].shape == (0, 4)
    assert results[1]['labels'].shape == (0,)


def test_top_k_per_class_limits_candidates():
    boxes = [[0.1 * i, 0.0, 0.1 * i + 0.05, 0.05] for i in range(6)]
    loc, scores, anchors = _case(boxes, [0] * 6, [0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    (result,) = decode_detections(loc, scores, anchors, top_k_per_class=2)
    assert result['scores'].tolist() == pytest.approx([0.9, 0.8])


def test_shape_errors():
    with pytest.raises(ValueError, match='loc'):
        decode_detections(torch.zeros(1, 5, 3), torch.zeros(1, 5, 2), torch.zeros(5, 4))
    with pytest.raises(ValueError, match='scores'):
        decode_detections(torch.zeros(1, 5, 4), torch.zeros(1, 4, 2), torch.zeros(5, 4))


def test_nms_keeps_best_first_and_degenerate_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [5, 5, 5, 5],
                      [5, 5, 5, 5]], np.float32)
    scores = np.array([0.5, 0.9, 0.7, 0.3, 0.2], np.float32)
    # Box 0 overlaps box 1 (IoU 9/11) and goes; zero-area boxes have an undefined IoU with
    # each other and are both kept, as torchvision keeps them.
    assert nms(boxes, scores, 0.5).tolist() == [1, 2, 3, 4]
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5).tolist() == []
