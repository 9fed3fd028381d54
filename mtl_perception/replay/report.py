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
The replay report: rounds, ratios, target checks, ``report.json``, ``report.md``, a table.

A replay measures each configuration in rounds, alternating (multitask, baseline, multitask,
baseline, ...), each round a complete run. ``report.json``::

    {"bag", "frames", "rounds": N,
     "runs": {config: R},                # R: the median over rounds, plus R["rounds"]
     "ratios": {"throughput", "memory", "memory_rss", "latency_p50", "capacity",
                "paced_throughput"},     # median over rounds of the per-round ratio
     "ratio_spread": {name: {"median", "min", "max", "q1", "q3", "n"}},
     "ratios_per_round": [{"round": k, name: ratio, ...}],
     "load_average": {"rounds": [{"round", "start", "end"}], "overall": {summary}},
     "checks": {"throughput": {"limit", "tolerance", "value", "ok", "rounds_over",
                               "problem"}},   # the throughput ratio against the GFLOPs ratio
     "targets": [{"name", "target", "value", "passed"}], ...}

``R`` keeps one run's keys (``frames_in``, ``frames_out``, ``dropped``, ``fps``,
``paced_fps``, ``capacity_fps``, ``latency_ms`` {p50, p95, max}, ``peak_rss_mb``,
``peak_uss_mb``, ``peak_pss_mb``, ``cpu_percent``, ``map50``, ``miou``, ``processes``,
``tracking``, ``ground_error_m``, ...), each number the median of its per-round values (text
and lists: round 1's), and
``R.rounds`` lists every round's own figures (:data:`ROUND_KEYS`). Accuracy is scored in every
round and its median reported; the rounds replay the same frames, so their accuracy differs
only by the frames a node dropped.

Tracks and ground positions (:mod:`mtl_perception.replay.tracking_scores`), where the node
publishes track ids and ``detections_3d`` and the bag holds their ground truth::

    R["tracking"] = {"hota", "deta", "assa", "idf1", "mota", "id_switches",
                     "id_switches_per_100_frames", "frames", "gt_tracks", "predicted_tracks",
                     "untracked_predictions", ..., "per_class": {name: {...}}, "reason": null}
    R["ground_error_m"] = {"median", "p90", "mean", "max", "matched", "unmatched_predictions",
                           "unmatched_truth", "frames", "gate_m", "per_class", "reason": null}

Either has every figure null and ``reason`` saying why when it cannot be scored (no ground
truth for it in the bag, or the node published no ids / no 3D detections).

Every ratio is baseline / multitask except the throughput ones (multitask fps / baseline fps),
so > 1 favours the multitask node everywhere. A ratio is formed per round, from round k's
multitask run and round k's baseline run, and the report gives the median over rounds with
its spread. Memory is compared on PSS (``memory``: baseline peak PSS / multitask peak PSS): the
baseline runs two processes that map the same libraries, and RSS counts those pages once per
process while PSS splits them between the processes (see
:mod:`mtl_perception.inference.measurement`); the RSS ratio is kept beside it
(``memory_rss``). A configuration's peak is the peak of the per-sample sum over its processes.

Throughput means saturated throughput: ``R.fps`` is the rate at which a configuration
answers while images arrive faster than it can take them (the replay's capacity flood: the
bag's images every 10 ms for a few seconds; for the baseline the slower of its two nodes, as
if they worked in step, which is the figure most favourable to it). At a rate that leaves a
node idle time its output rate is just the input rate, so the paced run says nothing about
speed; it gives the latency percentiles, frames in/out/dropped, CPU and accuracy, and
``R.paced_fps`` (frames with every output per second of that run). Without a flood (score
only, ``--capacity-seconds 0``) ``R.fps`` falls back to the paced figure and
``R.fps_source`` says 'paced'.
"""

import json
import math
from pathlib import Path

from mtl_perception.inference.measurement import summarize
from mtl_perception.replay.rounds import (combine_rounds, load_average_summary,
                                          RATIO_FIGURES, round_ratios, safe_ratio)

__all__ = ['TARGETS', 'build_report', 'console_table', 'markdown', 'targets', 'write_report']

# The targets, read from the demo's report.
THROUGHPUT_TARGET = 1.6
MEMORY_TARGET = 1.6
TAIL_TARGET = 1.5
ACCURACY_POINTS = 1.0
# A speed ratio may exceed the compute (GFLOPs) ratio by this factor before it is flagged.
LIMIT_TOLERANCE = 1.1
TARGETS = {
    'throughput': f'multitask saturated fps >= {THROUGHPUT_TARGET}x baseline saturated fps '
                  '(median over rounds)',
    'memory': f'baseline peak PSS >= {MEMORY_TARGET}x multitask peak PSS (median over rounds)',
    'latency_tail': f'multitask p95 latency <= {TAIL_TARGET}x its median',
    'no_frame_lost': 'multitask answers every frame played, in every round (the rate leaves '
                     'it idle time)',
    'accuracy': f'multitask mAP50 and mIoU at most {ACCURACY_POINTS:g} point below the '
                'single-task nodes',
}
PLOTS = {'latency_cdf': 'latency_cdf.png', 'latency_over_time': 'latency_over_time.png',
         'throughput': 'throughput.png', 'memory': 'memory.png', 'rounds': 'rounds.png',
         'tracking': 'tracking.png', 'ground_error_cdf': 'ground_error_cdf.png',
         'overlay_strip': 'overlay_strip.png'}


def _check(name: str, value: str, passed: bool | None) -> dict:
    return {'name': name, 'target': TARGETS[name], 'value': value, 'passed': passed}


def _spread_text(spread: dict | None) -> str:
    if not spread or not spread.get('n') or spread['n'] < 2:
        return ''
    return f' (rounds {spread["min"]:.2f}-{spread["max"]:.2f}x, n={spread["n"]})'


def targets(runs: dict, run_ratios: dict, spread: dict | None = None,
            limit: dict | None = None) -> list:
    """
    Return the target checks: ``[{'name', 'target', 'value', 'passed': bool|None}]``.

    A throughput ratio above the compute limit (``compute_limit``) is not judged: it is
    reported as the measurement problem it is, with ``passed`` None.
    """
    mt, base = runs.get('multitask'), runs.get('baseline')
    spread = spread or {}
    checks = []
    for name, key, goal in (('throughput', 'throughput', THROUGHPUT_TARGET),
                            ('memory', 'memory', MEMORY_TARGET)):
        value = run_ratios.get(key)
        text = 'n/a' if value is None else f'{value:.2f}x{_spread_text(spread.get(key))}'
        passed = None if value is None else value >= goal
        if key == 'throughput' and limit is not None and limit.get('ok') is False:
            text, passed = f'not a result: {limit["problem"]}', None
        checks.append(_check(name, text, passed))
    if mt is not None:
        p50, p95 = mt['latency_ms']['p50'], mt['latency_ms']['p95']
        tail = safe_ratio(p95, p50)
        checks.append(_check('latency_tail', 'n/a' if tail is None else
                             f'p95 {p95:.0f} ms / p50 {p50:.0f} ms = {tail:.2f}x',
                             None if tail is None else tail <= TAIL_TARGET))
        dropped = [r['dropped'] for r in mt.get('rounds') or [mt] if r.get('dropped') is not None]
        worst = max(dropped, default=mt['dropped'])
        per_round = '' if len(dropped) < 2 else \
            f' (per round: {", ".join(str(d) for d in dropped)})'
        checks.append(_check('no_frame_lost', f'{worst} of {mt["frames_in"]} lost in the worst '
                             f'round{per_round}', worst == 0))
    if mt is not None and base is not None:
        parts, passed = [], None
        for key, label in (('map50', 'mAP50'), ('miou', 'mIoU')):
            if mt.get(key) is None or base.get(key) is None:
                continue
            delta = 100.0 * (mt[key] - base[key])
            parts.append(f'{label} {delta:+.1f} pt')
            passed = (passed is not False) and delta >= -ACCURACY_POINTS
        checks.append(_check('accuracy', ', '.join(parts) or 'n/a (no ground truth)', passed))
    return checks


def compute_limit(runs: dict, run_ratios: dict, paired: list) -> dict:
    """
    Check the throughput ratio against the compute limit, the GFLOPs ratio of the networks.

    Both configurations share the same cores, so the multitask node cannot be faster than the
    pair by more than the pair's extra compute; a ratio above ``LIMIT_TOLERANCE`` times that
    is a measurement problem (load that fell on one configuration), not a result.

    :return: ``{'limit', 'tolerance', 'value', 'ok', 'rounds_over', 'problem'}``; ``ok``
        None when the GFLOPs are unknown (the networks' cards record them at export).
    """
    mt, base = runs.get('multitask') or {}, runs.get('baseline') or {}
    limit = safe_ratio(base.get('gflops'), mt.get('gflops'))
    value = run_ratios.get('throughput')
    check = {'limit': limit, 'tolerance': LIMIT_TOLERANCE, 'value': value, 'ok': None,
             'rounds_over': [], 'problem': None}
    if limit is None or value is None:
        return check
    bound = LIMIT_TOLERANCE * limit
    check['rounds_over'] = [r['round'] for r in paired
                            if r.get('throughput') is not None and r['throughput'] > bound]
    check['ok'] = value <= bound
    if not check['ok']:
        check['problem'] = (f'median throughput ratio {value:.2f}x is above {LIMIT_TOLERANCE:g}x '
                            f'the GFLOPs ratio {limit:.2f}x: other load fell on one '
                            'configuration; re-run on a quieter machine or with more rounds')
    return check


def build_report(bag: str, frames: int, per_round: dict, extra: dict | None = None) -> dict:
    """
    Return the report dict (see the module docstring).

    :param bag: the input bag.
    :param frames: frames played per run.
    :param per_round: ``{config: [run record of round 1, round 2, ...]}`` (as
        :func:`mtl_perception.replay.evaluation.score_run` makes them); a single record
        instead of a list is one round.
    :param extra: keys added at the top level.
    """
    per_round = {config: list(records) if isinstance(records, (list, tuple)) else [records]
                 for config, records in per_round.items()}
    runs = {config: combine_rounds(records) for config, records in per_round.items()}
    paired = round_ratios(per_round)
    spread = {name: summarize([r[name] for r in paired if r[name] is not None])
              for name in RATIO_FIGURES}
    run_ratios = {name: spread[name]['median'] for name in RATIO_FIGURES}
    limit = compute_limit(runs, run_ratios, paired)
    report = {'bag': str(bag), 'frames': int(frames),
              'rounds': max((len(records) for records in per_round.values()), default=0),
              'runs': runs, 'ratios': run_ratios, 'ratio_spread': spread,
              'ratios_per_round': paired, 'load_average': load_average_summary(per_round),
              'checks': {'throughput': limit},
              'targets': targets(runs, run_ratios, spread, limit)}
    report.update(extra or {})
    return report


def _json_safe(value):
    """Replace NaN / inf (not JSON) by None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _fmt(value, spec: str = '.1f', suffix: str = '') -> str:
    return 'n/a' if value is None else f'{value:{spec}}{suffix}'


def _figure(run: dict, group: str, key: str):
    """Return ``run[group][key]``, None when the run has no such group (an older report)."""
    return (run.get(group) or {}).get(key)


def _rows(report: dict) -> list:
    """Return ``(label, multitask, baseline, ratio, ratio range over rounds)`` text rows."""
    runs, run_ratios = report['runs'], report['ratios']
    spread = report.get('ratio_spread') or {}

    def cell(config: str, getter, spec: str = '.1f', scale: float = 1.0) -> str:
        run = runs.get(config)
        value = None if run is None else getter(run)
        return _fmt(None if value is None else value * scale, spec)

    def ratio(key: str) -> str:
        return _fmt(run_ratios.get(key), '.2f', 'x') if key else ''

    def ratio_range(key: str) -> str:
        summary = spread.get(key) or {}
        if not key or (summary.get('n') or 0) < 2:
            return ''
        return f'{summary["min"]:.2f}-{summary["max"]:.2f}x'

    table = [
        ('frames in', lambda r: r['frames_in'], 'd', 1, ''),
        ('frames out', lambda r: r['frames_out'], 'g', 1, ''),
        ('dropped', lambda r: r['dropped'], 'g', 1, ''),
        ('throughput (fps)', lambda r: r['fps'], '.2f', 1, 'throughput'),
        ('paced output (fps)', lambda r: r.get('paced_fps'), '.2f', 1, 'paced_throughput'),
        ('latency p50 (ms)', lambda r: r['latency_ms']['p50'], '.0f', 1, 'latency_p50'),
        ('latency p95 (ms)', lambda r: r['latency_ms']['p95'], '.0f', 1, ''),
        ('latency max (ms)', lambda r: r['latency_ms']['max'], '.0f', 1, ''),
        ('peak PSS (MB)', lambda r: r.get('peak_pss_mb'), '.0f', 1, 'memory'),
        ('peak USS (MB)', lambda r: r.get('peak_uss_mb'), '.0f', 1, ''),
        ('peak RSS (MB)', lambda r: r.get('peak_rss_mb'), '.0f', 1, 'memory_rss'),
        ('CPU (% of a core)', lambda r: r['cpu_percent'], '.0f', 1, ''),
        ('mAP50 (%)', lambda r: r['map50'], '.1f', 100, ''),
        ('mIoU (%)', lambda r: r['miou'], '.1f', 100, ''),
        ('HOTA (%)', lambda r: _figure(r, 'tracking', 'hota'), '.1f', 100, ''),
        ('IDF1 (%)', lambda r: _figure(r, 'tracking', 'idf1'), '.1f', 100, ''),
        ('MOTA (%)', lambda r: _figure(r, 'tracking', 'mota'), '.1f', 100, ''),
        ('ID switches / 100 frames',
         lambda r: _figure(r, 'tracking', 'id_switches_per_100_frames'), '.2f', 1, ''),
        ('ground error median (m)', lambda r: _figure(r, 'ground_error_m', 'median'), '.2f', 1,
         ''),
        ('ground error p90 (m)', lambda r: _figure(r, 'ground_error_m', 'p90'), '.2f', 1, ''),
    ]
    return [(label, cell('multitask', getter, spec, scale), cell('baseline', getter, spec, scale),
             ratio(key), ratio_range(key)) for label, getter, spec, scale, key in table]


def _ratio_note(report: dict) -> str:
    rounds = report.get('rounds') or 1
    return (f'figures: median over {rounds} round(s); ratio: median over rounds of the '
            'per-round ratio (> 1 favours multitask)\nthroughput ratio on saturated fps; '
            'memory ratio on peak PSS (the RSS ratio beside it for reference)')


def console_table(report: dict) -> str:
    """Return the side-by-side table as aligned plain text, then the target checks."""
    header = ('', 'multitask', 'baseline', 'ratio', 'rounds min-max')
    rows = [header] + _rows(report)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ['  '.join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i])
                       for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, '-' * max(len(line) for line in lines))
    lines.append(_ratio_note(report))
    for check in report['targets']:
        mark = {True: 'PASS', False: 'FAIL', None: 'n/a '}[check['passed']]
        lines.append(f'[{mark}] {check["target"]}: {check["value"]}')
    return '\n'.join(lines)


