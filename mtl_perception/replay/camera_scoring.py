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
Score multi-camera replay runs, camera by camera, into one record per run (no rclpy).

A run directory of :mod:`mtl_perception.replay.camera_runner` holds an output bag with every
camera's outputs and a run.json naming, per camera, its output topics, ground-truth topics and
the frames played. Each camera is scored as a single-camera run is
(:func:`mtl_perception.replay.scoring.score_timing`, :func:`score_accuracy`) against its own
ground truth; a camera's frame is answered when every required output has its stamp (the
detections alone when the masks come every Nth frame). The run's record (``R``):

* ``fps``: aggregate saturated throughput, the sum over cameras of each camera's answered
  frames per second while every camera was flooded (``detection_fps``, ``segmentation_fps``:
  the same sum per output); without a flood the paced figure (``fps_source`` says which);
* ``frames_in``, ``frames_out``, ``dropped``, ``paced_fps``: summed over cameras;
  ``latency_ms`` {p50, p95, max} over every camera's answered frames;
* ``mask_rate``: masks published per answered frame (detections) in the paced playback;
* ``map50``, ``miou``: the mean over cameras; each camera's own in ``cameras``;
* ``cameras``: ``{camera: {frames_in, frames_out, dropped, paced_fps, latency_ms, fps,
  detection_fps, mask_rate, map50, miou}}``;
* the deployment's ``peak_rss_mb``, ``peak_uss_mb``, ``peak_pss_mb`` (peak of the per-sample
  sum over its processes), ``cpu_percent``, ``processes``, ``load_average``,
  ``node_diagnostics`` (the last /diagnostics values per status name: the node's and one per
  camera).
