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

    mtl-perception replay --bag flight/ --config both --out runs/replay --rounds 5
    mtl-perception replay --bag flight/ --config multitask --rate auto --max-frames 100
    mtl-perception replay --bag flight/ --backend onnxruntime --workers 2 --threads 1
    mtl-perception replay --score-only runs/launch --bag flight/   # ros2 bag record output
    mtl-perception replay --bag flight_2cam/ --config cameras --out runs/multicamera
    mtl-perception replay --bag flight_2cam/ --config segmentation_every --out runs/seg_every

The configurations run in ``--rounds`` rounds, alternating (multitask, baseline, multitask,
baseline, ...; default 3 rounds with ``--config both``, else 1), each round a complete run:
nodes started, warm-up, capacity flood, paced playback, nodes stopped. Round 1 of a
configuration runs in ``OUT/<config>/``, round k > 1 in ``OUT/rounds/<k>/<config>/`` (output
bag, run.json, node logs each), so ``OUT/<config>/`` is always one complete run in the layout
``launch/replay.launch.py`` records; the report (report.json, report.md, PNG plots) goes to
``OUT`` and gives the median over rounds of every figure and of every per-round ratio, with
its spread (see :mod:`mtl_perception.replay.report`). ROS traffic stays on this machine
(ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, ROS_LOCALHOST_ONLY=1) in a ROS domain picked per
run unless ROS_DOMAIN_ID or --domain-id names one.

``--backend``, ``--workers`` and ``--threads`` become the same ``-p`` overrides on every node
(backend, inference_workers, inference_threads), so both configurations run alike. With
``--backend onnxruntime`` each checkpoint is exported to ONNX once and cached (see
:mod:`mtl_perception.replay.exports`). Throughput in the report is the saturated rate, measured
by flooding the nodes for ``--capacity-seconds`` before the paced playback (see
:mod:`mtl_perception.replay.report`).

