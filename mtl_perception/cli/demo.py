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
``mtl-perception demo``: the multitask node against the two-node baseline on a synthetic flight.

Stages: (1) a synthetic UAV flight bag with ground truth, made once and cached (reused while
its seed, frames, rate, size and ground truth version match the request); (2) the three demo models
exported to ONNX once (cached beside the bag, keyed by the checkpoints' content), since the
demo runs the CPU deployment path: ONNX Runtime; (3) the multitask node and (4) the detection
+ segmentation baseline, in ``--rounds`` alternating rounds (multitask, baseline, multitask,
baseline, ...; 3 by default), every node with the same settings (``--backend``,
``--workers``, ``--threads``), each run first flooded with the bag's images for a few seconds
to measure its saturated throughput, then replaying the same frames at the same paced rate:
half the multitask node's saturated rate in round 1 (``--utilization``), so that it has idle
time on every frame ('auto'); (5) the scores, the side-by-side table of medians over rounds
with the ratios' spread, and the report in ``--out`` (``runs/demo``; round 1 in
``runs/demo/<config>/``, later rounds in ``runs/demo/rounds/<k>/<config>/``). Playback is
capped at ``--max-seconds`` per run so the demo stays within minutes on a small machine.

Throughput in the report is the saturated rate (what each configuration does flat out; at a
rate that leaves a node idle its output rate is only the input rate); the paced run gives
latency, frames lost, CPU and accuracy; memory is compared on PSS (see
:mod:`mtl_perception.replay.report`). The
defaults (ONNX Runtime, two inference workers of one thread each per node) were chosen by
measurement on the 2-core machine the demo targets: one intra-op thread per run wastes no
time on thread hand-offs, and two workers keep both cores busy.
"""

import argparse
import json
from pathlib import Path
import time

from mtl_perception.cli.replay import _rate, add_node_arguments, add_rounds_argument
from mtl_perception.cli.replay import apply_ros_environment, capacity_seconds_per_round
from mtl_perception.cli.replay import DEFAULT_ROUNDS, node_parameters, run_replay
from mtl_perception.replay.bag_io import BagError, open_bag
from mtl_perception.replay.exports import default_cache, onnx_checkpoints
from mtl_perception.replay.flight import CUSTOM_DATA_KEY, GROUND_TRUTH_VERSION, IMAGE_TOPIC
from mtl_perception.replay.flight import write_flight_bag
from mtl_perception.replay.report import console_table
from mtl_perception.resources import model_file
from mtl_perception.variants import CONFIGURATIONS, VARIANTS

DEFAULT_FRAMES = 300
DEFAULT_RATE_HZ = 10.0
# Longest paced playback per run: the whole 300-frame flight (6-7 s at the rate a quiet 2-core
# machine plays it, about 45 Hz; down to 15 Hz on a busy one), and fewer frames only on a
# machine slower still, so that three rounds of both configurations stay within minutes.
DEFAULT_MAX_SECONDS = 20.0
DEFAULT_BACKEND = 'onnxruntime'
DEFAULT_WORKERS = 2
DEFAULT_THREADS = 1
# The paced rate as a fraction of the multitask node's saturated rate: enough idle time that
# on a loaded 2-core machine a frame rarely waits for a busy core (tail latency, no loss).
DEFAULT_UTILIZATION = 0.5
STAGES = 5

__all__ = ['add_arguments', 'default_cache', 'demo_checkpoints', 'flight_bag', 'main']


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f'expected a fraction in (0, 1], got {text}')
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the demo options."""
    parser.add_argument('--out', type=Path, default=Path('runs/demo'),
                        help='report directory (default runs/demo)')
    parser.add_argument('--frames', type=int, default=DEFAULT_FRAMES,
                        help=f'frames of the synthetic flight (default {DEFAULT_FRAMES})')
    parser.add_argument('--seed', type=int, default=0, help='flight seed (default 0)')
    parser.add_argument('--rate', type=_rate, default=None,
                        help="playback speed over the bag's 10 Hz, or 'auto' (default)")
    parser.add_argument('--utilization', type=_fraction, default=DEFAULT_UTILIZATION,
                        help="with the 'auto' rate, play at this fraction of the multitask "
                        f"node's saturated rate in round 1 (default {DEFAULT_UTILIZATION:g})")
    parser.add_argument('--max-seconds', type=float, default=DEFAULT_MAX_SECONDS,
                        help='longest paced playback per run (default '
                        f'{DEFAULT_MAX_SECONDS:g} s)')
    add_rounds_argument(parser, '', default=DEFAULT_ROUNDS)
    parser.add_argument('--cache', type=Path, default=None,
                        help='where the flight bag and the ONNX exports are cached (default '
                        '~/.cache/mtl_perception)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')
    add_node_arguments(parser, backend=DEFAULT_BACKEND, workers=DEFAULT_WORKERS,
                       threads=DEFAULT_THREADS)


