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
Score tracks and ground positions against a flight's ground truth (no rclpy, no torch).

Tracking (:func:`score_tracking`) runs TrackEval's own metric classes (Luiten et al.; the
``trackeval`` package) on in-memory data, one sequence per class: HOTA (mean over the IoU
thresholds 0.05-0.95), CLEAR (MOTA, ID switches) and Identity (IDF1), with box IoU in pixels
as the similarity and TrackEval's default IoU threshold of 0.5 for CLEAR and Identity. A
prediction matches only ground truth of its own class; the figures over all classes combine
the per-class counts (TrackEval's detection-averaged combination, as if every class were one
more sequence). The frames scored are those with both a prediction and ground truth: a frame
the node never answered is a throughput loss, as for mAP, not a tracking error.

Untracked predictions (``id`` '') are left out: the tracker did not commit to an identity
(a tentative track, or a detector without tracker), so they are neither a track nor a false
track. They are counted (``untracked_predictions``) so that a node that answers mostly
untracked is visible; a node that tracks nothing has no tracking score at all.

Ground positions (:func:`score_ground`): per frame and class, predicted positions are matched
one to one to ground-truth positions by ``scipy.optimize.linear_sum_assignment`` on their
horizontal distance (x, y in the world frame; both lie on the ground, z = 0); a pair farther
apart than ``gate_m`` is no match. The error is the distance of a matched pair, in metres.
"""

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from mtl_perception.metrics import box_iou
import numpy as np
from scipy.optimize import linear_sum_assignment
from trackeval.metrics import CLEAR, HOTA, Identity

__all__ = ['GroundMatches', 'IOU_THRESHOLD', 'TRACKING_KEYS', 'ground_matches', 'score_ground',
           'score_tracking', 'summarize_errors']

# TrackEval's default match threshold for CLEAR (MOTA) and Identity (IDF1).
IOU_THRESHOLD = 0.5
DEFAULT_GATE_M = 3.0
# The combined figures score_tracking returns (each class has the same but ``per_class``).
TRACKING_KEYS = ('hota', 'deta', 'assa', 'idf1', 'mota', 'id_switches',
                 'id_switches_per_100_frames', 'frames')


def _names(classes: Sequence[str], *data: Mapping) -> list:
    """Return ``classes`` then any other class name met in ``data`` (sorted)."""
    names = list(classes)
    extra = {str(n) for by_stamp in data for value in by_stamp.values() for n in value[1]}
    return names + sorted(extra - set(names))


def _sequence(truth: Mapping, predictions: Mapping, stamps: list, name: str) -> tuple:
    """Return TrackEval's data dict of class ``name`` and its untracked prediction count."""
    gt_index, tracker_index = {}, {}
    data = {'gt_ids': [], 'tracker_ids': [], 'similarity_scores': [], 'num_timesteps': 0}
    untracked = 0
    for stamp in stamps:
        gt_boxes, gt_names, gt_ids = truth[stamp][:3]
        boxes, names, ids = predictions[stamp][:3]
        keep_gt = [k for k, n in enumerate(gt_names) if n == name]
        keep = [k for k, n in enumerate(names) if n == name and ids[k] != '']
        untracked += sum(1 for k, n in enumerate(names) if n == name and ids[k] == '')
        for kind, index, picked, labels in (('ground truth', gt_index, keep_gt, gt_ids),
                                            ('prediction', tracker_index, keep, ids)):
            seen = [labels[k] for k in picked]
            if len(set(seen)) != len(seen):
                raise ValueError(f'a {kind} id is repeated in the frame of stamp {stamp} '
                                 f'(class {name}): {sorted(seen)}')
            for label in seen:
                index.setdefault(label, len(index))
        data['gt_ids'].append(np.array([gt_index[gt_ids[k]] for k in keep_gt], np.int64))
        data['tracker_ids'].append(np.array([tracker_index[ids[k]] for k in keep], np.int64))
        data['similarity_scores'].append(box_iou(
            np.asarray(gt_boxes, np.float64).reshape(-1, 4)[keep_gt],
            np.asarray(boxes, np.float64).reshape(-1, 4)[keep]))
        data['num_timesteps'] += 1
    data.update(num_gt_ids=len(gt_index), num_tracker_ids=len(tracker_index),
                num_gt_dets=sum(len(ids) for ids in data['gt_ids']),
                num_tracker_dets=sum(len(ids) for ids in data['tracker_ids']))
    return data, untracked


