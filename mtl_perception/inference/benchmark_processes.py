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
The benchmark's child processes, seen from the measuring process.

``NetworkWorker`` speaks the line protocol of ``benchmark_worker serve`` (one loaded network
per process); ``background_load`` starts busy-loop processes and always ends them;
``prepare_in_child`` builds and exports the networks in a child (which imports torch, so the
measuring process does not); ``shared_library`` and ``cpu_seconds`` look at the processes from
outside through /proc (psutil). Nothing here imports torch.
"""

import contextlib
import json
import os
from pathlib import Path
import subprocess
import sys
from typing import Sequence

from mtl_perception.inference.measurement import MB
import psutil

__all__ = ['BACKGROUND_LIMIT_S', 'NetworkWorker', 'background_load', 'cpu_seconds',
           'prepare_in_child', 'shared_library']

# Upper bound on a busy-loop process's life, should it outlive everything else.
BACKGROUND_LIMIT_S = 1800.0
_WORKER = 'mtl_perception.inference.benchmark_worker'


def _child(command: str, *args: str) -> list[str]:
    return [sys.executable, '-m', _WORKER, command, *args]


class NetworkWorker:
    """A ``benchmark_worker serve`` process, spoken to through the line protocol."""

    def __init__(self, label: str, backend: str, artifact: str, *, device: str, half: bool,
                 threads: int, warmup: int) -> None:
        """Start the worker (it loads and warms up in the background; see ``ready``)."""
        self.label = label
        self.process = subprocess.Popen(
            _child('serve', '--backend', backend, '--artifact', artifact, '--device', device,
                   '--threads', str(threads), '--warmup', str(warmup), '--label', label)
            + (['--half'] if half else []),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.pid = self.process.pid
        self._ready: dict | None = None

    def _reply(self, event: str) -> dict:
        line = self.process.stdout.readline()
        if not line:
            code = self.process.wait()
            raise RuntimeError(f'benchmark worker for {self.label} exited (code {code}) '
                               'without answering; its error is printed above')
        message = json.loads(line)
        if message.get('event') != event:
            raise RuntimeError(message.get('message') or f'{self.label}: expected {event}, '
                               f'got {message}')
        return message

    def _send(self, command: str) -> None:
        self.process.stdin.write(command + '\n')
        self.process.stdin.flush()

    def ready(self) -> dict:
        """Wait until the network is loaded and warmed up; return the 'ready' message."""
        if self._ready is None:
            self._ready = self._reply('ready')
        return self._ready

    def start_run(self, iterations: int, warmup: int = 0) -> None:
        """Ask for ``warmup`` untimed and ``iterations`` timed runs; see ``timings``."""
        self._send(f'run {iterations} {warmup}')

    def timings(self) -> dict:
        """Wait for the runs asked for by ``start_run``; return ``{'latency_ms', 'cpu_ms'}``."""
        return self._reply('run')

    def run(self, iterations: int, warmup: int = 0) -> dict:
        """Run ``warmup`` untimed and ``iterations`` timed; return ``{'latency_ms', 'cpu_ms'}``."""
        self.start_run(iterations, warmup)
        return self.timings()

    def stats(self) -> dict:
        """Return the worker's own view: RSS, peak RSS (VmHWM), whether torch is loaded."""
        self._send('stats')
        return self._reply('stats')

    def close(self, timeout: float = 30.0) -> None:
        """Ask the worker to quit; kill it if it does not within ``timeout`` seconds."""
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                self._send('quit')
                self.process.stdin.close()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()

    def __enter__(self) -> 'NetworkWorker':
        """Use the worker as a context manager that closes it on exit."""
        return self

    def __exit__(self, *exc_info) -> None:
        """Close the worker."""
        self.close()


@contextlib.contextmanager
def background_load(count: int, seconds: float = BACKGROUND_LIMIT_S):
    """
    Keep ``count`` busy-loop processes (one core each) running inside the ``with`` body.

    Each ends at the latest after ``seconds`` or when this process exits, and all are killed
    when the body ends, whatever happens in it. Yields their pids.
    """
    processes = []
    try:
        for _ in range(count):
            processes.append(subprocess.Popen(
                _child('busy', '--seconds', str(seconds), '--parent', str(os.getpid())),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True))
        for process in processes:
            process.stdout.readline()  # spinning
        yield [process.pid for process in processes]
    finally:
        for process in processes:
            process.kill()
        for process in processes:
            process.wait()
            process.stdout.close()


def prepare_in_child(arch: str, input_size: int, num_classes: dict[str, int], backend: str,
                     workdir: Path, *, device: str, half: bool) -> dict[str, dict]:
    """Run ``benchmark_worker.prepare_networks`` in a child process (which imports torch)."""
    done = subprocess.run(
        _child('prepare', '--arch', arch, '--input-size', str(input_size), '--num-classes',
               str(num_classes['detection']), str(num_classes['segmentation']), '--backend',
               backend, '--workdir', str(workdir), '--device', device)
        + (['--half'] if half else []), stdout=subprocess.PIPE, text=True, check=False)
    lines = done.stdout.strip().splitlines()
    reply = json.loads(lines[-1]) if lines else {}
    if reply.get('kind') == 'ValueError':
        raise ValueError(reply['message'])
    if done.returncode != 0 or reply.get('event') != 'prepared':
        raise RuntimeError(f'preparing the networks failed (exit code {done.returncode}); '
                           'the error is printed above')
    return reply['networks']


def _framework_libraries(pid: int, count: int = 5, min_mb: float = 10.0) -> dict[str, float]:
    """Return {path: resident MB} of the largest shared libraries of ``pid`` (the framework's)."""
    try:
        maps = psutil.Process(pid).memory_maps(grouped=True)
    except (psutil.Error, NotImplementedError, AttributeError):
        return {}
    libraries = sorted((m for m in maps if '.so' in os.path.basename(m.path)
                        and m.rss >= min_mb * MB), key=lambda m: -m.rss)
    return {m.path: m.rss / MB for m in libraries[:count]}


def shared_library(pids: Sequence[int], paths: Sequence[str] | None = None) -> dict:
    """
    Count the other processes mapping one of ``paths`` (default: the first worker's largest).

    Such a process takes a share of those libraries' pages, so it lowers the workers' PSS.
    Only libraries of 10 MB resident or more count: the framework's, not the interpreter's.

    :return: ``{'paths', 'resident_mb', 'other_processes'}`` (resident_mb: the libraries'
        resident memory in the first worker; other_processes None where it cannot be told).
    """
    libraries = _framework_libraries(pids[0]) if pids else {}
    if paths is None:
        paths = list(libraries)
    if not paths:
        return {'paths': [], 'resident_mb': 0.0, 'other_processes': None}
    count = 0
    for pid in psutil.pids():
        if pid in pids:
            continue
        try:
            with open(f'/proc/{pid}/maps', encoding='utf-8', errors='replace') as maps:
                text = maps.read()
        except OSError:
            continue
        count += any(path in text for path in paths)
    return {'paths': list(paths), 'resident_mb': sum(libraries.get(p, 0.0) for p in paths),
            'other_processes': count}


def cpu_seconds(pids: Sequence[int]) -> tuple[float, float]:
    """Return ``(busy CPU seconds of the machine, CPU seconds of pids and of this process)``."""
    machine = psutil.cpu_times()
    busy = sum(getattr(machine, field, 0.0)
               for field in ('user', 'nice', 'system', 'irq', 'softirq', 'steal'))
    ours = sum(os.times()[:2])
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            ours += times.user + times.system
    return busy, ours
