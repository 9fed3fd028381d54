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

"""Start a DDS publisher and subscriber process pair and collect what crossed."""

import json
from pathlib import Path
import subprocess
import sys

PEER = str(Path(__file__).resolve().parent / 'dds_peer.py')


def _start(role: str, env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, PEER, role, *args], env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def run_exchange(env: dict, count: int = 30, rate: float = 10.0) -> dict:
    """Run one subscriber and one publisher process; return what the subscriber received."""
    sub = _start('sub', env, '--count', str(count), '--timeout', str(count / rate + 20))
    pub = _start('pub', env, '--count', str(count), '--rate', str(rate))
    try:
        line = sub.stdout.readline()
        assert line.strip() == 'READY', f'subscriber did not match: {line!r} {sub.stderr.read()}'
        pub.stdin.write('go\n')
        pub.stdin.flush()
        out, err = sub.communicate(timeout=count / rate + 40)
        assert sub.returncode == 0, err
        assert pub.wait(timeout=30) == 0, pub.stderr.read()
        return json.loads(out.strip().splitlines()[-1])
    finally:
        for proc in (sub, pub):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
