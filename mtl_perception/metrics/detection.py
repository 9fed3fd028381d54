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


"""Detection evaluation: VOC AP@0.5 (all-point and 11-point) and COCO mAP."""

from typing import Any, Optional, Sequence

from mtl_perception.metrics._arrays import as_boxes, as_vector
from mtl_perception.metrics.average_precision import (
    average_precision, match_image, mean_ignoring_nan, voc_precision_recall)
from mtl_perception.metrics.coco import coco_box_map
import numpy as np


class DetectionEvaluator:
    """
    Accumulate per-image detections and ground truth; compute VOC and COCO box AP.

    Conventions:
        * Boxes are ``[x1, y1, x2, y2]`` in pixels with continuous coordinates (no VOC "+1"
          pixel), so IoU matches pycocotools and torchvision.
        * Labels are 0-based indices into ``class_names`` (no background).
        * VOC AP uses IoU >= 0.5 with the VOC devkit's greedy matching: by descending score,
          each detection goes to the same-class gt it overlaps most; a gt is matched once
          (later detections on it are FP). Detections matched to a difficult gt are ignored.
        * A class with no non-difficult gt has NaN AP and is left out of every mean (and so is
          a class whose only gts are difficult); with detections but no gt, its false positives
          therefore cost nothing. A class with gts but no detections has AP 0.
        * COCO numbers come from pycocotools (101-point interpolation, up to
          ``coco_max_detections`` detections per image and class, difficult -> iscrowd).

    :param class_names: detection class names; their order defines the label indices.
    :param iou_threshold: IoU for the VOC metrics (0.5 in the VOC protocol).
    :param coco_max_detections: pycocotools' per-image detection limit (COCO standard: 100).
    """

    def __init__(self, class_names: Sequence[str], iou_threshold: float = 0.5,
                 coco_max_detections: int = 100) -> None:
        if len(class_names) == 0:
            raise ValueError('class_names must not be empty')
        self.class_names = [str(name) for name in class_names]
        self.iou_threshold = float(iou_threshold)
        self.coco_max_detections = int(coco_max_detections)
        self.reset()

    @property
    def num_classes(self) -> int:
        """Return the number of detection classes."""
        return len(self.class_names)

    @property
    def num_images(self) -> int:
        """Return the number of images added so far."""
        return len(self._records)

    def reset(self) -> None:
        """Forget every image added so far."""
        self._records: list[dict] = []
        self._image_ids: set = set()

    def update(self, pred_boxes: Any, pred_scores: Any, pred_labels: Any, gt_boxes: Any,
               gt_labels: Any, gt_difficult: Optional[Any] = None,
               image_id: Optional[str] = None) -> None:
        """
        Add one image.

        :param pred_boxes: ``[M, 4]`` predicted boxes, xyxy in pixels (numpy or torch).
        :param pred_scores: ``[M]`` confidences.
        :param pred_labels: ``[M]`` 0-based class indices.
        :param gt_boxes: ``[G, 4]`` ground-truth boxes, xyxy in pixels, same frame as the
            predictions.
        :param gt_labels: ``[G]`` 0-based class indices.
        :param gt_difficult: ``[G]`` bool, or None for "no difficult objects".
        :param image_id: optional identifier; a repeated id raises ValueError.

        :raises ValueError: on mismatched shapes, out-of-range labels or a repeated image_id.
        """
        if image_id is not None:
            if image_id in self._image_ids:
                raise ValueError(f'image_id {image_id!r} was already added')
        det_boxes = as_boxes(pred_boxes, 'pred_boxes')
        num_det = det_boxes.shape[0]
        det_scores = as_vector(pred_scores, 'pred_scores', num_det, np.float64)
        det_labels = as_vector(pred_labels, 'pred_labels', num_det, np.int64)
        boxes = as_boxes(gt_boxes, 'gt_boxes')
        num_gt = boxes.shape[0]
        labels = as_vector(gt_labels, 'gt_labels', num_gt, np.int64)
        if gt_difficult is None:
            difficult = np.zeros(num_gt, dtype=bool)
        else:
            difficult = as_vector(gt_difficult, 'gt_difficult', num_gt, bool)
        for name, values in (('pred_labels', det_labels), ('gt_labels', labels)):
            if values.size and (values.min() < 0 or values.max() >= self.num_classes):
                raise ValueError(
                    f'{name} must lie in [0, {self.num_classes}), got range '
                    f'[{values.min()}, {values.max()}]')
        if not np.all(np.isfinite(det_scores)):
            raise ValueError('pred_scores contains non-finite values')
        if image_id is not None:
            self._image_ids.add(image_id)
        self._records.append({
            'image_id': image_id, 'det_boxes': det_boxes, 'det_scores': det_scores,
            'det_labels': det_labels, 'gt_boxes': boxes, 'gt_labels': labels,
            'gt_difficult': difficult})

    def merge(self, other: 'DetectionEvaluator') -> None:
        """Add every image of ``other`` (e.g. gathered from another process) to this one."""
        if other.class_names != self.class_names:
            raise ValueError('cannot merge evaluators with different class_names')
        clash = self._image_ids & other._image_ids
        if clash:
            raise ValueError(f'image ids present in both evaluators: {sorted(clash)[:5]}')
        self._records.extend(other._records)
        self._image_ids |= other._image_ids

    def state_dict(self) -> dict:
        """Return the accumulated records (picklable, for gathering across processes)."""
        return {'class_names': list(self.class_names), 'records': list(self._records)}

    def load_state_dict(self, state: dict) -> None:
        """Replace the accumulated records with those of :meth:`state_dict`."""
        if list(state['class_names']) != self.class_names:
            raise ValueError('state was produced with different class_names')
        self._records = list(state['records'])
        self._image_ids = {r['image_id'] for r in self._records if r['image_id'] is not None}

    def _voc_curves(self) -> list[Optional[tuple[np.ndarray, np.ndarray]]]:
        """Return per class the (recall, precision) curve, or None without positives."""
        scores, labels, matched_gt, matched_iou = [], [], [], []
        gt_labels, gt_difficult = [], []
        offset = 0
        for record in self._records:
            best_gt, best_iou = match_image(record['det_boxes'], record['det_labels'],
                                            record['gt_boxes'], record['gt_labels'])
            # Global gt index over the whole data set keeps gts of different images apart.
            matched_gt.append(np.where(best_gt >= 0, best_gt + offset, -1))
            matched_iou.append(best_iou)
            scores.append(record['det_scores'])
            labels.append(record['det_labels'])
            gt_labels.append(record['gt_labels'])
            gt_difficult.append(record['gt_difficult'])
            offset += record['gt_boxes'].shape[0]
        empty_int = [np.zeros(0, dtype=np.int64)]
        scores = np.concatenate(scores + [np.zeros(0)])
        labels = np.concatenate(labels + empty_int)
        matched_gt = np.concatenate(matched_gt + empty_int)
        matched_iou = np.concatenate(matched_iou + [np.zeros(0)])
        gt_labels = np.concatenate(gt_labels + empty_int)
        gt_difficult = np.concatenate(gt_difficult + [np.zeros(0, dtype=bool)])
        curves = []
        for k in range(self.num_classes):
            num_positives = int(np.sum((gt_labels == k) & ~gt_difficult))
            if num_positives == 0:
                curves.append(None)
                continue
            selected = labels == k
            curves.append(voc_precision_recall(
                scores[selected], matched_gt[selected], matched_iou[selected], gt_difficult,
                num_positives, self.iou_threshold))
        return curves

    def compute(self) -> dict:
        """
        Return the metrics as plain Python floats.

        :return: dict with ``map50`` (mean VOC all-point AP at ``iou_threshold``, the VOC2010+
            definition), ``map50_voc07`` (mean VOC2007 11-point AP), ``per_class_ap50`` and
            ``per_class_ap50_voc07`` ({class name: AP}, NaN without gt), ``map_coco`` (COCO
            AP@[.5:.95] from pycocotools), ``map50_coco`` / ``map75_coco`` (pycocotools' AP
            at IoU 0.5 / 0.75), ``per_class_ap_coco`` ({class name: COCO AP@[.5:.95]}) and
            ``num_images``. Means are NaN when no class has a (non-difficult) gt.
        """
        curves = self._voc_curves()
        all_point, voc07 = [], []
        for curve in curves:
            if curve is None:
                all_point.append(float('nan'))
                voc07.append(float('nan'))
            else:
                all_point.append(average_precision(*curve, method='all_point'))
                voc07.append(average_precision(*curve, method='voc07'))
        if self._records:
            coco = coco_box_map(self._records, self.num_classes, self.coco_max_detections)
        else:
            nan_classes = np.full(self.num_classes, np.nan)
            coco = {'map': float('nan'), 'map50': float('nan'), 'map75': float('nan'),
                    'per_class_ap': nan_classes}
        return {
            'map50': mean_ignoring_nan(all_point),
            'map50_voc07': mean_ignoring_nan(voc07),
            'per_class_ap50': dict(zip(self.class_names, all_point)),
            'per_class_ap50_voc07': dict(zip(self.class_names, voc07)),
            'map_coco': float(coco['map']),
            'map50_coco': float(coco['map50']),
            'map75_coco': float(coco['map75']),
            'per_class_ap_coco': {
                name: float(value) for name, value in zip(self.class_names,
                                                          coco['per_class_ap'])},
            'num_images': len(self._records),
        }