def _load_text(report: dict) -> str:
    overall = (report.get('load_average') or {}).get('overall') or {}
    if not overall.get('n'):
        return ''
    return (f'1-minute load average during the runs: median {overall["median"]:.2f}, '
            f'{overall["min"]:.2f}-{overall["max"]:.2f}.')


_TRACK_GROUPS = ('tracking', 'ground_error_m')


def _tracking_lines(report: dict) -> list:
    """Return the markdown section on tracks and ground positions (empty when no run has it)."""
    runs = {config: run for config, run in report['runs'].items()
            if any(group in run for group in _TRACK_GROUPS)}
    if not runs:
        return []
    lines = ['', '## Tracks and ground positions', '', '| | tracking | ground positions |',
             '|---|---|---|']
    per_class = {}
    for config, run in runs.items():
        cells = []
        for group in _TRACK_GROUPS:
            figures = run.get(group) or {}
            reason = figures.get('reason') or ('' if figures else 'not scored')
            cells.append(f'n/a: {reason}' if reason else _GROUP_TEXT[group](figures))
            for name, by_class in (figures.get('per_class') or {}).items():
                per_class.setdefault((config, name), {})[group] = _GROUP_TEXT[group](by_class)
        lines.append(f'| {config} | {cells[0]} | {cells[1]} |')
    if per_class:
        lines += ['', '| per class | class | tracking | ground positions |', '|---|---|---|---|']
        lines += [f'| {config} | {name} | {texts.get("tracking", "")} | '
                  f'{texts.get("ground_error_m", "")} |'
                  for (config, name), texts in per_class.items()]
    return lines


