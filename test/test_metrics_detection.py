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

"""Hand-computed cases for the VOC/COCO detection metrics."""

import math

from mtl_perception.metrics import average_precision, box_iou, DetectionEvaluator
import numpy as np
import pytest
import torch

GT_A = [0.0, 0.0, 10.0, 10.0]
GT_B = [20.0, 20.0, 30.0, 30.0]
FAR = [50.0, 50.0, 60.0, 60.0]


def _evaluate(images, class_names=('a',)):
    evaluator = DetectionEvaluator(list(class_names))
    for image in images:
        evaluator.update(**image)
    return evaluator.compute()


def _image(pred_boxes, pred_scores, pred_labels, gt_boxes, gt_labels, gt_difficult=None):
    return {
        'pred_boxes': np.asarray(pred_boxes, dtype=np.float32).reshape(-1, 4),
        'pred_scores': np.asarray(pred_scores, dtype=np.float32),
        'pred_labels': np.asarray(pred_labels, dtype=np.int64),
        'gt_boxes': np.asarray(gt_boxes, dtype=np.float32).reshape(-1, 4),
        'gt_labels': np.asarray(gt_labels, dtype=np.int64),
        'gt_difficult': None if gt_difficult is None else np.asarray(gt_difficult, dtype=bool),
    }


def test_two_gts_three_preds_hand_computed():
    # Ranked TP, FP, TP: recall (.5, .5, 1), precision (1, .5, 2/3).
    result = _evaluate([_image([GT_A, FAR, GT_B], [0.9, 0.8, 0.7], [0, 0, 0],
                               [GT_A, GT_B], [0, 0])])
    # All-point: envelope 1 on (0, .5], 2/3 on (.5, 1].
    assert result['map50'] == pytest.approx(0.5 * 1.0 + 0.5 * 2.0 / 3.0, abs=1e-12)
    # 11-point: t = 0..0.5 -> 1 (6 points), t = 0.6..1 -> 2/3 (5 points).
    assert result['map50_voc07'] == pytest.approx((6 + 5 * 2.0 / 3.0) / 11.0, abs=1e-12)
    # COCO 101-point: r = 0..0.5 -> 1 (51 points), r = .51..1 -> 2/3 (50 points); the boxes
    # are exact, so every IoU threshold gives the same AP.
    coco = (51 + 50 * 2.0 / 3.0) / 101.0
    assert result['map50_coco'] == pytest.approx(coco, abs=1e-12)
    assert result['map_coco'] == pytest.approx(coco, abs=1e-12)
    assert result['per_class_ap50'] == {'a': pytest.approx(5.0 / 6.0)}
    assert all(isinstance(v, float) for v in (result['map50'], result['map_coco']))


def test_average_precision_function_directly():
    recall = np.array([0.5, 0.5, 1.0])
    precision = np.array([1.0, 0.5, 2.0 / 3.0])
    assert average_precision(recall, precision) == pytest.approx(5.0 / 6.0)
    assert average_precision(recall, precision, 'voc07') == pytest.approx(
        (6 + 5 * 2.0 / 3.0) / 11.0)
    # Recall exactly 3/10 must count for the t = 0.3 threshold (float-safe thresholds).
    assert average_precision(np.array([0.3]), np.array([1.0]), 'voc07') == pytest.approx(
        4.0 / 11.0)
    assert average_precision(np.zeros(0), np.zeros(0)) == 0.0
    with pytest.raises(ValueError, match='method'):
        average_precision(recall, precision, 'coco')
    with pytest.raises(ValueError, match=r'\(3,\)'):
        average_precision(recall, precision[:2])


def test_duplicate_detection_is_false_positive():
    # TP then duplicate FP on one gt: recall (1, 1), precision (1, .5) -> AP 1.
    result = _evaluate([_image([GT_A, GT_A], [0.9, 0.8], [0, 0], [GT_A, GT_B], [0, 0])])
    assert result['map50'] == pytest.approx(0.5)
    # TP, duplicate FP, TP: same curve as the first hand-computed case.
    result = _evaluate([_image([GT_A, GT_A, GT_B], [0.9, 0.8, 0.7], [0, 0, 0],
                               [GT_A, GT_B], [0, 0])])
    assert result['map50'] == pytest.approx(5.0 / 6.0)


