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
The benchmark's child processes: a network worker, the network preparation, a busy loop.

``python -m mtl_perception.inference.benchmark_worker COMMAND ...`` is started by
``inference.benchmark``; the conventions are in that module.

``serve``: load one network with a backend the way a deployment does (through the backend,
from the file it loads), run ``--warmup`` untimed runs, then answer commands read from stdin,
one per line, each with one JSON line on stdout::

    (once loaded) {"event": "ready", "label", "pid", "threads", "input_size", "load_s",
                   "rss_start_mb", "rss_loaded_mb", "torch_imported"}
    run K [W]     {"event": "run", "latency_ms": [K], "cpu_ms": [K]}  (W untimed runs first)
    stats         {"event": "stats", "rss_mb", "peak_rss_hwm_mb", "torch_imported"}
    quit, or EOF  the worker closes the network and exits with status 0

A failed command is answered ``{"event": "error", "message"}``; a failure to load ends the
worker with status 1. One timed run is one ``Backend.run`` on a fixed preprocessed batch of one
image: wall time (``time.perf_counter``) and the process's CPU time over all its threads
(``time.process_time``). Progress, and anything a library prints, goes to stderr, so stdout
carries the protocol only. ``serve`` imports torch only for a backend that needs it: the ONNX
Runtime worker runs, and is measured, without torch, as it deploys.

``prepare``: build the three networks (torch), count their parameters and FLOPs, save each to
a safetensors checkpoint and make the file the backend loads; print
``{"event": "prepared", "networks": {variant: {...}}}``. It runs in its own process so that the
measuring process never maps torch, which would take a share of the workers' PSS.

