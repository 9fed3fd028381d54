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
``mtl-perception replay``: replay a bag through the nodes and score the run.

Examples::

    mtl-perception replay --bag flight/ --config both --out runs/replay
    mtl-perception replay --bag flight/ --config multitask --rate auto --max-frames 100
    mtl-perception replay --bag flight/ --backend onnxruntime --workers 2 --threads 1
    mtl-perception replay --score-only runs/launch --bag flight/   # ros2 bag record output

Each configuration runs in ``OUT/<config>/`` (output bag, run.json, node logs); the report
(report.json, report.md, PNG plots) goes to ``OUT``. ROS traffic stays on this machine
(ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, ROS_LOCALHOST_ONLY=1) in a ROS domain picked per
run unless ROS_DOMAIN_ID or --domain-id names one.

``--backend``, ``--workers`` and ``--threads`` become the same ``-p`` overrides on every node
(backend, inference_workers, inference_threads), so both configurations run alike. With
``--backend onnxruntime`` each checkpoint is exported to ONNX once and cached (see
:mod:`mtl_perception.replay.exports`). Throughput in the report is the saturated rate, measured
by flooding the nodes for ``--capacity-seconds`` before the paced playback (see
:mod:`mtl_perception.replay.report`).
"""

import argparse
import logging
import os
from pathlib import Path
from typing import Optional, Sequence

from mtl_perception.replay.bag_io import open_bag
from mtl_perception.replay.evaluation import score_directory
from mtl_perception.replay.exports import onnx_checkpoints
from mtl_perception.replay.report import console_table
from mtl_perception.replay.run_files import find_image_topic
from mtl_perception.resources import config_file
from mtl_perception.ros.environment import localhost_ros_env

LOGGER = logging.getLogger(__name__)
CONFIGS = {'multitask': ('multitask',), 'baseline': ('baseline',),
           'both': ('multitask', 'baseline')}
BACKENDS = ('torch', 'onnxruntime')
CAPACITY_SECONDS = 8.0


def _rate(text: str):
    if text == 'auto':
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"rate must be a number > 0 or 'auto', got {text!r}")
    if not value > 0:
        raise argparse.ArgumentTypeError(f'rate must be > 0, got {text}')
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'expected an integer >= 1, got {text}')
    return value


def _workers(text: str) -> int:
    value = _positive_int(text)
    if value > 8:
        raise argparse.ArgumentTypeError(f'expected 1 to 8 workers, got {text}')
    return value


def _threads(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f'expected threads >= 0 (0: backend default), got '
                                         f'{text}')
    return value


def add_node_arguments(parser: argparse.ArgumentParser, *, backend: Optional[str] = None,
                       workers: Optional[int] = None, threads: Optional[int] = None) -> None:
    """Add --backend/--workers/--threads/--export-cache (defaults: None = the params file)."""
    keep = 'the params file' if backend is None else None
    parser.add_argument('--backend', choices=BACKENDS, default=backend,
                        help='inference backend of every node; onnxruntime exports the '
                        f'checkpoints once (cached) (default {keep or backend})')
    parser.add_argument('--workers', type=_workers, default=workers,
                        help='inference_workers of every node, 1 to 8 (default '
                        f'{keep or workers})')
    parser.add_argument('--threads', type=_threads, default=threads,
                        help='inference_threads of every node, intra-op threads per worker, '
                        f'0 = backend default (default {keep or threads})')
    parser.add_argument('--export-cache', type=Path, default=None,
                        help='where ONNX exports are cached (default ~/.cache/mtl_perception)')


def node_parameters(backend: Optional[str], workers: Optional[int],
                    threads: Optional[int]) -> dict:
    """Return the ``-p`` overrides every node gets (only the options that were given)."""
    values = {'backend': backend, 'inference_workers': workers, 'inference_threads': threads}
    return {name: value for name, value in values.items() if value is not None}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the replay options."""
    parser.add_argument('--bag', type=Path, help='input bag (rosbag2 directory or file)')
    parser.add_argument('--config', choices=sorted(CONFIGS), default='both',
                        help='multitask node, the two-node baseline, or both one after the '
                        'other (default)')
    parser.add_argument('--out', type=Path, default=Path('runs/replay'),
                        help='output directory (default runs/replay)')
    parser.add_argument('--rate', type=_rate, default=1.0,
                        help="playback speed over the bag's timing, or 'auto': 70%% of "
                        "the first configuration's saturated frame rate (the multitask "
                        "node's with --config both; the next run plays at the same rate); "
                        'default 1.0')
    parser.add_argument('--image-topic', help='camera topic in the bag (default: its only '
                        'Image/CompressedImage topic outside /ground_truth)')
    parser.add_argument('--params-file', type=Path, default=None,
                        help='node parameters (default: the package config/mtl_perception.yaml)')
    for key in ('multitask', 'detection', 'segmentation'):
        parser.add_argument(f'--checkpoint-{key}', type=Path, default=None,
                            help=f'checkpoint of the {key} node (default: the demo model)')
    parser.add_argument('--max-frames', type=_positive_int, default=None,
                        help='play at most N frames')
    parser.add_argument('--max-seconds', type=float, default=None,
                        help='play at most this long (frames = seconds x playback rate)')
    parser.add_argument('--warmup-frames', type=_positive_int, default=4,
                        help='frames sent one at a time before playing (default 4)')
    parser.add_argument('--capacity-seconds', type=float, default=CAPACITY_SECONDS,
                        help='flood the nodes this long before playing to measure their '
                        'saturated frame rate, the throughput of the report (default '
                        f'{CAPACITY_SECONDS:g}; 0 skips it, throughput is then the paced '
                        'output rate)')
    parser.add_argument('--domain-id', type=int, default=None,
                        help='ROS domain of the runs (default: ROS_DOMAIN_ID if set, else one '
                        'picked per run)')
    parser.add_argument('--score-only', type=Path, metavar='DIR', default=None,
                        help='only score the runs recorded in DIR (e.g. by ros2 bag record '
                        'through launch/replay.launch.py); --bag adds ground truth')
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')
    add_node_arguments(parser)


