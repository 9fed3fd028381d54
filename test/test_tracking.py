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

"""ByteTracker: identities kept through motion, occlusions and skipped frames; validation."""

import dataclasses
import subprocess
import sys

from mtl_perception.tracking import ByteTracker, Track, TrackerSettings
import numpy as np
import pytest

FRAME_S = 1.0 / 30.0


def box_at(cx: float, cy: float, width: float = 40.0, height: float = 40.0) -> list:
    """Return the xyxy box of the given centre and size."""
    return [cx - width / 2.0, cy - height / 2.0, cx + width / 2.0, cy + height / 2.0]


def iou(first: list, second: list) -> float:
    """Return the IoU of two xyxy boxes."""
    width = max(0.0, min(first[2], second[2]) - max(first[0], second[0]))
    height = max(0.0, min(first[3], second[3]) - max(first[1], second[1]))
    inter = width * height
    area = (first[2] - first[0]) * (first[3] - first[1])
    area += (second[2] - second[0]) * (second[3] - second[1])
    return inter / (area - inter)


def step(tracker: ByteTracker, boxes: list, stamp: float, scores=None, labels=None) -> list:
    """Run one frame; scores default to 0.9 and labels to 0."""
    scores = [0.9] * len(boxes) if scores is None else scores
    labels = [0] * len(boxes) if labels is None else labels
    ids = tracker.update(np.array(boxes, dtype=float).reshape(-1, 4), np.array(scores, float),
                         np.array(labels, dtype=np.int64), stamp)
    assert ids.dtype == np.int64 and ids.shape == (len(boxes),)
    return ids.tolist()


def identity_switches(id_sequence: list) -> int:
    """Count the changes between consecutive non-zero ids of one object."""
    reported = [value for value in id_sequence if value != 0]
    return sum(1 for before, after in zip(reported, reported[1:]) if before != after)


def test_objects_at_constant_velocity_keep_their_ids():
    rng = np.random.default_rng(3)
    # (start x, start y, vx, vy) in px and px/s; objects 0 and 1 move side by side 45 px apart.
    objects = [(100, 100, 90, 0), (100, 145, 90, 0), (600, 400, -150, 30),
               (300, 600, 0, -120), (800, 100, -60, 90)]
    tracker, history = ByteTracker(), []
    for frame in range(60):
        stamp = frame * FRAME_S
        boxes = [box_at(x + vx * stamp, y + vy * stamp) for x, y, vx, vy in objects]
        boxes = (np.array(boxes) + rng.uniform(-1.0, 1.0, size=(len(objects), 4))).tolist()
        order = rng.permutation(len(objects))  # detections come in any order
        ids = step(tracker, [boxes[i] for i in order], stamp)
        frame_ids = [0] * len(objects)
        for position, index in enumerate(order):
            frame_ids[index] = ids[position]
        history.append(frame_ids)
    history = np.array(history)
    assert (history[0] == 0).all()  # min_hits=2: no id in an object's first frame
    assert (history[1:] != 0).all()
    for column in history.T:
        assert identity_switches(column.tolist()) == 0
    assert sorted(history[-1].tolist()) == [1, 2, 3, 4, 5]
    by_id = {track.id: track for track in tracker.tracks}
    assert len(tracker.tracks) == 5 and all(track.confirmed for track in tracker.tracks)
    for index, (_, _, vx, vy) in enumerate(objects):
        track = by_id[int(history[-1, index])]
        assert track.hits == 60 and track.missed_s == 0.0
        np.testing.assert_allclose(track.velocity[:2], [vx, vy], atol=12.0)


