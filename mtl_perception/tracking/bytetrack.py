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
ByteTrack-style multi-object tracking of detector boxes (numpy; scipy for the assignment).

Every ``ByteTracker.update`` call is one camera frame with its time stamp in seconds:

1. Every live track's Kalman filter is predicted to the new stamp (constant velocity, time
   step from the stamps, so skipped or dropped frames are handled), and tracks whose last
   matching detection is more than ``max_missed_s`` seconds old are removed before matching,
   so an object gone for longer comes back with a new id.
2. Stage 1: detections scoring at least ``high_threshold`` against every live track
   (confirmed or not, matched in the previous frame or not), cost ``1 - IoU`` between the
   predicted track box and the detection, optimal assignment
   (``scipy.optimize.linear_sum_assignment``); only pairs with IoU >= ``match_iou`` (and,
   with ``class_aware``, the same label) are kept.
3. Stage 2: detections scoring in ``[low_threshold, high_threshold)`` against the confirmed
   tracks left unmatched, IoU >= ``low_match_iou``. Low detections only extend tracks: they
   never start one, and they do not extend an unconfirmed track either (as in ByteTrack),
   so a single spurious high detection followed by weak noise never becomes confirmed.
4. Matched tracks update their filter with the detection box. Unmatched unconfirmed tracks
   are removed at once; unmatched confirmed tracks coast on their prediction. Unmatched high
   detections scoring at least ``new_track_threshold`` start new, unconfirmed tracks.

Confirmation and ids: a track is confirmed once it has been matched in ``min_hits`` frames
(its first detection counts as one). Its id is assigned at that moment, from a counter that
starts at 1 and is never reset (not even by ``reset``), so ids increase monotonically, are
never reused and have no gaps left by spurious detections that never became tracks. With the
default ``min_hits=2`` the first detection of an object therefore reports id 0 and the
object has its id from its second matched frame on; no id is handed out retroactively, and
the first frame of a stream is not special (unlike ByteTrack, which confirms everything in
the very first frame).

Matching assigns pairs that fail the IoU (or class) gate a cost of 1, like IoU 0, and drops
them after the assignment; as the assignment is between all tracks and all detections of a
stage, this maximises the total IoU of the pairs kept.

The filter state is ``[cx, cy, w, h, vx, vy, vw, vh]`` in pixels and pixels per second. Its
noises scale with the box size (x and w with the width, y and h with the height): process
noise is a random walk on position and on velocity whose variance grows linearly with the
time step, so one long step and several short ones of the same total length give about the
same uncertainty. While a track is not matched its size velocity is set to zero, so boxes
keep their size through an occlusion.

