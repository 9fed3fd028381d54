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
Measure the multitask network against the pair of single-task networks it replaces.

Preparation. A child process (``benchmark_worker prepare``) builds the three networks (same
architecture and input, the tasks of ``variants.VARIANTS``), counts their parameters and FLOPs,
saves each to a safetensors checkpoint and, for 'onnxruntime' and 'tensorrt', makes the file
the backend loads (ONNX export, engine). This process never imports torch: a process mapping the
framework's libraries would take a share of the workers' PSS.

Workers. Each network runs in its own worker process (``benchmark_worker serve``), which
loads it the way a deployment does (through the backend, from its file; the ONNX Runtime worker
does not import torch), runs ``warmup`` untimed runs and then answers ``run K`` commands.

Memory, per deployment. PSS splits a shared page between the processes mapping it, so each
deployment is measured with no other deployment alive: the multitask worker alone, then the
detection and segmentation workers alive together, as the baseline pair deploys. While the
workers load, warm up and run ``max(10, ceil(iterations / rounds))`` times (the pair's two at
the same time, as two nodes on one frame), this process samples RSS, USS and PSS of each worker
every 50 ms (``measurement.ProcessMonitor``). A peak is the largest sample; the pair's peaks are
the largest samples of the two workers' sum, so pair PSS is what the two occupy together. A
sample can miss a short peak (loading, activations): ``peak_rss_hwm_mb``, the kernel's own RSS
high-water mark of the worker, bounds the sampled RSS peak from above and shows how much was
missed. No background-load process is alive then. Other processes mapping the framework's
largest libraries lower PSS; they are counted in ``memory.deployments.<name>.shared_library``
and, if any, flagged in ``checks.memory``.

Speed, in interleaved rounds. The pair's two workers stay up after their memory measurement
and a fresh multitask worker joins them (nothing samples memory any more). In each of
``rounds`` rounds every network runs K = ``ceil(iterations / rounds)`` timed runs, one network
at a time and one run each in turn (M D S M D S ...), the order rotated every round (M D S,
then D S M, then S M D, ...), so that a drift in the machine's load lands on all three alike.
Each round gives fps per network (1000 / the round's median latency, so one run disturbed by
other load does not move it), pair fps and the speed ratio; the reported figures are medians
over rounds, with spread and every round listed.

Conventions:
    * GFLOPs = FLOPs / 1e9 as ``torch.utils.flop_counter.FlopCounterMode`` counts them for one
      image: a multiply-add is 2 FLOPs; only convolutions and matrix products are counted.
    * MB = 10^6 bytes, for file sizes and memory. ``size_mb`` is the safetensors checkpoint,
      ``artifact_mb`` the file the backend loads.
    * Latency is one ``Backend.run`` on a preprocessed batch of one image; preprocessing and
      NMS are left out (the same for both deployments). ``latency_ms`` p50/p95/mean are over
      all timed runs; ``fps`` is the median over rounds of 1000 / the round's median latency.
    * pair fps = 1 / (1 / fps_det + 1 / fps_seg) per round (both networks on every frame, one
      after the other); pair params, GFLOPs and sizes are sums.
    * Ratios are pair / multitask, except speed = multitask fps / pair fps, so > 1 favours the
      multitask network. ``ratios.speed`` is the median of the per-round ratios
      (``ratio_spread.speed`` its spread); ``ratios.memory`` is on peak PSS, with
      ``memory_rss`` and ``memory_uss`` beside it.
    * The speed ratio cannot honestly exceed the FLOP ratio: a median above 1.1 x the FLOP
      ratio is flagged in ``checks.speed`` and shown as a measurement problem, not a result.
      ``checks.load`` flags rounds in which other processes (busy loops included) kept more
      than the cores the workers leave free, plus a quarter, busy (``other_cpu_cores``, from
      the machine's and the workers' CPU times).
    * ``cpu_ms`` is the worker's CPU time per run over all its threads (threads waiting at a
      barrier may spin, so it is no shelter from other load); its ratio to the wall time shows
      how many cores a run kept busy.
    * ``background_load`` busy-loop processes (one core each, bounded in time, always ended)
      compete during the speed rounds. ``load_check`` alternates quiet rounds and rounds
      with ``max(1, background_load)`` busy processes (same workers, memory measured once),
      returns a result for each and compares their ratios.
