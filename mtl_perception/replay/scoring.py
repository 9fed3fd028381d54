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
Score one replay run from plain data: latency, throughput, drops and accuracy (no rclpy).

Definitions (all times in integer nanoseconds of one clock, the recorder's wall clock):

* A frame is an input image, known by its header stamp; its *publish time* is when the player
  handed it to the middleware. An output belongs to the frame whose stamp its header carries
  (the nodes copy the input header).
* A frame is *complete* when every task has an output with its stamp; its *completion time* is
  the latest of those first receive times (for the two-node baseline: the later node).
* latency = completion time - publish time, per complete frame (ms); p50/p95 by linear
  interpolation between order statistics.
* fps = complete frames / (last completion time - first publish time).
* frames_out = complete frames; dropped = frames_in - frames_out.
* Accuracy counts only the frames that have a prediction for the task (a frame the node never
  answered is a throughput loss, not an accuracy loss): mAP50 is the VOC all-point mean AP at
  IoU 0.5 of :class:`DetectionEvaluator`, mIoU that of :class:`SegmentationEvaluator`.
"""

from dataclasses import dataclass, field
import math
import struct
from typing import Mapping, Optional, Sequence

from mtl_perception.metrics import DetectionEvaluator, SegmentationEvaluator
import numpy as np
from PIL import Image as PILImage

__all__ = ['GroundTruth', 'TimingScore', 'cdr_stamp_ns', 'percentiles', 'score_accuracy',
           'score_timing']

VOID = 255
VOID_PREDICTION = 'void_prediction'


def cdr_stamp_ns(data: bytes) -> int:
    """
    Return the header stamp (ns) of a CDR message whose first field is a std_msgs/Header.

    Reads the 4-byte encapsulation (its low bit tells little from big endian) and then
    ``stamp.sec`` (int32) and ``stamp.nanosec`` (uint32), so recording needs no
    deserialisation. Raises ValueError for fewer than 12 bytes.
    """
    if len(data) < 12:
        raise ValueError(f'a CDR message with a header needs >= 12 bytes, got {len(data)}')
    order = '<' if data[1] & 1 else '>'
    sec, nanosec = struct.unpack_from(order + 'iI', data, 4)
    return sec * 1_000_000_000 + nanosec


def percentiles(values_ms: Sequence[float]) -> dict:
    """Return ``{'p50', 'p95', 'max'}`` of ``values_ms`` (None each when empty)."""
    if len(values_ms) == 0:
        return {'p50': None, 'p95': None, 'max': None}
    values = np.asarray(values_ms, dtype=np.float64)
    return {'p50': float(np.percentile(values, 50)), 'p95': float(np.percentile(values, 95)),
            'max': float(values.max())}


@dataclass
class TimingScore:
    """
    Timing of a run; ``as_dict()`` gives the report's keys.

    ``publish_ns`` / ``completion_ns`` / ``latency_ms`` are per complete frame in publish
    order (int64, int64, float64 arrays [F]) for plots.
    """

    frames_in: int
    frames_out: int
    dropped: int
    fps: float
    latency_ms: dict
    outputs: dict
    unmatched_outputs: int
    publish_ns: np.ndarray = field(repr=False)
    completion_ns: np.ndarray = field(repr=False)
    latency_series_ms: np.ndarray = field(repr=False)

    def as_dict(self) -> dict:
        """Return the JSON-ready summary (no per-frame arrays)."""
        return {'frames_in': self.frames_in, 'frames_out': self.frames_out,
                'dropped': self.dropped, 'fps': self.fps, 'latency_ms': dict(self.latency_ms),
                'outputs': dict(self.outputs), 'unmatched_outputs': self.unmatched_outputs}


def score_timing(frames: Sequence[tuple], receipts: Mapping[str, Mapping[int, int]]
                 ) -> TimingScore:
    """
    Score the timing of a run.

    :param frames: ``(stamp_ns, publish_ns)`` per frame played, in play order; ``publish_ns``
        may be None when unknown (then latency is not measured and fps spans the
        completions).
    :param receipts: task -> {stamp_ns: first receive time ns} of each output topic; the run
        expects every task listed (a task with no output leaves every frame incomplete).
    :return: :class:`TimingScore`.
    """
    if not receipts:
        raise ValueError('receipts must name at least one task output')
    stamps = [int(stamp) for stamp, _ in frames]
    if len(set(stamps)) != len(stamps):
        raise ValueError('frames hold repeated stamps; each played frame needs its own stamp')
    known = set(stamps)
    publish, completion = [], []
    for stamp, published in frames:
        times = [receipts[task].get(int(stamp)) for task in receipts]
        if any(t is None for t in times):
            continue
        publish.append(-1 if published is None else int(published))
        completion.append(max(times))
    publish_ns = np.asarray(publish, dtype=np.int64)
    completion_ns = np.asarray(completion, dtype=np.int64)
    has_publish = all(published is not None for _, published in frames)
    latency = ((completion_ns - publish_ns) / 1e6) if has_publish else np.zeros(0)
    frames_out = len(completion)
    fps = 0.0
    if frames_out:
        start = int(publish_ns.min()) if has_publish else int(completion_ns.min())
        span = (int(completion_ns.max()) - start) / 1e9
        counted = frames_out if has_publish else frames_out - 1
        fps = counted / span if span > 0 else 0.0
    unmatched = sum(len(set(by_stamp) - known) for by_stamp in receipts.values())
    return TimingScore(
        frames_in=len(frames), frames_out=frames_out, dropped=len(frames) - frames_out,
        fps=float(fps), latency_ms=percentiles(latency),
        outputs={task: len(set(by_stamp) & known) for task, by_stamp in receipts.items()},
        unmatched_outputs=int(unmatched), publish_ns=publish_ns, completion_ns=completion_ns,
        latency_series_ms=np.asarray(latency, dtype=np.float64))


@dataclass
class GroundTruth:
    """
    Ground truth by stamp.

    ``detections``: stamp -> (boxes float32 [G, 4] x1, y1, x2, y2 px, class names list[str]);
    ``masks``: stamp -> uint8 [H, W] class indices (255 void). Either may be empty.
    """

    detections: dict = field(default_factory=dict)
    masks: dict = field(default_factory=dict)


def _class_index(names: list, name: str) -> int:
    """Return the index of ``name``, appending unknown names (they score as extra classes)."""
    try:
        return names.index(name)
    except ValueError:
        names.append(name)
        return len(names) - 1


def _finite_or_none(value: float) -> Optional[float]:
    return None if value is None or not math.isfinite(value) else float(value)


def _resize_nearest(mask: np.ndarray, shape: tuple) -> np.ndarray:
    if mask.shape == shape:
        return mask
    resized = PILImage.fromarray(mask).resize((shape[1], shape[0]), PILImage.NEAREST)
    return np.asarray(resized, dtype=np.uint8)


def score_accuracy(ground_truth: GroundTruth, detections: Optional[Mapping] = None,
                   masks: Optional[Mapping] = None,
                   detection_classes: Sequence[str] = (),
                   segmentation_classes: Sequence[str] = ()) -> dict:
    """
    Score predictions against ground truth matched by stamp.

    :param ground_truth: :class:`GroundTruth`.
    :param detections: stamp -> (boxes float [M, 4] x1, y1, x2, y2 px, class names list[str],
        scores [M]), as :func:`detection_array_to_numpy` returns; None when the run has no
        detection output.
    :param masks: stamp -> predicted uint8 [H, W] class indices; resized (nearest) to the
        ground truth's size when they differ.
    :param detection_classes: class names in label order; names met only in the data are
        appended (so a prediction of an unknown class is a false positive of a class with no
        ground truth, which VOC AP leaves out of the mean).
    :param segmentation_classes: class names, index k = mask value k; predicted values beyond
        the list count as extra classes.
    :return: ``{'map50': float|None, 'miou': float|None, 'accuracy_frames': {'detection': n,
        'segmentation': n}}``; None where there is no prediction or no ground truth.
    """
    result = {'map50': None, 'miou': None, 'accuracy_frames': {}}
    if detections is not None and ground_truth.detections:
        names = list(detection_classes)
        pairs = []
        for stamp in sorted(set(detections) & set(ground_truth.detections)):
            boxes, pred_names, scores = detections[stamp]
            gt_boxes, gt_names = ground_truth.detections[stamp]
            pairs.append((stamp, boxes, [_class_index(names, n) for n in pred_names], scores,
                          gt_boxes, [_class_index(names, n) for n in gt_names]))
        if pairs:
            evaluator = DetectionEvaluator(names)
            for stamp, boxes, labels, scores, gt_boxes, gt_labels in pairs:
                evaluator.update(np.asarray(boxes, np.float32).reshape(-1, 4), scores,
                                 np.asarray(labels, np.int64),
                                 np.asarray(gt_boxes, np.float32).reshape(-1, 4),
                                 np.asarray(gt_labels, np.int64), image_id=str(stamp))
            result['map50'] = _finite_or_none(evaluator.compute()['map50'])
        result['accuracy_frames']['detection'] = len(pairs)
    if masks is not None and ground_truth.masks:
        stamps = sorted(set(masks) & set(ground_truth.masks))
        if stamps:
            count = max(len(segmentation_classes), 1)
            for stamp in stamps:
                for mask in (masks[stamp], ground_truth.masks[stamp]):
                    labelled = mask[mask != VOID]
                    count = max(count, int(labelled.max()) + 1 if labelled.size else 0)
            names = list(segmentation_classes) + [
                f'class_{k}' for k in range(len(segmentation_classes), count)]
            # A 'void' prediction on a labelled pixel is a miss of that pixel's class: it goes
            # to an extra column that is left out of the mean (it is not a class).
            evaluator = SegmentationEvaluator(names + [VOID_PREDICTION])
            for stamp in stamps:
                gt = ground_truth.masks[stamp]
                pred = _resize_nearest(masks[stamp], gt.shape).astype(np.int64)
                pred[pred == VOID] = len(names)
                evaluator.update(pred, gt)
            per_class = evaluator.compute()['per_class_iou']
            ious = [per_class[name] for name in names if math.isfinite(per_class[name])]
            result['miou'] = float(np.mean(ious)) if ious else None
        result['accuracy_frames']['segmentation'] = len(stamps)
    return result