def test_crossing_objects_of_different_classes_keep_their_ids():
    # Two objects of different classes cross on the same line; at the crossing the class-1
    # object is hidden behind the class-0 one for 5 frames.
    tracker = ByteTracker()
    history = []
    overlaps = []
    for frame in range(60):
        stamp = frame * FRAME_S
        first, second = box_at(100 + 240 * stamp, 200), box_at(580 - 240 * stamp, 200)
        overlaps.append(iou(first, second))
        hidden = 28 <= frame < 33
        boxes, labels = ([first], [0]) if hidden else ([first, second], [0, 1])
        ids = step(tracker, boxes, stamp, labels=labels)
        history.append((ids[0], 0 if hidden else ids[1]))
    assert max(overlaps) > 0.9  # the paths really cross
    history = np.array(history)
    for column in history.T:
        assert identity_switches(column.tolist()) == 0
    assert history[-1].tolist() == [1, 2]
    assert {(track.id, track.label) for track in tracker.tracks} == {(1, 0), (2, 1)}


def test_objects_of_different_classes_meeting_and_turning_back_keep_their_ids():
    # They meet head-on and both turn back: the motion model alone predicts each where the
    # other now is and swaps them; matching only within a class keeps both ids.
    for class_aware, expected_switches in ((True, 0), (False, 1)):
        tracker = ByteTracker(TrackerSettings(class_aware=class_aware))
        history = []
        for frame in range(60):
            distance = 120.0 * abs(frame - 30) * FRAME_S
            history.append(step(tracker, [box_at(300 - distance, 200),
                                          box_at(300 + distance, 200)],
                                frame * FRAME_S, labels=[0, 1]))
        history = np.array(history)
        assert (history[0] == 0).all() and (history[1:] != 0).all()
        for column in history.T:
            assert identity_switches(column.tolist()) == expected_switches
    assert history[1].tolist() == [1, 2]
    tracks = sorted(tracker.tracks, key=lambda track: track.label)
    assert [track.label for track in tracks] == [0, 1]
    assert tracks[0].velocity[0] < -60.0 and tracks[1].velocity[0] > 60.0


def test_class_aware_matching():
    for class_aware, expected in ((True, [0]), (False, [1])):
        tracker = ByteTracker(TrackerSettings(class_aware=class_aware))
        step(tracker, [box_at(100, 100)], 0.0, labels=[3])
        assert step(tracker, [box_at(100, 100)], FRAME_S, labels=[3]) == [1]
        # The same place, another class: a new track only when class aware.
        assert step(tracker, [box_at(100, 100)], 2 * FRAME_S, labels=[4]) == expected
        labels = sorted(track.label for track in tracker.tracks)
        assert labels == ([3, 4] if class_aware else [4])


def test_occluded_object_keeps_its_id_when_it_reappears_where_predicted():
    tracker = ByteTracker()
    velocity = 120.0
    ids, last_seen_box = [], None
    for frame in range(50):
        stamp = frame * FRAME_S
        box = box_at(100 + velocity * stamp, 300)
        occluded = 15 <= frame < 27  # 12 frames: 0.4 s, less than max_missed_s
        if occluded:
            assert step(tracker, [], stamp) == []
            (track,) = tracker.tracks
            assert track.confirmed and track.id == 1
            assert track.missed_s == pytest.approx((frame - 14) * FRAME_S)
            # The prediction moves on with the object.
            np.testing.assert_allclose(track.box, box, atol=4.0)
            continue
        if frame == 27:
            # Without the motion model the track's last box would not overlap at all.
            assert iou(last_seen_box, box) == 0.0
        ids += step(tracker, [box], stamp)
        last_seen_box = box
    assert ids[0] == 0 and set(ids[1:]) == {1}


def test_object_gone_longer_than_max_missed_s_gets_a_new_id():
    tracker = ByteTracker(TrackerSettings(max_missed_s=1.0))
    box = box_at(200, 200)  # standing still: it reappears exactly on its old track
    assert [step(tracker, [box], frame * FRAME_S)[0] for frame in range(5)] == [0, 1, 1, 1, 1]
    last_seen = 4 * FRAME_S
    frame = 5
    while frame * FRAME_S - last_seen <= 1.0:
        step(tracker, [], frame * FRAME_S)
        assert len(tracker.tracks) == 1
        frame += 1
    step(tracker, [], frame * FRAME_S)  # now more than 1 s without a detection
    assert tracker.tracks == ()
    ids = [step(tracker, [box], (frame + offset) * FRAME_S)[0] for offset in range(1, 4)]
    assert ids == [0, 2, 2]


