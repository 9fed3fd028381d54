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
Seeded random cross-checks of the detection metrics against independent implementations.

* ``map_coco`` / ``map50_coco`` against pycocotools run here on COCO-format data built by the
  test (via ``COCO.loadRes``, i.e. a different path from the evaluator's), and against
  torchmetrics' MeanAveragePrecision (pycocotools backend). Both are the same algorithm, so
  the tolerance only covers float32 (torchmetrics) vs float64 coordinates: 1e-5. torchmetrics'
  default IoU and recall thresholds are float32 ``torch.linspace`` values, which differ from
  pycocotools' float64 ones exactly where a recall such as 3/10 sits on a threshold (seen
  here: AP50 0.4905 vs 0.4921), so the test passes pycocotools' own thresholds to it.
* VOC all-point and 11-point AP against a plain-Python re-implementation written from the
  definitions (devkit greedy matching; all-point AP = sum over TPs of the best precision at
  that rank or later, divided by the number of positives). Tolerance 1e-9 (rounding only).
* VOC all-point AP50 against COCO's 101-point AP50. With disjoint same-class gts both
  matchers agree, so only the interpolation differs. pycocotools samples the same precision
  envelope f (non-increasing on [0, 1]) that the all-point AP integrates, at r = k/100; with
  S = mean_k f(k/100) and I = integral f, bounding each 0.01-wide strip by its end values gives
  I - S <= (S - f(1)) / 100 and S - I <= (f(0) - S) / 100, so |S - I| <= 0.01 per class. That
  derived bound is what is asserted (not a fitted tolerance).
