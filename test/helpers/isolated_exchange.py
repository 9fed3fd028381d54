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
Run the DDS exchange inside a private network namespace and count what leaves loopback.

Started by the network-safety test as `unshare -n python isolated_exchange.py`. The namespace has
loopback and one veth pair (a stand-in for a real network card, with a documentation-range
address that reaches nothing). The exchange runs with the environment the project gives every ROS
process; afterwards the packets sent on the veth interface are counted and printed with what the
subscriber received, as one JSON line.
"""

import json
import os
from pathlib import Path
import re
import subprocess
import sys

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers.exchange import run_exchange  # noqa: E402

NIC = 'mtlveth0'


def _ip(*args: str) -> str:
    return subprocess.run(['ip', *args], check=True, capture_output=True, text=True).stdout


def _tx_packets() -> int:
    stats = _ip('-s', 'link', 'show', NIC)
    # The line after the 'TX:' header holds bytes then packets.
    lines = stats.splitlines()
    header = next(i for i, line in enumerate(lines) if line.strip().startswith('TX:'))
    return int(re.split(r'\s+', lines[header + 1].strip())[1])


def main() -> int:
    # No IPv6 in the namespace: the kernel's own neighbour discovery would count as traffic.
    subprocess.run(['sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1'], check=True)
    subprocess.run(['sysctl', '-q', '-w', 'net.ipv6.conf.default.disable_ipv6=1'], check=True)
    _ip('link', 'set', 'lo', 'up')
    _ip('link', 'add', NIC, 'type', 'veth', 'peer', 'name', NIC + 'p')
    _ip('addr', 'add', '192.0.2.1/24', 'dev', NIC)
    _ip('link', 'set', NIC, 'up')
    _ip('link', 'set', NIC + 'p', 'up')
    # A default route through the card, as on a real machine: multicast would go out there.
    _ip('route', 'add', 'default', 'dev', NIC)
    before = _tx_packets()
    received = run_exchange(dict(os.environ), count=10, rate=20.0)
    print(json.dumps({'received': received, 'tx_packets': _tx_packets() - before}), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