A multi-camera flight (``mtl-perception synth --cameras K``; its metadata lists the cameras)
is replayed with every camera fed at once (:mod:`mtl_perception.replay.camera_replay`):
``--config cameras`` (the default for such a bag) compares ONE multitask node serving every
camera (``shared``) with a multitask node per camera and a baseline pair per camera, in
alternating rounds; ``--config segmentation_every`` runs the shared node at each
``--segmentation-every`` value (default 1 3 10000); ``--max-batch`` sets every node's
max_batch. The report (:mod:`mtl_perception.replay.camera_report`) gives aggregate and
per-camera figures, the shared node's ratios and the segmentation_every bound.
"""

import argparse
import logging
import os
from pathlib import Path
import time
from typing import Sequence

from mtl_perception.replay.bag_io import open_bag
from mtl_perception.replay.camera_nodes import CAMERA_CONFIGS, camera_runs
from mtl_perception.replay.camera_nodes import DEFAULT_SEGMENTATION_EVERY
from mtl_perception.replay.camera_nodes import resolve_camera_checkpoints
from mtl_perception.replay.camera_replay import bag_cameras, run_camera_replay
from mtl_perception.replay.camera_replay import score_camera_directory
from mtl_perception.replay.camera_report import camera_console
from mtl_perception.replay.camera_scoring import is_camera_directory
from mtl_perception.replay.evaluation import score_directory
from mtl_perception.replay.exports import onnx_checkpoints
from mtl_perception.replay.node_processes import resolve_checkpoints
from mtl_perception.replay.report import console_table
from mtl_perception.replay.run_files import find_image_topic
from mtl_perception.resources import config_file
from mtl_perception.ros.environment import localhost_ros_env
from mtl_perception.variants import CONFIGURATIONS, VARIANTS

LOGGER = logging.getLogger(__name__)
CONFIGS = {**{name: (name,) for name in CONFIGURATIONS}, 'both': tuple(CONFIGURATIONS)}
BACKENDS = ('torch', 'onnxruntime')
# Capacity flood of a single run, and of each run when there are several rounds (the rounds
# together then flood longer than one run did, and the median smooths what one round caught).
CAPACITY_SECONDS = 8.0
ROUND_CAPACITY_SECONDS = 3.0
# Rounds when both configurations run (alternating); a single configuration runs once.
DEFAULT_ROUNDS = 3


def default_rounds(configs: Sequence[str]) -> int:
    """Return the rounds a replay of ``configs`` runs unless told: 3 for a comparison, else 1."""
    return DEFAULT_ROUNDS if len(configs) > 1 else 1


def capacity_seconds_per_round(rounds: int) -> float:
    """Return the capacity flood of each run: 8 s for a single round, 3 s with several."""
    return CAPACITY_SECONDS if rounds <= 1 else ROUND_CAPACITY_SECONDS


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


def add_node_arguments(parser: argparse.ArgumentParser, *, backend: str | None = None,
                       workers: int | None = None, threads: int | None = None) -> None:
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


def node_parameters(backend: str | None, workers: int | None,
                    threads: int | None) -> dict:
    """Return the ``-p`` overrides every node gets (only the options that were given)."""
    values = {'backend': backend, 'inference_workers': workers, 'inference_threads': threads}
    return {name: value for name, value in values.items() if value is not None}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the replay options."""
    parser.add_argument('--bag', type=Path, help='input bag (rosbag2 directory or file)')
    parser.add_argument('--config', choices=sorted(CONFIGS) + sorted(CAMERA_CONFIGS),
                        default=None,
                        help='multitask node, the two-node baseline, or both one after the '
                        'other (default for a one-camera bag); with a multi-camera flight: '
                        '"cameras" (default: shared node vs a node per camera vs a pair per '
                        'camera), "segmentation_every" (the shared node at each '
                        '--segmentation-every value) or one deployment')
    parser.add_argument('--segmentation-every', type=_positive_int, nargs='+',
                        default=list(DEFAULT_SEGMENTATION_EVERY), metavar='N',
                        help='segmentation_every values of --config segmentation_every; 1 '
                        'and a large value ("never") are needed (default '
                        f'{" ".join(str(n) for n in DEFAULT_SEGMENTATION_EVERY)})')
    parser.add_argument('--max-batch', type=_positive_int, default=None,
                        help='max_batch of every node (frames of different cameras run as '
                        'one batch; default: the params file)')
    parser.add_argument('--utilization', type=float, default=None,
                        help="with --rate auto, the fraction of the first run's saturated "
                        'rate (per camera) to play at (default 0.7)')
    parser.add_argument('--out', type=Path, default=Path('runs/replay'),
                        help='output directory (default runs/replay)')
    parser.add_argument('--rate', type=_rate, default=1.0,
                        help="playback speed over the bag's timing, or 'auto': 70%% of "
                        "the first run's saturated frame rate (the multitask node's in "
                        'round 1 with --config both; every later run plays at that rate); '
                        'default 1.0')
    parser.add_argument('--image-topic', help='camera topic in the bag (default: its only '
                        'Image/CompressedImage topic outside /ground_truth)')
    parser.add_argument('--params-file', type=Path, default=None,
                        help='node parameters (default: the package config/mtl_perception.yaml)')
    for key, variant in VARIANTS.items():
        parser.add_argument(f'--checkpoint-{key}', type=Path, default=None,
                            help=f'checkpoint of the {variant.node_name} (default: the demo '
                            f'model {variant.demo_model})')
    parser.add_argument('--max-frames', type=_positive_int, default=None,
                        help='play at most N frames')
    parser.add_argument('--max-seconds', type=float, default=None,
                        help='play at most this long (frames = seconds x playback rate)')
    parser.add_argument('--warmup-frames', type=_positive_int, default=4,
                        help='frames sent one at a time before playing (default 4)')
    add_rounds_argument(parser, 'with --config both, else 1')
    parser.add_argument('--capacity-seconds', type=float, default=None,
                        help='flood the nodes this long before playing, in every run, to '
                        'measure their saturated frame rate, the throughput of the report '
                        f'(default {CAPACITY_SECONDS:g} with one round, '
                        f'{ROUND_CAPACITY_SECONDS:g} per run with several; 0 skips it, '
                        'throughput is then the paced output rate)')
    parser.add_argument('--domain-id', type=int, default=None,
                        help='ROS domain of the runs (default: ROS_DOMAIN_ID if set, else one '
                        'picked per run)')
    parser.add_argument('--score-only', type=Path, metavar='DIR', default=None,
                        help='only score the runs recorded in DIR (e.g. by ros2 bag record '
                        'through launch/replay.launch.py); --bag adds ground truth')
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')
    add_node_arguments(parser)


