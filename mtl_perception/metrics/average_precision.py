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
PASCAL VOC average precision: greedy matching and the two interpolations.

Box coordinates are continuous (``[x1, y1, x2, y2]`` in pixels, area ``(x2 - x1) * (y2 - y1)``);
the VOC devkit's "+1 pixel" convention is deliberately not used, so IoUs equal the ones
pycocotools and torchvision compute for the same boxes.
"""

from typing import Sequence

import numpy as np

AP_METHODS = ('all_point', 'voc07')


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Return the IoU matrix ``[A, B]`` of two ``[N, 4]`` xyxy box arrays (continuous coords)."""
    area_a = np.clip(boxes_a[:, 2] - boxes_a[:, 0], 0, None) * np.clip(
        boxes_a[:, 3] - boxes_a[:, 1], 0, None)
    area_b = np.clip(boxes_b[:, 2] - boxes_b[:, 0], 0, None) * np.clip(
        boxes_b[:, 3] - boxes_b[:, 1], 0, None)
    top_left = np.maximum(boxes_a[:, None, :2], boxes_b[None, :, :2])
    bottom_right = np.minimum(boxes_a[:, None, 2:], boxes_b[None, :, 2:])
    wh = np.clip(bottom_right - top_left, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide='ignore', invalid='ignore'):
        iou = np.where(union > 0, inter / union, 0.0)
    return iou


def average_precision(recall: np.ndarray, precision: np.ndarray,
                      method: str = 'all_point') -> float:
    """
    Return the area under a precision/recall curve.

    :param recall: ``[D]`` cumulative recall after each ranked detection (non-decreasing).
    :param precision: ``[D]`` cumulative precision after each ranked detection.
    :param method: ``'all_point'`` (VOC2010+: area under the monotone precision envelope at every
        recall change) or ``'voc07'`` (VOC2007: mean of the best precision at recall >=
        t for the 11 thresholds t = 0, 0.1, ..., 1; t is computed as k / 10 so that a
        recall of exactly 3/10 counts for t = 0.3).

    :return: AP in [0, 1]; 0.0 for an empty curve.
    """
    recall = np.asarray(recall, dtype=np.float64)
    precision = np.asarray(precision, dtype=np.float64)
    if recall.shape != precision.shape or recall.ndim != 1:
        raise ValueError(
            f'recall and precision must be 1-D of equal length, got {recall.shape} and '
            f'{precision.shape}')
    if method not in AP_METHODS:
        raise ValueError(f'method must be one of {AP_METHODS}, got {method!r}')
    if recall.size == 0:
        return 0.0
    if method == 'voc07':
        total = 0.0
        for threshold in np.arange(11) / 10.0:
            above = precision[recall >= threshold]
            total += float(above.max()) if above.size else 0.0
        return total / 11.0
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    # Envelope: precision at recall r is the best precision at any recall >= r.
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def match_image(det_boxes: np.ndarray, det_labels: np.ndarray, gt_boxes: np.ndarray,
                gt_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """
    Find, for every detection, the same-class ground truth it overlaps most.

    :param det_boxes: ``[M, 4]`` detection boxes, xyxy.
    :param det_labels: ``[M]`` detection class indices.
    :param gt_boxes: ``[G, 4]`` ground-truth boxes, xyxy.
    :param gt_labels: ``[G]`` ground-truth class indices.

    :return: ``(best_gt [M] int64, best_iou [M] float64)``; ``best_gt`` is -1 (IoU 0) where the
        image holds no ground truth of the detection's class. Ties go to the lower gt index.
    """
    best_gt = np.full(det_boxes.shape[0], -1, dtype=np.int64)
    best_iou = np.zeros(det_boxes.shape[0], dtype=np.float64)
    if det_boxes.shape[0] == 0 or gt_boxes.shape[0] == 0:
        return best_gt, best_iou
    iou = box_iou(det_boxes, gt_boxes)
    same_class = det_labels[:, None] == gt_labels[None, :]
    # -1 rather than 0 so that a zero-overlap gt of the right class still beats other classes.
    iou = np.where(same_class, iou, -1.0)
    best = np.argmax(iou, axis=1)
    best_value = iou[np.arange(iou.shape[0]), best]
    has_gt = best_value >= 0.0
    best_gt[has_gt] = best[has_gt]
    best_iou[has_gt] = best_value[has_gt]
    return best_gt, best_iou


def voc_precision_recall(scores: np.ndarray, matched_gt: np.ndarray, matched_iou: np.ndarray,
                         gt_difficult: np.ndarray, num_positives: int,
                         iou_threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """
    Rank one class's detections and return its cumulative recall and precision.

    VOC devkit rules: detections are taken by descending score (stable, so ties keep their
    insertion order); each is compared with the gt it overlaps most. If that IoU is
    >= ``iou_threshold`` and the gt is difficult, the detection is ignored (neither TP nor
    FP, and it is dropped from the curve); if the gt is not difficult and not yet matched it
    is a TP and the gt becomes matched; otherwise (duplicate, too little overlap, no gt) FP.

    :param scores: ``[D]`` detection scores.
    :param matched_gt: ``[D]`` index (global over the data set, for this class) of the gt each
        detection overlaps most, -1 for none.
    :param matched_iou: ``[D]`` that IoU.
    :param gt_difficult: ``[G]`` difficult flag of every gt of this class, indexed as matched_gt.
    :param num_positives: number of non-difficult gts of this class (> 0).
    :param iou_threshold: minimum IoU for a match.

    :return: ``(recall [D'], precision [D'])`` over the D' non-ignored detections in rank order.
    """
    order = np.argsort(-scores, kind='mergesort')
    gt_index = matched_gt[order]
    overlaps = matched_iou[order] >= iou_threshold
    overlaps &= gt_index >= 0
    difficult = np.zeros_like(overlaps)
    difficult[overlaps] = gt_difficult[gt_index[overlaps]]
    candidate = overlaps & ~difficult
    true_positive = np.zeros(order.shape[0], dtype=bool)
    # Greedy matching in rank order == the first-ranked detection of each gt wins.
    candidates = np.nonzero(candidate)[0]
    _, first = np.unique(gt_index[candidates], return_index=True)
    true_positive[candidates[first]] = True
    keep = ~difficult
    tp = np.cumsum(true_positive[keep])
    fp = np.cumsum(~true_positive[keep])
    recall = tp / float(num_positives)
    precision = tp / np.maximum(tp + fp, 1)
    return recall, precision


def mean_ignoring_nan(values: Sequence[float]) -> float:
    """Return the mean of the non-NaN values, or NaN when there are none."""
    finite = [v for v in values if not np.isnan(v)]
    return float(np.mean(finite)) if finite else float('nan')
