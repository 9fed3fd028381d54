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
The replay report: ratios, target checks, ``report.json``, ``report.md`` and a console table.

``report.json`` holds ``{"bag", "frames", "runs": {config: R}, "ratios": {"throughput",
"memory", "latency_p50", "capacity", "paced_throughput"}, "targets": [...]}``; every ratio is
baseline / multitask except the throughput ones (multitask fps / baseline fps), so > 1
favours the multitask node everywhere.

Throughput means saturated throughput: ``R.fps`` is the rate at which a configuration
answers while images arrive faster than it can take them (the replay's capacity flood: the
bag's images every 10 ms for 8 s; for the baseline the slower of its two nodes, as if they
worked in step, which is the figure most favourable to it). At a rate that leaves a node
idle time its output rate is just the input rate, so the paced run says nothing about
speed; it gives the latency percentiles, frames in/out/dropped, CPU and accuracy, and
``R.paced_fps`` (frames with every output per second of that run). Without a flood (score
only, ``--capacity-seconds 0``) ``R.fps`` falls back to the paced figure and
``R.fps_source`` says 'paced'.
"""

import json
import math
from pathlib import Path
from typing import Optional

__all__ = ['TARGETS', 'build_report', 'console_table', 'markdown', 'ratios', 'targets',
           'write_report']

# The targets, read from the demo's report.
THROUGHPUT_TARGET = 1.6
MEMORY_TARGET = 1.6
TAIL_TARGET = 1.5
ACCURACY_POINTS = 1.0
TARGETS = {
    'throughput': f'multitask saturated fps >= {THROUGHPUT_TARGET}x baseline saturated fps',
    'memory': f'baseline peak RSS >= {MEMORY_TARGET}x multitask peak RSS',
    'latency_tail': f'multitask p95 latency <= {TAIL_TARGET}x its median',
    'no_frame_lost': 'multitask answers every frame played (the rate leaves it idle time)',
    'accuracy': f'multitask mAP50 and mIoU at most {ACCURACY_POINTS:g} point below the '
                'single-task nodes',
}
PLOTS = {'latency_cdf': 'latency_cdf.png', 'latency_over_time': 'latency_over_time.png',
         'throughput': 'throughput.png', 'memory': 'memory.png',
         'overlay_strip': 'overlay_strip.png'}


def _ratio(numerator: Optional[float], denominator: Optional[float]) -> Optional[float]:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return float(numerator) / float(denominator)


def ratios(runs: dict) -> dict:
    """Return the three ratios of the report (None where a run or a figure is missing)."""
    mt, base = runs.get('multitask'), runs.get('baseline')
    if mt is None or base is None:
        return {'throughput': None, 'memory': None, 'latency_p50': None, 'capacity': None,
                'paced_throughput': None}
    return {'throughput': _ratio(mt['fps'], base['fps']),
            'memory': _ratio(base['peak_rss_mb'], mt['peak_rss_mb']),
            'latency_p50': _ratio(base['latency_ms']['p50'], mt['latency_ms']['p50']),
            'capacity': _ratio(mt.get('capacity_fps'), base.get('capacity_fps')),
            'paced_throughput': _ratio(mt.get('paced_fps'), base.get('paced_fps'))}


def _check(name: str, value: str, passed: Optional[bool]) -> dict:
    return {'name': name, 'target': TARGETS[name], 'value': value, 'passed': passed}


def targets(runs: dict, run_ratios: dict) -> list:
    """Return the target checks: ``[{'name', 'target', 'value', 'passed': bool|None}]``."""
    mt, base = runs.get('multitask'), runs.get('baseline')
    checks = []
    for name, key, goal in (('throughput', 'throughput', THROUGHPUT_TARGET),
                            ('memory', 'memory', MEMORY_TARGET)):
        value = run_ratios.get(key)
        checks.append(_check(name, 'n/a' if value is None else f'{value:.2f}x',
                             None if value is None else value >= goal))
    if mt is not None:
        p50, p95 = mt['latency_ms']['p50'], mt['latency_ms']['p95']
        tail = _ratio(p95, p50)
        checks.append(_check('latency_tail', 'n/a' if tail is None else
                             f'p95 {p95:.0f} ms / p50 {p50:.0f} ms = {tail:.2f}x',
                             None if tail is None else tail <= TAIL_TARGET))
        checks.append(_check('no_frame_lost', f'{mt["dropped"]} of {mt["frames_in"]} lost',
                             mt['dropped'] == 0))
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


def build_report(bag: str, frames: int, runs: dict, extra: Optional[dict] = None) -> dict:
    """Return the report dict (``extra`` keys are added at the top level)."""
    run_ratios = ratios(runs)
    report = {'bag': str(bag), 'frames': int(frames), 'runs': runs, 'ratios': run_ratios,
              'targets': targets(runs, run_ratios)}
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


def _rows(report: dict) -> list:
    """Return ``(label, multitask text, baseline text, ratio text)`` rows."""
    runs, run_ratios = report['runs'], report['ratios']

    def cell(config: str, getter, spec: str = '.1f', scale: float = 1.0) -> str:
        run = runs.get(config)
        value = None if run is None else getter(run)
        return _fmt(None if value is None else value * scale, spec)

    def ratio(key: str) -> str:
        return _fmt(run_ratios.get(key), '.2f', 'x') if key else ''

    table = [
        ('frames in', lambda r: r['frames_in'], 'd', 1, ''),
        ('frames out', lambda r: r['frames_out'], 'd', 1, ''),
        ('dropped', lambda r: r['dropped'], 'd', 1, ''),
        ('throughput (fps)', lambda r: r['fps'], '.2f', 1, 'throughput'),
        ('paced output (fps)', lambda r: r.get('paced_fps'), '.2f', 1, 'paced_throughput'),
        ('latency p50 (ms)', lambda r: r['latency_ms']['p50'], '.0f', 1, 'latency_p50'),
        ('latency p95 (ms)', lambda r: r['latency_ms']['p95'], '.0f', 1, ''),
        ('latency max (ms)', lambda r: r['latency_ms']['max'], '.0f', 1, ''),
        ('peak RSS (MB)', lambda r: r['peak_rss_mb'], '.0f', 1, 'memory'),
        ('CPU (% of a core)', lambda r: r['cpu_percent'], '.0f', 1, ''),
        ('mAP50 (%)', lambda r: r['map50'], '.1f', 100, ''),
        ('mIoU (%)', lambda r: r['miou'], '.1f', 100, ''),
    ]
    return [(label, cell('multitask', getter, spec, scale), cell('baseline', getter, spec, scale),
             ratio(key)) for label, getter, spec, scale, key in table]


def console_table(report: dict) -> str:
    """Return the side-by-side table as aligned plain text, then the target checks."""
    header = ('', 'multitask', 'baseline', 'ratio')
    rows = [header] + _rows(report)
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ['  '.join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i])
                       for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, '-' * len(lines[0]))
    for check in report['targets']:
        mark = {True: 'PASS', False: 'FAIL', None: 'n/a '}[check['passed']]
        lines.append(f'[{mark}] {check["target"]}: {check["value"]}')
    return '\n'.join(lines)


def markdown(report: dict) -> str:
    """Return ``report.md``: the table, the target checks, what is measured, the plots."""
    lines = ['# Replay: multitask node vs single-task baseline', '',
             f'Bag `{report["bag"]}`, {report["frames"]} frames']
    playback = report.get('playback_hz')
    if playback:
        lines[-1] += f', played at {playback:.2f} Hz'
    lines += ['', '| | multitask | baseline | ratio (> 1 favours multitask) |',
              '|---|---:|---:|---:|']
    lines += [f'| {label} | {mt} | {base} | {ratio} |'
              for label, mt, base, ratio in _rows(report)]
    lines += ['', '## Targets', '', '| target | value | result |', '|---|---|---|']
    for check in report['targets']:
        result = {True: 'pass', False: '**FAIL**', None: 'n/a'}[check['passed']]
        lines.append(f'| {check["target"]} | {check["value"]} | {result} |')
    lines += ['', '## What is measured', '',
              '- latency: the wall time from the player publishing an image to the recorder '
              'receiving the last of its outputs (detections and mask; for the baseline the '
              'later of its two nodes), matched by header stamp;',
              '- throughput: saturated throughput, what the node (pair) can do flat out: '
              "before the paced playback the bag's images are sent every 10 ms for 8 s "
              '(faster than any configuration answers) and the answers per second of the '
              'slowest output topic are counted; for the baseline that is the pair as if its '
              'nodes worked in step, the figure most favourable to it (at a rate that leaves '
              'a node idle, its output rate is just the input rate);',
              '- paced output: frames with every output / (last output - first publish) in '
              'the paced playback, which also gives latency, drops, CPU and accuracy;',
              '- dropped: frames played that never got every output (replaced in a busy '
              "node's one-frame queue, or lost in transport);",
              '- peak RSS and CPU: the node processes with their children (psutil, every '
              "100 ms; the baseline's two processes summed); CPU is the mean over the "
              'playback, 100 % = one core;',
              '- mAP50 (VOC all-point, IoU 0.5) and mIoU over the frames the node answered, '
              "against the bag's /ground_truth topics."]
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