def add_rounds_argument(parser: argparse.ArgumentParser, default_text: str,
                        default: int | None = None) -> None:
    """Add ``--rounds`` (``default_text`` says what None means)."""
    parser.add_argument('--rounds', type=_positive_int, default=default,
                        help='runs per configuration, alternating multitask, baseline, '
                        f'multitask, ...; the report gives medians and spread (default '
                        f'{default if default is not None else DEFAULT_ROUNDS}'
                        f'{" " + default_text if default_text else ""})')


def apply_ros_environment(domain_id: int | None = None) -> int | None:
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
               image_topic: str | None = None, params_file: Path | None = None,
               checkpoints: dict | None = None, max_frames: int | None = None,
               max_seconds: float | None = None, warmup_frames: int = 4,
               capacity_seconds: float | None = None, domain_id: int | None = None,
               progress: bool = True, extra: dict | None = None,
               parameters: dict | None = None, utilization: float | None = None,
               rounds: int | None = None) -> dict:
    """
    Run ``configs`` in alternating rounds on ``bag``, score them and write the report.

    Round 1 runs every configuration of ``configs`` in turn, then round 2, and so on; every
    run plays the frames the first one played, at its rate.

    :param parameters: ``-p`` overrides for every node (see ``node_parameters``); the
        ``checkpoints`` must suit its backend (ONNX exports for onnxruntime).
    :param utilization: the fraction of the first run's saturated rate that ``rate=None``
        plays at.
    :param rounds: runs per configuration (default :func:`default_rounds`).
    :param capacity_seconds: flood per run (default :func:`capacity_seconds_per_round`).
    """
    domain_id = apply_ros_environment(domain_id)
    # rclpy loads only now, after the environment is loopback-only.
    from mtl_perception.replay.runner import clear_stale_rounds, ReplaySettings, run_config
    rounds = default_rounds(configs) if rounds is None else int(rounds)
    if rounds < 1:
        raise ValueError(f'rounds must be >= 1, got {rounds}')
    if capacity_seconds is None:
        capacity_seconds = capacity_seconds_per_round(rounds)
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
    clear_stale_rounds(out_dir, configs, rounds)
    started = time.monotonic()
    for round_index in range(1, rounds + 1):
        for position, config in enumerate(configs):
            print(f'[round {round_index}/{rounds}: {config}] replaying {bag} ({topic}) '
                  f'{time.monotonic() - started:.0f} s in', flush=True)
            outcome = run_config(config, settings,
                                 domain_offset=(round_index - 1) * len(configs) + position,
                                 round_index=round_index)
            # Every later run plays the same frames at the same rate.
            settings.rate, settings.max_frames = outcome.rate, outcome.frames
            settings.max_seconds = None
    print(f'scoring {", ".join(configs)} ({rounds} round(s))', flush=True)
    # Only what ran now: an older run of the other configuration in OUT is not compared.
    only = configs[0] if len(configs) == 1 else None
    return score_directory(out_dir, bag=bag, image_topic=topic, config=only, extra=extra)


