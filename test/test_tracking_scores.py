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

"""Tracking (TrackEval's HOTA, CLEAR, Identity) and ground-position scores on known cases."""

import math

from mtl_perception.replay.tracking_scores import ground_matches, score_ground, score_tracking
import numpy as np
import pytest

FRAMES = 10


def _box(x: float, y: float = 10.0) -> list:
    return [x, y, x + 20.0, y + 10.0]


def _truth(objects: dict, frames: int = FRAMES) -> dict:
    """Return ground truth of objects ``{id: class}`` moving 3 px a frame, 40 px apart."""
    truth = {}
    for t in range(frames):
        boxes = [_box(40.0 * k + 3.0 * t) for k in range(len(objects))]
        truth[1000 + t] = (np.array(boxes), list(objects.values()), list(objects))
    return truth


def _tracked(truth: dict, ids_at) -> dict:
    """Return the ground truth's boxes and classes with ``ids_at(frame, object)`` as ids."""
    return {stamp: (boxes, names, [ids_at(t, k) for k in range(len(boxes))])
            for t, (stamp, (boxes, names, _)) in enumerate(sorted(truth.items()))}


def test_a_perfect_tracker_scores_one_and_no_switch():
    truth = _truth({'1': 'car', '2': 'car', '3': 'person'})
    result = score_tracking(truth, _tracked(truth, lambda t, k: f'track{k}'), ['car', 'person'])
    for key in ('hota', 'deta', 'assa', 'idf1', 'mota'):
        assert result[key] == pytest.approx(1.0), key
    assert result['id_switches'] == 0 and result['id_switches_per_100_frames'] == 0.0
    assert result['frames'] == FRAMES and result['gt_tracks'] == 3
    assert result['gt_detections'] == result['predicted_detections'] == 3 * FRAMES
    assert set(result['per_class']) == {'car', 'person'}
    assert result['per_class']['car']['gt_tracks'] == 2
    assert result['per_class']['person']['idf1'] == pytest.approx(1.0)


def test_one_forced_identity_change_is_one_switch_with_the_hand_figures():
    # Object 1 is 'a' for frames 0-4 and 'c' after; object 2 is 'b' throughout.
    truth = _truth({'1': 'car', '2': 'car'})
    result = score_tracking(truth, _tracked(
        truth, lambda t, k: ('a' if t < 5 else 'c') if k == 0 else 'b'), ['car'])
    assert result['id_switches'] == 1
    assert result['id_switches_per_100_frames'] == pytest.approx(10.0)
    # CLEAR: TP 20, FN 0, FP 0, 1 switch: MOTA = (20 - 0 - 1) / 20.
    assert result['mota'] == pytest.approx(19 / 20)
    # Identity: object 1 keeps 5 of its 10 frames under one id: IDTP 15, IDFN 5, IDFP 5,
    # IDF1 = 2 IDTP / (2 IDTP + IDFN + IDFP) = 30 / 40.
    assert result['idf1'] == pytest.approx(0.75)
    # HOTA: every detection matched (DetA 1); AssA = (10 x 5/10 + 10 x 1) / 20 = 0.75.
    assert result['deta'] == pytest.approx(1.0) and result['assa'] == pytest.approx(0.75)
    assert result['hota'] == pytest.approx(math.sqrt(0.75))


def test_swapping_two_identities_switches_both():
    truth = _truth({'1': 'car', '2': 'car'})
    result = score_tracking(truth, _tracked(truth, lambda t, k: 'ab'[k if t < 5 else 1 - k]))
    assert result['id_switches'] == 2 and result['mota'] == pytest.approx(18 / 20)
    assert result['idf1'] == pytest.approx(0.5)


def test_misses_false_tracks_and_wrong_classes_by_hand():
    truth = _truth({'1': 'car', '2': 'person'}, frames=4)
    predictions = {}
    for t, (stamp, (boxes, names, _)) in enumerate(sorted(truth.items())):
        # The car is tracked in frames 0-2 only; the person is called a car throughout (a
        # false car and a missed person); a false person track appears far away in frame 3.
        pred_boxes, pred_names, pred_ids = [boxes[1]], ['car'], ['p']
        if t < 3:
            pred_boxes, pred_names, pred_ids = [boxes[0]] + pred_boxes, ['car'] + pred_names, \
                ['c'] + pred_ids
        if t == 3:
            pred_boxes, pred_names, pred_ids = pred_boxes + [_box(500)], pred_names + [
                'person'], pred_ids + ['ghost']
        predictions[stamp] = (np.array(pred_boxes), pred_names, pred_ids)
    result = score_tracking(truth, predictions, ['car', 'person'])
    car, person = result['per_class']['car'], result['per_class']['person']
    # car: TP 3, FN 1, FP 4 (the person called car): MOTA = (3 - 4) / 4.
    assert car['mota'] == pytest.approx(-0.25) and car['id_switches'] == 0
    # person: TP 0, FN 4, FP 1.
    assert person['mota'] == pytest.approx(-0.25) and person['idf1'] == 0.0
    # over classes: TP 3, FN 5, FP 5: MOTA = (3 - 5) / 8; IDF1 = 6 / (6 + 5 + 5).
    assert result['mota'] == pytest.approx(-0.25)
    assert result['idf1'] == pytest.approx(6 / 16)


