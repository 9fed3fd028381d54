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
A multi-camera replay: its runs in alternating rounds, then the scores, report and plots.

:func:`run_camera_replay` runs every :class:`mtl_perception.replay.camera_nodes.CameraRun` of
a ``--config`` ('cameras': shared, multitask_per_camera, baseline_per_camera; or
'segmentation_every': the shared node at each value) in rounds (round 1: every run in turn,
then round 2, ...), every run playing the frames and rate of the first;
:func:`score_camera_directory` scores what is in a directory and writes ``report.json``,
``report.md`` and the plots (:mod:`mtl_perception.replay.camera_report`). The ROS
environment is made loopback-only before rclpy is loaded.
"""

import logging
import os
from pathlib import Path
import time
from typing import Sequence

from mtl_perception.replay import camera_plots
from mtl_perception.replay.bag_io import open_bag
from mtl_perception.replay.camera_nodes import camera_runs, DEFAULT_SEGMENTATION_EVERY
from mtl_perception.replay.camera_report import build_camera_report, PLOTS
from mtl_perception.replay.camera_report import write_camera_report
from mtl_perception.replay.camera_scoring import find_camera_runs, score_camera_run
from mtl_perception.replay.flight import read_flight_cameras
from mtl_perception.replay.run_files import read_run_info
from mtl_perception.ros.environment import localhost_ros_env

__all__ = ['bag_cameras', 'run_camera_replay', 'score_camera_directory']

LOGGER = logging.getLogger(__name__)


def bag_cameras(bag: Path) -> tuple:
    """Return the cameras a multi-camera flight bag lists (``()`` for any other bag)."""
    with open_bag(bag) as reader:
        cameras = read_flight_cameras(reader.custom_data)
        topics = reader.topics()
    missing = [c.image_topic for c in cameras if c.image_topic not in topics]
    if missing:
        raise ValueError(f'bag {bag} lists cameras whose image topics it lacks: {missing}')
    return cameras


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


def score_camera_directory(out_dir: Path, *, bag: Path | None = None,
                           names: Sequence[str] | None = None, make_plots: bool = True,
                           extra: dict | None = None) -> dict:
    """
    Score the multi-camera runs (every round) in ``out_dir``; write the report and plots.

    :param bag: the input bag (default: the one each run.json names).
    :param names: the runs to score, in this order (default: every one found).
    :return: the report (:func:`mtl_perception.replay.camera_report.build_camera_report`).
    """
    out_dir = Path(out_dir)
    found = find_camera_runs(out_dir, names)
    per_round, latencies, cameras, bag_text = {}, {}, [], str(bag or '')
    for name, run_dirs in found.items():
        per_round[name] = []
        for index, run_dir in enumerate(run_dirs, start=1):
            LOGGER.info('scoring %s round %d (%s)', name, index, run_dir)
            series = {} if index == 1 else None
            record = score_camera_run(run_dir, bag, series)
            record['run_dir'] = _relative(run_dir, out_dir)
            per_round[name].append(record)
            cameras = cameras or list(record['cameras'])
            if series is not None:
                latencies[name] = series
    if not bag_text:
        bag_text = (read_run_info(next(iter(found.values()))[0]) or {}).get('bag', '')
    report = build_camera_report(bag_text, cameras, per_round, extra)
    if make_plots:
        made = {'summary': camera_plots.plot_camera_summary(report, out_dir / PLOTS['summary']),
                'latency': camera_plots.plot_camera_latency(latencies,
                                                            out_dir / PLOTS['latency'])}
        if report.get('segmentation_every'):
            made['segmentation_every'] = camera_plots.plot_segmentation_every(
                report['segmentation_every'], out_dir / PLOTS['segmentation_every'])
        report['plots'] = {name: path.name for name, path in made.items()}
    write_camera_report(out_dir, report)
    return report


def run_camera_replay(bag: Path, out_dir: Path, config: str, *,
                      segmentation_every: Sequence[int] = DEFAULT_SEGMENTATION_EVERY,
                      rate=1.0, params_file: Path, checkpoints: dict | None = None,
                      max_frames: int | None = None, max_seconds: float | None = None,
                      warmup_frames: int = 4, capacity_seconds: float = 3.0,
                      domain_id: int | None = None, progress: bool = True,
                      parameters: dict | None = None, utilization: float | None = None,
                      rounds: int = 3, extra: dict | None = None) -> dict:
    """
    Run ``config``'s runs on the multi-camera ``bag`` in alternating rounds; return the report.

    :param config: 'cameras', 'segmentation_every' or one deployment (see CAMERA_CONFIGS).
    :param parameters: ``-p`` overrides for every node of every run (backend, workers,
        threads, max_batch); the checkpoints must suit the backend.
    :param rate: playback speed over the bag's timing, or None for 'auto' (``utilization``
        of the first run's saturated rate per camera).
    """
    if rounds < 1:
        raise ValueError(f'rounds must be >= 1, got {rounds}')
    os.environ.update(localhost_ros_env(domain_id=domain_id))
    # rclpy loads only now, after the environment is loopback-only.
    from mtl_perception.replay.camera_runner import CameraReplaySettings, run_camera_config
    from mtl_perception.replay.run_control import clear_stale_rounds
    bag, runs = Path(bag), camera_runs(config, segmentation_every)
    cameras = bag_cameras(bag)
    if not cameras:
        raise ValueError(f'bag {bag} is not a multi-camera flight (mtl-perception synth '
                         '--cameras K writes one)')
    settings = CameraReplaySettings(
        bag=bag, out_dir=Path(out_dir), cameras=cameras, params_file=Path(params_file),
        checkpoints={k: v for k, v in (checkpoints or {}).items() if v},
        node_parameters=dict(parameters or {}), rate=rate, max_frames=max_frames,
        max_seconds=max_seconds, domain_id=domain_id, warmup_frames=warmup_frames,
        capacity_seconds=capacity_seconds, progress=progress)
    if utilization is not None:
        settings.utilization = utilization
    names = [run.name for run in runs]
    clear_stale_rounds(out_dir, names, rounds)
    started = time.monotonic()
    for round_index in range(1, rounds + 1):
        for position, run in enumerate(runs):
            print(f'[round {round_index}/{rounds}: {run.name}] replaying {len(cameras)} '
                  f'cameras of {bag} {time.monotonic() - started:.0f} s in', flush=True)
            outcome = run_camera_config(
                run, settings, domain_offset=(round_index - 1) * len(runs) + position,
                round_index=round_index)
            settings.rate, settings.max_frames = outcome.rate, outcome.frames
            settings.max_seconds = None
    print(f'scoring {", ".join(names)} ({rounds} round(s))', flush=True)
    return score_camera_directory(out_dir, bag=bag, names=names,
                                  extra={'config': config, **(extra or {})})