"""

import contextlib
import math
import os
from pathlib import Path
import statistics
import sys
import tempfile
import time
from typing import Sequence, TextIO

from mtl_perception.inference import benchmark_worker
from mtl_perception.inference.benchmark_processes import (
    background_load, cpu_seconds, NetworkWorker, prepare_in_child, shared_library)
from mtl_perception.inference.measurement import load_average, ProcessMonitor, summarize
from mtl_perception.variants import CONFIGURATIONS, VARIANTS
import numpy as np
import psutil

NAMES = tuple(VARIANTS)
# deployment -> its worker names: the multitask network alone, or the single-task pair.
DEPLOYMENTS = {name: tuple(v.key for v in nodes) for name, nodes in CONFIGURATIONS.items()}
# Pascal VOC: 20 object classes; 21 segmentation classes (background included).
DEFAULT_NUM_CLASSES = {'detection': 20, 'segmentation': 21}
MEMORY_PERIOD_S = 0.05
# Runs per worker while memory is sampled: a sample (one page walk, ~20 ms for a torch
# process) can miss a short peak of a run, so give it several chances.
MEMORY_RUNS = 10
SPEED_TOLERANCE = 1.1


def measure_memory(workers: dict[str, NetworkWorker], runs: int) -> dict:
    """
    Measure one deployment: its just-started ``workers``, sampled from here until they have run.

    :return: ``{'per_process': {name: peaks}, 'total': peaks, 'samples', 'ready': {name:
        ready message}, 'stats': {name: stats message}, 'shared_library'}`` with peaks
        ``{'peak_rss_mb', 'peak_uss_mb', 'peak_pss_mb'}``.
    """
    try:
        monitor = ProcessMonitor({n: w.pid for n, w in workers.items()},
                                 period=MEMORY_PERIOD_S).start()
    except ValueError:
        for worker in workers.values():
            worker.ready()  # raises the worker's own error
        raise
    pids = [worker.pid for worker in workers.values()]
    try:
        ready = {name: worker.ready() for name, worker in workers.items()}
        loaded = shared_library(pids)
        for worker in workers.values():
            worker.start_run(runs)
        for worker in workers.values():
            worker.timings()
        stats = {name: worker.stats() for name, worker in workers.items()}
    finally:
        monitor.stop()
    # Other processes mapping the framework, once loaded and at the end: the larger count.
    counts = [c for c in (loaded['other_processes'],
                          shared_library(pids, loaded['paths'])['other_processes'])
              if c is not None]
    return {'per_process': {name: monitor.peaks_mb([name]) for name in workers},
            'total': monitor.peaks_mb(list(workers)), 'samples': len(monitor.samples),
            'ready': ready, 'stats': stats,
            'shared_library': dict(loaded, other_processes=max(counts) if counts else None)}


def _pair_fps(fps_det: float, fps_seg: float) -> float:
    return 1.0 / (1.0 / fps_det + 1.0 / fps_seg)


def speed_round(workers: dict[str, NetworkWorker], index: int, per_round: int,
                background: int = 0) -> dict:
    """
    Run round ``index``: the networks take turns, one run each, ``per_round`` times.

    The order is rotated by ``index``; ``background`` busy processes compete meanwhile.
    """
    shift = index % len(NAMES)
    order = NAMES[shift:] + NAMES[:shift]
    load = load_average()
    wall, cpu = {name: [] for name in NAMES}, {name: [] for name in NAMES}
    pids = [worker.pid for worker in workers.values()]
    started, (busy, ours) = time.monotonic(), cpu_seconds(pids)
    with background_load(background):
        # One run of each network in turn: the three share every stretch of the round, and
        # with it whatever else the machine was doing.
        for _ in range(per_round):
            for name in order:
                timings = workers[name].run(1)
                wall[name] += timings['latency_ms']
                cpu[name] += timings['cpu_ms']
    busy_end, ours_end = cpu_seconds(pids)
    # Cores kept busy by everything but the workers and this process (busy loops included).
    others = max(0.0, (busy_end - busy) - (ours_end - ours)) / (time.monotonic() - started)
    p50 = {name: statistics.median(wall[name]) for name in NAMES}
    cpu_p50 = {name: statistics.median(cpu[name]) for name in NAMES}
    fps = {name: 1000.0 / p50[name] for name in NAMES}
    pair_fps = _pair_fps(fps['detection'], fps['segmentation'])
    return {'round': index + 1, 'order': list(order), 'background_load': background,
            'fps': fps, 'pair_fps': pair_fps, 'speed_ratio': fps['multitask'] / pair_fps,
            'latency_ms_p50': p50, 'cpu_ms_p50': cpu_p50, 'latency_ms': wall, 'cpu_ms': cpu,
            'load_average': load, 'other_cpu_cores': others}


def measure_speed(workers: dict[str, NetworkWorker], *, rounds: int, per_round: int,
                  loads: Sequence[int] = (0,), progress: TextIO | None = None) -> dict:
    """
    Time the three ``workers`` in ``rounds`` rounds per background load in ``loads``.

    With several loads, their rounds alternate (A B, B A, A B ...), so they share the
    machine's drift as the networks do within a round.

    :return: background load -> its round records (``speed_round``).
    """
    for worker in workers.values():
        worker.ready()
    records = {background: [] for background in loads}
    for index in range(rounds):
        for background in (loads if index % 2 == 0 else tuple(reversed(loads))):
            record = speed_round(workers, index, per_round, background)
            records[background].append(record)
            if progress is not None:
                busy = f', {background} busy' if background else ''
                print(f'[round {index + 1}/{rounds}{busy}] ' + ', '.join(
                    f'{n} {record["fps"][n]:.2f} fps' for n in record['order'])
                    + f'; speed ratio {record["speed_ratio"]:.2f}', file=progress,
                    flush=True)
    return records


def check_speed_ratio(speed_ratio: float, flop_ratio: float,
                      tolerance: float = SPEED_TOLERANCE) -> dict:
    """
    Check a speed ratio against the FLOP ratio, its honest upper limit.

    Sharing the backbone saves at most the arithmetic it saves, so a speed ratio above
    ``tolerance`` x the FLOP ratio means the timing was disturbed, not that the network won.

    :return: ``{'value', 'limit', 'tolerance', 'ok', 'problem'}`` (problem None when ok).
    """
    ok = all(math.isfinite(v) for v in (speed_ratio, flop_ratio)) \
        and speed_ratio <= tolerance * flop_ratio
    problem = None if ok else (
        f'median speed ratio {speed_ratio:.2f} exceeds {tolerance:g} x the FLOP ratio '
        f'{flop_ratio:.2f}, which bounds it: the timing was disturbed (other load, frequency '
        'scaling, thread contention) or per-call overhead outweighs the arithmetic of a '
        'network too small to measure; not a result')
    return {'value': speed_ratio, 'limit': flop_ratio, 'tolerance': tolerance, 'ok': ok,
            'problem': problem}


def check_memory_sharing(others: dict[str, int | None]) -> dict:
    """
    Check that no other process shared the framework's pages while memory was measured.

    :param others: deployment -> other processes mapping its framework libraries (None:
        unknown).
    :return: ``{'other_processes', 'ok', 'problem'}`` (problem None when ok).
    """
    ok = all(not count for count in others.values())
    problem = None if ok else (
        'other processes mapped the framework libraries while memory was measured ('
        + ', '.join(f'{count} during {name}' for name, count in others.items())
        + '): each takes a share of those pages, so PSS reads low, and by a different '
        'amount per deployment; the PSS ratio is not reliable (memory_rss is unaffected)')
    return {'other_processes': others, 'ok': ok, 'problem': problem}


def check_load(other_cores: Sequence[float], cpu_count: int | None, threads: int) -> dict:
    """
    Check that no other process competed for the cores the workers used during the rounds.

    A run's threads wait for each other, so a competitor slows a run by more than its share,
    unevenly across networks. Cores beyond ``threads`` are free for others; a quarter of a core
    more is tolerated.

    :param other_cores: per round, cores kept busy by processes other than the benchmark's.
    :return: ``{'max', 'limit', 'ok', 'problem'}`` (problem None when ok).
    """
    limit = max((cpu_count or threads) - threads, 0) + 0.25
    worst = max(other_cores, default=0.0)
    ok = worst <= limit
    problem = None if ok else (
        f'other processes kept up to {worst:.2f} cores busy during the rounds, on '
        f'{cpu_count} cores of which the workers use {threads} (limit {limit:.2f}): they '
        'competed for the cores, so the speed figures are disturbed (see the spread; rerun on '
        'a quiet machine, with fewer --threads, or check with --load-check)')
    return {'max': worst, 'limit': limit, 'ok': ok, 'problem': problem}


def _timing(values: Sequence[float]) -> dict:
    return {'p50': float(np.percentile(values, 50)), 'p95': float(np.percentile(values, 95)),
            'mean': float(np.mean(values))}


def measure(prepared: dict, *, options: dict, iterations: int, rounds: int,
            loads: Sequence[int] = (0,), progress: TextIO | None = None) -> list[dict]:
    """
    Measure memory per deployment, then speed in rounds; one result per background load.

    :return: the measured part of a result for each of ``loads``, in that order.
    """
    per_round = math.ceil(iterations / rounds)
    memory_runs = max(per_round, MEMORY_RUNS)
    before = load_average()

    def start(name: str) -> NetworkWorker:
        return NetworkWorker(name, artifact=prepared[name]['artifact'], **options)

    def say(line: str) -> None:
        if progress is not None:
            print(line, file=progress, flush=True)

    memory = {}
    with contextlib.ExitStack() as stack:
        # The multitask worker alone, ended before the pair starts.
        say('[memory] multitask alone')
        with contextlib.ExitStack() as alone:
            workers = {name: alone.enter_context(start(name))
                       for name in DEPLOYMENTS['multitask']}
            memory['multitask'] = measure_memory(workers, memory_runs)
        # The pair alive together; its workers then stay up for the speed rounds, joined by a
        # fresh multitask worker once no memory is sampled any more.
        say('[memory] baseline: detection + segmentation alive together')
        workers = {name: stack.enter_context(start(name)) for name in DEPLOYMENTS['baseline']}
        memory['baseline'] = measure_memory(workers, memory_runs)
        workers['multitask'] = stack.enter_context(start('multitask'))
        competing = ' and '.join(f'{n} busy processes' for n in loads)
        say(f'[speed] {rounds} rounds of {per_round} runs per network, taken in turns'
            + (f'; rounds alternate between {competing}' if len(loads) > 1
               else f', {competing} competing' if loads[0] else ''))
        speed = measure_speed(workers, rounds=rounds, per_round=per_round, loads=loads,
                              progress=progress)
        stats = {name: worker.stats() for name, worker in workers.items()}
    after = load_average()
    memory_part = {'period_s': MEMORY_PERIOD_S, 'runs': memory_runs, 'deployments': {
        deployment: {'processes': list(DEPLOYMENTS[deployment]), 'samples': m['samples'],
                     'shared_library': m['shared_library']}
        for deployment, m in memory.items()}}
    memory_check = check_memory_sharing({deployment: m['shared_library']['other_processes']
                                         for deployment, m in memory.items()})
    results = []
    for background in loads:
        result = _speed_result(prepared, memory, stats, speed[background])
        result.update({
            'iterations_per_round': per_round, 'background_load': background,
            'load_average': {'before': before, 'after': after, 'per_round': [
                r['load_average'] for r in speed[background]]},
            'memory': memory_part})
        result['checks']['memory'] = memory_check
        result['checks']['load'] = check_load(
            [r['other_cpu_cores'] for r in speed[background]], os.cpu_count(),
            options['threads'])
        results.append(result)
    return results


def _speed_result(prepared: dict, memory: dict, stats: dict, records: list[dict]) -> dict:
    """Assemble models, pair, ratios and checks from the memory phase and the rounds."""
    models = {}
    for name in NAMES:
        measured = next(m for m in memory.values() if name in m['per_process'])
        fps = [r['fps'][name] for r in records]
        wall = [ms for r in records for ms in r['latency_ms'][name]]
        models[name] = {key: prepared[name][key]
                        for key in ('params', 'size_mb', 'gflops', 'artifact_mb')}
        models[name].update(measured['per_process'][name])
        models[name].update({
            'peak_rss_hwm_mb': measured['stats'][name]['peak_rss_hwm_mb'],
            'rss_start_mb': measured['ready'][name]['rss_start_mb'],
            'rss_loaded_mb': measured['ready'][name]['rss_loaded_mb'],
            'load_s': measured['ready'][name]['load_s'],
            'latency_ms': _timing(wall),
            'cpu_ms': _timing([ms for r in records for ms in r['cpu_ms'][name]]),
            'fps': statistics.median(fps), 'fps_spread': summarize(fps),
            'timed_iterations': len(wall),
            'threads': measured['ready'][name]['threads'],
            'torch_imported': measured['stats'][name]['torch_imported']
            or stats[name]['torch_imported'],
        })
    pair_fps = [r['pair_fps'] for r in records]
    det, seg = models['detection'], models['segmentation']
    pair = {key: det[key] + seg[key] for key in ('params', 'gflops', 'size_mb')}
    pair.update(memory['baseline']['total'])
    pair.update({'fps': statistics.median(pair_fps), 'fps_spread': summarize(pair_fps)})
    multi = models['multitask']
    speeds = [r['speed_ratio'] for r in records]
    ratios = {
        'speed': statistics.median(speeds),
        'params': pair['params'] / multi['params'],
        'flops': pair['gflops'] / multi['gflops'],
        'memory': pair['peak_pss_mb'] / multi['peak_pss_mb'],
        'memory_rss': pair['peak_rss_mb'] / multi['peak_rss_mb'],
        'memory_uss': pair['peak_uss_mb'] / multi['peak_uss_mb'],
    }
    return {'rounds': records, 'models': models, 'pair': pair, 'ratios': ratios,
            'ratio_spread': {'speed': summarize(speeds)},
            'checks': {'speed': check_speed_ratio(ratios['speed'], ratios['flops'])}}


def compare_runs(quiet: dict, loaded: dict, tolerance: float = 0.10) -> dict:
    """Compare a quiet and a loaded result: how far the background load moved the ratios."""
    def change(key: str) -> float:
        return (loaded['ratios'][key] - quiet['ratios'][key]) / quiet['ratios'][key]

    return {'quiet': quiet['ratios'], 'loaded': loaded['ratios'],
            'background_load': loaded['background_load'],
            'load_average': {'quiet': quiet['load_average'], 'loaded': loaded['load_average']},
            'speed_ratio_change': change('speed'), 'within_10_percent': abs(change('speed'))
            <= tolerance}


def run_benchmark(*, arch: str = 'resnet50_ssd_fcn', input_size: int = 300,
                  device: str = 'cpu', half: bool = False, iterations: int = 30,
                  warmup: int = 5, rounds: int = 5, threads: int | None = None,
                  num_classes: dict[str, int] | None = None, backend: str = 'torch',
                  background_load: int = 0, load_check: bool = False,
                  progress: TextIO | None = sys.stderr) -> dict:
    """
    Measure the multitask network and the single-task pair; see the module docstring.

    :param iterations: timed runs per network, spread over ``rounds`` rounds (rounded up).
    :param threads: intra-op threads per worker (default: the physical cores, torch's default).
    :param background_load: busy-loop processes competing during the speed rounds.
    :param load_check: measure the speed quiet and with ``max(1, background_load)`` busy
        processes, in alternate rounds with the same workers, and compare.
    :return: ``{'device', 'backend', 'arch', 'input_size', 'threads', ..., 'models': {variant:
        M}, 'pair', 'ratios', 'ratio_spread', 'checks', 'rounds', 'load_average', 'memory'}``;
        with ``load_check``, ``{'quiet': result, 'loaded': result, 'load_check': comparison}``.
    """
    if iterations < 1 or warmup < 0 or rounds < 1 or background_load < 0:
        raise ValueError('need iterations >= 1, warmup >= 0, rounds >= 1 and background_load '
                         f'>= 0, got {iterations}, {warmup}, {rounds}, {background_load}')
    if backend not in benchmark_worker.BACKENDS:
        raise ValueError(f'benchmark has no backend {backend!r}; known: '
                         f'{sorted(benchmark_worker.BACKENDS)}')
    threads = int(threads or psutil.cpu_count(logical=False) or os.cpu_count() or 1)
    if threads < 1:
        raise ValueError(f'threads must be >= 1, got {threads}')
    num_classes = dict(num_classes or DEFAULT_NUM_CLASSES)
    settings = {'device': device, 'backend': backend, 'input_size': input_size,
                'threads': threads, 'arch': arch, 'num_classes': num_classes,
                'iterations': iterations, 'warmup': warmup, 'half': half,
                'cpu_count': os.cpu_count(), 'parent_imports_torch': 'torch' in sys.modules}
    options = {'backend': backend, 'device': device, 'half': half, 'threads': threads,
               'warmup': warmup}
    loads = (0, max(1, background_load)) if load_check else (background_load,)
    with tempfile.TemporaryDirectory(prefix='mtl_benchmark_') as workdir:
        prepared = prepare_in_child(arch, input_size, num_classes, backend, Path(workdir),
                                    device=device, half=half)
        results = [dict(settings, **measured) for measured in measure(
            prepared, options=options, iterations=iterations, rounds=rounds, loads=loads,
            progress=progress)]
    if not load_check:
        return results[0]
    return {'quiet': results[0], 'loaded': results[1],
            'load_check': compare_runs(results[0], results[1])}
