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
Camera geometry for aerial perception: pixels to points on the ground plane (numpy only).

See ``ground`` for the conventions (camera optical frame, world frame with z up).
"""

from mtl_perception.geometry.ground import (BODY_FROM_OPTICAL, contact_pixels, ground_footprint,
                                            PinholeCamera, Pose, project_to_ground,
                                            quaternion_to_matrix)

__all__ = ['BODY_FROM_OPTICAL', 'PinholeCamera', 'Pose', 'contact_pixels', 'ground_footprint',
           'project_to_ground', 'quaternion_to_matrix']
