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


"""COCO-style box mAP through pycocotools, with the data built in memory."""

import contextlib
import io
from typing import Sequence

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def _xywh(boxes: np.ndarray) -> list[list[float]]:
    wh = boxes[:, 2:] - boxes[:, :2]
    return np.concatenate([boxes[:, :2], wh], axis=1).tolist()


def _build_coco(images: list[dict], categories: list[dict], annotations: list[dict]) -> COCO:
    coco = COCO()
    coco.dataset = {'images': images, 'categories': categories, 'annotations': annotations}
    coco.createIndex()
    return coco


def coco_box_map(records: Sequence[dict], num_classes: int,
                 max_detections: int = 100) -> dict:
    """
    Run pycocotools' bbox evaluation on in-memory records.

    :param records: one dict per image with numpy arrays ``gt_boxes [G,4]``, ``gt_labels [G]``,
        ``gt_difficult [G] bool``, ``det_boxes [M,4]``, ``det_scores [M]``,
        ``det_labels [M]``; boxes xyxy in pixels, labels 0-based.
    :param num_classes: number of detection classes C.
    :param max_detections: detections kept per image and class (pycocotools' largest maxDets).

    Difficult gts become ``iscrowd=1`` (pycocotools has no other ignore flag: its
    ``ignore`` field is overwritten from ``iscrowd``). Detections on them are then ignored,
    with COCO's crowd rule (overlap = intersection / detection area, any number of matches),
    which can differ slightly from VOC's handling of difficult objects. Areas are box areas.

    :return: dict with ``map`` (AP@[.5:.95]), ``map50``, ``map75`` (area 'all', ``max_detections``,
        101-point interpolation as pycocotools) and ``per_class_ap`` / ``per_class_ap50``
        (float64 ``[C]``, NaN for classes without any non-crowd gt). The means are NaN when no
        class has a gt, instead of pycocotools' -1.
    """
    images = [{'id': index + 1} for index in range(len(records))]
    categories = [{'id': c + 1, 'name': str(c)} for c in range(num_classes)]
    gt_annotations, dt_annotations = [], []
    for image_id, record in enumerate(records, start=1):
        gt_boxes = record['gt_boxes']
        areas = ((gt_boxes[:, 2] - gt_boxes[:, 0]) * (gt_boxes[:, 3] - gt_boxes[:, 1])).tolist()
        for box, label, difficult, area in zip(_xywh(gt_boxes), record['gt_labels'].tolist(),
                                               record['gt_difficult'].tolist(), areas):
            # Annotation ids must start at 1: pycocotools treats a matched gt id 0 as "no match".
            gt_annotations.append({
                'id': len(gt_annotations) + 1, 'image_id': image_id,
                'category_id': int(label) + 1, 'bbox': box, 'area': float(area),
                'iscrowd': int(bool(difficult))})
        det_boxes = record['det_boxes']
        det_areas = ((det_boxes[:, 2] - det_boxes[:, 0])
                     * (det_boxes[:, 3] - det_boxes[:, 1])).tolist()
        for box, label, score, area in zip(_xywh(det_boxes), record['det_labels'].tolist(),
                                           record['det_scores'].tolist(), det_areas):
            dt_annotations.append({
                'id': len(dt_annotations) + 1, 'image_id': image_id,
                'category_id': int(label) + 1, 'bbox': box, 'area': float(area),
                'score': float(score), 'iscrowd': 0})

    # pycocotools prints progress to stdout; keep it out of the caller's logs.
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = _build_coco(images, categories, gt_annotations)
        # Built directly (not COCO.loadRes) because loadRes fails on an empty result list.
        coco_dt = _build_coco(images, categories, dt_annotations)
        evaluator = COCOeval(coco_gt, coco_dt, iouType='bbox')
        evaluator.params.maxDets = [1, 10, max_detections]
        evaluator.evaluate()
        evaluator.accumulate()

    # precision: [T iou thresholds, R recall points, K classes, A areas, M maxDets].
    precision = evaluator.eval['precision'][:, :, :, 0, -1]
    iou_thresholds = evaluator.params.iouThrs

    def per_class(values: np.ndarray) -> np.ndarray:
        result = np.full(num_classes, np.nan)
        for k in range(num_classes):
            valid = values[..., k]
            valid = valid[valid > -1]
            if valid.size:
                result[k] = valid.mean()
        return result

    def overall(values: np.ndarray) -> float:
        valid = values[values > -1]
        return float(valid.mean()) if valid.size else float('nan')

    at50 = precision[np.isclose(iou_thresholds, 0.5)]
    at75 = precision[np.isclose(iou_thresholds, 0.75)]
    return {
        'map': overall(precision),
        'map50': overall(at50),
        'map75': overall(at75),
        'per_class_ap': per_class(precision),
        'per_class_ap50': per_class(at50),
    }
