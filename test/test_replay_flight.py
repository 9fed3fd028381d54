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

"""The synthetic flight bag: aligned stamps, valid ground truth, a smooth deterministic path."""

import json
import math

from mtl_perception.data.synthetic import DETECTION_CLASSES, SEGMENTATION_CLASSES
from mtl_perception.replay.bag_io import open_bag
from mtl_perception.replay.flight import (ALTITUDE_RANGE, CAMERA_INFO_TOPIC, CUSTOM_DATA_KEY,
                                          DETECTIONS_TOPIC, flight_path, GROUND_TRUTH_VERSION,
                                          IMAGE_TOPIC, MASK_TOPIC, OBJECTS_TOPIC, POSE_TOPIC,
                                          START_NS, write_flight_bag)
from mtl_perception.replay.messages import detection_array_to_numpy, image_to_array
from mtl_perception.replay.messages import stamp_to_ns
import numpy as np
import pytest

SIZE = (160, 120)
# 600 x 480 world units at the flight's 2 px per unit (enough objects for 5 small frames).
WORLD = (1200, 960)
RATE = 8.0


def _flight(path, seed=7, frames=5, storage='mcap'):
    return write_flight_bag(path, frames=frames, rate=RATE, seed=seed, size=SIZE,
                            storage=storage, world_size=WORLD, speed=60.0, progress=False)


def _read(path):
    with open_bag(path) as bag:
        return bag.topics(), bag.custom_data, list(bag.messages())


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_flight_bag_topics_stamps_and_ground_truth(tmp_path, storage):
    info = _flight(tmp_path / 'flight', storage=storage)
    expected_stamps = [START_NS + round(i * 1e9 / RATE) for i in range(5)]
    assert list(info.stamps_ns) == expected_stamps
    topics, custom, messages = _read(tmp_path / 'flight')
    assert {name: (t.msgtype, t.count) for name, t in topics.items()} == {
        IMAGE_TOPIC: ('sensor_msgs/msg/Image', 5),
        CAMERA_INFO_TOPIC: ('sensor_msgs/msg/CameraInfo', 5),
        POSE_TOPIC: ('geometry_msgs/msg/PoseStamped', 5),
        DETECTIONS_TOPIC: ('vision_msgs/msg/Detection2DArray', 5),
        MASK_TOPIC: ('sensor_msgs/msg/Image', 5),
        OBJECTS_TOPIC: ('vision_msgs/msg/Detection3DArray', 5)}
    description = json.loads(custom[CUSTOM_DATA_KEY])
    assert description['seed'] == 7 and description['size'] == list(SIZE)
    assert description['detection_classes'] == list(DETECTION_CLASSES)
    assert description['ground_truth_version'] == GROUND_TRUTH_VERSION == 2
    assert description['camera_model']['world_frame'] == 'map'
    by_topic = {}
    for topic, timestamp, msg in messages:
        assert stamp_to_ns(msg.header.stamp) == timestamp
        # Poses and world positions are in the world frame, the rest in the camera's.
        assert msg.header.frame_id == ('map' if topic in (POSE_TOPIC, OBJECTS_TOPIC)
                                       else 'camera')
        by_topic.setdefault(topic, []).append((timestamp, msg))
    for topic in (IMAGE_TOPIC, CAMERA_INFO_TOPIC, POSE_TOPIC, DETECTIONS_TOPIC, MASK_TOPIC,
                  OBJECTS_TOPIC):
        assert [t for t, _ in by_topic[topic]] == expected_stamps
    total_boxes = 0
    for (_, image), (_, detections), (_, mask) in zip(
            by_topic[IMAGE_TOPIC], by_topic[DETECTIONS_TOPIC], by_topic[MASK_TOPIC]):
        assert image.encoding == 'rgb8' and mask.encoding == 'mono8'
        pixels, classes = image_to_array(image), image_to_array(mask)
        assert pixels.shape == (SIZE[1], SIZE[0], 3) and classes.shape == (SIZE[1], SIZE[0])
        valid = (classes < len(SEGMENTATION_CLASSES)) | (classes == 255)
        assert valid.all()
        assert pixels.std() > 5  # a rendered scene, not a blank frame
        boxes, names, scores = detection_array_to_numpy(detections)
        total_boxes += len(boxes)
        assert set(names) <= set(DETECTION_CLASSES)
        assert np.all(scores == 1.0)
        assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, 2] <= SIZE[0])
        assert np.all(boxes[:, 3] <= SIZE[1]) and np.all(boxes[:, 2:] > boxes[:, :2])
        for box, name in zip(boxes, names):
            x1, y1, x2, y2 = np.round(box).astype(int)
            # each box frames pixels the mask paints with the same class
            assert (classes[y1:y2, x1:x2] == SEGMENTATION_CLASSES.index(name)).any()
    assert total_boxes > 0


