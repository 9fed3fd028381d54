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
Multi-object tracking of detections across frames (numpy only; no torch, no ROS).

``ByteTracker`` gives every detection the id of the object track it belongs to.
"""

from mtl_perception.tracking.bytetrack import ByteTracker, Track, TrackerSettings

__all__ = [
    'ByteTracker',
    'Track',
    'TrackerSettings',
]