"""

import json
from pathlib import Path

from mtl_perception.replay.bag_io import open_bag
from mtl_perception.replay.camera_nodes import RUN_FORMAT
from mtl_perception.replay.evaluation import diagnostic_numbers, MEMORY_KEYS
from mtl_perception.replay.messages import detection_array_to_numpy, image_to_array
from mtl_perception.replay.messages import stamp_to_ns
from mtl_perception.replay.run_files import bag_class_names, DIAGNOSTICS, find_rounds
from mtl_perception.replay.run_files import OUTPUT_BAG, read_ground_truth, read_run_info
from mtl_perception.replay.run_files import RUN_FILE
from mtl_perception.replay.scoring import percentiles, score_accuracy, score_timing
from mtl_perception.variants import CAMERA_DEPLOYMENTS
import numpy as np

__all__ = ['camera_frames', 'find_camera_runs', 'is_camera_directory', 'score_camera_run']


def _is_camera_run(run_dir: Path) -> bool:
    try:
        info = read_run_info(run_dir)
    except ValueError:
        return False
    return bool(info) and info.get('format') == RUN_FORMAT


def is_camera_directory(out_dir: Path) -> bool:
    """Return whether ``out_dir`` holds multi-camera runs (``<name>/run.json`` of that kind)."""
    return any(_is_camera_run(path.parent) for path in Path(out_dir).glob(f'*/{RUN_FILE}'))


def _run_order(name: str) -> tuple:
    """Sort key: the deployments in table order, then segmentation_every runs by value."""
    order = list(CAMERA_DEPLOYMENTS)
    if name in order:
        return (0, order.index(name), '')
    prefix = 'segmentation_every_'
    if name.startswith(prefix) and name[len(prefix):].isdigit():
        return (1, int(name[len(prefix):]), '')
    return (2, 0, name)


def find_camera_runs(out_dir: Path, names=None) -> dict:
    """
    Return ``{run name: [run directory of round 1, round 2, ...]}`` of ``out_dir``.

    :param names: the runs to look for (default: every multi-camera run in ``out_dir``), in
        the order given.
    """
    out_dir = Path(out_dir)
    if names is None:
        names = sorted((path.parent.name for path in out_dir.glob(f'*/{RUN_FILE}')
                        if _is_camera_run(path.parent)), key=_run_order)
    runs = {}
    for name in names:
        found = [run_dir for _, run_dir in find_rounds(out_dir, name)]
        if found:
            runs[name] = found
    if not runs:
        raise FileNotFoundError(f'no multi-camera replay run in {out_dir}')
    return runs


def _read_outputs(bag_path: Path, outputs: dict, skip: set) -> tuple:
    """Return ``(receipts {task: {stamp: receive ns}}, detections, masks)`` of one camera."""
    receipts = {task: {} for task in outputs}
    detections, masks = {}, {}
    by_topic = {topic: task for task, topic in outputs.items()}
    with open_bag(bag_path) as bag:
        wanted = [topic for topic in by_topic if topic in bag.topics()]
        if not wanted:
            return receipts, detections, masks
        for topic, received, msg in bag.messages(wanted):
            task, stamp = by_topic[topic], stamp_to_ns(msg.header.stamp)
            if stamp in skip or stamp in receipts[task]:
                continue
            receipts[task][stamp] = received
            if task == 'detection':
                detections[stamp] = detection_array_to_numpy(msg)
            else:
                masks[stamp] = image_to_array(msg)
    return receipts, detections, masks


def _diagnostics(bag_path: Path) -> dict:
    found = {}
    with open_bag(bag_path) as bag:
        wanted = [t for t, info in bag.topics().items() if info.msgtype == DIAGNOSTICS]
        if not wanted:
            return found
        for _, _, msg in bag.messages(wanted):
            for status in msg.status:
                found[status.name] = {v.key: v.value for v in status.values}
    return {name: diagnostic_numbers(values) for name, values in found.items()}


def _mask_rate(receipts: dict, played: set) -> float | None:
    detections = set(receipts.get('detection', {})) & played
    if 'segmentation' not in receipts or not detections:
        return None
    return len(set(receipts['segmentation']) & played) / len(detections)


def _mean(values) -> float | None:
    values = list(values)
    return None if not values or any(v is None for v in values) else float(np.mean(values))


def score_camera_run(run_dir: Path, bag: Path | None = None,
                     latencies: dict | None = None) -> dict:
    """
    Score one multi-camera run (every camera); return its record (see the module docstring).

    :param bag: the input bag for ground truth (default: the one run.json names; no accuracy
        when it is not there).
    :param latencies: when given, filled with ``{camera: latency ms float64 [F]}`` of the
        answered frames in publish order (for plots).
    """
    run_dir = Path(run_dir)
    info = read_run_info(run_dir)
    if not info or info.get('format') != RUN_FORMAT:
        raise ValueError(f'{run_dir} holds no multi-camera run ({RUN_FILE} of format '
                         f'{RUN_FORMAT!r})')
    bag = bag or info.get('bag')
    has_bag = bool(bag) and Path(bag).exists()
    classes = bag_class_names(bag) if has_bag else {}
    required = list(info['required_tasks'])
    skip = {int(s) for s in info.get('warmup_stamps', ())}
    flood = info.get('capacity') or {}
    cameras, series = {}, []
    for camera, spec in info['cameras'].items():
        frames = [(int(s), None if p is None else int(p)) for s, p in spec['frames']]
        receipts, detections, masks = _read_outputs(run_dir / OUTPUT_BAG, spec['outputs'], skip)
        timing = score_timing(frames, {task: receipts[task] for task in required})
        series.append(timing.latency_series_ms)
        if latencies is not None:
            latencies[camera] = timing.latency_series_ms
        played = {s for s, _ in frames}
        rates = (flood.get('cameras') or {}).get(camera) or {}
        record = {**timing.as_dict(), 'paced_fps': timing.fps, 'fps': rates.get('fps'),
                  'detection_fps': (rates.get('rates') or {}).get('detection'),
                  'mask_rate': _mask_rate(receipts, played), 'map50': None, 'miou': None}
        if has_bag:
            truth = read_ground_truth(bag, set(detections) | set(masks),
                                      spec['detections_truth'], spec['mask_truth'])
            record.update(score_accuracy(
                truth, detections if 'detection' in receipts else None,
                masks if 'segmentation' in receipts else None,
                classes.get('detection', ()), classes.get('segmentation', ())))
        cameras[camera] = record
    paced = [c['paced_fps'] for c in cameras.values()]
    masks_rate = [c['mask_rate'] for c in cameras.values() if c['mask_rate'] is not None]
    result = {
        'deployment': info.get('deployment'), 'segmentation_every': info.get('segmentation_every'),
        'frames_in': sum(c['frames_in'] for c in cameras.values()),
        'frames_out': sum(c['frames_out'] for c in cameras.values()),
        'dropped': sum(c['dropped'] for c in cameras.values()),
        'fps': flood.get('fps') if flood.get('fps') is not None else sum(paced),
        'fps_source': 'saturated' if flood.get('fps') is not None else 'paced',
        'detection_fps': flood.get('detection_fps'),
        'segmentation_fps': flood.get('segmentation_fps'),
        'paced_fps': sum(paced), 'capacity_fps': flood.get('fps'),
        'latency_ms': percentiles(np.concatenate(series) if series else []),
        'mask_rate': float(np.mean(masks_rate)) if masks_rate else None,
        'map50': _mean(c['map50'] for c in cameras.values()),
        'miou': _mean(c['miou'] for c in cameras.values()),
        'cameras': cameras, 'cpu_percent': info.get('cpu_percent'),
        'playback_hz': info.get('playback_hz'), 'warmup_ms': info.get('warmup_ms'),
        'load_average': info.get('load_average'),
        'node_parameters': info.get('node_parameters'),
        'processes': {name: {k: p.get(k) for k in MEMORY_KEYS + (
            'cpu_percent', 'exit_code', 'checkpoint')}
            for name, p in info.get('processes', {}).items()},
        'node_diagnostics': _diagnostics(run_dir / OUTPUT_BAG),
        'round': int(info.get('round', 1))}
    result.update({key: info.get(key) for key in MEMORY_KEYS})
    return result


def camera_frames(run_dir: Path) -> dict:
    """Return ``{camera: played frame count}`` of a run (from its run.json)."""
    info = json.loads((Path(run_dir) / RUN_FILE).read_text(encoding='utf-8'))
    return {camera: len(spec['frames']) for camera, spec in info['cameras'].items()}
