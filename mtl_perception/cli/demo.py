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
its recorded seed, frame count, rate and size match the request); (2) the multitask node and
(3) the detection + segmentation baseline replay the same frames at the same rate, 70 % of
the multitask node's measured saturated frame rate, so that it has idle time on every frame
('auto'); (4) the scores, the side-by-side table and the report in ``--out`` (``runs/demo``).
Playback is capped at ``--max-seconds`` per configuration so the demo stays within minutes on
a small machine.
"""

import argparse
import json
import os
from pathlib import Path
import time

from mtl_perception.cli.replay import _rate, apply_ros_environment, run_replay
from mtl_perception.replay.bag_io import BagError, open_bag
from mtl_perception.replay.flight import CUSTOM_DATA_KEY, IMAGE_TOPIC, write_flight_bag
from mtl_perception.replay.report import console_table
from mtl_perception.resources import model_file

DEMO_MODELS = {'multitask': 'uav_synthetic_multitask', 'detection': 'uav_synthetic_detection',
               'segmentation': 'uav_synthetic_segmentation'}
DEFAULT_FRAMES = 300
DEFAULT_RATE_HZ = 10.0
DEFAULT_MAX_SECONDS = 90.0
STAGES = 4


def default_cache() -> Path:
    """Return the bag cache directory: $XDG_CACHE_HOME/mtl_perception or ~/.cache/..."""
    root = os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache'
    return Path(root) / 'mtl_perception'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the demo options."""
    parser.add_argument('--out', type=Path, default=Path('runs/demo'),
                        help='report directory (default runs/demo)')
    parser.add_argument('--frames', type=int, default=DEFAULT_FRAMES,
                        help=f'frames of the synthetic flight (default {DEFAULT_FRAMES})')
    parser.add_argument('--seed', type=int, default=0, help='flight seed (default 0)')
    parser.add_argument('--rate', type=_rate, default=None,
                        help="playback speed over the bag's 10 Hz, or 'auto' (default)")
    parser.add_argument('--max-seconds', type=float, default=DEFAULT_MAX_SECONDS,
                        help='longest playback per configuration (default '
                        f'{DEFAULT_MAX_SECONDS:g} s)')
    parser.add_argument('--cache', type=Path, default=None,
                        help='where the flight bag is cached (default ~/.cache/mtl_perception)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')


def demo_checkpoints() -> dict:
    """Return {'multitask'|'detection'|'segmentation': path}; FileNotFoundError if missing."""
    paths = {key: model_file(name) for key, name in DEMO_MODELS.items()}
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
    wanted = {'seed': seed, 'frames': frames, 'rate': DEFAULT_RATE_HZ, 'size': [640, 480]}
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
    bag = flight_bag(args.cache or default_cache(), args.frames, args.seed, progress)
    print(f'[2-3/{STAGES}] replaying through the multitask node, then the baseline pair '
          f'(each at most {args.max_seconds:g} s of playback)', flush=True)
    apply_ros_environment()
    from mtl_perception.replay.runner import ReplayError  # loads rclpy: after the environment
    try:
        report = run_replay(bag, args.out, ('multitask', 'baseline'), rate=args.rate,
                            image_topic=IMAGE_TOPIC, checkpoints=checkpoints,
                            max_seconds=args.max_seconds, progress=progress,
                            extra={'demo': {'frames': args.frames, 'seed': args.seed}})
    except ReplayError as error:
        print(f'mtl-perception demo: failed: {error}', flush=True)
        return 1
    print(f'[4/{STAGES}] report ({time.monotonic() - started:.0f} s in all)', flush=True)
    print(console_table(report))
    print(f'report: {Path(args.out) / "report.md"} (and report.json, plots)')
    return 0