Only numpy is imported with the package; scipy is imported at the first assignment.
"""

from dataclasses import dataclass
import math
from typing import Any, Optional

import numpy as np

# Smallest box width and height (pixels) the filter keeps and scales its noises by.
_MIN_SIZE = 1.0


@dataclass(frozen=True)
class TrackerSettings:
    """
    Thresholds and motion noises of ``ByteTracker``; invalid values raise ValueError.

    Scores:
        high_threshold: detections at or above take part in stage 1.
        low_threshold: detections in ``[low_threshold, high_threshold)`` only extend
            confirmed tracks (stage 2); lower ones are ignored.
        new_track_threshold: an unmatched high detection starts a track only at or above
            this (>= ``high_threshold``).

    Association:
        match_iou: minimum IoU between a predicted track box and a detection in stage 1.
        low_match_iou: the same for stage 2 (stricter: low scores are less reliable).
        class_aware: only match detections with the track's label. Without it a track
            takes the label of its latest detection.

    Track life:
        max_missed_s: seconds a track lives without a matching detection (time, not frames:
            the node drops frames under load).
        min_hits: frames a track must be matched in before it is confirmed and reports its
            id (1: at once).

    Motion model (standard deviations as fractions of the box width or height):
        measurement_noise: of a detected box's centre and size.
        position_noise: position random walk, per square root of a second.
        velocity_noise: velocity random walk, in box sizes per second per square root of a
            second.
        initial_velocity_noise: velocity of a new track, in box sizes per second.
    """

    high_threshold: float = 0.5
    low_threshold: float = 0.1
    new_track_threshold: float = 0.6
    match_iou: float = 0.2
    low_match_iou: float = 0.5
    max_missed_s: float = 1.0
    min_hits: int = 2
    class_aware: bool = True
    measurement_noise: float = 0.05
    position_noise: float = 0.3
    velocity_noise: float = 1.0
    initial_velocity_noise: float = 5.0

    def __post_init__(self) -> None:
        """Check every field; raise ValueError naming the first bad one."""
        for name in ('high_threshold', 'low_threshold', 'new_track_threshold', 'match_iou',
                     'low_match_iou', 'max_missed_s', 'measurement_noise', 'position_noise',
                     'velocity_noise', 'initial_velocity_noise'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating,
                                                                 np.integer)):
                raise ValueError(f'TrackerSettings.{name} must be a number, got {value!r}')
            if not math.isfinite(value):
                raise ValueError(f'TrackerSettings.{name} must be finite, got {value!r}')
        if not 0.0 <= self.low_threshold <= 1.0:
            raise ValueError('TrackerSettings.low_threshold must be in [0, 1], '
                             f'got {self.low_threshold}')
        if not self.low_threshold < self.high_threshold <= 1.0:
            raise ValueError('TrackerSettings.high_threshold must be above low_threshold '
                             f'({self.low_threshold}) and at most 1, got {self.high_threshold}')
        if not self.high_threshold <= self.new_track_threshold <= 1.0:
            raise ValueError('TrackerSettings.new_track_threshold must be in '
                             f'[high_threshold ({self.high_threshold}), 1], '
                             f'got {self.new_track_threshold}')
        for name in ('match_iou', 'low_match_iou'):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f'TrackerSettings.{name} must be in (0, 1], '
                                 f'got {getattr(self, name)}')
        if self.max_missed_s < 0.0:
            raise ValueError(f'TrackerSettings.max_missed_s must be >= 0, got {self.max_missed_s}')
        for name in ('measurement_noise', 'position_noise', 'velocity_noise',
                     'initial_velocity_noise'):
            if not getattr(self, name) > 0.0:
                raise ValueError(f'TrackerSettings.{name} must be > 0, got {getattr(self, name)}')
        if isinstance(self.min_hits, bool) or not isinstance(self.min_hits, (int, np.integer)):
            raise ValueError(f'TrackerSettings.min_hits must be an integer, got {self.min_hits!r}')
        if self.min_hits < 1:
            raise ValueError(f'TrackerSettings.min_hits must be >= 1, got {self.min_hits}')
        if not isinstance(self.class_aware, (bool, np.bool_)):
            raise ValueError('TrackerSettings.class_aware must be a bool, '
                             f'got {self.class_aware!r}')


@dataclass(frozen=True)
class Track:
    """
    Read-only snapshot of one live track at the tracker's latest stamp.

    ``id``: 0 while unconfirmed; ``box``: ``[x1, y1, x2, y2]`` of the filter state (the
    prediction while missed); ``velocity``: ``[vx, vy, vw, vh]`` in pixels per second;
    ``hits``: frames it was matched in (its first detection included); ``missed_s``:
    seconds since its last matching detection. Both arrays are read-only copies.
    """

    id: int  # noqa: A003 - the track id, as in vision_msgs' Detection2D.id
    label: int
    box: np.ndarray
    velocity: np.ndarray
    hits: int
    missed_s: float
    confirmed: bool


class _Filter:
    """Constant-velocity Kalman filter over ``[cx, cy, w, h, vx, vy, vw, vh]``."""

    def __init__(self, box: np.ndarray, settings: TrackerSettings) -> None:
        self._settings = settings
        measured = _box_to_state(box)
        scale = _noise_scale(measured)
        self.mean = np.concatenate([measured, np.zeros(4)])
        self.covariance = np.diag(np.concatenate([
            (settings.measurement_noise * scale) ** 2,
            (settings.initial_velocity_noise * scale) ** 2]))

    def predict(self, dt: float) -> None:
        """Move the state ``dt`` seconds ahead."""
        if dt <= 0.0:
            return
        scale = _noise_scale(self.mean[:4])
        transition = np.eye(8)
        transition[:4, 4:] = dt * np.eye(4)
        noise = np.diag(np.concatenate([(self._settings.position_noise * scale) ** 2,
                                        (self._settings.velocity_noise * scale) ** 2])) * dt
        self.mean = transition @ self.mean
        self.mean[2:4] = np.maximum(self.mean[2:4], _MIN_SIZE)
        self.covariance = transition @ self.covariance @ transition.T + noise

    def correct(self, box: np.ndarray) -> None:
        """Update the state with a detected box."""
        measured = _box_to_state(box)
        innovation_cov = (self.covariance[:4, :4]
                          + np.diag((self._settings.measurement_noise
                                     * _noise_scale(self.mean[:4])) ** 2))
        # gain = P H^T S^-1; P and S are symmetric, so gain^T = S^-1 (H P).
        gain = np.linalg.solve(innovation_cov, self.covariance[:4, :]).T
        self.mean = self.mean + gain @ (measured - self.mean[:4])
        self.mean[2:4] = np.maximum(self.mean[2:4], _MIN_SIZE)
        covariance = self.covariance - gain @ innovation_cov @ gain.T
        self.covariance = (covariance + covariance.T) / 2.0

    def stop_resizing(self) -> None:
        """Keep the box size constant from now on (until the next correction)."""
        self.mean[6:8] = 0.0

    @property
    def box(self) -> np.ndarray:
        """Return the state's box as ``[x1, y1, x2, y2]``."""
        cx, cy, w, h = self.mean[:4]
        return np.array([cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0])