def apply_ros_environment(domain_id: Optional[int] = None) -> Optional[int]:
    """
    Make this process and its children loopback-only ROS processes; return the domain to use.

    Must run before rclpy is imported. The domain is ``domain_id``, else the user's
    ROS_DOMAIN_ID, else None (each run picks its own).
    """
    if domain_id is None and os.environ.get('ROS_DOMAIN_ID', '').strip():
        domain_id = int(os.environ['ROS_DOMAIN_ID'])
    os.environ.update(localhost_ros_env(domain_id=domain_id))
    return domain_id


def run_replay(bag: Path, out_dir: Path, configs: Sequence[str], *, rate=1.0,
               image_topic: Optional[str] = None, params_file: Optional[Path] = None,
               checkpoints: Optional[dict] = None, max_frames: Optional[int] = None,
               max_seconds: Optional[float] = None, warmup_frames: int = 4,
               capacity_seconds: float = CAPACITY_SECONDS, domain_id: Optional[int] = None,
               progress: bool = True, extra: Optional[dict] = None,
               parameters: Optional[dict] = None,
               utilization: Optional[float] = None) -> dict:
    """
    Run ``configs`` one after the other on ``bag``, score them and write the report.

    ``parameters``: ``-p`` overrides for every node (see ``node_parameters``); the
    ``checkpoints`` must suit its backend (ONNX exports for onnxruntime); ``utilization``:
    the fraction of the first configuration's saturated rate that ``rate=None`` plays at.
    """
    domain_id = apply_ros_environment(domain_id)
    # rclpy loads only now, after the environment is loopback-only.
    from mtl_perception.replay.runner import ReplaySettings, run_config
    bag = Path(bag)
    with open_bag(bag) as reader:
        topics = reader.topics()
    topic = image_topic or find_image_topic(topics)
    if topic is None:
        raise ValueError(f'bag {bag} has no Image or CompressedImage topic; it has '
                         f'{sorted(topics)}')
    settings = ReplaySettings(
        bag=bag, out_dir=Path(out_dir), image_topic=topic,
        params_file=Path(params_file or config_file('mtl_perception.yaml')),
        checkpoints={k: v for k, v in (checkpoints or {}).items() if v},
        node_parameters=dict(parameters or {}), rate=rate,
        max_frames=max_frames, max_seconds=max_seconds, domain_id=domain_id,
        warmup_frames=warmup_frames, capacity_seconds=capacity_seconds, progress=progress)
    if utilization is not None:
        settings.utilization = utilization
    for index, config in enumerate(configs):
        print(f'[{config}] replaying {bag} ({topic})', flush=True)
        outcome = run_config(config, settings, domain_offset=index)
        # The next configuration plays the same frames at the same rate.
        settings.rate, settings.max_frames = outcome.rate, outcome.frames
        settings.max_seconds = None
    print(f'scoring {", ".join(configs)}', flush=True)
    # Only what ran now: an older run of the other configuration in OUT is not compared.
    only = configs[0] if len(configs) == 1 else None
    return score_directory(out_dir, bag=bag, image_topic=topic, config=only, extra=extra)


def _replayed_checkpoints(config: str, given: dict) -> dict:
    """Return {key: checkpoint} of every node ``config`` runs (the demo models by default)."""
    from mtl_perception.replay.node_processes import CONFIG_NODES, resolve_checkpoints
    keys = {spec.executable: spec.checkpoint_key for name in CONFIGS[config]
            for spec in CONFIG_NODES[name]}
    resolved = {}
    for name in CONFIGS[config]:
        resolved.update(resolve_checkpoints(name, given))
    return {keys[executable]: path for executable, path in resolved.items()}


def main(args: argparse.Namespace) -> int:
    """Run the replay (or only the scoring) and print the side-by-side table."""
    domain_id = apply_ros_environment(args.domain_id)
    from mtl_perception.replay.runner import ReplayError
    if args.score_only is not None:
        config = None if args.config == 'both' else args.config
        report = score_directory(args.score_only, bag=args.bag, image_topic=args.image_topic,
                                 config=config)
        out_dir = args.score_only
    else:
        if args.bag is None:
            raise ValueError('--bag is required (or --score-only DIR)')
        checkpoints = {'multitask': args.checkpoint_multitask,
                       'detection': args.checkpoint_detection,
                       'segmentation': args.checkpoint_segmentation}
        if args.backend == 'onnxruntime':
            checkpoints = onnx_checkpoints(_replayed_checkpoints(args.config, checkpoints),
                                           args.export_cache, not args.no_progress)
        try:
            report = run_replay(
                args.bag, args.out, CONFIGS[args.config], rate=args.rate,
                image_topic=args.image_topic, params_file=args.params_file,
                checkpoints=checkpoints, max_frames=args.max_frames,
                max_seconds=args.max_seconds, warmup_frames=args.warmup_frames,
                capacity_seconds=args.capacity_seconds, domain_id=domain_id,
                progress=not args.no_progress,
                parameters=node_parameters(args.backend, args.workers, args.threads))
        except ReplayError as error:
            print(f'mtl-perception replay: failed: {error}', flush=True)
            return 1
        out_dir = args.out
    print(console_table(report))
    print(f'report: {Path(out_dir) / "report.md"} (and report.json, plots)')
    return 0