"""

import contextlib
import io

from mtl_perception.metrics import coco_box_map, DetectionEvaluator
import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval, Params
import pytest
import torch
from torchmetrics.detection import MeanAveragePrecision

CLASSES = ['car', 'person', 'boat']


def _random_images(seed, num_images=12, with_difficult=False):
    """Images of 200x200 px; gts sit one per 50 px grid cell, so they never overlap."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(num_images):
        num_gt = int(rng.integers(0, 7))
        cells = rng.choice(16, size=num_gt, replace=False)
        x1 = (cells % 4) * 50 + rng.uniform(0, 15, num_gt)
        y1 = (cells // 4) * 50 + rng.uniform(0, 15, num_gt)
        gt_boxes = np.stack([x1, y1, x1 + rng.uniform(15, 35, num_gt),
                             y1 + rng.uniform(15, 35, num_gt)], axis=1).reshape(-1, 4)
        gt_labels = rng.integers(0, len(CLASSES), num_gt)
        difficult = rng.random(num_gt) < 0.2 if with_difficult else np.zeros(num_gt, bool)
        # Jittered copies of gts (some twice: duplicates), some with the wrong class.
        source = rng.integers(0, max(num_gt, 1), int(rng.integers(0, 9))) if num_gt else []
        near = gt_boxes[source] + rng.normal(0, 3.0, (len(source), 4))
        near_labels = np.where(rng.random(len(source)) < 0.15,
                               rng.integers(0, len(CLASSES), len(source)), gt_labels[source])
        num_far = int(rng.integers(0, 5))
        corner = rng.uniform(0, 170, (num_far, 2))
        far = np.concatenate([corner, corner + rng.uniform(10, 30, (num_far, 2))], axis=1)
        pred_boxes = np.concatenate([near.reshape(-1, 4), far]).astype(np.float32)
        pred_labels = np.concatenate([near_labels, rng.integers(0, len(CLASSES), num_far)])
        pred_scores = rng.random(len(pred_boxes)).astype(np.float32)
        images.append({
            'pred_boxes': pred_boxes, 'pred_scores': pred_scores,
            'pred_labels': pred_labels.astype(np.int64),
            'gt_boxes': gt_boxes.astype(np.float32), 'gt_labels': gt_labels.astype(np.int64),
            'gt_difficult': difficult})
    return images


def _evaluate(images):
    evaluator = DetectionEvaluator(CLASSES)
    for image in images:
        evaluator.update(**image)
    return evaluator.compute()


def _iou(a, b):
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(iw, 0.0) * max(ih, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def _reference_voc(images, label):
    """Return (all-point AP, 11-point AP) for one class, or None without positives."""
    dets = []
    for index, image in enumerate(images):
        for box, score, lab in zip(image['pred_boxes'].astype(float), image['pred_scores'],
                                   image['pred_labels']):
            if lab == label:
                dets.append((-float(score), index, list(box)))
    dets.sort(key=lambda d: d[0])
    gts = {}
    positives = 0
    for index, image in enumerate(images):
        gts[index] = [(list(b), bool(d), [False]) for b, lab, d in zip(
            image['gt_boxes'].astype(float), image['gt_labels'], image['gt_difficult'])
            if lab == label]
        positives += sum(1 for g in gts[index] if not g[1])
    if positives == 0:
        return None
    outcomes = []
    for _, index, box in dets:
        best, best_gt = -1.0, None
        for gt in gts[index]:
            overlap = _iou(box, gt[0])
            if overlap > best:
                best, best_gt = overlap, gt
        if best_gt is not None and best >= 0.5:
            if best_gt[1]:
                continue
            if not best_gt[2][0]:
                best_gt[2][0] = True
                outcomes.append(True)
                continue
        outcomes.append(False)
    precisions, recalls, tp = [], [], 0
    for rank, hit in enumerate(outcomes, start=1):
        tp += hit
        precisions.append(tp / rank)
        recalls.append(tp / positives)
    all_point = sum(max(precisions[i:]) for i, hit in enumerate(outcomes) if hit) / positives
    eleven = 0.0
    for k in range(11):
        candidates = [p for p, r in zip(precisions, recalls) if r >= k / 10]
        eleven += max(candidates) if candidates else 0.0
    return all_point, eleven / 11


def _pycocotools_stats(images):
    gt = {'images': [{'id': i + 1} for i in range(len(images))],
          'categories': [{'id': c + 1} for c in range(len(CLASSES))], 'annotations': []}
    results = []
    for image_id, image in enumerate(images, start=1):
        for box, label, difficult in zip(image['gt_boxes'].astype(float), image['gt_labels'],
                                         image['gt_difficult']):
            w, h = box[2] - box[0], box[3] - box[1]
            gt['annotations'].append({
                'id': len(gt['annotations']) + 1, 'image_id': image_id,
                'category_id': int(label) + 1, 'bbox': [box[0], box[1], w, h],
                'area': w * h, 'iscrowd': int(difficult)})
        for box, label, score in zip(image['pred_boxes'].astype(float), image['pred_labels'],
                                     image['pred_scores'].astype(float)):
            results.append({'image_id': image_id, 'category_id': int(label) + 1,
                            'bbox': [box[0], box[1], box[2] - box[0], box[3] - box[1]],
                            'score': score})
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_eval = COCOeval(coco_gt, coco_gt.loadRes(results), 'bbox')
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return coco_eval.stats


def _torchmetrics(images, iou_thresholds=None):
    coco_params = Params('bbox')
    metric = MeanAveragePrecision(
        box_format='xyxy', iou_type='bbox', class_metrics=True, backend='pycocotools',
        iou_thresholds=iou_thresholds or coco_params.iouThrs.tolist(),
        rec_thresholds=coco_params.recThrs.tolist())
    preds, targets = [], []
    for image in images:
        preds.append({'boxes': torch.from_numpy(image['pred_boxes']),
                      'scores': torch.from_numpy(image['pred_scores']),
                      'labels': torch.from_numpy(image['pred_labels'])})
        targets.append({'boxes': torch.from_numpy(image['gt_boxes']),
                        'labels': torch.from_numpy(image['gt_labels']),
                        'iscrowd': torch.from_numpy(image['gt_difficult'].astype(np.int64))})
    metric.update(preds, targets)
    return metric.compute()


@pytest.mark.parametrize('seed', [0, 1])
def test_voc_ap_matches_reference_implementation(seed):
    images = _random_images(seed, with_difficult=True)
    result = _evaluate(images)
    checked = 0
    for label, name in enumerate(CLASSES):
        reference = _reference_voc(images, label)
        if reference is None:
            assert np.isnan(result['per_class_ap50'][name])
            continue
        checked += 1
        assert result['per_class_ap50'][name] == pytest.approx(reference[0], abs=1e-9)
        assert result['per_class_ap50_voc07'][name] == pytest.approx(reference[1], abs=1e-9)
    assert checked == len(CLASSES)
    # The data must be non-trivial for the comparison to mean anything.
    assert 0.2 < result['map50'] < 0.95


@pytest.mark.parametrize('with_difficult', [False, True])
def test_coco_map_matches_pycocotools_and_torchmetrics(with_difficult):
    images = _random_images(3, with_difficult=with_difficult)
    result = _evaluate(images)
    stats = _pycocotools_stats(images)
    assert result['map_coco'] == pytest.approx(stats[0], abs=1e-12)
    assert result['map50_coco'] == pytest.approx(stats[1], abs=1e-12)
    assert result['map75_coco'] == pytest.approx(stats[2], abs=1e-12)
    assert 0.1 < result['map_coco'] < result['map50_coco'] < 1.0

    reference = _torchmetrics(images)
    assert result['map_coco'] == pytest.approx(float(reference['map']), abs=1e-5)
    assert result['map50_coco'] == pytest.approx(float(reference['map_50']), abs=1e-5)
    per_class = dict(zip(reference['classes'].tolist(), reference['map_per_class'].tolist()))
    for label, name in enumerate(CLASSES):
        assert result['per_class_ap_coco'][name] == pytest.approx(per_class[label], abs=1e-5)

    at50 = _torchmetrics(images, iou_thresholds=[0.5])
    assert result['map50_coco'] == pytest.approx(float(at50['map']), abs=1e-5)


@pytest.mark.parametrize('seed', [5, 7, 14])
def test_voc_all_point_close_to_coco_101_point(seed):
    images = _random_images(seed, num_images=20)
    evaluator = DetectionEvaluator(CLASSES)
    for image in images:
        evaluator.update(**image)
    result = evaluator.compute()
    coco = coco_box_map(evaluator.state_dict()['records'], len(CLASSES))
    for label, name in enumerate(CLASSES):
        voc = result['per_class_ap50'][name]
        assert abs(voc - coco['per_class_ap50'][label]) <= 0.01 + 1e-12
    assert abs(result['map50'] - result['map50_coco']) <= 0.01 + 1e-12
    # Not vacuous: the two interpolations do differ on this data.
    assert result['map50'] != pytest.approx(result['map50_coco'], abs=1e-6)