def test_object_back_after_a_long_gap_in_one_step_gets_a_new_id():
    # The gap is one long time step: the old track must not take the detection first.
    tracker = ByteTracker()
    box = box_at(200, 200)
    assert [step(tracker, [box], stamp)[0] for stamp in (0.0, 0.1, 0.2)] == [0, 1, 1]
    assert step(tracker, [box], 1.3)[0] == 0
    assert step(tracker, [box], 1.4)[0] == 2


def test_low_score_detections_extend_a_track_but_never_start_one():
    tracker = ByteTracker()
    ids = []
    for frame in range(40):
        stamp = frame * FRAME_S
        tracked = box_at(100 + 60 * stamp, 100)
        weak = box_at(500, 500)  # only ever detected with low scores
        medium = box_at(500, 100)  # high (stage 1) but below new_track_threshold
        tracked_score = 0.9 if frame < 5 else 0.3
        ids.append(step(tracker, [tracked, weak, medium], stamp,
                        scores=[tracked_score, 0.3, 0.55]))
    ids = np.array(ids)
    assert ids[0, 0] == 0 and (ids[1:, 0] == 1).all()
    assert (ids[:, 1:] == 0).all()
    (track,) = tracker.tracks
    assert track.id == 1 and track.hits == 40
    # Scores below low_threshold do not extend it.
    for frame in range(40, 45):
        assert step(tracker, [box_at(100 + 60 * frame * FRAME_S, 100)], frame * FRAME_S,
                    scores=[0.05]) == [0]
    (track,) = tracker.tracks
    assert track.hits == 40 and track.missed_s == pytest.approx(5 * FRAME_S)


def test_high_detection_then_low_ones_never_confirm():
    tracker = ByteTracker()
    box = box_at(300, 300)
    assert step(tracker, [box], 0.0, scores=[0.95]) == [0]
    assert len(tracker.tracks) == 1 and not tracker.tracks[0].confirmed
    for frame in range(1, 10):
        assert step(tracker, [box], frame * FRAME_S, scores=[0.4]) == [0]
        assert tracker.tracks == ()


def test_single_spurious_high_detection_never_gets_an_id():
    tracker = ByteTracker()
    real_ids = []
    for frame in range(20):
        stamp = frame * FRAME_S
        boxes = [box_at(100 + 30 * stamp, 100)]
        if frame == 8:
            boxes.append(box_at(400, 400))
        ids = step(tracker, boxes, stamp, scores=[0.9, 0.99][:len(boxes)])
        real_ids.append(ids[0])
        if frame == 8:
            assert ids[1] == 0
            assert [track.confirmed for track in tracker.tracks] == [True, False]
            assert tracker.tracks[1].id == 0 and tracker.tracks[1].hits == 1
        if frame == 9:
            # An unconfirmed track that misses its second frame is removed at once.
            assert [track.id for track in tracker.tracks] == [1]
    assert real_ids[0] == 0 and set(real_ids[1:]) == {1}
    # The next real object gets the next id: the spurious detection used none.
    ids = [step(tracker, [box_at(700, 700)], (20 + frame) * FRAME_S)[0] for frame in range(2)]
    assert ids == [0, 2]


def test_min_hits_sets_the_frames_before_an_id():
    for min_hits in (1, 2, 4):
        tracker = ByteTracker(TrackerSettings(min_hits=min_hits))
        ids = [step(tracker, [box_at(100 + frame, 100)], frame * FRAME_S)[0]
               for frame in range(6)]
        assert ids == [0] * (min_hits - 1) + [1] * (7 - min_hits)


