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
Play a bag's camera topic into the ROS graph, as ``ros2 bag play`` would, timing each frame.

The frames go out as the bag's own CDR bytes (no decode, no re-encode), so header stamps stay
exactly as recorded; they are paced by the bag timestamps divided by ``rate``. The wall time
just before each publish is kept: it is the start of every end-to-end latency the scorer
reports. A frame due while the player is behind schedule goes out at once (never skipped).

The camera's ``camera_info`` and ``pose`` beside the image topic, when the bag has them (a
synthetic flight does), play along with the images from the same pass over the bag (each
just before its image, as the bag orders them): the nodes project their detections to the
ground with them. They are not frames: no publish time is kept for them.

Several cameras play together through :func:`play_together`: one Player per camera topic,
one pass over the bag in time order, so the frames of one tick leave back to back.
"""

import logging
import threading
import time
from typing import Callable, Optional

from geometry_msgs.msg import PoseStamped
from mtl_perception.replay.bag_io import open_bag
from mtl_perception.replay.messages import CAMERA_INFO, COMPRESSED_IMAGE, IMAGE, POSE_STAMPED
from mtl_perception.replay.scoring import cdr_stamp_ns
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

__all__ = ['Player', 'WARMUP_SEC', 'companion_topics', 'play_together']

LOGGER = logging.getLogger(__name__)
MESSAGE_CLASSES = {IMAGE: Image, COMPRESSED_IMAGE: CompressedImage}
# Topics beside the image topic that play along with it: name -> message type.
COMPANIONS = {'camera_info': (CAMERA_INFO, CameraInfo), 'pose': (POSE_STAMPED, PoseStamped)}
COMPANION_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
# Warm-up frames carry stamps (0 s, k ns): no bag frame has them, so the scorer ignores them.
WARMUP_SEC = 0
# Warm-up and capacity frames cycle through the bag's first images (content changes the cost:
# more objects, more boxes to decode and suppress).
WARMUP_IMAGES = 32


def companion_topics(topics: dict, image_topic: str) -> dict:
    """
    Return ``{topic: message class}`` of the companions of ``image_topic`` a bag holds.

    :param topics: the bag's ``{name: TopicInfo}``.
    :param image_topic: the played image topic; its companions are ``camera_info`` and
        ``pose`` in its namespace (``/camera/image_raw`` -> ``/camera/camera_info``, ...).
    """
    namespace = image_topic.rpartition('/')[0]
    found = {}
    for name, (msgtype, msg_class) in COMPANIONS.items():
        topic = f'{namespace}/{name}'
        if topic in topics and topics[topic].msgtype == msgtype and topics[topic].count:
            found[topic] = msg_class
    return found


class Player:
    """
    Publish the image topic of a bag through ``node``.

    :param node: the rclpy node that owns the publisher.
    :param bag_path: the input bag.
    :param topic: the bag's image topic (sensor_msgs/Image or CompressedImage).
    :param publish_topic: the topic to publish on (default ``topic``).
    :param qos: the publisher's QoS (match the nodes' image subscription).
    :param rate: playback speed factor over the bag's own timing (2.0 = twice as fast).
    :param max_frames: play at most this many frames (None: all).
    :param companions: play the bag's ``camera_info`` and ``pose`` beside ``topic`` too
        (:func:`companion_topics`), on the same names, in :meth:`play`
        (:func:`play_together` plays images only).
    """

    def __init__(self, node: Node, bag_path, topic: str, *, qos: QoSProfile,
                 publish_topic: Optional[str] = None, rate: float = 1.0,
                 max_frames: Optional[int] = None, companions: bool = False) -> None:
        """Open the bag's topic and create the publisher."""
        if not rate > 0:
            raise ValueError(f'rate must be > 0, got {rate}')
        if max_frames is not None and max_frames < 1:
            raise ValueError(f'max_frames must be >= 1, got {max_frames}')
        self.bag_path, self.topic, self.rate, self.max_frames = bag_path, topic, rate, max_frames
        with open_bag(bag_path) as bag:
            topics = bag.topics()
            if topic not in topics:
                raise ValueError(f'bag {bag_path} has no topic {topic}; it has {sorted(topics)}')
            info = topics[topic]
            if info.msgtype not in MESSAGE_CLASSES:
                raise ValueError(f'topic {topic} of bag {bag_path} holds {info.msgtype}; the '
                                 f'player plays {sorted(MESSAGE_CLASSES)}')
            self.msgtype, self.available = info.msgtype, info.count
            self.companions = companion_topics(topics, topic) if companions else {}
            self._firsts = []
            for _, _, data in bag.messages(topic, raw=True):
                self._firsts.append(data)
                if len(self._firsts) >= WARMUP_IMAGES:
                    break
        if not self._firsts:
            raise ValueError(f'topic {topic} of bag {bag_path} holds no messages')
        self.frame_count = self.available if max_frames is None else min(max_frames,
                                                                         self.available)
        self.publish_topic = publish_topic or topic
        self._publisher = node.create_publisher(MESSAGE_CLASSES[self.msgtype],
                                                self.publish_topic, qos)
        self._companion_publishers = {
            name: node.create_publisher(msg_class, name, COMPANION_QOS)
            for name, msg_class in self.companions.items()}
        self.published: list = []
        self._warmup_msgs: dict = {}

    def subscriber_count(self) -> int:
        """Return how many subscriptions match the publisher."""
        return self._publisher.get_subscription_count()

    def publish_warmup(self, index: int, image: int = 0) -> int:
        """
        Publish a bag image with the warm-up stamp (0 s, ``index`` ns); return the stamp.

        ``image`` picks one of the bag's first WARMUP_IMAGES images (modulo their count).
        """
        image = image % len(self._firsts)
        if image not in self._warmup_msgs:
            self._warmup_msgs[image] = deserialize_message(self._firsts[image],
                                                           MESSAGE_CLASSES[self.msgtype])
        msg = self._warmup_msgs[image]
        msg.header.stamp.sec, msg.header.stamp.nanosec = WARMUP_SEC, int(index)
        self._publisher.publish(msg)
        return WARMUP_SEC * 1_000_000_000 + int(index)

    def publish_data(self, data: bytes) -> int:
        """Publish one message given as CDR bytes; return the wall time (ns) just before."""
        published = time.time_ns()
        self._publisher.publish(data)
        return published

    def play(self, on_frame: Optional[Callable[[int], None]] = None,
             stop: Optional[threading.Event] = None) -> list:
        """
        Publish the frames at their pace; return ``[(stamp_ns, publish wall time ns), ...]``.

        ``on_frame(count)`` is called after each publish (progress); setting ``stop`` ends
        the playback early. A frame whose stamp was already played is skipped with a warning
        (outputs are matched to inputs by stamp).
        """
        self.published = []
        seen = set()
        start = first_timestamp = None
        with open_bag(self.bag_path) as bag:
            for topic, timestamp, data in bag.messages([self.topic, *self.companions],
                                                       raw=True):
                if len(self.published) >= self.frame_count or (stop and stop.is_set()):
                    break
                if topic != self.topic:
                    # Paced as the bag has it, like the images (it comes just before its image).
                    if start is not None:
                        delay = start + (timestamp - first_timestamp) / 1e9 / self.rate - \
                            time.monotonic()
                        if delay > 0 and stop is not None:
                            stop.wait(delay)
                        elif delay > 0:
                            time.sleep(delay)
                    self._companion_publishers[topic].publish(data)
                    continue
                stamp = cdr_stamp_ns(data)
                if stamp in seen:
                    LOGGER.warning('skipping a frame of %s with the repeated stamp %d ns',
                                   self.topic, stamp)
                    continue
                seen.add(stamp)
                if start is None:
                    start, first_timestamp = time.monotonic(), timestamp
                delay = start + (timestamp - first_timestamp) / 1e9 / self.rate - \
                    time.monotonic()
                if delay > 0:
                    if stop is not None:
                        stop.wait(delay)
                    else:
                        time.sleep(delay)
                published = time.time_ns()
                self._publisher.publish(data)
                self.published.append((stamp, published))
                if on_frame is not None:
                    on_frame(len(self.published))
        return list(self.published)


