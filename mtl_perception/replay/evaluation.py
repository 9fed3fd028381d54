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
Score the runs of a replay directory and write its report and plots (no rclpy).

Works on runs this package recorded (``run.json`` beside the output bag) and on recordings
made elsewhere (``ros2 bag record`` through ``launch/replay.launch.py``), see
:mod:`mtl_perception.replay.run_files` for what is measured in each case.
"""

import logging
from pathlib import Path
from typing import Optional, Sequence

from mtl_perception.replay import plots
from mtl_perception.replay.report import build_report, PLOTS, write_report
from mtl_perception.replay.run_files import bag_class_names, CONFIG_TASKS, load_run
from mtl_perception.replay.run_files import OUTPUT_BAG, read_ground_truth
from mtl_perception.replay.scoring import GroundTruth, score_accuracy, score_timing
import numpy as np

__all__ = ['find_runs', 'score_directory', 'score_run']

LOGGER = logging.getLogger(__name__)
STRIP_FRAMES = 4


def find_runs(out_dir: Path, config: Optional[str] = None) -> dict:
    """
    Return ``{config: run directory}`` of the runs under ``out_dir``.

    ``out_dir/multitask`` and ``out_dir/baseline`` when they hold an output bag; otherwise
    ``out_dir`` itself when it does, as ``config`` (default 'multitask').
    """
    out_dir = Path(out_dir)
    runs = {name: out_dir / name for name in CONFIG_TASKS
            if (out_dir / name / OUTPUT_BAG).exists() and config in (None, name)}
    if not runs and (out_dir / OUTPUT_BAG).exists():
        runs[config or 'multitask'] = out_dir
    if not runs:
        raise FileNotFoundError(f'no replay run in {out_dir}: expected {OUTPUT_BAG}/ in '
                                f'{out_dir}/multitask, {out_dir}/baseline or {out_dir}')
    return runs


def _numbers(values: dict) -> dict:
    """Return the numeric /diagnostics values (counters as int, rates and times as float)."""
    numbers = {}
    for key, text in values.items():
        try:
            number = float(text)
        except ValueError:
            continue
        numbers[key] = int(number) if key.startswith(('frames_', 'inputs_', 'inference_f')) \
            else number
    return numbers


def score_run(run, bag: Optional[Path]) -> tuple:
    """Return ``(R dict, TimingScore, GroundTruth or None, class names)`` of a RecordedRun."""
    receipts = {task: run.receipts.get(task, {}) for task in CONFIG_TASKS[run.config]}
    timing = score_timing(run.frames, receipts)
    result = timing.as_dict()
    info = run.info
    # Throughput is the saturated rate: at the paced rate an idle node's fps is the input rate.
    capacity = info.get('capacity_fps')
    flood = info.get('capacity') or {}
    result.update({'paced_fps': result['fps'],
                   'fps': capacity if capacity is not None else result['fps'],
                   'fps_source': 'saturated' if capacity is not None else 'paced',
                   'capacity_complete_fps': flood.get('complete_fps'),
                   'node_parameters': info.get('node_parameters')})
    result.update({'peak_rss_mb': info.get('peak_rss_mb'), 'cpu_percent': info.get('cpu_percent'),
                   'map50': None, 'miou': None, 'publish_times': run.publish_source,
                   'playback_hz': info.get('playback_hz'),
                   'capacity_fps': info.get('capacity_fps'),
                   'warmup_ms': info.get('warmup_ms'),
                   'processes': {name: {k: p.get(k) for k in ('peak_rss_mb', 'cpu_percent',
                                                              'exit_code', 'checkpoint')}
                                 for name, p in info.get('processes', {}).items()},
                   'node_diagnostics': {name: _numbers(values)
                                        for name, values in run.diagnostics.items()}})
    truth, classes = None, dict(run.class_names)
    if bag is not None and Path(bag).exists():
        classes = bag_class_names(bag) or classes
        answered = set(run.detections) | set(run.masks)
        truth = read_ground_truth(bag, answered)
        result.update(score_accuracy(
            truth, run.detections if 'detection' in run.receipts else None,
            run.masks if 'segmentation' in run.receipts else None,
            classes.get('detection', ()), classes.get('segmentation', ())))
    return result, timing, truth, classes


def _strip_stamps(runs: dict) -> list:
    common = None
    for run in runs.values():
        answered = set(run.detections) & set(run.masks) if run.masks else set(run.detections)
        common = answered if common is None else common & answered
    played = [s for s, _ in next(iter(runs.values())).frames if s in (common or set())]
    if not played:
        return []
    picks = np.linspace(0, len(played) - 1, min(STRIP_FRAMES, len(played))).round()
    return [played[int(i)] for i in sorted(set(picks))]


def score_directory(out_dir: Path, *, bag: Optional[Path] = None,
                    image_topic: Optional[str] = None, config: Optional[str] = None,
                    make_plots: bool = True, extra: Optional[dict] = None,
                    order: Sequence[str] = ('multitask', 'baseline')) -> dict:
    """
    Score every run under ``out_dir``, write report.json / report.md / plots; return the report.

    ``bag``: the input bag (default: the one run.json names) for ground truth and the overlay
    strip; ``image_topic``: the input topic of an outside recording (default: found).
    """
    out_dir = Path(out_dir)
    found = find_runs(out_dir, config)
    runs, results, timings, truth, classes = {}, {}, {}, None, {}
    for name in [c for c in order if c in found] + [c for c in found if c not in order]:
        LOGGER.info('scoring %s (%s)', name, found[name])
        run = load_run(found[name], name, image_topic)
        run_bag = bag or run.info.get('bag')
        if run_bag is not None and not Path(run_bag).exists():
            LOGGER.warning('input bag %s not found: no accuracy', run_bag)
            run_bag = None
        bag = bag or run_bag
        results[name], timings[name], run_truth, run_classes = score_run(run, run_bag)
        truth, classes = truth or run_truth, classes or run_classes
        runs[name] = run
    frames = max(r['frames_in'] for r in results.values())
    first = next(iter(runs.values()))
    topic = image_topic or first.info.get('image_topic')
    details = {'image_topic': topic,
               'playback_hz': next((r['playback_hz'] for r in results.values()
                                    if r.get('playback_hz')), None),
               'plots': {}}
    details.update(extra or {})
    if make_plots:
        details['plots'] = _plots(out_dir, runs, timings, bag, topic, truth, classes)
    report = build_report(str(bag) if bag else '', frames, results, details)
    write_report(out_dir, report)
    return report


def _plots(out_dir: Path, runs: dict, timings: dict, bag, topic, truth, classes) -> dict:
    made = {}
    made['latency_cdf'] = plots.plot_latency_cdf(timings, out_dir / PLOTS['latency_cdf'])
    made['latency_over_time'] = plots.plot_latency_over_time(
        timings, out_dir / PLOTS['latency_over_time'])
    made['throughput'] = plots.plot_throughput(
        timings, {c: r.frames for c, r in runs.items()}, out_dir / PLOTS['throughput'])
    memory = {c: (r.info.get('memory_mb') or [], (r.info.get('marks_ns') or {}).get(
        'play_start')) for c, r in runs.items()}
    if any(series for series, _ in memory.values()):
        made['memory'] = plots.plot_memory(memory, out_dir / PLOTS['memory'])
    stamps = _strip_stamps(runs)
    if bag and topic and stamps:
        made['overlay_strip'] = plots.overlay_strip(
            Path(bag), topic, runs, truth or GroundTruth(), stamps,
            list(classes.get('detection', [])), out_dir / PLOTS['overlay_strip'])
    return {name: path.name for name, path in made.items()}