def _summary(hota: dict, clear: dict, identity: dict, frames: int) -> dict:
    switches = int(clear['IDSW'])
    return {'hota': float(np.mean(hota['HOTA'])), 'deta': float(np.mean(hota['DetA'])),
            'assa': float(np.mean(hota['AssA'])), 'idf1': float(identity['IDF1']),
            'mota': float(clear['MOTA']), 'id_switches': switches,
            'id_switches_per_100_frames': 100.0 * switches / frames if frames else None,
            'frames': frames}


def score_tracking(truth: Mapping, predictions: Mapping, classes: Sequence[str] = ()) -> dict:
    """
    Score tracks (HOTA, IDF1, MOTA, ID switches) per class and over all classes.

    :param truth: stamp -> (boxes float [G, 4] x1, y1, x2, y2 px, class names, track ids
        (str)), every ground-truth id non-empty.
    :param predictions: stamp -> (boxes float [M, 4] px, class names, track ids (str, ''
        untracked)); more items after the third are ignored.
    :param classes: class names in order (names met only in the data are added after them).
    :return: ``{'hota', 'deta', 'assa', 'idf1', 'mota', 'id_switches',
        'id_switches_per_100_frames', 'frames', 'gt_tracks', 'predicted_tracks',
        'gt_detections', 'predicted_detections', 'untracked_predictions', 'per_class': {name:
        the same without per_class}}``, fractions in [0, 1] (MOTA may be negative).
    :raises ValueError: no frame has both; a ground-truth id is empty; an id is repeated
        within one frame and class.
    """
    stamps = sorted(set(truth) & set(predictions))
    if not stamps:
        raise ValueError('no frame has both ground truth and predictions')
    if any(i == '' for s in stamps for i in truth[s][2]):
        raise ValueError('the ground truth has detections without a track id')
    metrics = {'hota': HOTA(), 'clear': CLEAR({'THRESHOLD': IOU_THRESHOLD, 'PRINT_CONFIG': False}),
               'identity': Identity({'THRESHOLD': IOU_THRESHOLD, 'PRINT_CONFIG': False})}
    per_class, raw = {}, {key: {} for key in metrics}
    totals = dict.fromkeys(('gt_tracks', 'predicted_tracks', 'gt_detections',
                            'predicted_detections', 'untracked_predictions'), 0)
    for name in _names(classes, truth, predictions):
        data, untracked = _sequence(truth, predictions, stamps, name)
        if not (data['num_gt_dets'] or data['num_tracker_dets'] or untracked):
            continue
        for key, metric in metrics.items():
            raw[key][name] = metric.eval_sequence(data)
        counts = {'gt_tracks': data['num_gt_ids'], 'predicted_tracks': data['num_tracker_ids'],
                  'gt_detections': data['num_gt_dets'],
                  'predicted_detections': data['num_tracker_dets'],
                  'untracked_predictions': untracked}
        per_class[name] = {**_summary(raw['hota'][name], raw['clear'][name],
                                      raw['identity'][name], len(stamps)), **counts}
        for key, value in counts.items():
            totals[key] += value
    if per_class:
        combined = _summary(*(metrics[key].combine_classes_det_averaged(raw[key])
                              for key in ('hota', 'clear', 'identity')), len(stamps))
    else:  # nothing of any class in the frames scored: nothing to get wrong
        combined = {**dict.fromkeys(TRACKING_KEYS[:5], 1.0), 'id_switches': 0,
                    'id_switches_per_100_frames': 0.0, 'frames': len(stamps)}
    return {**combined, **totals, 'per_class': per_class}


def summarize_errors(errors) -> dict:
    """Return ``{'median', 'p90', 'mean', 'max'}`` of errors in metres (None each if none)."""
    values = np.asarray(errors, np.float64).reshape(-1)
    if not values.size:
        return dict.fromkeys(('median', 'p90', 'mean', 'max'))
    return {'median': float(np.median(values)), 'p90': float(np.percentile(values, 90)),
            'mean': float(values.mean()), 'max': float(values.max())}