def _pct(value):
    return None if value is None else 100.0 * value


def _tracking_text(figures: dict) -> str:
    return (f'HOTA {_fmt(_pct(figures.get("hota")))} %, '
            f'IDF1 {_fmt(_pct(figures.get("idf1")))} %, '
            f'MOTA {_fmt(_pct(figures.get("mota")))} %, '
            f'{_fmt(figures.get("id_switches"), "g")} ID switches in '
            f'{_fmt(figures.get("frames"), "g")} frames')


def _ground_text(figures: dict) -> str:
    return (f'median {_fmt(figures.get("median"), ".2f")} m, '
            f'p90 {_fmt(figures.get("p90"), ".2f")} m over '
            f'{_fmt(figures.get("matched"), "g")} matches; unmatched '
            f'{_fmt(figures.get("unmatched_predictions"), "g")} predicted, '
            f'{_fmt(figures.get("unmatched_truth"), "g")} true')


_GROUP_TEXT = {'tracking': _tracking_text, 'ground_error_m': _ground_text}


def markdown(report: dict) -> str:
    """Return ``report.md``: the table, the target checks, what is measured, the plots."""
    rounds = report.get('rounds') or 1
    lines = ['# Replay: multitask node vs single-task baseline', '',
             f'Bag `{report["bag"]}`, {report["frames"]} frames']
    playback = report.get('playback_hz')
    if playback:
        lines[-1] += f', played at {playback:.2f} Hz'
    lines[-1] += f'; {rounds} round(s), configurations alternating (multitask, baseline, ...).'
    lines += ['', '| | multitask | baseline | ratio (> 1 favours multitask) | '
              'ratio min-max over rounds |', '|---|---:|---:|---:|---:|']
    lines += [f'| {label} | {mt} | {base} | {ratio} | {spread} |'
              for label, mt, base, ratio, spread in _rows(report)]
    lines += ['', f'Each figure is the median over {rounds} round(s); each ratio is the median '
              'over rounds of the per-round ratio (round k multitask against round k '
              'baseline). Which figure each ratio divides:', '']
    lines += [f'- {name}: {figure}' for name, figure in RATIO_FIGURES.items()]
    load = _load_text(report)
    if load:
        lines += ['', load]
    per_round = report.get('ratios_per_round') or []
    if len(per_round) > 1:
        lines += ['', '## Rounds', '', '| round | throughput | memory (PSS) | memory (RSS) | '
                  'latency p50 |', '|---:|---:|---:|---:|---:|']
        lines += [f'| {r["round"]} | {_fmt(r["throughput"], ".2f", "x")} | '
                  f'{_fmt(r["memory"], ".2f", "x")} | {_fmt(r["memory_rss"], ".2f", "x")} | '
                  f'{_fmt(r["latency_p50"], ".2f", "x")} |' for r in per_round]
    lines += _tracking_lines(report)
    lines += ['', '## Targets', '', '| target | value | result |', '|---|---|---|']
    for check in report['targets']:
        result = {True: 'pass', False: '**FAIL**', None: 'n/a'}[check['passed']]
        lines.append(f'| {check["target"]} | {check["value"]} | {result} |')
    lines += ['', '## What is measured', '',
              '- rounds: the configurations run alternately (multitask, baseline, multitask, '
              '...), each run complete (nodes started, warm-up, capacity flood, paced '
              "playback), with no other configuration's nodes alive; every run plays the "
              'same frames at the same rate;',
              '- latency: the wall time from the player publishing an image to the recorder '
              'receiving the last of its outputs (detections and mask; for the baseline the '
              'later of its two nodes), matched by header stamp;',
              '- throughput: saturated throughput, what the node (pair) can do flat out: '
              "before the paced playback the bag's images are sent every 10 ms for a few "
              'seconds (faster than any configuration answers) and the answers per second of '
              'the slowest output topic are counted; for the baseline that is the pair as if '
              'its nodes worked in step, the figure most favourable to it (at a rate that '
              'leaves a node idle, its output rate is just the input rate);',
              '- paced output: frames with every output / (last output - first publish) in '
              'the paced playback, which also gives latency, drops, CPU and accuracy;',
              '- dropped: frames played that never got every output (replaced in a busy '
              "node's one-frame queue, or lost in transport);",
              '- memory: the node processes with their children (psutil, every 100 ms), peak '
              "of the per-sample sum over the configuration's processes: RSS (every resident "
              'page, shared libraries counted once per process), USS (pages only that process '
              'maps) and PSS (shared pages split between the processes mapping them, so PSS '
              'adds up across processes); the memory ratio uses PSS;',
              '- CPU: the mean over the playback, 100 % = one core;',
              '- mAP50 (VOC all-point, IoU 0.5) and mIoU over the frames the node answered, '
              "against the bag's /ground_truth topics, scored in every round (median);",
              '- tracking: HOTA (mean over IoU thresholds 0.05-0.95), IDF1 and MOTA (IoU 0.5) '
              "and ID switches by TrackEval's metrics, per class and over classes, of the "
              "detections' track ids (Detection2D.id) against the ground truth's object ids, "
              'over the frames the node answered; untracked detections (empty id) are left '
              'out;',
              "- ground positions: each detections_3d position matched to the ground truth's "
              'world position of its class in the same frame (one to one, within 3 m, on the '
              'horizontal distance); median and p90 error in metres over the matches.']
    if rounds > 1:
        lines += ['', 'The plots of single runs show round 1 (the runs in `multitask/` and '
                  '`baseline/`; later rounds are in `rounds/<k>/`); `rounds.png` shows every '
                  'round.']
    plots = [name for name in PLOTS if report.get('plots', {}).get(name)]
    if plots:
        lines += ['', '## Plots', '']
        lines += [f'![{name}]({PLOTS[name]})' for name in plots]
    return '\n'.join(lines) + '\n'


def write_report(out_dir: Path, report: dict) -> dict:
    """Write ``report.json`` and ``report.md`` into ``out_dir``; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {'json': out_dir / 'report.json', 'markdown': out_dir / 'report.md'}
    paths['json'].write_text(json.dumps(_json_safe(report), indent=2) + '\n', encoding='utf-8')
    paths['markdown'].write_text(markdown(report), encoding='utf-8')
    return paths