def test_iou_threshold_uses_continuous_coordinates():
    # [0,0,10,20] vs [0,0,10,10]: IoU exactly 0.5 -> TP (threshold is inclusive).
    result = _evaluate([_image([[0, 0, 10, 20]], [0.9], [0], [GT_A], [0])])
    assert result['map50'] == pytest.approx(1.0)
    # [0,0,10,20.5]: IoU 100/205 < 0.5 -> FP; the "+1 pixel" convention would give 0.51 (TP).
    result = _evaluate([_image([[0, 0, 10, 20.5]], [0.9], [0], [GT_A], [0])])
    assert result['map50'] == 0.0
    assert result['map50_coco'] == 0.0
    assert box_iou(np.array([[0, 0, 10, 20.5]]), np.array([GT_A]))[0, 0] == pytest.approx(
        100.0 / 205.0)


def test_difficult_matches_are_ignored():
    difficult_box = [40.0, 40.0, 50.0, 50.0]
    # Top-scored detection on the difficult gt: neither TP nor FP, so AP stays 1.
    images = [_image([difficult_box, GT_A], [0.95, 0.9], [0, 0], [GT_A, difficult_box],
                     [0, 0], [False, True])]
    result = _evaluate(images)
    assert result['map50'] == pytest.approx(1.0)
    assert result['map50_voc07'] == pytest.approx(1.0)
    assert result['map_coco'] == pytest.approx(1.0)
    # Without its gt at all the detection is an FP ranked first: AP 0.5.
    result = _evaluate([_image([difficult_box, GT_A], [0.95, 0.9], [0, 0], [GT_A], [0])])
    assert result['map50'] == pytest.approx(0.5)
    # Missing a difficult gt costs nothing; missing the same gt when not difficult does.
    result = _evaluate([_image([GT_A], [0.9], [0], [GT_A, difficult_box], [0, 0],
                               [False, True])])
    assert result['map50'] == pytest.approx(1.0)
    result = _evaluate([_image([GT_A], [0.9], [0], [GT_A, difficult_box], [0, 0])])
    assert result['map50'] == pytest.approx(0.5)


def test_class_without_gt_is_nan_and_left_out_of_the_mean():
    images = [_image([GT_A, GT_B, FAR], [0.9, 0.8, 0.7], [0, 0, 1], [GT_A, GT_B, FAR],
                     [0, 0, 2], [False, False, False])]
    result = _evaluate(images, ('a', 'b', 'c', 'd'))
    per_class = result['per_class_ap50']
    assert per_class['a'] == pytest.approx(1.0)
    assert math.isnan(per_class['b'])  # detections but no gt
    assert per_class['c'] == 0.0  # gt but no detection
    assert math.isnan(per_class['d'])  # nothing at all
    assert result['map50'] == pytest.approx(0.5)
    assert result['map50_voc07'] == pytest.approx(0.5)
    assert result['map_coco'] == pytest.approx(0.5)
    assert math.isnan(result['per_class_ap_coco']['b'])
    # A class whose only gts are difficult is also excluded.
    only_difficult = [_image([], [], [], [GT_A], [0], [True])]
    assert math.isnan(_evaluate(only_difficult)['map50'])
    assert math.isnan(_evaluate(only_difficult)['map_coco'])


def test_voc_devkit_argmax_matching_differs_from_coco():
    # Two overlapping gts. The second detection overlaps both (IoU .92 and .89) but its best
    # gt is already taken: the VOC devkit calls it FP, pycocotools matches it to the other gt.
    gt_2 = [1.0, 0.0, 11.0, 10.0]
    result = _evaluate([_image([GT_A, [0.4, 0.0, 10.4, 10.0]], [0.9, 0.8], [0, 0],
                               [GT_A, gt_2], [0, 0])])
    assert result['map50'] == pytest.approx(0.5)
    assert result['map50_coco'] == pytest.approx(1.0)


