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
    # Jazzy and later: discovery stays on this machine, no multicast leaves it. Kilted honours
    # only this one of the two.
    'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST',
    # All Humble knows. Kilted ignores it; Jazzy still honours it (with a deprecation warning in
    # every process), and there it overrides ROS_AUTOMATIC_DISCOVERY_RANGE: set both to one value.
    'ROS_LOCALHOST_ONLY': '1',
}

# FastDDS reads its XML profile from an environment variable whose name changed with Fast DDS 3
# (Kilted and later); Fast DDS 2 (Jazzy, Humble) reads only the old name. Both point at one file,
# or the profile is silently ignored on one of them. (Kilted's rmw_fastrtps loads the old name
# too, and warns in every process that it is deprecated: harmless, the file is the same.)
PROFILE_VARIABLES = ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE')
PROFILE_FILE = 'fastdds_localhost_shm.xml'


def pick_domain_id(seed: Optional[int] = None) -> int:
    """
    Pick a safe ROS_DOMAIN_ID from `seed` (default: this process id).

    Different test sessions or replay runs get different domains, so they do not cross-talk.

    :param seed: any integer; equal seeds give equal domains
    :return: a domain id from SAFE_DOMAIN_IDS
    """
    if seed is None:
        seed = os.getpid()
    return SAFE_DOMAIN_IDS[seed % len(SAFE_DOMAIN_IDS)]


def localhost_ros_env(base: Optional[Mapping[str, str]] = None,
                      domain_id: Optional[int] = None) -> dict:
    """
    Return an environment for ROS processes that keeps all DDS traffic on this machine.

    Starts from `base` (default: os.environ), forces the loopback-only variables, selects the
    package's FastDDS profile (shared memory for large images, UDP bound to loopback) under both
    profile variable names unless a profile is already chosen, and sets ROS_DOMAIN_ID when
    `domain_id` is given.

    :param base: the environment to start from (default: this process's environment)
    :param domain_id: the ROS_DOMAIN_ID to set, or None to leave it as in `base`
    :return: a new environment dictionary; `base` is not changed
    """
    env = dict(os.environ if base is None else base)
    env.update(LOCALHOST_VARIABLES)
    # A profile chosen under either name (a user's own) is kept and used for both.
    chosen = next((env[name] for name in PROFILE_VARIABLES if env.get(name)), None)
    profile = chosen or str(config_file(PROFILE_FILE))
    for name in PROFILE_VARIABLES:
        if not env.get(name):
            env[name] = profile
    if domain_id is not None:
        env['ROS_DOMAIN_ID'] = str(int(domain_id))
    return env
