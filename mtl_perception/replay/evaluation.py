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

Works on runs this package recorded (``run.json`` beside the output bag, one run directory
per configuration and round, see :func:`mtl_perception.replay.run_files.round_dir`) and on
recordings made elsewhere (``ros2 bag record`` through ``launch/replay.launch.py``: one
round), see :mod:`mtl_perception.replay.run_files` for what is measured in each case. Every
round is scored (timing, memory, CPU, accuracy, and tracks and ground positions where the
node publishes them and the bag has their ground truth: :func:`score_tracks`); the report
gives the medians over rounds and the per-round ratios (:mod:`mtl_perception.replay.report`);
the plots show round 1, plus one plot of every round's figures.
"""

import logging
from pathlib import Path
from typing import Sequence

from mtl_perception.inference.artifacts import card_path
from mtl_perception.model_card import ModelCard, ModelCardError
from mtl_perception.replay import plots
from mtl_perception.replay.report import build_report, PLOTS, write_report
from mtl_perception.replay.run_files import bag_class_names, config_tasks, find_rounds
from mtl_perception.replay.run_files import load_run, OUTPUT_BAG, read_ground_truth
from mtl_perception.replay.run_files import read_track_truth, TrackTruth
from mtl_perception.replay.scoring import GroundTruth, score_accuracy, score_timing
from mtl_perception.replay.tracking_scores import ground_matches, score_tracking, TRACKING_KEYS
from mtl_perception.variants import CONFIGURATIONS
import numpy as np

__all__ = ['GROUND_KEYS', 'diagnostic_numbers', 'find_runs', 'score_directory', 'score_run',
           'score_tracks']

LOGGER = logging.getLogger(__name__)
STRIP_FRAMES = 4
MEMORY_KEYS = ('peak_rss_mb', 'peak_uss_mb', 'peak_pss_mb')
# The ground-position figures of a run (m and counts), as tracking_scores.score_ground gives.
GROUND_KEYS = ('median', 'p90', 'mean', 'max', 'matched', 'unmatched_predictions',
               'unmatched_truth', 'frames')


def find_runs(out_dir: Path, config: str | None = None) -> dict:
    """
    Return ``{config: [run directory of round 1, round 2, ...]}`` of the runs in ``out_dir``.

    ``out_dir/multitask`` and ``out_dir/baseline`` (round 1) and ``out_dir/rounds/<k>/...``
    when they hold an output bag; otherwise ``out_dir`` itself when it does, as ``config``
    (default 'multitask'), one round.
    """
    out_dir = Path(out_dir)
    runs = {}
    for name in CONFIGURATIONS:
        if config in (None, name):
            rounds = [run_dir for _, run_dir in find_rounds(out_dir, name)]
            if rounds:
                runs[name] = rounds
    if not runs and (out_dir / OUTPUT_BAG).exists():
        runs[config or 'multitask'] = [out_dir]
    if not runs:
        raise FileNotFoundError(f'no replay run in {out_dir}: expected {OUTPUT_BAG}/ in '
                                f'{out_dir}/multitask, {out_dir}/baseline or {out_dir}')
    return runs


def network_gflops(processes: dict) -> float | None:
    """
    Return the summed GFLOPs per image of the networks the run's processes loaded.

    Read from the model cards beside their checkpoints, where ``mtl-perception export``
    records them (``export.onnx.gflops``); None when any is unknown (e.g. a torch checkpoint
    never exported, or an outside recording).
    """
    total = 0.0
    for process in processes.values():
        checkpoint = process.get('checkpoint')
        try:
            card = ModelCard.load(card_path(checkpoint)) if checkpoint else None
        except ModelCardError:
            card = None
        gflops = (card.export.get('onnx') or {}).get('gflops') if card else None
        if gflops is None:
            return None
        total += float(gflops)
    return total if processes else None


def diagnostic_numbers(values: dict) -> dict:
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


def score_run(run, bag: Path | None, truth: GroundTruth | None = None) -> tuple:
    """
    Score one recorded run.

    :param run: a :class:`mtl_perception.replay.run_files.RecordedRun`.
    :param bag: the input bag (ground truth, class names), or None.
    :param truth: ground truth already read from ``bag`` (any superset of the answered
        frames); read from ``bag`` when None.
    :return: ``(R dict, TimingScore, GroundTruth or None, class names)``.
    """
    receipts = {task: run.receipts.get(task, {}) for task in config_tasks(run.config)}
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
    result.update({key: info.get(key) for key in MEMORY_KEYS})
    result.update({'cpu_percent': info.get('cpu_percent'),
                   'map50': None, 'miou': None, 'publish_times': run.publish_source,
                   'playback_hz': info.get('playback_hz'),
                   'capacity_fps': info.get('capacity_fps'),
                   'warmup_ms': info.get('warmup_ms'),
                   'load_average': info.get('load_average'),
                   'gflops': network_gflops(info.get('processes', {})),
                   'processes': {name: {k: p.get(k) for k in MEMORY_KEYS + (
                       'cpu_percent', 'exit_code', 'checkpoint')}
                       for name, p in info.get('processes', {}).items()},
                   'node_diagnostics': {name: diagnostic_numbers(values)
                                        for name, values in run.diagnostics.items()}})
    classes = dict(run.class_names)
    if bag is not None and Path(bag).exists():
        classes = bag_class_names(bag) or classes
        if truth is None:
            truth = read_ground_truth(bag, set(run.detections) | set(run.masks))
        result.update(score_accuracy(
            truth, run.detections if 'detection' in run.receipts else None,
            run.masks if 'segmentation' in run.receipts else None,
            classes.get('detection', ()), classes.get('segmentation', ())))
    else:
        truth = None
    return result, timing, truth, classes


def _unscored(keys: tuple, reason: str) -> dict:
    return {**dict.fromkeys(keys), 'reason': reason}


def score_tracks(run, truth: TrackTruth | None, classes: dict) -> tuple:
    """
    Score a run's tracks and ground positions (see :mod:`.tracking_scores`).

    :param run: a :class:`mtl_perception.replay.run_files.RecordedRun`.
    :param truth: the input bag's :class:`TrackTruth` (None without a bag).
    :param classes: ``{'detection': [names], ...}``.
    :return: ``({'tracking': {TRACKING_KEYS..., 'per_class', 'reason': None}, 'ground_error_m':
        {GROUND_KEYS..., 'gate_m', 'per_class', 'reason': None}}, GroundMatches or None)``;
        what cannot be scored has every figure None and ``reason`` saying why.
    """
    names = list(classes.get('detection', ()))
    tracked = any(any(ids) for ids in run.track_ids.values())
    if 'detection' not in run.receipts:
        reason = 'no detection output'
        return {'tracking': _unscored(TRACKING_KEYS, reason),
                'ground_error_m': _unscored(GROUND_KEYS, reason)}, None
    truth = truth or TrackTruth()
    if not any(len(entry[2]) for entry in truth.detections.values()):
        tracking = _unscored(TRACKING_KEYS, 'the bag has no ground-truth track ids (a synthetic '
                             'flight from before ground_truth_version 2, or no flight)')
    elif not tracked:
        tracking = _unscored(TRACKING_KEYS, 'the node published no track ids (every '
                             'Detection2D.id empty)')
    else:
        predictions = {stamp: (boxes, labels, run.track_ids.get(stamp, [''] * len(labels)))
                       for stamp, (boxes, labels, _) in run.detections.items()}
        try:
            tracking = {**score_tracking(truth.detections, predictions, names), 'reason': None}
        except ValueError as error:
            tracking = _unscored(TRACKING_KEYS, f'not scored: {error}')
    matches = None
    if not truth.objects:
        ground = _unscored(GROUND_KEYS, 'the bag has no ground-truth world positions '
                           '(/ground_truth/objects)')
    elif not run.detections_3d:
        ground = _unscored(GROUND_KEYS, 'the node published no 3D detections (detections_3d)'
                           if run.ground_topic is None else 'the node published no 3D '
                           'detections for the frames played')
    else:
        try:
            matches = ground_matches(truth.objects, run.detections_3d, names)
            ground = {**matches.summary(), 'reason': None}
        except ValueError as error:
            ground = _unscored(GROUND_KEYS, f'not scored: {error}')
    return {'tracking': tracking, 'ground_error_m': ground}, matches


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


class _TruthCache:
    """The input bag's ground truth, read once for the frames every round plays."""

    def __init__(self, reader=read_ground_truth) -> None:
        self.reader = reader
        self.bag, self.stamps, self.truth = None, set(), None

    def get(self, bag: Path | None, stamps) -> GroundTruth | TrackTruth | None:
        if bag is None or not Path(bag).exists():
            return None
        stamps = {int(s) for s in stamps}
        if self.truth is None or str(bag) != str(self.bag) or not stamps <= self.stamps:
            self.bag, self.stamps = bag, stamps | (self.stamps if self.bag == bag else set())
            self.truth = self.reader(bag, self.stamps)
        return self.truth


