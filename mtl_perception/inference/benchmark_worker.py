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
One benchmark measurement: load one network with a backend and time it (fresh process).

``python -m mtl_perception.inference.benchmark_worker --worker ...`` is started by
``inference.benchmark`` once per network. This module imports neither torch nor the
networks, so a backend that does not need torch (ONNX Runtime) runs, and is measured,
without it, as it deploys; the conventions are in ``inference.benchmark``.
"""

import argparse
import json
import resource
import sys
import time
from typing import Callable, TextIO

import numpy as np

_MB = 1e6
# Backends whose create() takes the intra-op thread count as the option 'threads'.
THREADS_OPTION = ('onnxruntime',)


def _rss_mb() -> float:
    import psutil
    return psutil.Process().memory_info().rss / _MB


def _proc_status_mb(field: str) -> float | None:
    """Read a memory field (kB) of /proc/self/status in MB; None where there is no /proc."""
    try:
        with open('/proc/self/status', encoding='ascii') as status:
            for line in status:
                if line.startswith(field + ':'):
                    return int(line.split()[1]) * 1024 / _MB
    except OSError:
        pass
    return None


def _anon_rss_mb() -> float:
    """Resident anonymous memory (heap, tensors), without the mapped library files."""
    value = _proc_status_mb('RssAnon')
    return float('nan') if value is None else value


def _peak_rss_mb() -> float:
    """
    Peak resident memory of this process image.

    Linux's ``ru_maxrss`` survives ``exec``: a worker forked from a parent holding the
    three networks would report the parent's size. VmHWM belongs to the process's own
    address space, so it is used where it exists.
    """
    value = _proc_status_mb('VmHWM')
    if value is not None:
        return value
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / _MB if sys.platform == 'darwin' else peak * 1024 / _MB


def measure_latency(run: Callable[[], object], iterations: int, warmup: int, label: str,
                    progress: TextIO | None = None,
                    after_each: Callable[[], None] | None = None) -> np.ndarray:
    """
    Call ``run`` ``warmup`` times, then time ``iterations`` calls; return ms per call.

    ``after_each`` (untimed) is called after every run, e.g. to sample memory.
    """
    interactive = progress is not None and progress.isatty()
    step = max(1, (warmup + iterations) // 10)
    latencies = []
    for index in range(warmup + iterations):
        start = time.perf_counter()
        run()
        elapsed = (time.perf_counter() - start) * 1000.0
        if index >= warmup:
            latencies.append(elapsed)
        if after_each is not None:
            after_each()
        done = index + 1
        if progress is not None and (interactive or done % step == 0
                                     or done == warmup + iterations):
            phase = 'warm-up' if index < warmup else 'iteration'
            count = f'{done}/{warmup}' if index < warmup else f'{done - warmup}/{iterations}'
            end = '' if interactive else '\n'
            print(f'\r[{label}] {phase} {count} ({elapsed:.0f} ms)  ', end=end,
                  file=progress, flush=True)
    if interactive:
        print(file=progress, flush=True)
    return np.asarray(latencies)


def worker(backend: str, artifact: str, *, device: str, half: bool, iterations: int,
           warmup: int, threads: int, label: str, progress: TextIO | None = None) -> dict:
    """Load one network with ``backend`` and measure it (run in a fresh process)."""
    from mtl_perception.inference.backends import create_backend
    options = {}
    if backend in THREADS_OPTION:
        options['threads'] = threads
        used_threads = threads
    else:
        # torch's thread pool is per process; a torch-based backend uses it.
        import torch
        torch.set_num_threads(threads)
        used_threads = torch.get_num_threads()
    rss_start, rss_start_anon = _rss_mb(), _anon_rss_mb()
    loaded = create_backend(backend, artifact, device=device, half=half, **options)
    rss_loaded = _rss_mb()
    size = int(loaded.card['input_size'])
    batch = np.random.default_rng(0).standard_normal((1, 3, size, size), dtype=np.float32)
    # The kernel keeps no peak of anonymous memory, so sample it after every run.
    anon = [_anon_rss_mb()]
    latencies = measure_latency(lambda: loaded.run(batch), iterations, warmup, label,
                                progress, after_each=lambda: anon.append(_anon_rss_mb()))
    result = {
        'latency_ms': {'p50': float(np.percentile(latencies, 50)),
                       'p95': float(np.percentile(latencies, 95)),
                       'mean': float(latencies.mean())},
        'fps': float(1000.0 / latencies.mean()),
        'peak_rss_mb': _peak_rss_mb(),
        'rss_start_mb': rss_start,
        'rss_loaded_mb': rss_loaded,
        'rss_end_mb': _rss_mb(),
        'anon_rss_start_mb': rss_start_anon,
        'peak_anon_rss_mb': max(anon),
        'threads': used_threads,
        # Whether the worker process had torch loaded (ONNX Runtime runs without it).
        'torch_imported': 'torch' in sys.modules,
    }
    loaded.close()
    return result


def _worker_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description='benchmark worker (one network)')
    parser.add_argument('--worker', action='store_true', required=True)
    parser.add_argument('--backend', required=True)
    parser.add_argument('--artifact', required=True)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--half', action='store_true')
    parser.add_argument('--iterations', type=int, required=True)
    parser.add_argument('--warmup', type=int, required=True)
    parser.add_argument('--threads', type=int, required=True)
    parser.add_argument('--label', default='network')
    args = parser.parse_args(argv)
    result = worker(args.backend, args.artifact, device=args.device, half=args.half,
                    iterations=args.iterations, warmup=args.warmup, threads=args.threads,
                    label=args.label, progress=sys.stderr)
    print(json.dumps(result))
    return 0


if __name__ == '__main__':
    sys.exit(_worker_main())