def test_untracked_predictions_are_left_out_and_counted():
    truth = _truth({'1': 'car', '2': 'car'})
    result = score_tracking(truth, _tracked(truth, lambda t, k: 'a' if k == 0 else ''))
    # Object 2 is only ever untracked: all its frames are misses, none a false track.
    assert result['mota'] == pytest.approx(10 / 20) and result['id_switches'] == 0
    assert result['untracked_predictions'] == FRAMES
    assert result['predicted_detections'] == FRAMES and result['predicted_tracks'] == 1


def test_only_frames_with_both_are_scored_and_bad_input_is_refused():
    truth = _truth({'1': 'car'})
    predictions = _tracked(truth, lambda t, k: 'a')
    del predictions[1000 + 4]  # a frame the node never answered: not a miss
    result = score_tracking(truth, predictions)
    assert result['frames'] == FRAMES - 1 and result['mota'] == pytest.approx(1.0)
    with pytest.raises(ValueError, match='no frame'):
        score_tracking(truth, {1: predictions[1000]})
    doubled = {s: (np.concatenate([b, b]), n * 2, ['a', 'a']) for s, (b, n, _) in
               predictions.items()}
    with pytest.raises(ValueError, match='repeated'):
        score_tracking(truth, doubled)
    with pytest.raises(ValueError, match='without a track id'):
        score_tracking({s: (b, n, ['']) for s, (b, n, _) in truth.items()}, predictions)


def _objects(points: dict, frames: int = 3) -> dict:
    """``{stamp: (positions [N, 3], classes, ids)}`` of fixed points ``{id: (class, x, y)}``."""
    return {s: (np.array([[x, y, 0.0] for _, x, y in points.values()]),
                [c for c, _, _ in points.values()], list(points)) for s in range(frames)}


def test_a_constant_offset_is_the_error():
    truth = _objects({'1': ('car', 0.0, 0.0), '2': ('car', 10.0, 5.0), '3': ('person', 3, 9)})
    shifted = {s: (p + [0.3, 0.4, 0.0], n, i) for s, (p, n, i) in truth.items()}
    result = score_ground(truth, shifted, ['car', 'person'])
    assert result['median'] == pytest.approx(0.5) and result['p90'] == pytest.approx(0.5)
    assert result['matched'] == 9 and result['frames'] == 3
    assert result['unmatched_predictions'] == result['unmatched_truth'] == 0
    assert result['per_class']['person']['matched'] == 3


def test_ground_matching_is_one_to_one_within_the_gate_and_class():
    truth = _objects({'1': ('car', 0.0, 0.0), '2': ('car', 1.8, 0.0), '3': ('bus', 50, 0)}, 1)
    # Nearest-first would pair car 2 with the first prediction (0.8 m) and leave car 1 with
    # none within the gate; the assignment pairs both (1.0 m and 0.9 m). The bus is far off;
    # the person prediction has no person to match.
    predictions = {0: (np.array([[1.0, 0, 0], [2.7, 0, 0], [60, 0, 0], [0, 0, 0]]),
                       ['car', 'car', 'bus', 'person'], ['', '', '', ''])}
    matches = ground_matches(truth, predictions, gate_m=1.2)
    np.testing.assert_allclose(matches.all_errors(), [0.9, 1.0])
    result = matches.summary()
    assert result['matched'] == 2 and result['unmatched_truth'] == 1
    assert result['unmatched_predictions'] == 2
    assert result['per_class']['bus'] == {'median': None, 'p90': None, 'mean': None,
                                          'max': None, 'matched': 0,
                                          'unmatched_predictions': 1, 'unmatched_truth': 1}
    with pytest.raises(ValueError, match='no frame'):
        score_ground(truth, {5: predictions[0]})
    with pytest.raises(ValueError, match='gate'):
        score_ground(truth, predictions, gate_m=0)