@dataclass
class GroundMatches:
    """
    Matched ground positions: per class, the errors (m) and what stayed unmatched.

    ``errors``: class -> float64 [K] distances of matched pairs; ``unmatched_predictions`` and
    ``unmatched_truth``: class -> count; ``frames``: frames scored; ``gate_m``: the gate.
    """

    frames: int
    gate_m: float
    errors: dict = field(default_factory=dict)
    unmatched_predictions: dict = field(default_factory=dict)
    unmatched_truth: dict = field(default_factory=dict)

    def all_errors(self) -> np.ndarray:
        """Return every class's errors together, sorted (m)."""
        parts = [np.asarray(e, np.float64) for e in self.errors.values()]
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0)

    def summary(self) -> dict:
        """Return the report's figures (see :func:`score_ground`)."""
        def figures(errors, predictions: int, truth: int) -> dict:
            return {**summarize_errors(errors), 'matched': int(len(errors)),
                    'unmatched_predictions': int(predictions), 'unmatched_truth': int(truth)}

        per_class = {name: figures(self.errors[name], self.unmatched_predictions[name],
                                   self.unmatched_truth[name]) for name in self.errors}
        return {**figures(self.all_errors(), sum(self.unmatched_predictions.values()),
                          sum(self.unmatched_truth.values())),
                'frames': self.frames, 'gate_m': self.gate_m, 'per_class': per_class}


def ground_matches(truth_objects: Mapping, predictions_3d: Mapping,
                   classes: Sequence[str] = (), gate_m: float = DEFAULT_GATE_M) -> GroundMatches:
    """
    Match predicted ground positions to the ground truth's, per frame and class.

    :param truth_objects: stamp -> (positions float [G, 3] m, class names, ...).
    :param predictions_3d: stamp -> (positions float [M, 3] m, class names, ...).
    :param classes: class names in order (names met only in the data are added after them).
    :param gate_m: the largest distance of a match (m).
    :raises ValueError: no frame has both, or ``gate_m`` is not positive.
    """
    if not gate_m > 0:
        raise ValueError(f'gate_m must be > 0, got {gate_m}')
    stamps = sorted(set(truth_objects) & set(predictions_3d))
    if not stamps:
        raise ValueError('no frame has both ground-truth positions and predicted positions')
    matches = GroundMatches(len(stamps), float(gate_m))
    errors = {}
    for name in _names(classes, truth_objects, predictions_3d):
        found, lost_predictions, lost_truth = [], 0, 0
        for stamp in stamps:
            gt_points, gt_names = truth_objects[stamp][:2]
            points, names = predictions_3d[stamp][:2]
            gt = np.asarray(gt_points, np.float64).reshape(-1, 3)[
                [k for k, n in enumerate(gt_names) if n == name], :2]
            pred = np.asarray(points, np.float64).reshape(-1, 3)[
                [k for k, n in enumerate(names) if n == name], :2]
            paired = 0
            if len(gt) and len(pred):
                distance = np.linalg.norm(gt[:, None, :] - pred[None, :, :], axis=2)
                # Pairs beyond the gate cost more than any set of pairs within it.
                cost = np.where(distance <= gate_m, distance,
                                gate_m * (1 + min(len(gt), len(pred))))
                rows, cols = linear_sum_assignment(cost)
                within = distance[rows, cols] <= gate_m
                found.append(distance[rows, cols][within])
                paired = int(within.sum())
            lost_predictions += len(pred) - paired
            lost_truth += len(gt) - paired
        if found or lost_predictions or lost_truth:
            errors[name] = np.concatenate(found) if found else np.zeros(0)
            matches.unmatched_predictions[name] = lost_predictions
            matches.unmatched_truth[name] = lost_truth
    matches.errors = errors
    return matches


def score_ground(truth_objects: Mapping, predictions_3d: Mapping, classes: Sequence[str] = (),
                 gate_m: float = DEFAULT_GATE_M) -> dict:
    """
    Score predicted ground positions against the ground truth's, in metres.

    Arguments as :func:`ground_matches`. Returns ``{'median', 'p90', 'mean', 'max' (m, None
    without a match), 'matched', 'unmatched_predictions', 'unmatched_truth', 'frames',
    'gate_m', 'per_class': {name: the same without frames, gate_m and per_class}}``.
    """
    return ground_matches(truth_objects, predictions_3d, classes, gate_m).summary()
