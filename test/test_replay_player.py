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

"""The player plays a flight's camera_info and pose along with its images, same stamps."""

import threading
import time

from geometry_msgs.msg import PoseStamped
from mtl_perception.replay.bag_io import open_bag
from mtl_perception.replay.flight import CAMERA_INFO_TOPIC, IMAGE_TOPIC, POSE_TOPIC
from mtl_perception.replay.flight import write_flight_bag
from mtl_perception.replay.player import companion_topics, Player
from mtl_perception.replay.run_control import spin
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
FRAMES = 4


def _wait(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f'timed out waiting for {what}'
        time.sleep(0.01)


def test_camera_info_and_pose_play_along_with_the_images(tmp_path):
    bag = tmp_path / 'flight'
    write_flight_bag(bag, frames=FRAMES, rate=20.0, seed=1, size=(96, 64),
                     world_size=(700, 600), speed=60.0, progress=False)
    with open_bag(bag) as reader:
        assert set(companion_topics(reader.topics(), IMAGE_TOPIC)) == {CAMERA_INFO_TOPIC,
                                                                       POSE_TOPIC}
    context = rclpy.Context()
    rclpy.init(context=context)
    stop, spinner = threading.Event(), None
    try:
        node = rclpy.create_node('player_test', context=context)
        received = {IMAGE_TOPIC: [], CAMERA_INFO_TOPIC: [], POSE_TOPIC: []}
        for topic, msg_class in ((IMAGE_TOPIC, Image), (CAMERA_INFO_TOPIC, CameraInfo),
                                 (POSE_TOPIC, PoseStamped)):
            node.create_subscription(
                msg_class, topic, lambda msg, t=topic: received[t].append(
                    msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec), RELIABLE)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        spinner = threading.Thread(target=spin, args=(executor, stop), daemon=True)
        spinner.start()
        plain = Player(node, bag, IMAGE_TOPIC, qos=RELIABLE)
        assert plain.companions == {}
        player = Player(node, bag, IMAGE_TOPIC, qos=RELIABLE, rate=4.0, companions=True)
        assert set(player.companions) == {CAMERA_INFO_TOPIC, POSE_TOPIC}
        _wait(lambda: all(node.count_publishers(t) >= 1 and node.count_subscribers(t) == 1
                          for t in received) and player.subscriber_count(), 30.0,
              'the player and the subscriptions to match')
        frames = player.play()
        stamps = [stamp for stamp, _ in frames]
        assert len(stamps) == FRAMES
        _wait(lambda: all(len(r) >= FRAMES for r in received.values()), 30.0, 'the messages')
        # One camera_info and one pose per frame, with the frame's stamp; no extra messages.
        for topic in received:
            assert sorted(received[topic]) == sorted(stamps), topic
    finally:
        stop.set()
        if spinner is not None:
            spinner.join()
        rclpy.shutdown(context=context)
