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

"""The environment every ROS process of the project gets: loopback only, the FastDDS profile."""

from pathlib import Path
import xml.etree.ElementTree as ET

from mtl_perception.ros.environment import (localhost_ros_env, pick_domain_id, PROFILE_VARIABLES,
                                            SAFE_DOMAIN_IDS)
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PROFILE = REPO_ROOT / 'config' / 'fastdds_localhost_shm.xml'
NS = {'dds': 'http://www.eprosima.com'}


def test_sets_loopback_variables_and_both_profile_variables():
    env = localhost_ros_env(base={'PATH': '/usr/bin', 'ROS_AUTOMATIC_DISCOVERY_RANGE': 'SUBNET'})
    assert env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
    assert env['ROS_LOCALHOST_ONLY'] == '1'
    # Fast DDS 3 (Kilted) reads the first name, Fast DDS 2 (Jazzy, Humble) the second.
    assert PROFILE_VARIABLES == ('FASTDDS_DEFAULT_PROFILES_FILE',
                                 'FASTRTPS_DEFAULT_PROFILES_FILE')
    for name in PROFILE_VARIABLES:
        assert Path(env[name]) == PROFILE
    assert env['PATH'] == '/usr/bin'
    assert 'ROS_DOMAIN_ID' not in env


@pytest.mark.parametrize('name', PROFILE_VARIABLES)
def test_a_profile_chosen_under_either_name_is_kept_for_both(name):
    env = localhost_ros_env(base={name: '/etc/my_profile.xml'})
    assert [env[variable] for variable in PROFILE_VARIABLES] == ['/etc/my_profile.xml'] * 2


def test_base_is_not_changed_and_domain_id_is_set():
    base = {'ROS_LOCALHOST_ONLY': '0'}
    env = localhost_ros_env(base=base, domain_id=42)
    assert base == {'ROS_LOCALHOST_ONLY': '0'}
    assert env['ROS_DOMAIN_ID'] == '42'


def test_picked_domain_ids_are_safe_for_fastdds():
    assert {pick_domain_id(seed) for seed in range(500)} == set(SAFE_DOMAIN_IDS)
    assert all(0 <= domain <= 101 or 215 <= domain <= 232 for domain in SAFE_DOMAIN_IDS)


def test_profile_binds_udp_to_loopback_without_builtin_transports():
    root = ET.parse(PROFILE).getroot()
    descriptors = {d.findtext('dds:transport_id', namespaces=NS): d
                   for d in root.iterfind('.//dds:transport_descriptor', NS)}
    udp = [d for d in descriptors.values() if d.findtext('dds:type', namespaces=NS) == 'UDPv4']
    assert len(udp) == 1
    allowed = [a.text for a in udp[0].iterfind('dds:interfaceWhiteList/dds:address', NS)]
    assert allowed == ['127.0.0.1']
    participant = root.find('.//dds:participant[@is_default_profile="true"]', NS)
    used = [t.text for t in participant.iterfind('dds:rtps/dds:userTransports/dds:transport_id',
                                                 NS)]
    assert sorted(used) == sorted(descriptors)
    assert participant.findtext('dds:rtps/dds:useBuiltinTransports', namespaces=NS) == 'false'
