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

"""Replay scoring on hand-made runs: known latencies, throughput, drops, mAP50 and mIoU."""

import struct

from mtl_perception.replay.bag_io import typestore
from mtl_perception.replay.messages import IMAGE, make_image
from mtl_perception.replay.scoring import cdr_stamp_ns, GroundTruth, percentiles
from mtl_perception.replay.scoring import score_accuracy, score_timing
import numpy as np
import pytest

MS = 1_000_000
CLASSES = ['car', 'truck', 'bus', 'person', 'bicycle']


@pytest.mark.parametrize('stamp_ns', [0, 1_767_225_600_123_456_789, 5 * 10**9 + 1])
def test_cdr_stamp_reads_the_header_of_both_byte_orders(stamp_ns):
    msg = make_image(np.zeros((2, 3), np.uint8), stamp_ns, 'camera')
    data = typestore().serialize_cdr(msg, IMAGE)
    assert cdr_stamp_ns(data) == stamp_ns
    sec, nanosec = divmod(stamp_ns, 10**9)
    big_endian = b'\x00\x00\x00\x00' + struct.pack('>iI', sec, nanosec) + b'\x00' * 8
    assert cdr_stamp_ns(big_endian) == stamp_ns
    with pytest.raises(ValueError, match='12 bytes'):
        cdr_stamp_ns(data[:8])


def _timed_run():
    """10 frames every 100 ms; detection answers after 30 ms, segmentation after 40 + i ms."""
    start = 1_000 * 10**9
    frames = [(10**9 * 50 + i, start + i * 100 * MS) for i in range(10)]
    detection = {stamp: published + 30 * MS for stamp, published in frames}
    segmentation = {stamp: published + (40 + i) * MS
                    for i, (stamp, published) in enumerate(frames) if i not in (3, 7)}
    detection[12345] = start  # an output for no frame played (e.g. a warm-up)
    return frames, {'detection': detection, 'segmentation': segmentation}


def test_timing_latency_is_the_later_output_and_drops_are_incomplete_frames():
    frames, receipts = _timed_run()
    timing = score_timing(frames, receipts)
    answered = [i for i in range(10) if i not in (3, 7)]
    latencies = np.array([40.0 + i for i in answered])
    assert timing.frames_in == 10 and timing.frames_out == 8 and timing.dropped == 2
    np.testing.assert_allclose(timing.latency_series_ms, latencies)
    assert timing.latency_ms['p50'] == pytest.approx(np.percentile(latencies, 50))
    assert timing.latency_ms['p95'] == pytest.approx(np.percentile(latencies, 95))
    assert timing.latency_ms['max'] == pytest.approx(49.0)
    # 8 frames between the first publish (t=0) and the last completion (900 + 49 ms).
    assert timing.fps == pytest.approx(8 / 0.949)
    assert timing.outputs == {'detection': 10, 'segmentation': 8}
    assert timing.unmatched_outputs == 1
    assert set(timing.as_dict()) == {'frames_in', 'frames_out', 'dropped', 'fps',
                                     'latency_ms', 'outputs', 'unmatched_outputs'}


def test_timing_without_publish_times_counts_completions_only():
    frames, receipts = _timed_run()
    timing = score_timing([(stamp, None) for stamp, _ in frames], receipts)
    assert timing.frames_out == 8
    assert timing.latency_ms == {'p50': None, 'p95': None, 'max': None}
    # 7 intervals between the first completion (40 ms) and the last (949 ms).
    assert timing.fps == pytest.approx(7 / 0.909)


def test_timing_rejects_repeated_stamps_and_handles_no_output():
    with pytest.raises(ValueError, match='repeated stamps'):
        score_timing([(1, 0), (1, 5)], {'detection': {}})
    timing = score_timing([(1, 0), (2, 5)], {'detection': {}, 'segmentation': {1: 9}})
    assert (timing.frames_out, timing.dropped, timing.fps) == (0, 2, 0.0)
    assert percentiles([]) == {'p50': None, 'p95': None, 'max': None}


def _boxes(*rows):
    return np.asarray(rows, np.float32).reshape(-1, 4)


def test_accuracy_known_map50_and_miou():
    truth = GroundTruth(
        detections={1: (_boxes([10, 10, 50, 50], [60, 60, 100, 100]), ['car', 'person']),
                    2: (_boxes([0, 0, 20, 20]), ['car'])},
        masks={1: np.array([[255, 0, 1, 1]] * 4, np.uint8),
               2: np.array([[0, 0, 1, 1]] * 4, np.uint8)})
    detections = {
        # car found exactly, person missed, a truck where there is none (no truck gt: the
        # class has no AP and stays out of the mean).
        1: (_boxes([10, 10, 50, 50], [60, 0, 90, 30]), ['car', 'truck'],
            np.array([0.9, 0.8], np.float32)),
        2: (_boxes([0, 0, 20, 21]), ['car'], np.array([0.7], np.float32)),
        3: (_boxes([0, 0, 5, 5]), ['car'], np.array([0.9], np.float32)),  # no ground truth
    }
    # Predicted all class 0, frame 2 at twice the resolution (resized back, nearest).
    masks = {1: np.zeros((4, 4), np.uint8), 2: np.zeros((8, 8), np.uint8)}
    result = score_accuracy(truth, detections, masks, CLASSES, ['ground', 'road'])
    # car AP 1.0 (2 of 2 found, no false car), person AP 0.0 -> mean 0.5.
    assert result['map50'] == pytest.approx(0.5)
    # class 0: 4 + 8 gt pixels, all 28 labelled pixels predicted 0 -> IoU 12/28; class 1: 0.
    assert result['miou'] == pytest.approx((12 / 28 + 0.0) / 2)
    assert result['accuracy_frames'] == {'detection': 2, 'segmentation': 2}


def test_accuracy_unknown_names_void_predictions_and_missing_inputs():
    truth = GroundTruth(detections={1: (_boxes([0, 0, 10, 10]), ['car'])},
                        masks={1: np.array([[0, 1], [1, 1]], np.uint8)})
    # A class the list does not know is a false positive of an extra class (left out of the
    # mean); a predicted void pixel on a labelled one is a miss of its class (class 1: 2/3).
    result = score_accuracy(truth, {1: (_boxes([0, 0, 10, 10], [50, 50, 60, 60]),
                                        ['car', 'zeppelin'], np.array([0.9, 0.95]))},
                            {1: np.array([[0, 255], [1, 1]], np.uint8)}, CLASSES, ['a', 'b'])
    assert result['map50'] == pytest.approx(1.0)
    assert result['miou'] == pytest.approx((1.0 + 2 / 3) / 2)
    assert score_accuracy(GroundTruth(), {1: None}, {1: None}) == {
        'map50': None, 'miou': None, 'accuracy_frames': {}}
    no_prediction = score_accuracy(truth, None, None, CLASSES)
    assert no_prediction['map50'] is None and no_prediction['miou'] is None
