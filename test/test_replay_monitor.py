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
The process monitor as replay uses it: a child's memory and CPU count towards its parent.

Replay monitors each node process (a console script that may start children) with
``mtl_perception.inference.measurement.ProcessMonitor`` and reads peak RSS, USS and PSS per
process and summed, and the CPU between two marks.
"""

import subprocess
import sys
import time

from mtl_perception.inference.measurement import ProcessMonitor
import pytest

# A child that holds 80 MB of its own and keeps one core busy until the stop file appears.
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
        monitor = ProcessMonitor({'node': parent.pid}, period=0.05).start()
        monitor.mark('start')
        _wait(lambda: monitor.samples[-1][0] - monitor.samples[monitor.marks['start']][0]
              > 1e9, 30.0, 'a second of samples')
        monitor.mark('end')
        monitor.stop()
    finally:
        stop.write_text('stop')
        parent.wait(timeout=30)
    peaks = monitor.peaks_mb(['node'])
    assert set(peaks) == {'peak_rss_mb', 'peak_uss_mb', 'peak_pss_mb'}
    # The child's 80 MB are its own pages: in its RSS, USS and PSS alike.
    assert peaks['peak_uss_mb'] >= 80
    # Shared pages count fully in RSS, split in PSS, not at all in USS.
    assert peaks['peak_uss_mb'] <= peaks['peak_pss_mb'] <= peaks['peak_rss_mb']
    assert monitor.peaks_mb() == peaks
    for _, memory, _ in monitor.samples:
        if memory['node']['rss']:
            assert memory['node']['uss'] <= memory['node']['pss'] <= memory['node']['rss']
    # One busy core is 100 %; a loaded machine shares it, so only demand a clear signal.
    assert 20 < monitor.cpu_percent('start', 'end') < 150
    for kind in ('rss', 'uss', 'pss'):
        series = monitor.series(kind)
        assert len(series) >= 5 and series[-1][2]['node'] == pytest.approx(series[-1][1])
        assert max(total for _, total, _ in series) == pytest.approx(peaks[f'peak_{kind}_mb'])


def test_two_processes_sum_per_sample_and_pss_splits_what_they_share(tmp_path):
    stops = [tmp_path / f'stop{k}' for k in range(2)]
    readies = [tmp_path / f'ready{k}' for k in range(2)]
    processes = [subprocess.Popen([sys.executable, '-c', CHILD, str(ready), str(stop)])
                 for ready, stop in zip(readies, stops)]
    try:
        _wait(lambda: all(r.exists() for r in readies), 60.0, 'both children')
        monitor = ProcessMonitor({'a': processes[0].pid, 'b': processes[1].pid}, period=0.05)
        monitor.start()
        _wait(lambda: len(monitor.samples) >= 5, 30.0, 'samples')
        monitor.stop()
    finally:
        for stop in stops:
            stop.write_text('stop')
        for process in processes:
            process.wait(timeout=30)
    both = monitor.peaks_mb()
    one = [monitor.peaks_mb([name]) for name in ('a', 'b')]
    assert both['peak_uss_mb'] >= 160
    for kind in ('rss', 'uss', 'pss'):
        key = f'peak_{kind}_mb'
        # The peak of the per-sample sum: at most the sum of the peaks, at least each peak.
        assert max(o[key] for o in one) <= both[key] <= sum(o[key] for o in one) + 1e-9
    # The Python interpreter's pages are shared by both: RSS counts them twice, PSS once.
    assert both['peak_pss_mb'] < both['peak_rss_mb']


def test_monitor_refuses_a_missing_process():
    process = subprocess.Popen([sys.executable, '-c', 'pass'])
    process.wait()
    with pytest.raises(ValueError, match='cannot monitor'):
        ProcessMonitor({'gone': process.pid})
    with pytest.raises(ValueError, match='period'):
        ProcessMonitor({}, period=0)
    with pytest.raises(ValueError, match='unknown memory kind'):
        ProcessMonitor({}).peak_mb('vms')