def score_directory(out_dir: Path, *, bag: Path | None = None,
                    image_topic: str | None = None, config: str | None = None,
                    make_plots: bool = True, extra: dict | None = None,
                    order: Sequence[str] = ('multitask', 'baseline')) -> dict:
    """
    Score every run (every round) under ``out_dir``; write report.json / report.md / plots.

    :param bag: the input bag (default: the one run.json names) for ground truth and the
        overlay strip.
    :param image_topic: the input topic of an outside recording (default: found).
    :param config: score only this configuration (default: every one found).
    :return: the report (:func:`mtl_perception.replay.report.build_report`).
    """
    out_dir = Path(out_dir)
    found = find_runs(out_dir, config)
    per_round, first_runs, timings, truth, classes = {}, {}, {}, None, {}
    truth_cache, track_cache, ground_errors = _TruthCache(), _TruthCache(read_track_truth), {}
    for name in [c for c in order if c in found] + [c for c in found if c not in order]:
        per_round[name] = []
        for index, run_dir in enumerate(found[name], start=1):
            LOGGER.info('scoring %s round %d (%s)', name, index, run_dir)
            run = load_run(run_dir, name, image_topic)
            run_bag = bag or run.info.get('bag')
            if run_bag is not None and not Path(run_bag).exists():
                LOGGER.warning('input bag %s not found: no accuracy', run_bag)
                run_bag = None
            bag = bag or run_bag
            played = [s for s, _ in run.frames]
            result, timing, run_truth, run_classes = score_run(
                run, run_bag, truth_cache.get(run_bag, played))
            tracks, matches = score_tracks(run, track_cache.get(run_bag, played), run_classes)
            result.update(tracks)
            result['round'] = int(run.info.get('round', index))
            result['run_dir'] = _relative(run_dir, out_dir)
            per_round[name].append(result)
            truth, classes = truth or run_truth, classes or run_classes
            if index == 1:
                # Round 1 is drawn; later rounds only add figures (their masks are let go).
                first_runs[name], timings[name] = run, timing
                ground_errors[name] = None if matches is None else matches.all_errors()
    frames = max(records[0]['frames_in'] for records in per_round.values())
    first = next(iter(first_runs.values()))
    topic = image_topic or first.info.get('image_topic')
    details = {'image_topic': topic,
               'playback_hz': next((r[0]['playback_hz'] for r in per_round.values()
                                    if r[0].get('playback_hz')), None),
               'plots': {}}
    details.update(extra or {})
    report = build_report(str(bag) if bag else '', frames, per_round, details)
    if make_plots:
        report['plots'] = _plots(out_dir, first_runs, timings, bag, topic, truth, classes,
                                 report, ground_errors)
    write_report(out_dir, report)
    return report


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