class _LiveTrack:
    """A track's filter and bookkeeping (mutable; exposed only as ``Track`` snapshots)."""

    def __init__(self, box: np.ndarray, label: int, stamp: float,
                 settings: TrackerSettings) -> None:
        self.filter = _Filter(box, settings)
        self.label = label
        self.hits = 1
        self.last_seen = stamp
        self.matched = True
        self.id = 0

    def match(self, box: np.ndarray, label: int, stamp: float) -> None:
        self.filter.correct(box)
        self.label = label
        self.hits += 1
        self.last_seen = stamp
        self.matched = True


class ByteTracker:
    """
    Two-stage (high, then low score) IoU tracker with a constant-velocity Kalman filter.

    See the module docstring for the algorithm. Not thread-safe: call from one thread.

    :param settings: thresholds and noises; the defaults when None.
    """

    def __init__(self, settings: Optional[TrackerSettings] = None) -> None:
        self._settings = TrackerSettings() if settings is None else settings
        if not isinstance(self._settings, TrackerSettings):
            raise ValueError(f'settings must be TrackerSettings, got {type(settings).__name__}')
        self._next_id = 1
        self.reset()

    @property
    def settings(self) -> TrackerSettings:
        """Return the settings."""
        return self._settings

    @property
    def stamp(self) -> Optional[float]:
        """Return the latest stamp in seconds, None before the first update."""
        return self._stamp

    @property
    def tracks(self) -> tuple:
        """Return ``Track`` snapshots of the live tracks, oldest first."""
        return tuple(self._snapshot(track) for track in self._tracks)

    def reset(self) -> None:
        """
        Drop every track and forget the latest stamp (a new stream may start anywhere).

        The id counter is kept: ids handed out after a reset are still new.
        """
        self._tracks: list = []
        self._stamp: Optional[float] = None

    def update(self, boxes: Any, scores: Any, labels: Any, stamp_s: float) -> np.ndarray:
        """
        Advance to ``stamp_s`` with one frame's detections; return their track ids.

        Inputs:
            boxes: ``[N, 4]`` ``x1, y1, x2, y2`` in pixels (an empty array of any shape
                with N = 0 is accepted too).
            scores: ``[N]`` detection confidences.
            labels: ``[N]`` integer class labels.
            stamp_s: the frame's time in seconds; never earlier than the previous call's
                (the same stamp again is a frame with no time passed).

        Output:
            int64 ``[N]``: the id of the confirmed track each detection belongs to, 0 for a
            detection that matched no confirmed track (too low a score, a new or still
            unconfirmed track).

        Errors:
            ValueError: shapes or lengths that do not agree, non-finite values, boxes with
                ``x2 < x1`` or ``y2 < y1``, non-integer labels, or a stamp that is not
                finite or goes backwards.
        """
        boxes, scores, labels = _validate_detections(boxes, scores, labels)
        stamp = _validate_stamp(stamp_s, self._stamp)
        settings = self._settings
        dt = 0.0 if self._stamp is None else stamp - self._stamp
        self._stamp = stamp

        for track in self._tracks:
            if not track.matched:
                track.filter.stop_resizing()
            track.filter.predict(dt)
            track.matched = False
        self._tracks = [track for track in self._tracks
                        if stamp - track.last_seen <= settings.max_missed_s]

        matched_track = {}  # detection index -> _LiveTrack
        high = np.flatnonzero(scores >= settings.high_threshold)
        low = np.flatnonzero((scores >= settings.low_threshold)
                             & (scores < settings.high_threshold))

        pairs = self._associate(self._tracks, high, boxes, labels, settings.match_iou)
        for track, detection in pairs:
            track.match(boxes[detection], int(labels[detection]), stamp)
            matched_track[detection] = track
        left = [track for track in self._tracks if not track.matched and track.id != 0]
        pairs = self._associate(left, low, boxes, labels, settings.low_match_iou)
        for track, detection in pairs:
            track.match(boxes[detection], int(labels[detection]), stamp)
            matched_track[detection] = track

        # Unconfirmed tracks live only while matched in every frame.
        self._tracks = [track for track in self._tracks if track.matched or track.id != 0]
        for detection in high.tolist():
            if detection in matched_track or scores[detection] < settings.new_track_threshold:
                continue
            track = _LiveTrack(boxes[detection], int(labels[detection]), stamp, settings)
            self._tracks.append(track)
            matched_track[detection] = track
        for track in self._tracks:
            if track.id == 0 and track.hits >= settings.min_hits:
                track.id = self._next_id
                self._next_id += 1

        ids = np.zeros(len(scores), dtype=np.int64)
        for detection, track in matched_track.items():
            ids[detection] = track.id
        return ids

    def _associate(self, tracks: list, detections: np.ndarray, boxes: np.ndarray,
                   labels: np.ndarray, min_iou: float) -> list:
        """Return optimal ``(track, detection index)`` pairs with IoU >= ``min_iou``."""
        if not tracks or len(detections) == 0:
            return []
        overlap = _iou_matrix(np.stack([track.filter.box for track in tracks]),
                              boxes[detections])
        if self._settings.class_aware:
            track_labels = np.array([track.label for track in tracks])
            overlap[track_labels[:, None] != labels[detections][None, :]] = 0.0
        overlap[overlap < min_iou] = 0.0
        from scipy.optimize import linear_sum_assignment
        rows, cols = linear_sum_assignment(1.0 - overlap)
        return [(tracks[row], int(detections[col])) for row, col in zip(rows, cols)
                if overlap[row, col] >= min_iou]

    def _snapshot(self, track: _LiveTrack) -> Track:
        box = track.filter.box
        velocity = track.filter.mean[4:].copy()
        box.flags.writeable = False
        velocity.flags.writeable = False
        return Track(id=track.id, label=track.label, box=box, velocity=velocity,
                     hits=track.hits, missed_s=float(self._stamp - track.last_seen),
                     confirmed=track.id != 0)


