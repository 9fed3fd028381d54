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
Environment for the ROS processes this package starts: loopback only, shared-memory images.

Nothing here imports rclpy, so tests and tools use it before any ROS library is loaded.
"""

import os
from typing import Mapping, Optional

from mtl_perception.resources import config_file

# FastDDS accepts domain ids up to 232; 0-101 and 215-232 leave its port arithmetic safe.
SAFE_DOMAIN_IDS = tuple(range(1, 102)) + tuple(range(215, 233))

LOCALHOST_VARIABLES = {
    # Jazzy and later: discovery stays on this machine, no multicast leaves it.
    'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST',
    # Humble's equivalent (ignored by later distributions, harmless there).
    'ROS_LOCALHOST_ONLY': '1',
}


def pick_domain_id(seed: Optional[int] = None) -> int:
    """
    Pick a safe ROS_DOMAIN_ID from `seed` (default: this process id).

    Different test sessions or replay runs get different domains, so they do not cross-talk.
    """
    if seed is None:
        seed = os.getpid()
    return SAFE_DOMAIN_IDS[seed % len(SAFE_DOMAIN_IDS)]


def localhost_ros_env(base: Optional[Mapping[str, str]] = None,
                      domain_id: Optional[int] = None) -> dict:
    """
    Return an environment for ROS processes that keeps all DDS traffic on this machine.

    Starts from `base` (default: os.environ), forces the loopback-only variables, selects the
    package's FastDDS profile (shared memory for large images) unless one is already chosen, and
    sets ROS_DOMAIN_ID when `domain_id` is given.
    """
    env = dict(os.environ if base is None else base)
    env.update(LOCALHOST_VARIABLES)
    if not env.get('FASTDDS_DEFAULT_PROFILES_FILE'):
        env['FASTDDS_DEFAULT_PROFILES_FILE'] = str(config_file('fastdds_localhost_shm.xml'))
    if domain_id is not None:
        env['ROS_DOMAIN_ID'] = str(int(domain_id))
    return env
