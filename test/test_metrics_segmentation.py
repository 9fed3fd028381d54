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

"""Segmentation confusion-matrix metrics: hand cases and a torchmetrics cross-check."""

import math

from mtl_perception.metrics import SegmentationEvaluator
import numpy as np
import pytest
import torch
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

VOID = 255


def test_hand_computed_confusion_matrix():
    target = np.array([[0, 0, 1],
                       [1, 2, VOID]], dtype=np.uint8)
    pred = np.array([[0, 1, 1],
                     [2, 2, 0]], dtype=np.uint8)
    evaluator = SegmentationEvaluator(['bg', 'road', 'car'])
    evaluator.update(pred, target)
    result = evaluator.compute()
    # Rows gt, columns pred; the void pixel is not counted.
    assert result['confusion_matrix'] == [[1, 1, 0], [0, 1, 1], [0, 0, 1]]
    # IoU: bg 1/(2+1-1)=1/2, road 1/(2+2-1)=1/3, car 1/(1+2-1)=1/2.
    assert result['per_class_iou'] == {'bg': pytest.approx(0.5), 'road': pytest.approx(1 / 3),
                                       'car': pytest.approx(0.5)}
    assert result['miou'] == pytest.approx((0.5 + 1 / 3 + 0.5) / 3)
    assert result['pixel_accuracy'] == pytest.approx(3 / 5)
    assert result['mean_accuracy'] == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    assert result['num_pixels'] == 5
    assert isinstance(result['miou'], float)


def test_absent_class_is_nan_predicted_only_class_is_zero():
    target = np.array([[0, 0], [1, 1]], dtype=np.uint8)
    pred = np.array([[0, 2], [1, 1]], dtype=np.uint8)
    evaluator = SegmentationEvaluator(['a', 'b', 'c', 'd'])
    evaluator.update(pred, target)
    result = evaluator.compute()
    iou = result['per_class_iou']
    assert iou['a'] == pytest.approx(0.5) and iou['b'] == pytest.approx(1.0)
    assert iou['c'] == 0.0  # predicted, never in gt: a real error, counted in the mean
    assert math.isnan(iou['d'])  # in neither: no evidence, left out of the mean
    assert result['miou'] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    # torchmetrics drops the same class from its macro mean (and reports 0 for it per class).
    macro = MulticlassJaccardIndex(num_classes=4, ignore_index=VOID, average='macro')
    assert result['miou'] == pytest.approx(float(macro(torch.from_numpy(pred).long(),
                                                       torch.from_numpy(target).long())))


def test_empty_evaluator_gives_nan():
    result = SegmentationEvaluator(['a', 'b']).compute()
    assert math.isnan(result['miou']) and math.isnan(result['pixel_accuracy'])
    assert all(math.isnan(v) for v in result['per_class_iou'].values())


@pytest.mark.parametrize('seed', [0, 1])
def test_matches_torchmetrics_on_random_masks(seed):
    num_classes = 5
    rng = np.random.default_rng(seed)
    target = rng.integers(0, num_classes, (6, 32, 40)).astype(np.uint8)
    target[rng.random(target.shape) < 0.1] = VOID
    # Predictions right about 60 % of the time, otherwise a random class.
    pred = np.where(rng.random(target.shape) < 0.6, target,
                    rng.integers(0, num_classes, target.shape)).astype(np.uint8)
    pred[target == VOID] = rng.integers(0, num_classes, int((target == VOID).sum()))
    evaluator = SegmentationEvaluator([f'c{k}' for k in range(num_classes)])
    # Batches [N, H, W] and single [H, W] images accumulate into one matrix.
    evaluator.update(pred[:2], target[:2])
    evaluator.update(pred[2:4], target[2:4])
    evaluator.update(pred[4], target[4])
    evaluator.update(torch.from_numpy(pred[5]), torch.from_numpy(target[5]))
    result = evaluator.compute()

    pred_t, target_t = torch.from_numpy(pred).long(), torch.from_numpy(target).long()
    per_class = MulticlassJaccardIndex(num_classes=num_classes, ignore_index=VOID,
                                       average=None)(pred_t, target_t)
    macro = MulticlassJaccardIndex(num_classes=num_classes, ignore_index=VOID,
                                   average='macro')(pred_t, target_t)
    accuracy = MulticlassAccuracy(num_classes=num_classes, ignore_index=VOID,
                                  average='micro')(pred_t, target_t)
    ours = np.array(list(result['per_class_iou'].values()))
    # torchmetrics computes in float32: tolerance 1e-6.
    np.testing.assert_allclose(ours, per_class.numpy(), atol=1e-6)
    assert result['miou'] == pytest.approx(float(macro), abs=1e-6)
    assert result['pixel_accuracy'] == pytest.approx(float(accuracy), abs=1e-6)
    # Void pixels really are excluded (a wrong prediction there would change the numbers).
    assert result['num_pixels'] == int((target != VOID).sum())
    assert 0.3 < result['miou'] < 0.9


def test_merge_state_dict_and_torch_inputs_agree():
    rng = np.random.default_rng(3)
    pred = rng.integers(0, 3, (4, 8, 8))
    target = rng.integers(0, 3, (4, 8, 8))
    whole = SegmentationEvaluator(['a', 'b', 'c'])
    whole.update(torch.from_numpy(pred), torch.from_numpy(target))
    first, second = SegmentationEvaluator(['a', 'b', 'c']), SegmentationEvaluator(['a', 'b', 'c'])
    first.update(pred[:1], target[:1])
    second.update(pred[1:], target[1:])
    restored = SegmentationEvaluator(['a', 'b', 'c'])
    restored.load_state_dict(first.state_dict())
    restored.merge(second)
    assert restored.compute() == whole.compute()
    assert restored.confusion_matrix.dtype == np.int64
    whole.reset()
    assert whole.compute()['num_pixels'] == 0
    with pytest.raises(ValueError, match='different'):
        whole.merge(SegmentationEvaluator(['a', 'b']))


@pytest.mark.parametrize('pred, target, message', [
    (np.zeros((4, 5), np.uint8), np.zeros((4, 6), np.uint8), r'\(4, 5\).*\(4, 6\)'),
    (np.zeros((2, 4, 5), np.uint8), np.zeros((4, 5), np.uint8), r'\(2, 4, 5\).*\(4, 5\)'),
    (np.zeros((1, 1, 4, 5), np.uint8), np.zeros((1, 1, 4, 5), np.uint8), r'\(1, 1, 4, 5\)'),
    (np.zeros((4, 5), np.float32), np.zeros((4, 5), np.uint8), 'integer'),
    (np.zeros((4, 5), np.uint8), np.full((4, 5), 7, np.uint8), r'target.*\[7, 7\]'),
    (np.full((4, 5), 3, np.uint8), np.zeros((4, 5), np.uint8), r'pred.*\[3, 3\]'),
])
def test_bad_inputs_raise(pred, target, message):
    evaluator = SegmentationEvaluator(['a', 'b', 'c'])
    with pytest.raises(ValueError, match=message):
        evaluator.update(pred, target)
    assert evaluator.compute()['num_pixels'] == 0


def test_ignore_index_must_not_be_a_class():
    with pytest.raises(ValueError, match='ignore_index'):
        SegmentationEvaluator(['a', 'b'], ignore_index=1)