def test_score_ranking_across_images():
    # Image 1: FP with the highest score; image 2: TP. Precision (0, .5) -> AP .5.
    result = _evaluate([
        _image([FAR], [0.9], [0], [GT_A], [0]),
        _image([GT_B], [0.5], [0], [GT_B], [0]),
    ])
    # gts: A (missed) and B (found at rank 2): recall (0, .5), precision (0, .5).
    assert result['map50'] == pytest.approx(0.25)
    assert result['map50_voc07'] == pytest.approx(6 * 0.5 / 11.0)


def test_empty_and_torch_inputs_and_merge():
    evaluator = DetectionEvaluator(['a', 'b'])
    result = evaluator.compute()
    assert math.isnan(result['map50']) and math.isnan(result['map_coco'])
    assert result['num_images'] == 0
    # No detections anywhere: AP 0 for classes with gts.
    evaluator.update(np.zeros((0, 4)), np.zeros(0), np.zeros(0), [GT_A], [1])
    result = evaluator.compute()
    assert result['map50'] == 0.0 and result['map_coco'] == 0.0
    evaluator.reset()

    first = DetectionEvaluator(['a', 'b'])
    first.update(torch.tensor([GT_A, FAR]), torch.tensor([0.9, 0.8]), torch.tensor([0, 1]),
                 torch.tensor([GT_A, GT_B]), torch.tensor([0, 1]),
                 torch.tensor([False, False]), image_id='x')
    second = DetectionEvaluator(['a', 'b'])
    second.update(np.array([GT_B]), np.array([0.7]), np.array([1]), np.array([GT_B]),
                  np.array([1]), image_id='y')
    both = DetectionEvaluator(['a', 'b'])
    both.load_state_dict(first.state_dict())
    both.merge(second)
    assert both.num_images == 2
    result = both.compute()
    # Class b: FP (0.8, image x), TP (0.7, image y) over 2 gts -> recall (0, .5).
    assert result['per_class_ap50'] == {'a': pytest.approx(1.0), 'b': pytest.approx(0.25)}
    with pytest.raises(ValueError, match='both'):
        both.merge(second)


@pytest.mark.parametrize('kwargs, message', [
    ({'pred_boxes': np.zeros((2, 3))}, r'pred_boxes.*\(2, 3\)'),
    ({'pred_scores': np.zeros(3)}, r'pred_scores.*\[2\].*\(3,\)'),
    ({'pred_labels': np.zeros((2, 1))}, r'pred_labels.*\(2, 1\)'),
    ({'pred_labels': np.array([0, 5])}, r'pred_labels.*\[0, 2\)'),
    ({'gt_boxes': np.zeros((1, 4))}, r'gt_labels.*\[1\].*\(2,\)'),
    ({'gt_labels': np.array([0, -1])}, r'gt_labels.*\[0, 2\)'),
    ({'gt_difficult': np.zeros(3, dtype=bool)}, r'gt_difficult.*\[2\].*\(3,\)'),
    ({'pred_scores': np.array([0.5, np.nan])}, 'non-finite'),
    ({'pred_labels': np.array([0.5, 1.0])}, 'integer'),
])
def test_bad_inputs_raise(kwargs, message):
    evaluator = DetectionEvaluator(['a', 'b'])
    args = {'pred_boxes': np.array([GT_A, GT_B]), 'pred_scores': np.array([0.9, 0.8]),
            'pred_labels': np.array([0, 1]), 'gt_boxes': np.array([GT_A, GT_B]),
            'gt_labels': np.array([0, 1]), 'gt_difficult': None}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        evaluator.update(**args)
    assert evaluator.num_images == 0


def test_repeated_image_id_raises():
    evaluator = DetectionEvaluator(['a'])
    evaluator.update([GT_A], [0.9], [0], [GT_A], [0], image_id='img0')
    with pytest.raises(ValueError, match='img0'):
        evaluator.update([GT_A], [0.9], [0], [GT_A], [0], image_id='img0')
