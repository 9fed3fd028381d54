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
No ROS process started with the project's environment sends traffic off loopback.

The exchange runs in a private network namespace (so nothing can reach a real network) holding a
veth interface with a default route, standing in for a machine's network card; the packets sent
on it are counted. The control run, with ROS 2's defaults, shows the counter does see DDS
discovery multicast, so a zero for the project's environment means something. A third run keeps
only the FastDDS profile (no discovery-range variables): its loopback interface allowlist alone
must keep everything on loopback, a second line of defence.
"""

import json
import os
from pathlib import Path
import shutil
import subprocess
import sys

from mtl_perception.ros.environment import LOCALHOST_VARIABLES, PROFILE_VARIABLES
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which('unshare') is None or shutil.which('ip') is None,
    reason='needs root, unshare and ip (iproute2) to create a private network namespace')

ISOLATED = str(REPO_ROOT / 'test' / 'helpers' / 'isolated_exchange.py')
DISCOVERY_VARIABLES = (*LOCALHOST_VARIABLES, 'ROS_STATIC_PEERS')
# Both profile variable names: Fast DDS 2 (Jazzy) reads one, Fast DDS 3 (Kilted) the other.
ROS_VARIABLES = (*DISCOVERY_VARIABLES, *PROFILE_VARIABLES, 'FASTDDS_BUILTIN_TRANSPORTS')


def _isolated_exchange(env: dict) -> dict:
    done = subprocess.run(['unshare', '-n', sys.executable, ISOLATED], env=env, text=True,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_project_environment_keeps_dds_on_loopback(ros_env):
    result = _isolated_exchange(ros_env)
    assert sorted(result['received']['images']) == list(range(10))
    assert result['tx_packets'] == 0


def test_control_ros_defaults_would_leave_loopback(ros_env):
    defaults = {key: value for key, value in ros_env.items() if key not in ROS_VARIABLES}
    result = _isolated_exchange(defaults)
    assert result['tx_packets'] > 0, 'the counter saw nothing: the safety test proves nothing'
