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
Test session setup: every ROS process started by a test stays on loopback.

The variables are set here, at import, before any test module can load rclpy, and are inherited
by every process the tests start. Each session gets its own ROS_DOMAIN_ID so parallel runs on one
machine do not see each other's topics.
"""

import os
from pathlib import Path

from mtl_perception.ros.environment import localhost_ros_env, pick_domain_id
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

os.environ.update(localhost_ros_env(
    domain_id=int(os.environ.get('MTL_TEST_DOMAIN_ID', pick_domain_id()))))


@pytest.fixture(scope='session')
def repo_root() -> Path:
    """Return the repository root."""
    return REPO_ROOT


@pytest.fixture(scope='session')
def ros_env() -> dict:
    """Return the environment for ROS processes started by a test (loopback only)."""
    return localhost_ros_env()
