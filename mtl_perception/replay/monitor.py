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
Sample the resident memory and CPU time of node processes (with their children) via psutil.

A background thread samples every ``period`` seconds: per tracked process, the summed RSS and
the summed user + system CPU seconds of it and all its descendants. Peak RSS is the largest
sample; mean CPU over a window is the CPU seconds spent in it divided by its length (100 % =
one core busy), which is exact however coarse the sampling.
"""

import threading
import time
from typing import Optional, Sequence

import psutil

__all__ = ['ProcessMonitor']

MB = 1e6


def _tree_usage(process: psutil.Process) -> tuple:
    """Return (rss bytes, cpu seconds) of ``process`` and its live descendants."""
    rss, cpu = 0, 0.0
    members = [process]
    try:
        members += process.children(recursive=True)
    except psutil.Error:
        pass
    for member in members:
        try:
            with member.oneshot():
                rss += member.memory_info().rss
                times = member.cpu_times()
                cpu += times.user + times.system
        except psutil.Error:
            # The process (or a child) ended between listing and reading it.
            continue
    return rss, cpu


class ProcessMonitor:
    """
    Sample named processes; use ``start()``, ``mark(name)``, ``stop()``.

    ``samples`` is a list of ``(time_ns, {name: rss bytes}, {name: cpu seconds})``;
    ``marks`` maps a mark name to the index of the sample taken at that moment.
    """

    def __init__(self, pids: dict, period: float = 0.1) -> None:
        """Track ``pids`` ({name: pid}), sampling every ``period`` seconds."""
        if period <= 0:
            raise ValueError(f'period must be > 0 s, got {period}')
        self.period = period
        self._processes = {}
        for name, pid in pids.items():
            try:
                self._processes[name] = psutil.Process(pid)
            except psutil.Error as error:
                raise ValueError(f'cannot monitor {name} (pid {pid}): {error}') from error
        self.pids = {name: process.pid for name, process in self._processes.items()}
        self.samples: list = []
        self.marks: dict = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def sample(self) -> int:
        """Take one sample now; return its index."""
        now = time.time_ns()
        rss, cpu = {}, {}
        for name, process in self._processes.items():
            rss[name], cpu[name] = _tree_usage(process)
        with self._lock:
            self.samples.append((now, rss, cpu))
            return len(self.samples) - 1

    def mark(self, name: str) -> None:
        """Take a sample now and remember it as ``name`` (e.g. 'play_start')."""
        self.marks[name] = self.sample()

    def start(self) -> None:
        """Start the sampling thread."""
        self._thread = threading.Thread(target=self._run, name='process-monitor', daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the sampling thread (after one last sample)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.sample()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.period)

    def peak_rss_mb(self, names: Optional[Sequence[str]] = None) -> float:
        """Return the largest summed RSS of ``names`` (default all) over the samples, in MB."""
        names = list(self._processes) if names is None else list(names)
        with self._lock:
            totals = [sum(rss.get(n, 0) for n in names) for _, rss, _ in self.samples]
        return max(totals, default=0) / MB

    def cpu_percent(self, start: str, end: str, names: Optional[Sequence[str]] = None
                    ) -> float:
        """Return the mean CPU % of ``names`` (summed) between marks ``start`` and ``end``."""
        names = list(self._processes) if names is None else list(names)
        with self._lock:
            t0, _, cpu0 = self.samples[self.marks[start]]
            t1, _, cpu1 = self.samples[self.marks[end]]
        seconds = (t1 - t0) / 1e9
        if seconds <= 0:
            return 0.0
        used = sum(cpu1.get(n, 0.0) - cpu0.get(n, 0.0) for n in names)
        return 100.0 * used / seconds

    def series(self) -> list:
        """Return ``[[time_ns, total rss MB, {name: rss MB}], ...]`` for plots and run.json."""
        with self._lock:
            return [[t, sum(rss.values()) / MB, {n: v / MB for n, v in rss.items()}]
                    for t, rss, _ in self.samples]