def test_flight_bag_is_deterministic_per_seed(tmp_path):
    _flight(tmp_path / 'a', seed=7, frames=3)
    _flight(tmp_path / 'b', seed=7, frames=3)
    _flight(tmp_path / 'c', seed=8, frames=3)
    raw = {}
    for name in 'abc':
        with open_bag(tmp_path / name) as bag:
            raw[name] = list(bag.messages(raw=True))
    assert raw['a'] == raw['b']
    assert [data for _, _, data in raw['a']] != [data for _, _, data in raw['c']]


def test_flight_bag_refuses_existing_path(tmp_path):
    _flight(tmp_path / 'flight', frames=1)
    with pytest.raises(FileExistsError):
        _flight(tmp_path / 'flight', frames=1)
    info = write_flight_bag(tmp_path / 'flight', frames=2, rate=RATE, size=SIZE,
                            world_size=WORLD, overwrite=True, progress=False)
    assert info.frames == 2
    assert _read(tmp_path / 'flight')[0][IMAGE_TOPIC].count == 2


def test_flight_path_is_smooth_and_keeps_views_inside_the_world():
    world, size, speed, rate = (4000, 3000), (640, 480), 120.0, 10.0
    centres, headings, altitudes = flight_path(2000, rate, seed=1, world_size=world,
                                               size=size, speed=speed)
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    assert steps.max() < 3 * speed / rate and steps.min() > 0.1 * speed / rate
    assert np.abs(np.diff(headings)).max() < math.radians(10)
    assert np.abs(np.diff(altitudes)).max() < 0.01
    assert altitudes.min() >= ALTITUDE_RANGE[0] - 1e-9
    assert altitudes.max() <= ALTITUDE_RANGE[1] + 1e-9
    # the image's top points along the direction of travel
    travel = np.diff(centres, axis=0)
    forward = np.stack([np.sin(headings[:-1]), -np.cos(headings[:-1])], axis=1)
    cosine = np.sum(travel * forward, axis=1) / np.linalg.norm(travel, axis=1)
    assert cosine.min() > 0.95
    # every corner of every rotated, scaled view lies inside the world
    half = np.array([[-1, -1], [1, -1], [-1, 1], [1, 1]]) * np.array(size) / 2
    for centre, heading, altitude in zip(centres[::25], headings[::25], altitudes[::25]):
        c, s = math.cos(heading) * altitude, math.sin(heading) * altitude
        corners = centre + half @ np.array([[c, s], [-s, c]])
        assert corners.min() >= 0
        assert np.all(corners.max(axis=0) <= np.array(world))
    a = flight_path(5, rate, seed=2, world_size=world, size=size)
    assert not np.allclose(a[0], flight_path(5, rate, seed=3, world_size=world, size=size)[0])


def test_flight_path_rejects_a_world_too_small_for_the_view():
    with pytest.raises(ValueError, match='too small'):
        flight_path(3, 10.0, seed=0, world_size=(600, 500), size=(640, 480))
