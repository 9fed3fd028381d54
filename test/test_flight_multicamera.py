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

"""The multi-camera synthetic flight: one world, K views, per-camera topics and ground truth."""

import json

from mtl_perception.cli.main import main as cli_main
from mtl_perception.data.synthetic import DETECTION_CLASSES, SEGMENTATION_CLASSES
from mtl_perception.replay.bag_io import open_bag
from mtl_perception.replay.flight import (camera_rig, CUSTOM_DATA_KEY, IMAGE_TOPIC,
                                          read_flight_cameras, START_NS, write_flight_bag)
from mtl_perception.replay.messages import detection_array_to_numpy, image_to_array
from mtl_perception.replay.messages import stamp_to_ns
import numpy as np
import pytest

SIZE = (160, 120)
WORLD = (1200, 960)
RATE = 8.0
FRAMES = 4


def _flight(path, cameras, seed=7):
    return write_flight_bag(path, frames=FRAMES, rate=RATE, seed=seed, size=SIZE,
                            world_size=WORLD, speed=60.0, cameras=cameras, progress=False)


def test_two_cameras_have_their_own_topics_stamps_and_ground_truth(tmp_path):
    flight = _flight(tmp_path / 'flight', cameras=2)
    names = [camera.name for camera in flight.cameras]
    assert names == ['cam0', 'cam1']
    expected = [START_NS + round(i * 1e9 / RATE) for i in range(FRAMES)]
    assert list(flight.stamps_ns) == expected
    with open_bag(tmp_path / 'flight') as bag:
        topics, custom = bag.topics(), bag.custom_data
        messages = list(bag.messages())
    layout = {}
    for name in names:
        layout.update({f'/{name}/image_raw': ('sensor_msgs/msg/Image', FRAMES),
                       f'/{name}/camera_info': ('sensor_msgs/msg/CameraInfo', FRAMES),
                       f'/{name}/pose': ('geometry_msgs/msg/PoseStamped', FRAMES),
                       f'/{name}/ground_truth/detections':
                           ('vision_msgs/msg/Detection2DArray', FRAMES),
                       f'/{name}/ground_truth/mask': ('sensor_msgs/msg/Image', FRAMES),
                       f'/{name}/ground_truth/objects':
                           ('vision_msgs/msg/Detection3DArray', FRAMES)})
    assert {topic: (t.msgtype, t.count) for topic, t in topics.items()} == layout
    # The metadata names the cameras, their topics and their mounts.
    assert read_flight_cameras(custom) == flight.cameras
    description = json.loads(custom[CUSTOM_DATA_KEY])
    assert [c['mount']['name'] for c in description['cameras']] == names
    assert description['frames'] == FRAMES and description['size'] == list(SIZE)
    by_topic = {}
    for topic, timestamp, msg in messages:
        # Every camera's frame of a tick carries the tick's stamp; frame_id is the camera
        # ('map' for the camera's pose and the objects' world positions).
        assert stamp_to_ns(msg.header.stamp) == timestamp
        world = topic.endswith(('/pose', '/ground_truth/objects'))
        assert msg.header.frame_id == ('map' if world else topic.split('/')[1])
        by_topic.setdefault(topic, []).append(msg)
    for topic in layout:
        assert [stamp_to_ns(m.header.stamp) for m in by_topic[topic]] == expected
    pixels, boxes_seen = {}, 0
    for camera in flight.cameras:
        for image, detections, mask in zip(by_topic[camera.image_topic],
                                           by_topic[camera.detections_topic],
                                           by_topic[camera.mask_topic]):
            picture, classes = image_to_array(image), image_to_array(mask)
            assert picture.shape == (SIZE[1], SIZE[0], 3) and classes.shape == SIZE[::-1]
            assert ((classes < len(SEGMENTATION_CLASSES)) | (classes == 255)).all()
            # The views stay inside the world: no void (outside) pixels.
            assert (classes != 255).all()
            boxes, labels, _ = detection_array_to_numpy(detections)
            boxes_seen += len(boxes)
            assert set(labels) <= set(DETECTION_CLASSES)
            for box, label in zip(boxes, labels):
                x1, y1, x2, y2 = np.round(box).astype(int)
                # Each camera's boxes frame pixels its own mask paints with the class.
                assert (classes[y1:y2, x1:x2] == SEGMENTATION_CLASSES.index(label)).any()
        pixels[camera.name] = np.stack([image_to_array(m) for m in by_topic[camera.image_topic]])
    # Different views of the same world.
    assert not np.array_equal(pixels['cam0'], pixels['cam1'])
    assert boxes_seen > 0


def test_one_camera_is_the_single_camera_flight(tmp_path):
    single = _flight(tmp_path / 'one' / 'flight', cameras=1)
    assert [c.image_topic for c in single.cameras] == [IMAGE_TOPIC]
    with open_bag(tmp_path / 'one' / 'flight') as bag:
        assert sorted(bag.topics()) == ['/camera/camera_info', '/camera/image_raw',
                                        '/camera/pose', '/ground_truth/detections',
                                        '/ground_truth/mask', '/ground_truth/objects']
        assert read_flight_cameras(bag.custom_data) == ()
        assert 'cameras' not in json.loads(bag.custom_data[CUSTOM_DATA_KEY])
    # The default (no cameras argument) writes the same bytes.
    write_flight_bag(tmp_path / 'default' / 'flight', frames=FRAMES, rate=RATE, seed=7,
                     size=SIZE, world_size=WORLD, speed=60.0, progress=False)
    for name in ('flight.mcap', 'metadata.yaml'):
        assert (tmp_path / 'one' / 'flight' / name).read_bytes() == \
            (tmp_path / 'default' / 'flight' / name).read_bytes(), name


def test_camera_rig_puts_cam0_on_the_path_and_the_others_apart():
    rig = camera_rig(3)
    assert rig[0].forward == rig[0].right == rig[0].heading_deg == 0
    assert len({(m.forward, m.right, m.heading_deg, m.altitude_scale) for m in rig}) == 3
    with pytest.raises(ValueError, match='cameras'):
        camera_rig(0)


def test_synth_command_writes_cameras(tmp_path, capsys):
    rc = cli_main(['synth', '--bag', str(tmp_path / 'flight'), '--frames', '2',
                   '--cameras', '3', '--size', '160x120', '--world-size', '1200x960',
                   '--quiet'])
    assert rc == 0
    assert 'from 3 cameras (cam0, cam1, cam2)' in capsys.readouterr().out
    with open_bag(tmp_path / 'flight') as bag:
        cameras = read_flight_cameras(bag.custom_data)
        assert [c.name for c in cameras] == ['cam0', 'cam1', 'cam2']
        assert all(bag.topics()[c.image_topic].count == 2 for c in cameras)
    assert cli_main(['synth', '--bag', str(tmp_path / 'x'), '--cameras', '0', '--quiet']) == 2
    assert '--cameras must be >= 1' in capsys.readouterr().err