``busy``: spin on one core (background load) until ``--seconds`` pass or the parent exits.
"""

import argparse
import json
import os
from pathlib import Path
import resource
import sys
import time
import traceback
from typing import Callable, TextIO

from mtl_perception.variants import VARIANTS
import numpy as np

_MB = 1e6
# Backends whose create() takes the intra-op thread count as the option 'threads'.
THREADS_OPTION = ('onnxruntime',)
# Backends the benchmark can prepare a network for (see ARTIFACT_BUILDERS).
BACKENDS = ('torch', 'onnxruntime', 'tensorrt')


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


def _peak_rss_mb() -> float:
    """
    Peak resident memory of this process image (its VmHWM).

    Linux's ``ru_maxrss`` survives ``exec``: a worker forked from a large parent would report
    the parent's size. VmHWM belongs to the process's own address space, so it is used where
    it exists.
    """
    value = _proc_status_mb('VmHWM')
    if value is not None:
        return value
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / _MB if sys.platform == 'darwin' else peak * 1024 / _MB


def _input_size(card) -> int:
    """Return the input side of a card, a ``ModelCard`` or (older backends) a dict."""
    size = getattr(card, 'input_size', None)
    return int(card['input_size'] if size is None else size)


def time_runs(run: Callable[[], object], iterations: int,
              warmup: int = 0) -> tuple[list[float], list[float]]:
    """
    Call ``run`` ``warmup`` times untimed, then ``iterations`` times timed.

    :return: ``(wall ms, cpu ms)`` per timed call; cpu is this process's CPU time, all
        threads together, so time spent waiting for a core is not in it.
    """
    for _ in range(warmup):
        run()
    wall, cpu = [], []
    for _ in range(iterations):
        start, start_cpu = time.perf_counter(), time.process_time()
        run()
        wall.append((time.perf_counter() - start) * 1000.0)
        cpu.append((time.process_time() - start_cpu) * 1000.0)
    return wall, cpu


def protocol_stream() -> TextIO:
    """
    Return a text stream on the real stdout and point file descriptor 1 at stderr.

    Whatever a library prints afterwards lands on stderr and cannot break the protocol.
    """
    sys.stdout.flush()
    stream = os.fdopen(os.dup(1), 'w', buffering=1, encoding='utf-8')
    os.dup2(2, 1)
    return stream


def send(stream: TextIO, **message) -> None:
    """Write ``message`` as one JSON line and flush."""
    stream.write(json.dumps(message) + '\n')
    stream.flush()


def _load(backend: str, artifact: str, *, device: str, half: bool, threads: int):
    """Load the network; return ``(backend object, threads in use)``."""
    from mtl_perception.inference.backends import create_backend
    options = {}
    if backend in THREADS_OPTION:
        options['threads'] = threads
    else:
        # torch's thread pool is per process; a torch-based backend uses it.
        import torch
        torch.set_num_threads(threads)
    loaded = create_backend(backend, artifact, device=device, half=half, **options)
    if backend in THREADS_OPTION:
        return loaded, threads
    import torch
    return loaded, torch.get_num_threads()


def _answer(words: list[str], run: Callable[[], object]) -> dict:
    """Answer one command other than 'quit'."""
    if words[0] == 'run' and len(words) in (2, 3):
        iterations, warmup = int(words[1]), int(words[2]) if len(words) == 3 else 0
        if iterations < 1 or warmup < 0:
            raise ValueError(f'run needs K >= 1 and W >= 0, got {words[1:]}')
        wall, cpu = time_runs(run, iterations, warmup)
        return {'event': 'run', 'latency_ms': wall, 'cpu_ms': cpu}
    if words == ['stats']:
        return {'event': 'stats', 'rss_mb': _rss_mb(), 'peak_rss_hwm_mb': _peak_rss_mb(),
                'torch_imported': 'torch' in sys.modules}
    raise ValueError(f'unknown command {" ".join(words)!r}; known: run K [W], stats, quit')


def serve(backend: str, artifact: str, *, device: str, half: bool, threads: int,
          warmup: int, label: str, commands: TextIO, replies: TextIO,
          progress: TextIO | None = None) -> int:
    """
    Load one network, warm it up, then answer ``commands`` (see the module docstring).

    :param commands: where the commands are read from, one per line (stdin).
    :param replies: where the JSON replies are written (the protocol stream).
    :param progress: where progress lines go (stderr), or None.
    :return: the exit status: 0 after 'quit' or end of input, 1 if loading failed.
    """
    try:
        rss_start = _rss_mb()
        started = time.perf_counter()
        loaded, used_threads = _load(backend, artifact, device=device, half=half,
                                     threads=threads)
        load_s = time.perf_counter() - started
        rss_loaded = _rss_mb()
        size = _input_size(loaded.card)
        batch = np.random.default_rng(0).standard_normal((1, 3, size, size), dtype=np.float32)
        warm, _ = time_runs(lambda: loaded.run(batch), warmup)
    except Exception as error:  # reported to the parent, whatever it is
        traceback.print_exc()
        send(replies, event='error', message=f'{label}: {type(error).__name__}: {error}')
        return 1
    if progress is not None:
        last = f', last warm-up run {warm[-1]:.0f} ms' if warm else ''
        print(f'[{label}] loaded in {load_s:.1f} s, {warmup} warm-up runs{last}',
              file=progress, flush=True)
    send(replies, event='ready', label=label, pid=os.getpid(), threads=used_threads,
         input_size=size, load_s=load_s, rss_start_mb=rss_start, rss_loaded_mb=rss_loaded,
         torch_imported='torch' in sys.modules)
    try:
        while True:
            line = commands.readline()
            if not line:
                break
            words = line.split()
            if not words:
                continue
            if words == ['quit']:
                break
            try:
                send(replies, **_answer(words, lambda: loaded.run(batch)))
            except Exception as error:  # the parent decides what to do
                send(replies, event='error', message=f'{label}: {type(error).__name__}: {error}')
    finally:
        loaded.close()
    return 0


def busy(seconds: float, parent: int | None = None, ready: TextIO | None = None) -> int:
    """
    Spin on one core until ``seconds`` pass or the parent process is gone.

    :param parent: the pid of the starting process; the loop ends when it is no longer the
        parent (it exited), so a killed benchmark leaves no busy process behind.
    :param ready: written 'busy' once the loop starts, or None.
    """
    end = time.monotonic() + seconds
    if ready is not None:
        send(ready, event='busy', pid=os.getpid())
    count = 0
    while True:
        count += 1
        if count % 200000 == 0 and (time.monotonic() >= end
                                    or (parent is not None and os.getppid() != parent)):
            return 0


# --------------------------------------------------------------------------- preparation


def _prepare_torch(checkpoint: Path, workdir: Path, model, *, device: str,
                   half: bool) -> Path:
    return checkpoint


def _prepare_onnx(checkpoint: Path, workdir: Path, model, *, device: str,
                  half: bool) -> Path:
    from mtl_perception.inference.checkpoint import load_card
    from mtl_perception.inference.export import export_model_onnx, sample_images

    output = workdir / f'{checkpoint.stem}.onnx'
    export_model_onnx(model, load_card(checkpoint), output, images=sample_images(1),
                      source=str(checkpoint))
    return output


def _prepare_tensorrt(checkpoint: Path, workdir: Path, model, *, device: str,
                      half: bool) -> Path:
    from mtl_perception.inference.tensorrt_build import build_engine

    onnx_path = _prepare_onnx(checkpoint, workdir, model, device=device, half=half)
    engine = workdir / f'{checkpoint.stem}.engine'
    build_engine(onnx_path, engine, precision='fp16' if half else 'fp32', device=device)
    return engine


# backend name -> function(checkpoint, workdir, model, *, device, half) returning the path
# that ``create_backend(name, path)`` loads; an exporting backend writes its file into
# ``workdir``. Untimed.
ARTIFACT_BUILDERS: dict[str, Callable[..., Path]] = {
    'torch': _prepare_torch,
    'onnxruntime': _prepare_onnx,
    'tensorrt': _prepare_tensorrt,
}


def prepare_networks(arch: str, input_size: int, num_classes: dict[str, int], backend: str,
                     workdir: Path, progress: TextIO | None = None, *, device: str = 'cpu',
                     half: bool = False) -> dict[str, dict]:
    """
    Build the three networks, count them and save them under ``workdir`` (imports torch).

    :return: variant -> ``{'params', 'gflops', 'size_mb', 'artifact', 'artifact_mb'}``
        (artifact: the file the backend loads).
    :raises ValueError: an unknown backend or architecture.
    """
    import torch

    from mtl_perception.inference.checkpoint import save_checkpoint
    from mtl_perception.modeling import build_model, list_models
    from mtl_perception.modeling.flops import count_gflops, count_params

    if backend not in ARTIFACT_BUILDERS:
        raise ValueError(f'benchmark has no backend {backend!r}; known: '
                         f'{sorted(ARTIFACT_BUILDERS)}')
    if arch not in list_models():
        raise ValueError(f'unknown --arch {arch!r}; known: {list_models()}')
    prepared = {}
    for key, variant in VARIANTS.items():
        if progress is not None:
            print(f'[{key}] building, counting FLOPs, saving', file=progress, flush=True)
        torch.manual_seed(0)
        model = build_model(arch, num_classes={t: num_classes[t] for t in variant.tasks},
                            input_size=input_size, tasks=variant.tasks).eval()
        card = {'name': f'benchmark_{key}', 'architecture': arch,
                'classes': {t: [f'class_{i}' for i in range(num_classes[t])]
                            for t in variant.tasks}}
        weights, _ = save_checkpoint(model, workdir / key, card, verify=False)
        artifact = ARTIFACT_BUILDERS[backend](weights, workdir, model, device=device,
                                              half=half)
        prepared[key] = {
            'params': count_params(model),
            'gflops': count_gflops(model, input_size),
            'size_mb': weights.stat().st_size / _MB,
            'artifact': str(artifact),
            'artifact_mb': Path(artifact).stat().st_size / _MB,
        }
        del model
    return prepared


# --------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='benchmark child processes')
    commands = parser.add_subparsers(dest='command', required=True)
    serve_parser = commands.add_parser('serve', help='load one network and answer commands')
    serve_parser.add_argument('--backend', required=True)
    serve_parser.add_argument('--artifact', required=True)
    serve_parser.add_argument('--device', default='cpu')
    serve_parser.add_argument('--half', action='store_true')
    serve_parser.add_argument('--warmup', type=int, required=True)
    serve_parser.add_argument('--threads', type=int, required=True)
    serve_parser.add_argument('--label', default='network')
    prepare = commands.add_parser('prepare', help='build, count and save the three networks')
    prepare.add_argument('--arch', required=True)
    prepare.add_argument('--input-size', type=int, required=True)
    prepare.add_argument('--num-classes', type=int, nargs=2, required=True)
    prepare.add_argument('--backend', required=True)
    prepare.add_argument('--workdir', type=Path, required=True)
    prepare.add_argument('--device', default='cpu')
    prepare.add_argument('--half', action='store_true')
    busy_parser = commands.add_parser('busy', help='spin on one core (background load)')
    busy_parser.add_argument('--seconds', type=float, required=True)
    busy_parser.add_argument('--parent', type=int, default=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one child command; see the module docstring."""
    args = _parser().parse_args(argv)
    replies = protocol_stream()
    if args.command == 'serve':
        return serve(args.backend, args.artifact, device=args.device, half=args.half,
                     threads=args.threads, warmup=args.warmup, label=args.label,
                     commands=sys.stdin, replies=replies, progress=sys.stderr)
    if args.command == 'busy':
        return busy(args.seconds, args.parent, ready=replies)
    num_classes = dict(zip(('detection', 'segmentation'), args.num_classes))
    try:
        prepared = prepare_networks(args.arch, args.input_size, num_classes, args.backend,
                                    args.workdir, sys.stderr, device=args.device,
                                    half=args.half)
    except ValueError as error:
        send(replies, event='error', kind='ValueError', message=str(error))
        return 2
    send(replies, event='prepared', networks=prepared)
    return 0


if __name__ == '__main__':
    sys.exit(main())