def play_together(players: dict, on_frame: Optional[Callable[[str, int], None]] = None,
                  stop: Optional[threading.Event] = None) -> dict:
    """
    Play the topics of several players (one bag) in one pass, paced by the bag's timestamps.

    :param players: ``{name: Player}`` over the same bag, one topic each; every player's
        ``frame_count`` caps its own frames and the first player's ``rate`` paces them all.
    :param on_frame: called as ``on_frame(name, count)`` after each publish.
    :return: ``{name: [(stamp_ns, publish wall time ns), ...]}``, also each player's
        ``published``. A repeated stamp on one topic is skipped with a warning.
    """
    if not players:
        raise ValueError('play_together needs at least one player')
    first = next(iter(players.values()))
    by_topic = {player.topic: (name, player) for name, player in players.items()}
    if len(by_topic) != len(players) or len({str(p.bag_path) for p in players.values()}) != 1:
        raise ValueError('play_together plays one bag with one topic per player')
    seen = {name: set() for name in players}
    for player in players.values():
        player.published = []
    start = first_timestamp = None
    with open_bag(first.bag_path) as bag:
        for topic, timestamp, data in bag.messages(list(by_topic), raw=True):
            if stop is not None and stop.is_set():
                break
            name, player = by_topic[topic]
            if len(player.published) >= player.frame_count:
                if all(len(p.published) >= p.frame_count for p in players.values()):
                    break
                continue
            stamp = cdr_stamp_ns(data)
            if stamp in seen[name]:
                LOGGER.warning('skipping a frame of %s with the repeated stamp %d ns', topic,
                               stamp)
                continue
            seen[name].add(stamp)
            if start is None:
                start, first_timestamp = time.monotonic(), timestamp
            delay = start + (timestamp - first_timestamp) / 1e9 / first.rate - time.monotonic()
            if delay > 0:
                if stop is not None:
                    stop.wait(delay)
                else:
                    time.sleep(delay)
            player.published.append((stamp, player.publish_data(data)))
            if on_frame is not None:
                on_frame(name, len(player.published))
    return {name: list(player.published) for name, player in players.items()}
