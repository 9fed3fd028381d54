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
The sockets of a running node: every UDP socket FastDDS listens on is bound to loopback.

The shipped FastDDS profile (config/fastdds_localhost_shm.xml) allows its UDPv4 transport on
127.0.0.1 only. Under LOCALHOST discovery, rmw_fastrtps (Jazzy, Kilted) appends a UDPv4 transport
of its own without an allowlist: its listening sockets cannot bind, since the profile's transport
already holds those ports on 127.0.0.1, but it opens send-only sockets on ephemeral ports, one
on 0.0.0.0 and one per interface address. No profile setting removes them; the test pins them
down (ephemeral ports, at most that many) so any other socket off loopback fails it. A control
run without the profile (discovery still LOCALHOST) shows FastDDS then listens on 0.0.0.0, so
the check sees what it should.
"""

import ipaddress
import os
from pathlib import Path
import socket
import subprocess
import sys

from mtl_perception.ros.environment import PROFILE_VARIABLES
import psutil
from ros_fixtures import make_checkpoint, make_image, make_picture, NodeProcess, Probe
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

PEER = str(Path(__file__).resolve().parent / 'helpers' / 'socket_peer.py')
NAMESPACE = '/socket_test'


def _rtps_listening_ports(domain: int) -> set:
    """
    Return every UDP port FastDDS may listen on in ``domain`` (RTPS 2.2, section 9.6.1.1).

    Multicast and per-participant unicast ports (port base 7400, domain gain 250, participant
    gain 2; up to 120 participants), plus the 400 ports below the base that FastDDS gives
    endpoints asking for unique network flows.
    """
    base = 7400 + 250 * domain
    unicast = {base + offset + 2 * participant
               for offset in (10, 11) for participant in range(120)}
    return {base, base + 1} | unicast | set(range(7000, 7400))


def _ephemeral_ports() -> range:
    low, high = Path('/proc/sys/net/ipv4/ip_local_port_range').read_text().split()
    return range(int(low), int(high) + 1)


def _udp_sockets(pid: int) -> list:
    """Return the sorted (address, port) of every UDP socket the process has bound."""
    return sorted({(conn.laddr.ip, conn.laddr.port)
                   for conn in psutil.Process(pid).net_connections(kind='udp')})


def _off_loopback(sockets: list) -> list:
    return [(ip, port) for ip, port in sockets if not ipaddress.ip_address(ip).is_loopback]


def _interface_addresses() -> list:
    """Return this machine's IPv4 addresses outside loopback."""
    return [address.address for addresses in psutil.net_if_addrs().values()
            for address in addresses
            if address.family == socket.AF_INET
            and not ipaddress.ip_address(address.address).is_loopback]


def _assert_listens_on_loopback_only(sockets: list) -> None:
    listening = _rtps_listening_ports(int(os.environ['ROS_DOMAIN_ID']))
    assert any(port in listening for _, port in sockets), f'no RTPS port bound: {sockets}'
    off_loopback = _off_loopback(sockets)
    assert [s for s in off_loopback if s[1] in listening] == [], sockets
    # What remains off loopback is rmw_fastrtps's send-only sockets (bound to port 0, so the
    # kernel picked an ephemeral port): one on the wildcard, one per interface address.
    ephemeral = _ephemeral_ports()
    assert all(port in ephemeral for _, port in off_loopback), sockets
    assert len(off_loopback) <= 1 + len(_interface_addresses()), sockets


def test_multitask_node_listens_on_loopback_only(tmp_path):
    checkpoint = make_checkpoint(tmp_path, 'multitask')
    node = NodeProcess('multitask_node', tmp_path / 'node.log', '-r', f'__ns:={NAMESPACE}',
                       '-p', f'checkpoint:={checkpoint}')
    probe = Probe('socket_probe')
    try:
        probe.subscribe(f'{NAMESPACE}/detections', Detection2DArray)
        images = probe.publisher(f'{NAMESPACE}/image', Image)
        # An answer to a frame: the node is active, every endpoint (and socket) exists.
        probe.send_until(images, make_image(make_picture(), 'rgb8', 'sockets'),
                         lambda: probe.find(f'{NAMESPACE}/detections', 'sockets'), 60.0,
                         'detections from the node')
        sockets = _udp_sockets(node.process.pid)
    finally:
        probe.close()
        assert node.stop() == 0, node.log()
    _assert_listens_on_loopback_only(sockets)


def _peer_sockets(env: dict) -> list:
    peer = subprocess.Popen([sys.executable, PEER], env=env, text=True, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = peer.stdout.readline()
        assert line.strip() == 'READY', f'{line!r} {peer.stderr.read()}'
        sockets = _udp_sockets(peer.pid)
        peer.stdin.write('\n')
        peer.stdin.flush()
        assert peer.wait(timeout=30) == 0, peer.stderr.read()
        return sockets
    finally:
        if peer.poll() is None:
            peer.kill()
            peer.wait()


def test_plain_rclpy_process_listens_on_loopback_only(ros_env):
    _assert_listens_on_loopback_only(_peer_sockets(ros_env))


def test_control_without_profile_listens_on_the_wildcard(ros_env):
    # Discovery stays LOCALHOST: only the profile (and its allowlist) is left out.
    no_profile = {key: value for key, value in ros_env.items() if key not in PROFILE_VARIABLES}
    sockets = _peer_sockets(no_profile)
    listening = _rtps_listening_ports(int(ros_env['ROS_DOMAIN_ID']))
    assert any(ip == '0.0.0.0' and port in listening for ip, port in sockets), \
        f'the check saw no wildcard listener without the profile: it proves nothing ({sockets})'