def _replayed_checkpoints(config: str, given: dict) -> dict:
    """Return {variant key: checkpoint} of every node ``config`` runs (demo models by default)."""
    resolved = {}
    for name in CONFIGS[config]:
        resolved.update(resolve_checkpoints(name, given))
    return resolved


def _camera_checkpoints(runs, given: dict) -> dict:
    """Return {variant key: checkpoint} of every node the multi-camera runs start."""
    resolved = {}
    for run in runs:
        resolved.update(resolve_camera_checkpoints(run.deployment, given))
    return resolved


def _camera_main(args: argparse.Namespace, config: str, domain_id: int | None) -> int:
    """Replay a multi-camera flight (see the module docstring) and print its table."""
    from mtl_perception.replay.runner import ReplayError
    runs = camera_runs(config, args.segmentation_every)
    checkpoints = {key: getattr(args, f'checkpoint_{key}') for key in VARIANTS}
    if args.backend == 'onnxruntime':
        checkpoints = onnx_checkpoints(_camera_checkpoints(runs, checkpoints),
                                       args.export_cache, not args.no_progress)
    rounds = default_rounds(runs) if args.rounds is None else args.rounds
    capacity = args.capacity_seconds
    parameters = node_parameters(args.backend, args.workers, args.threads)
    if args.max_batch is not None:
        parameters['max_batch'] = args.max_batch
    try:
        report = run_camera_replay(
            args.bag, args.out, config, segmentation_every=args.segmentation_every,
            rate=args.rate, params_file=args.params_file or config_file('mtl_perception.yaml'),
            checkpoints=checkpoints, max_frames=args.max_frames, max_seconds=args.max_seconds,
            warmup_frames=args.warmup_frames, domain_id=domain_id,
            capacity_seconds=capacity_seconds_per_round(rounds) if capacity is None
            else capacity, progress=not args.no_progress, parameters=parameters,
            utilization=args.utilization, rounds=rounds)
    except ReplayError as error:
        print(f'mtl-perception replay: failed: {error}', flush=True)
        return 1
    print(camera_console(report))
    print(f'report: {Path(args.out) / "report.md"} (and report.json, plots)')
    return 0


def main(args: argparse.Namespace) -> int:
    """Run the replay (or only the scoring) and print the side-by-side table."""
    domain_id = apply_ros_environment(args.domain_id)
    from mtl_perception.replay.runner import ReplayError
    if args.score_only is not None and is_camera_directory(args.score_only):
        report = score_camera_directory(args.score_only, bag=args.bag)
        print(camera_console(report))
        print(f'report: {Path(args.score_only) / "report.md"} (and report.json, plots)')
        return 0
    if args.score_only is None and args.bag is not None:
        cameras = bag_cameras(args.bag)
        if args.config in CAMERA_CONFIGS or (args.config is None and cameras):
            if not cameras:
                raise ValueError(f'--config {args.config} needs a multi-camera flight bag '
                                 '(mtl-perception synth --cameras K); use --config '
                                 'multitask, baseline or both for this one')
            return _camera_main(args, args.config or 'cameras', domain_id)
    elif args.config in CAMERA_CONFIGS:
        raise ValueError(f'--config {args.config} replays a multi-camera flight: give --bag')
    args.config = args.config or 'both'
    if args.score_only is not None:
        config = None if args.config == 'both' else args.config
        report = score_directory(args.score_only, bag=args.bag, image_topic=args.image_topic,
                                 config=config)
        out_dir = args.score_only
    else:
        if args.bag is None:
            raise ValueError('--bag is required (or --score-only DIR)')
        checkpoints = {key: getattr(args, f'checkpoint_{key}') for key in VARIANTS}
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
                progress=not args.no_progress, rounds=args.rounds,
                parameters=node_parameters(args.backend, args.workers, args.threads))
        except ReplayError as error:
            print(f'mtl-perception replay: failed: {error}', flush=True)
            return 1
        out_dir = args.out
    print(console_table(report))
    print(f'report: {Path(out_dir) / "report.md"} (and report.json, plots)')
    return 0
