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

"""The process monitor: a child's memory and CPU count towards the process that started it."""

import subprocess
import sys
import time

from mtl_perception.replay.monitor import ProcessMonitor
import pytest

# A child that holds 80 MB and keeps one core busy until the stop file appears.
CHILD = """
import pathlib, sys
block = b'x' * 80_000_000
pathlib.Path(sys.argv[1]).write_text('ready')
stop = pathlib.Path(sys.argv[2])
while not stop.exists():
    sum(range(10000))
"""


def _wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f'timed out waiting for {what}'
        time.sleep(0.02)


def test_monitor_counts_children_memory_and_cpu(tmp_path):
    ready, stop = tmp_path / 'ready', tmp_path / 'stop'
    # The monitored process is a shell; the work happens in its child.
    parent = subprocess.Popen(['/bin/sh', '-c', f'"{sys.executable}" -c "$0" "$1" "$2"',
                               CHILD, str(ready), str(stop)])
    try:
        _wait(ready.exists, 60.0, 'the child to allocate its memory')
        monitor = ProcessMonitor({'node': parent.pid}, period=0.05)
        monitor.start()
        monitor.mark('start')
        _wait(lambda: monitor.samples[-1][0] - monitor.samples[monitor.marks['start']][0]
              > 1e9, 30.0, 'a second of samples')
        monitor.mark('end')
        monitor.stop()
    finally:
        stop.write_text('stop')
        parent.wait(timeout=30)
    assert monitor.peak_rss_mb() >= 80
    assert monitor.peak_rss_mb(['node']) == monitor.peak_rss_mb()
    # One busy core is 100 %; a loaded machine shares it, so only demand a clear signal.
    assert 20 < monitor.cpu_percent('start', 'end') < 150
    series = monitor.series()
    assert len(series) >= 5 and series[-1][2]['node'] == pytest.approx(series[-1][1])


def test_monitor_refuses_a_missing_process():
    process = subprocess.Popen([sys.executable, '-c', 'pass'])
    process.wait()
    with pytest.raises(ValueError, match='cannot monitor'):
        ProcessMonitor({'gone': process.pid})
    with pytest.raises(ValueError, match='period'):
        ProcessMonitor({}, period=0)