def demo_checkpoints() -> dict:
    """Return {'multitask'|'detection'|'segmentation': path}; FileNotFoundError if missing."""
    paths = {key: model_file(variant.demo_model) for key, variant in VARIANTS.items()}
    missing = [str(p) for p in paths.values()
               if not p.is_file() or not p.with_suffix('.yaml').is_file()]
    if missing:
        raise FileNotFoundError(
            'the demo needs the trained demo models (weights .safetensors with their .yaml '
            f'model card); missing: {", ".join(missing)}')
    return paths


def _cached_flight_matches(path: Path, wanted: dict) -> bool:
    if not path.exists():
        return False
    try:
        with open_bag(path) as bag:
            description = json.loads(bag.custom_data.get(CUSTOM_DATA_KEY, '{}'))
            count = bag.topics().get(IMAGE_TOPIC)
    except (BagError, json.JSONDecodeError):
        return False
    return count is not None and count.count == wanted['frames'] and \
        all(description.get(key) == value for key, value in wanted.items())


def flight_bag(cache: Path, frames: int, seed: int, progress: bool = True) -> Path:
    """Return the cached synthetic flight bag, (re)generating it when it does not match."""
    if frames < 2:
        raise ValueError(f'--frames must be >= 2, got {frames}')
    path = Path(cache) / f'synthetic_flight_seed{seed}'
    # A bag of an older ground truth (no camera topics, ids or world positions) is rebuilt.
    wanted = {'seed': seed, 'frames': frames, 'rate': DEFAULT_RATE_HZ, 'size': [640, 480],
              'ground_truth_version': GROUND_TRUTH_VERSION}
    if _cached_flight_matches(path, wanted):
        print(f'    cached: {path}', flush=True)
        return path
    print(f'    writing {frames} frames to {path}', flush=True)
    write_flight_bag(path, frames=frames, rate=DEFAULT_RATE_HZ, seed=seed, size=(640, 480),
                     overwrite=True, progress=progress)
    return path


def main(args: argparse.Namespace) -> int:
    """Run the demo and print the side-by-side table."""
    started = time.monotonic()
    checkpoints = demo_checkpoints()
    progress = not args.no_progress
    print(f'[1/{STAGES}] synthetic flight bag ({args.frames} frames, seed {args.seed})',
          flush=True)
    cache = args.cache or default_cache()
    bag = flight_bag(cache, args.frames, args.seed, progress)
    parameters = node_parameters(args.backend, args.workers, args.threads)
    if args.backend == 'onnxruntime':
        print(f'[2/{STAGES}] ONNX exports of the demo models', flush=True)
        checkpoints = onnx_checkpoints(checkpoints, args.export_cache or cache, progress)
    else:
        print(f'[2/{STAGES}] {args.backend} backend: no export needed', flush=True)
    print(f'[3-4/{STAGES}] {args.rounds} round(s) of the multitask node, then the baseline '
          f'pair, every node with {parameters} (each run flooded '
          f'{capacity_seconds_per_round(args.rounds):g} s, then at most {args.max_seconds:g} s '
          'of paced playback)', flush=True)
    apply_ros_environment()
    from mtl_perception.replay.runner import ReplayError  # loads rclpy: after the environment
    try:
        report = run_replay(bag, args.out, tuple(CONFIGURATIONS), rate=args.rate,
                            image_topic=IMAGE_TOPIC, checkpoints=checkpoints,
                            max_seconds=args.max_seconds, progress=progress,
                            parameters=parameters, utilization=args.utilization,
                            rounds=args.rounds,
                            extra={'demo': {'frames': args.frames, 'seed': args.seed,
                                            'rounds': args.rounds,
                                            'node_parameters': parameters}})
    except ReplayError as error:
        print(f'mtl-perception demo: failed: {error}', flush=True)
        return 1
    print(f'[5/{STAGES}] report ({time.monotonic() - started:.0f} s in all)', flush=True)
    print(console_table(report))
    print(f'report: {Path(args.out) / "report.md"} (and report.json, plots)')
    return 0
