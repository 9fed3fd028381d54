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
`mtl-perception benchmark`: the multitask network against the single-task pair.

Speed, parameters, FLOPs, checkpoint size and peak memory (RSS, USS, PSS) of the three
networks in one run on this machine: memory per deployment (the multitask worker alone, then
the two single-task workers alive together), speed in ``--rounds`` interleaved rounds with the
order rotated, reported as medians with their spread. ``--background-load N`` runs N busy-loop
processes during the speed rounds; ``--load-check`` measures once quiet and once loaded and
says whether the speed ratio moved by less than 10%. The conventions are in
``mtl_perception.inference.benchmark``. The default class counts are Pascal VOC's (20
detection classes, 21 segmentation classes), the reference design's setting.
"""

import argparse
import json
from pathlib import Path
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark options to ``parser``."""
    parser.add_argument('--arch', default='resnet50_ssd_fcn',
                        help='registered architecture (default: %(default)s)')
    parser.add_argument('--input-size', type=int, default=300,
                        help='square network input side in pixels (default: %(default)s)')
    parser.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N (default: cpu)')
    parser.add_argument('--half', action='store_true', help='float16 (CUDA only)')
    parser.add_argument('--backend', default='torch',
                        help='torch, onnxruntime (ONNX export timed without torch) or '
                             'tensorrt (engine built first; needs a GPU) (default: torch)')
    parser.add_argument('--iterations', type=int, default=30,
                        help='timed runs per network, spread over the rounds '
                             '(default: %(default)s)')
    parser.add_argument('--rounds', type=int, default=5,
                        help='interleaved rounds; in each, the networks take turns run by '
                             'run until each has run ceil(iterations / rounds) times, the '
                             'order rotated every round (default: %(default)s)')
    parser.add_argument('--warmup', type=int, default=5,
                        help='untimed runs before timing (default: %(default)s)')
    parser.add_argument('--threads', type=int, default=None,
                        help='intra-op threads of torch or ONNX Runtime per network '
                             '(default: the physical cores, as torch chooses)')
    parser.add_argument('--num-classes', type=int, nargs=2, default=[20, 21],
                        metavar=('DET', 'SEG'),
                        help='detection and segmentation class counts (default: VOC, 20 21)')
    parser.add_argument('--background-load', type=int, default=0, metavar='N',
                        help='N busy-loop processes competing for the CPU during the speed '
                             'rounds (default: none)')
    parser.add_argument('--load-check', action='store_true',
                        help='measure twice, quiet and with max(1, N) busy processes, and '
                             'compare the ratios (a robustness check)')
    parser.add_argument('--json', type=Path, default=None, metavar='PATH',
                        help='also write the result as JSON to PATH')


def main(args: argparse.Namespace) -> int:
    """Run the benchmark, print the table and optionally write the JSON."""
    # The measuring process stays free of torch (it would share the workers' pages and lower
    # their PSS), so the architecture is checked by the child process that builds the networks.
    from mtl_perception.inference.benchmark import run_benchmark

    if args.iterations < 1 or args.warmup < 0 or args.rounds < 1:
        raise ValueError('--iterations and --rounds must be >= 1 and --warmup >= 0')
    if args.background_load < 0:
        raise ValueError(f'--background-load must be >= 0, got {args.background_load}')
    if args.threads is not None and args.threads < 1:
        raise ValueError(f'--threads must be >= 1, got {args.threads}')
    if min(args.num_classes) < 1:
        raise ValueError(f'--num-classes must be positive, got {args.num_classes}')
    result = run_benchmark(
        arch=args.arch, input_size=args.input_size, device=args.device, half=args.half,
        iterations=args.iterations, warmup=args.warmup, rounds=args.rounds,
        threads=args.threads, background_load=args.background_load,
        load_check=args.load_check,
        num_classes={'detection': args.num_classes[0], 'segmentation': args.num_classes[1]},
        backend=args.backend, progress=sys.stderr)
    print(format_table(result))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + '\n', encoding='utf-8')
        print(f'wrote {args.json}', file=sys.stderr)
    return 0


def _spread(summary: dict) -> str:
    return f'{summary["min"]:.2f}-{summary["max"]:.2f}'


