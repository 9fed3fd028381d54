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
The cameras a perception node serves: their frames, topics, publishers and counters (no rclpy).

A node serves one unnamed camera (topics ``image``, ``detections``, ...) or the cameras named
by its ``cameras`` parameter (``<camera>/image``, ``<camera>/detections``, ...). Detection nodes
also publish ``detections_3d`` per camera (ground positions) from ``camera_info`` and ``pose``
beside the camera's image topic.
"""

from dataclasses import dataclass, field
from typing import Any, Sequence

from mtl_perception.ros.pipeline import PipelineStats
import numpy as np
from std_msgs.msg import Header

# Output topics per task, relative to the camera.
OUTPUT_TOPICS = {'detection': ('detections', 'detections/overlay'),
                 'segmentation': ('segmentation/mask', 'segmentation/color')}
GROUND_TOPIC = 'detections_3d'


@dataclass
class Frame:
    """A frame waiting for inference: raw pixels, or a compressed message decoded lazily."""

    header: Header
    received: float
    image: np.ndarray | Any  # Any: a sensor_msgs/CompressedImage
    camera: int = 0


@dataclass
class Camera:
    """
    One camera the node serves: its input topic, output publishers and counters.

    ``name`` is '' for the default single camera (topics ``image``, ``detections``, ...);
    ``publishers`` are keyed by the output topic relative to the camera ('detections', ...).
    """

    name: str
    input_topic: str
    stats: PipelineStats
    publishers: dict = field(default_factory=dict)
    # Detection nodes: the camera's tracker (None: tracking off) and its intrinsics and poses
    # (a CameraGeometry; None: ground_projection off), with their counters (a WorldStats).
    tracker: Any = None
    geometry: Any = None
    world: Any = None

    @property
    def prefix(self) -> str:
        """Return the prefix of the camera's topics: '' or '<name>/'."""
        return f'{self.name}/' if self.name else ''

    def output_topics(self, tasks: Sequence[str]) -> list:
        """Return ``(key, topic)`` of every output of ``tasks``: key relative to the camera."""
        return [(key, self.prefix + key) for task in tasks for key in OUTPUT_TOPICS[task]]


def input_topic(name: str, index: int, camera_topics: Sequence[str]) -> str:
    """Return the input image topic of camera ``index`` named ``name`` ('' for the default)."""
    if camera_topics:
        return camera_topics[index]
    return f'{name}/image' if name else 'image'