def _box_to_state(box: np.ndarray) -> np.ndarray:
    """Return ``[cx, cy, w, h]`` of an ``[x1, y1, x2, y2]`` box (size at least 1 px)."""
    x1, y1, x2, y2 = box
    return np.array([(x1 + x2) / 2.0, (y1 + y2) / 2.0, max(x2 - x1, _MIN_SIZE),
                     max(y2 - y1, _MIN_SIZE)])


def _noise_scale(state: np.ndarray) -> np.ndarray:
    """Return the sizes ``[w, h, w, h]`` the noises of ``cx, cy, w, h`` scale with."""
    width, height = max(state[2], _MIN_SIZE), max(state[3], _MIN_SIZE)
    return np.array([width, height, width, height])


def _iou_matrix(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Return the ``[len(first), len(second)]`` IoU of two sets of xyxy boxes."""
    top_left = np.maximum(first[:, None, :2], second[None, :, :2])
    bottom_right = np.minimum(first[:, None, 2:], second[None, :, 2:])
    intersection = np.prod(np.clip(bottom_right - top_left, 0.0, None), axis=2)
    area_first = np.prod(first[:, 2:] - first[:, :2], axis=1)
    area_second = np.prod(second[:, 2:] - second[:, :2], axis=1)
    union = area_first[:, None] + area_second[None, :] - intersection
    return np.where(union > 0.0, intersection / np.where(union > 0.0, union, 1.0), 0.0)


def _validate_detections(boxes: Any, scores: Any, labels: Any) -> tuple:
    """Return boxes float64 ``[N, 4]``, scores float64 ``[N]``, labels int64 ``[N]``."""
    boxes = np.asarray(boxes, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if boxes.size == 0 and boxes.ndim <= 2 and (boxes.ndim < 2 or boxes.shape[-1] in (0, 4)):
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f'boxes must be [N, 4] (x1, y1, x2, y2), got shape {boxes.shape}')
    if scores.ndim != 1 or labels.ndim != 1:
        raise ValueError(f'scores and labels must be 1-D [N], got shapes {scores.shape} '
                         f'and {labels.shape}')
    if not len(boxes) == len(scores) == len(labels):
        raise ValueError(f'boxes, scores and labels must have the same length, got '
                         f'{len(boxes)}, {len(scores)} and {len(labels)}')
    if not np.isfinite(boxes).all():
        raise ValueError('boxes must be finite (found NaN or infinity)')
    if not np.isfinite(scores).all():
        raise ValueError('scores must be finite (found NaN or infinity)')
    if (boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any():
        raise ValueError('boxes must have x2 >= x1 and y2 >= y1')
    integral_floats = (labels.dtype.kind == 'f' and np.isfinite(labels).all()
                       and (labels == np.round(labels)).all())
    if labels.dtype.kind not in 'iu' and not integral_floats:
        raise ValueError(f'labels must be integers, got {labels.dtype} values')
    labels = labels.astype(np.int64)
    return boxes, scores, labels


def _validate_stamp(stamp_s: Any, previous: Optional[float]) -> float:
    """Return the stamp as a float; raise ValueError if not finite or earlier than before."""
    try:
        stamp = float(stamp_s)
    except (TypeError, ValueError):
        raise ValueError(f'stamp_s must be a number of seconds, got {stamp_s!r}') from None
    if not math.isfinite(stamp):
        raise ValueError(f'stamp_s must be finite, got {stamp_s!r}')
    if previous is not None and stamp < previous:
        raise ValueError(f'stamp_s went backwards: {stamp} s after {previous} s '
                         '(call reset() for a new stream)')
    return stamp