def test_skipped_frames_at_the_same_velocity_keep_the_id():
    tracker = ByteTracker()
    velocity = 150.0  # px/s: 5 px a frame, a 40 px box in 8 frames
    frames = [0, 1, 2, 3, 4, 5, 6, 14, 15, 16, 25, 26, 27, 28, 36, 37, 47, 48, 49, 50]
    ids, boxes = [], []
    for frame in frames:
        boxes.append(box_at(100 + velocity * frame * FRAME_S, 200))
        ids += step(tracker, [boxes[-1]], frame * FRAME_S)
    assert ids[0] == 0 and set(ids[1:]) == {1}
    # The gaps are long enough that consecutive detections do not overlap at all.
    assert min(iou(before, after) for before, after in zip(boxes, boxes[1:])) == 0.0
    (track,) = tracker.tracks
    assert track.velocity[0] == pytest.approx(velocity, abs=5.0)
    assert abs(track.velocity[1]) < 5.0


def test_same_stamp_is_allowed_and_stamps_going_backwards_raise():
    tracker = ByteTracker()
    box = box_at(100, 100)
    assert step(tracker, [box], 5.0) == [0]
    assert step(tracker, [box], 5.0) == [1]  # dt = 0: a second frame, no time passed
    assert tracker.tracks[0].velocity.tolist() == [0.0, 0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match='backwards'):
        step(tracker, [box], 4.999)
    assert tracker.stamp == 5.0 and tracker.tracks[0].hits == 2  # unchanged by the error
    assert step(tracker, [box], 5.1) == [1]
    tracker.reset()
    assert tracker.tracks == () and tracker.stamp is None
    assert step(tracker, [box], 0.0) == [0]  # a new stream may start earlier


@pytest.mark.parametrize('boxes, scores, labels, stamp, message', [
    ([[0, 0, 10, 10]], [0.9, 0.8], [0], 0.0, 'same length'),
    ([[0, 0, 10, 10]], [0.9], [0, 1], 0.0, 'same length'),
    ([[0, 0, 10, 10, 1]], [0.9], [0], 0.0, r'\[N, 4\]'),
    ([0, 0, 10, 10], [0.9], [0], 0.0, r'\[N, 4\]'),
    ([[[0, 0, 10, 10]]], [0.9], [0], 0.0, r'\[N, 4\]'),
    ([[0, 0, 10, 10]], [[0.9]], [0], 0.0, '1-D'),
    ([[0, np.nan, 10, 10]], [0.9], [0], 0.0, 'boxes must be finite'),
    ([[0, 0, np.inf, 10]], [0.9], [0], 0.0, 'boxes must be finite'),
    ([[0, 0, 10, 10]], [np.nan], [0], 0.0, 'scores must be finite'),
    ([[10, 0, 0, 10]], [0.9], [0], 0.0, 'x2 >= x1'),
    ([[0, 0, 10, 10]], [0.9], [0.5], 0.0, 'labels must be integers'),
    ([[0, 0, 10, 10]], [0.9], ['car'], 0.0, 'labels must be integers'),
    ([[0, 0, 10, 10]], [0.9], [0], float('nan'), 'stamp_s must be finite'),
    ([[0, 0, 10, 10]], [0.9], [0], 'now', 'stamp_s must be a number'),
])
def test_invalid_input_raises(boxes, scores, labels, stamp, message):
    tracker = ByteTracker()
    with pytest.raises(ValueError, match=message):
        tracker.update(np.array(boxes, dtype=float), np.array(scores, dtype=float),
                       np.array(labels), stamp)
    assert tracker.stamp is None and tracker.tracks == ()