def format_table(result: dict) -> str:
    """Render a benchmark result (or a load check) as plain text."""
    if 'load_check' in result:
        check = result['load_check']
        return '\n'.join([
            'quiet:', format_table(result['quiet']), '',
            f'with {check["background_load"]} busy background processes:',
            format_table(result['loaded']), '',
            f'load check: speed ratio {check["quiet"]["speed"]:.2f} quiet, '
            f'{check["loaded"]["speed"]:.2f} loaded ({check["speed_ratio_change"]:+.1%}, '
            f'{"within" if check["within_10_percent"] else "NOT within"} 10%)'])
    header = (f'{"network":<14}{"params (M)":>11}{"size (MB)":>10}{"GFLOPs":>8}'
              f'{"p50 (ms)":>10}{"p95 (ms)":>10}{"fps":>8}{"RSS (MB)":>10}{"USS (MB)":>10}'
              f'{"PSS (MB)":>10}')
    lines = [f'{result["arch"]}, input {result["input_size"]}, {result["backend"]} on '
             f'{result["device"]}, {result["threads"]} threads; {len(result["rounds"])} rounds '
             f'of {result["iterations_per_round"]} timed runs per network taken in turns, '
             f'order rotated each round, after {result["warmup"]} warm-up runs', header,
             '-' * len(header)]
    rows = [(name, m, m['latency_ms']) for name, m in result['models'].items()]
    rows.append(('det + seg', result['pair'], None))
    for name, m, latency in rows:
        timing = (f'{latency["p50"]:>10.1f}{latency["p95"]:>10.1f}' if latency
                  else f'{"":>20}')
        lines.append(f'{name:<14}{m["params"] / 1e6:>11.2f}{m["size_mb"]:>10.1f}'
                     f'{m["gflops"]:>8.2f}{timing}{m["fps"]:>8.2f}{m["peak_rss_mb"]:>10.0f}'
                     f'{m["peak_uss_mb"]:>10.0f}{m["peak_pss_mb"]:>10.0f}')
    lines.append('(fps: median over rounds; memory: peaks sampled every '
                 f'{result["memory"]["period_s"] * 1000:.0f} ms, multitask alone, detection and '
                 'segmentation together, pair = peak of their sum)')
    missed = {name: m['peak_rss_hwm_mb'] - m['peak_rss_mb']
              for name, m in result['models'].items()}
    worst = max(missed, key=missed.get)
    if missed[worst] > 0.02 * result['models'][worst]['peak_rss_mb']:
        lines.append(f'(the samples missed up to {missed[worst]:.0f} MB of a short peak: '
                     f'{worst} reached {result["models"][worst]["peak_rss_hwm_mb"]:.0f} MB RSS '
                     'by the kernel high-water mark; its USS and PSS peaks may read low by as '
                     'much)')
    ratios, spread, checks = result['ratios'], result['ratio_spread'], result['checks']
    lines += ['', f'multitask vs pair (median of {spread["speed"]["n"]} rounds, min-max):']
    if checks['speed']['ok']:
        lines.append(f'  speed   {ratios["speed"]:.2f}x faster ({_spread(spread["speed"])})')
    else:
        lines.append(f'  speed   FLAGGED as a measurement problem: ratio {ratios["speed"]:.2f} '
                     f'({_spread(spread["speed"])}): {checks["speed"]["problem"]}')
    kinds = f'RSS {ratios["memory_rss"]:.2f}x, USS {ratios["memory_uss"]:.2f}x'
    if checks['memory']['ok']:
        lines.append(f'  memory  {ratios["memory"]:.2f}x less memory (PSS; {kinds})')
    else:
        lines.append(f'  memory  FLAGGED as a measurement problem: ratio {ratios["memory"]:.2f} '
                     f'on PSS ({kinds}): {checks["memory"]["problem"]}')
    lines.append(f'  size    {ratios["params"]:.2f}x fewer parameters, {ratios["flops"]:.2f}x '
                 'fewer FLOPs')
    load = result['load_average']
    per_round = [v for v in load['per_round'] if v is not None]
    if load['before'] is not None:
        lines.append(f'load average (1 min): {load["before"]:.2f} before, {load["after"]:.2f} '
                     f'after, {min(per_round):.2f}-{max(per_round):.2f} over the rounds'
                     + (f'; {result["background_load"]} busy background processes'
                        if result['background_load'] else ''))
    others = [r['other_cpu_cores'] for r in result['rounds']]
    lines.append(f'other processes kept {min(others):.2f}-{max(others):.2f} cores busy over the '
                 f'rounds (limit {checks["load"]["limit"]:.2f})')
    if not checks['load']['ok']:
        lines.append(f'  FLAGGED: {checks["load"]["problem"]}')
    return '\n'.join(lines)
