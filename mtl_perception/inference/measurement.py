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
Measuring processes fairly: memory per process (RSS, USS, PSS) and figures over rounds.

Memory. RSS counts every resident page a process maps, shared library pages included, so
summing RSS over processes counts a library once per process. USS counts only the pages no
other process maps; PSS splits each shared page evenly between the processes that map it, so
PSS sums over processes to what they really occupy together. Ratios between deployments of
different process counts are therefore computed on PSS. ``ProcessMonitor`` samples all three
(psutil ``memory_full_info``, which reads ``/proc/<pid>/smaps_rollup``) for named processes
and their children on a background thread, at 10 Hz by default; peaks are the largest
samples. PSS depends on who else maps the same pages, so a deployment is measured with no
other deployment's processes alive.

Rounds. A figure measured once lands on whatever the machine was doing at that moment.
Configurations are measured in short interleaved rounds (A, B, A, B ...), a ratio is formed
per round from the two neighbouring measurements, and the median over rounds is reported
with its spread (``summarize``).
"""

import os
import statistics
import threading
import time
from typing import Sequence

import psutil

MB = 1e6
MEMORY_KINDS = ('rss', 'uss', 'pss')


def load_average() -> float | None:
    """Return the 1-minute load average (None where the platform has none)."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


def summarize(values: Sequence[float]) -> dict:
    """
    Summarise per-round values: median, min, max, quartiles and the count.

    :return: ``{'median', 'min', 'max', 'q1', 'q3', 'n'}`` (None values when empty).
    """
    values = sorted(float(v) for v in values if v is not None)
    if not values:
        return {'median': None, 'min': None, 'max': None, 'q1': None, 'q3': None, 'n': 0}
    if len(values) == 1:
        q1 = q3 = values[0]
    else:
        q1, _, q3 = statistics.quantiles(values, n=4, method='inclusive')
    return {'median': statistics.median(values), 'min': values[0], 'max': values[-1],
            'q1': q1, 'q3': q3, 'n': len(values)}


def _smaps_rollup(pid: int) -> dict | None:
    """
    Return ``{'rss', 'uss', 'pss'}`` bytes of ``pid`` from one read of its smaps_rollup.

    One page walk yields all three, so USS <= PSS <= RSS holds within a sample; psutil reads
    RSS from a separate, approximate counter. None where the file cannot be read.
    """
    fields = {}
    try:
        with open(f'/proc/{pid}/smaps_rollup', encoding='ascii') as rollup:
            for line in rollup:
                name, _, value = line.partition(':')
                if name in ('Rss', 'Pss', 'Private_Clean', 'Private_Dirty'):
                    fields[name] = int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    if len(fields) != 4:
        return None
    return {'rss': fields['Rss'], 'uss': fields['Private_Clean'] + fields['Private_Dirty'],
            'pss': fields['Pss']}


def tree_usage(process: psutil.Process) -> tuple[dict, float]:
    """
    Return ``({'rss', 'uss', 'pss'} bytes, cpu seconds)`` of ``process`` and its descendants.

    Children that end between listing and reading are skipped.
    """
    memory = dict.fromkeys(MEMORY_KINDS, 0)
    cpu = 0.0
    members = [process]
    try:
        members += process.children(recursive=True)
    except psutil.Error:
        pass
    for member in members:
        try:
            with member.oneshot():
                times = member.cpu_times()
                info = _smaps_rollup(member.pid)
                if info is None:
                    full = member.memory_full_info()
                    info = {kind: getattr(full, kind, 0) for kind in MEMORY_KINDS}
        except psutil.Error:
            continue
        for kind in MEMORY_KINDS:
            memory[kind] += info[kind]
        cpu += times.user + times.system
    return memory, cpu


class ProcessMonitor:
    """
    Sample the memory and CPU time of named processes; use ``start()``, ``mark()``, ``stop()``.

    ``samples`` is a list of ``(time_ns, {name: {'rss', 'uss', 'pss'} bytes},
    {name: cpu seconds})``; ``marks`` maps a mark name to the index of its sample.
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
        self._thread: threading.Thread | None = None

    def sample(self) -> int:
        """Take one sample now; return its index."""
        now = time.time_ns()
        memory, cpu = {}, {}
        for name, process in self._processes.items():
            memory[name], cpu[name] = tree_usage(process)
        with self._lock:
            self.samples.append((now, memory, cpu))
            return len(self.samples) - 1

    def mark(self, name: str) -> None:
        """Take a sample now and remember it as ``name`` (e.g. 'play_start')."""
        self.marks[name] = self.sample()

    def start(self) -> 'ProcessMonitor':
        """Start the sampling thread."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name='process-monitor', daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the sampling thread (after one last sample)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.sample()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.sample()
            # Keep the period even when a sample itself takes a while.
            self._stop.wait(max(0.0, self.period - (time.monotonic() - started)))

    def _names(self, names: Sequence[str] | None) -> list:
        return list(self._processes) if names is None else list(names)

    def peak_mb(self, kind: str = 'pss', names: Sequence[str] | None = None) -> float:
        """Return the largest summed ``kind`` memory of ``names`` (default all) in MB."""
        if kind not in MEMORY_KINDS:
            raise ValueError(f'unknown memory kind {kind!r}; known: {MEMORY_KINDS}')
        names = self._names(names)
        with self._lock:
            totals = [sum(memory[n][kind] for n in names if n in memory)
                      for _, memory, _ in self.samples]
        return max(totals, default=0) / MB

    def peaks_mb(self, names: Sequence[str] | None = None) -> dict:
        """Return ``{'peak_rss_mb', 'peak_uss_mb', 'peak_pss_mb'}`` of ``names`` summed."""
        return {f'peak_{kind}_mb': self.peak_mb(kind, names) for kind in MEMORY_KINDS}

    def cpu_percent(self, start: str, end: str, names: Sequence[str] | None = None) -> float:
        """Return the mean CPU % of ``names`` (summed) between marks ``start`` and ``end``."""
        names = self._names(names)
        with self._lock:
            t0, _, cpu0 = self.samples[self.marks[start]]
            t1, _, cpu1 = self.samples[self.marks[end]]
        seconds = (t1 - t0) / 1e9
        if seconds <= 0:
            return 0.0
        used = sum(cpu1.get(n, 0.0) - cpu0.get(n, 0.0) for n in names)
        return 100.0 * used / seconds

    def series(self, kind: str = 'pss') -> list:
        """Return ``[[time_ns, total MB, {name: MB}], ...]`` of ``kind`` memory, for plots."""
        with self._lock:
            return [[t, sum(m[kind] for m in memory.values()) / MB,
                     {n: m[kind] / MB for n, m in memory.items()}]
                    for t, memory, _ in self.samples]