def test_empty_frames_return_empty_ids_and_age_tracks():
    tracker = ByteTracker()
    empty = tracker.update(np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=np.int64), 0.0)
    assert empty.dtype == np.int64 and empty.shape == (0,)
    assert tracker.update([], [], [], 0.0).shape == (0,)  # plain empty lists too
    box = box_at(50, 50)
    assert step(tracker, [box], 0.1) == [0]
    assert step(tracker, [box], 0.2) == [1]
    for stamp, missed in ((0.5, 0.3), (1.2, 1.0)):
        assert tracker.update(np.zeros((0, 4)), [], [], stamp).shape == (0,)
        (track,) = tracker.tracks
        assert track.missed_s == pytest.approx(missed)
    tracker.update(np.zeros((0, 4)), [], [], 1.21)
    assert tracker.tracks == ()


def test_ids_increase_from_1_and_are_never_reused():
    tracker = ByteTracker()
    first_frame_of_id = {}
    stamp = 0.0
    # Objects at the same place one after another, each gone for longer than max_missed_s
    # before the next: the place is the same, the ids are not.
    for index in range(6):
        for _ in range(5):
            for track_id in step(tracker, [box_at(300, 300)], stamp):
                if track_id and track_id not in first_frame_of_id:
                    first_frame_of_id[track_id] = stamp
            stamp += FRAME_S
        stamp += 1.5
        if index == 3:
            tracker.reset()  # a reset keeps the counter
            stamp = 0.0
    assert list(first_frame_of_id) == [1, 2, 3, 4, 5, 6]
    assert ByteTracker().update([box_at(0, 0)] * 1, [0.9], [0], 0.0).tolist() == [0]
    fresh = ByteTracker(TrackerSettings(min_hits=1))
    assert fresh.update([box_at(0, 0)], [0.9], [0], 0.0).tolist() == [1]


def test_tracks_are_read_only_snapshots():
    tracker = ByteTracker()
    step(tracker, [box_at(100, 100)], 0.0)
    step(tracker, [box_at(103, 100)], FRAME_S)
    (track,) = tracker.tracks
    assert isinstance(track, Track)
    assert track.id == 1 and track.label == 0 and track.hits == 2 and track.confirmed
    with pytest.raises(dataclasses.FrozenInstanceError):
        track.id = 7
    with pytest.raises(ValueError):
        track.box[0] = 0.0
    with pytest.raises(ValueError):
        track.velocity[0] = 0.0
    assert tracker.tracks[0].box.tolist() == track.box.tolist()
    assert track.velocity[0] > 0.0


def test_settings_defaults():
    settings = TrackerSettings()
    assert (settings.high_threshold, settings.low_threshold, settings.new_track_threshold,
            settings.match_iou, settings.low_match_iou, settings.max_missed_s,
            settings.min_hits, settings.class_aware) == (0.5, 0.1, 0.6, 0.2, 0.5, 1.0, 2, True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.min_hits = 3


@pytest.mark.parametrize('field, value', [
    ('high_threshold', 0.05),  # below low_threshold
    ('high_threshold', 1.5),
    ('high_threshold', float('nan')),
    ('low_threshold', -0.1),
    ('low_threshold', '0.1'),
    ('new_track_threshold', 0.4),  # below high_threshold
    ('new_track_threshold', 1.1),
    ('match_iou', 0.0),
    ('match_iou', 1.2),
    ('low_match_iou', -0.5),
    ('max_missed_s', -1.0),
    ('max_missed_s', float('inf')),
    ('min_hits', 0),
    ('min_hits', 2.0),
    ('min_hits', True),
    ('class_aware', 'yes'),
    ('measurement_noise', 0.0),
    ('position_noise', -1.0),
    ('velocity_noise', 0.0),
    ('initial_velocity_noise', float('nan')),
])
def test_invalid_settings_raise_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f'TrackerSettings.{field} '):
        TrackerSettings(**{field: value})


def test_import_loads_neither_scipy_nor_torch_nor_ros():
    code = ('import sys, mtl_perception.tracking\n'
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'scipy', 'torch', 'torchvision', 'rclpy'}))")
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == '[]'