def _plots(out_dir: Path, runs: dict, timings: dict, bag, topic, truth, classes,
           report: dict, ground_errors: dict) -> dict:
    made = {}
    made['latency_cdf'] = plots.plot_latency_cdf(timings, out_dir / PLOTS['latency_cdf'])
    made['latency_over_time'] = plots.plot_latency_over_time(
        timings, out_dir / PLOTS['latency_over_time'])
    made['throughput'] = plots.plot_throughput(
        timings, {c: r.frames for c, r in runs.items()}, out_dir / PLOTS['throughput'])
    memory = {c: (plots.memory_series(r.info), (r.info.get('marks_ns') or {}).get(
        'play_start')) for c, r in runs.items()}
    if any(series for (_, series), _ in memory.values()):
        made['memory'] = plots.plot_memory(memory, out_dir / PLOTS['memory'])
    if (report.get('rounds') or 0) > 1:
        made['rounds'] = plots.plot_rounds(report, out_dir / PLOTS['rounds'])
    if any((run.get('tracking') or {}).get('hota') is not None
           for run in report['runs'].values()):
        made['tracking'] = plots.plot_tracking(report, out_dir / PLOTS['tracking'])
    if any(errors is not None and errors.size for errors in ground_errors.values()):
        made['ground_error_cdf'] = plots.plot_ground_error_cdf(
            ground_errors, out_dir / PLOTS['ground_error_cdf'])
    stamps = _strip_stamps(runs)
    if bag and topic and stamps:
        made['overlay_strip'] = plots.overlay_strip(
            Path(bag), topic, runs, truth or GroundTruth(), stamps,
            list(classes.get('detection', [])), out_dir / PLOTS['overlay_strip'])
    return {name: path.name for name, path in made.items()}
