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
Record what the nodes publish, with receive times, as ``ros2 bag record`` would.

Subscriptions take the serialised bytes (no decode in the receive path, so recording costs
the nodes under test almost nothing); each message is kept with the wall time it arrived and
its header stamp, and written into a bag afterwards with the receive time as the timestamp.
"""

from pathlib import Path
import threading
import time
from typing import Iterable, Optional

from mtl_perception.replay.bag_io import BagWriter
from mtl_perception.replay.scoring import cdr_stamp_ns
from rclpy.node import Node

__all__ = ['Recorder']


class Recorder:
    """
    Record topics through ``node``; ``topics`` maps a topic to (message class, QoS, type name).

    The type name is the rosbag2 one ('vision_msgs/msg/Detection2DArray') used for the bag.
    """

    def __init__(self, node: Node, topics: dict) -> None:
        """Subscribe to every topic (raw)."""
        self._lock = threading.Lock()
        self.messages: list = []
        self._stamps = {topic: {} for topic in topics}
        self._types = {topic: spec[2] for topic, spec in topics.items()}
        self._subscriptions = [
            node.create_subscription(msg_class, topic, self._callback(topic), qos, raw=True)
            for topic, (msg_class, qos, _) in topics.items()]
        self._node = node

    def _callback(self, topic: str):
        def record(data: bytes) -> None:
            received = time.time_ns()
            try:
                stamp = cdr_stamp_ns(data)
            except ValueError:
                stamp = -1
            with self._lock:
                self.messages.append((topic, received, stamp, bytes(data)))
                self._stamps[topic].setdefault(stamp, received)
        return record

    def count(self, topic: str) -> int:
        """Return how many messages arrived on ``topic``."""
        with self._lock:
            return len(self._stamps[topic]) if topic in self._stamps else 0

    def received(self, topic: str, stamp: int) -> Optional[int]:
        """Return the first receive time of ``stamp`` on ``topic`` (None if not yet)."""
        with self._lock:
            return self._stamps[topic].get(stamp)

    def complete(self, topics: Iterable[str], stamp: int) -> bool:
        """Return whether every topic of ``topics`` has a message with ``stamp``."""
        return all(self.received(topic, stamp) is not None for topic in topics)

    def publisher_count(self, topic: str) -> int:
        """Return how many publishers the graph shows on ``topic``."""
        return self._node.count_publishers(topic)

    def messages_on(self, topic: str) -> list:
        """Return ``[(receive ns, stamp ns, bytes), ...]`` of ``topic``."""
        with self._lock:
            return [(r, s, d) for t, r, s, d in self.messages if t == topic]

    def write_bag(self, path: Path, *, custom_data: Optional[dict] = None,
                  storage: str = 'mcap', overwrite: bool = True) -> int:
        """Write every recorded message into a bag at ``path``; return the message count."""
        with self._lock:
            messages = list(self.messages)
        with BagWriter(path, storage, overwrite=overwrite, custom_data=custom_data) as bag:
            for topic, msgtype in self._types.items():
                bag.add_topic(topic, msgtype)
            for topic, received, _, data in sorted(messages, key=lambda m: m[1]):
                bag.write(topic, received, data)
        return len(messages)
