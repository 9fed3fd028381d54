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
Evaluation loop: run a Predictor over a data set and compute the standard metrics.

The Predictor is what deploys (preprocess, network, decoding/NMS, mask resize), so the numbers
are measured on its output at the original image size: boxes in image pixels against the
data set's boxes (difficult objects ignored), masks against the data set's masks (void 255
ignored). The result has the shape of ``mtl-perception evaluate --json``::

    {"images": int,
     "detection": {"map50", "map50_voc07", "map_coco", "per_class_ap50": {name: AP}},
     "segmentation": {"miou", "pixel_accuracy", "per_class_iou": {name: IoU}}}

A task the predictor does not have (or the data set does not label) is ``None``. NaN (e.g.
the AP of a class without ground truth) becomes ``None`` so the dict is valid JSON.
"""

import math

from mtl_perception.inference.predictor import Predictor
from mtl_perception.metrics import DetectionEvaluator, SegmentationEvaluator
from tqdm import tqdm

# Evaluation keeps low-confidence boxes: AP integrates over the whole ranking.
EVAL_SCORE_THRESHOLD = 0.01
EVAL_MAX_DETECTIONS = 100


def _finite_or_none(value):
    value = float(value)
    return value if math.isfinite(value) else None


def predictor_for_model(model, card, *,
                        score_threshold: float = EVAL_SCORE_THRESHOLD,
                        max_detections: int = EVAL_MAX_DETECTIONS) -> Predictor:
    """
    Wrap an in-memory ``MultiTaskModel`` (e.g. during training) in a torch-backend Predictor.

    The model is put in eval mode on its current device; call ``model.train()`` afterwards to
    continue training. ``card``: its ``ModelCard``, or a partial card dict as training holds
    it (completed from the model).
    """
    # torch only here: the evaluation loop itself also runs on the deployment backends.
    from mtl_perception.inference.backends.torch_backend import TorchBackend

    device = next(model.parameters()).device
    backend = TorchBackend(model, card, device=str(device))
    return Predictor(backend, backend.card, anchors=backend.anchors,
                     score_threshold=score_threshold,
                     max_detections=max_detections)


def summarize(detection: DetectionEvaluator | None,
              segmentation: SegmentationEvaluator | None, images: int) -> dict:
    """Turn filled evaluators into the evaluation JSON dict (see the module docstring)."""
    result: dict = {'images': int(images), 'detection': None, 'segmentation': None}
    if detection is not None:
        det = detection.compute()
        result['detection'] = {
            'map50': _finite_or_none(det['map50']),
            'map50_voc07': _finite_or_none(det['map50_voc07']),
            'map_coco': _finite_or_none(det['map_coco']),
            'per_class_ap50': {k: _finite_or_none(v) for k, v in det['per_class_ap50'].items()},
        }
    if segmentation is not None:
        seg = segmentation.compute()
        result['segmentation'] = {
            'miou': _finite_or_none(seg['miou']),
            'pixel_accuracy': _finite_or_none(seg['pixel_accuracy']),
            'per_class_iou': {k: _finite_or_none(v) for k, v in seg['per_class_iou'].items()},
        }
    return result


def evaluate_predictor(predictor: Predictor, dataset, *, batch_size: int = 8,
                       max_images: int | None = None, progress: bool = False) -> dict:
    """
    Run ``predictor`` over ``dataset`` (contract samples) and return the metrics dict.

    Detection is measured when the predictor detects and samples have boxes (samples with
    boxes None are skipped for it); segmentation likewise with masks. The predictor's class
    lists must equal the data set's when the data set declares them (a mismatch raises
    ValueError: the indices would not mean the same classes).

    :param batch_size: images per network run.
    :param max_images: evaluate only the first ``max_images`` samples.
    :return: the evaluation dict.
    """
    tasks = predictor.tasks
    evaluators: dict = {}
    for task, cls in (('detection', DetectionEvaluator), ('segmentation', SegmentationEvaluator)):
        if task not in tasks:
            continue
        names = predictor.class_names[task]
        declared = getattr(dataset, f'{task}_classes', None)
        if declared is not None and list(declared) != list(names):
            raise ValueError(f"the model's {task} classes {names} differ from the data "
                             f"set's {list(declared)}")
        evaluators[task] = cls(names)
    count = len(dataset) if max_images is None else min(len(dataset), int(max_images))
    seen = dict.fromkeys(evaluators, False)
    indices = range(0, count, max(1, int(batch_size)))
    for first in tqdm(indices, desc='evaluate', unit='batch', disable=not progress):
        samples = [dataset[i] for i in range(first, min(first + batch_size, count))]
        predictions = predictor.predict_batch([s['image'] for s in samples])
        for offset, (sample, pred) in enumerate(zip(samples, predictions)):
            if 'detection' in evaluators and sample.get('boxes') is not None:
                seen['detection'] = True
                evaluators['detection'].update(
                    pred.boxes, pred.scores, pred.labels, sample['boxes'], sample['labels'],
                    sample.get('difficult'), image_id=f'{first + offset}')
            if 'segmentation' in evaluators and sample.get('mask') is not None:
                seen['segmentation'] = True
                evaluators['segmentation'].update(pred.mask, sample['mask'])
    return summarize(evaluators.get('detection') if seen.get('detection') else None,
                     evaluators.get('segmentation') if seen.get('segmentation') else None,
                     count)
