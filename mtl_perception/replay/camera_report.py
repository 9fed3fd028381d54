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
The multi-camera report: deployments compared, segmentation_every measured (no rclpy).

``report.json`` of a multi-camera replay::

    {"kind": "multicamera", "bag", "cameras": [names], "frames": per camera, "rounds": N,
     "runs": {run: R},                 # R: medians over rounds (camera_scoring), R["rounds"]
     "comparison": {                   # when shared and multitask_per_camera both ran
        "ratios": {name: median over rounds}, "ratio_spread": {name: summary},
        "ratios_per_round": [{"round", name: ratio}], "figures": {name: what it divides},
        "checks": {"memory": check, "throughput": check}},
     "segmentation_every": {...},      # when the shared node ran at several values
     "load_average": {...}, "playback_hz", "plots": {...}}

Comparison. Every ratio is the shared node over another deployment, formed per round from
that round's runs; the report gives the median over rounds with its spread. ``memory``:
peak PSS(shared) / peak PSS(multitask_per_camera), checked against <= MEMORY_TARGET (one
loaded network instead of one per camera; PSS, because the per-camera processes share
their libraries); ``throughput``: aggregate saturated fps (sum over cameras while every camera
is flooded), shared over multitask_per_camera, checked against >= THROUGHPUT_TARGET;
``memory_rss``, ``latency_p50`` (< 1: the shared node answers sooner) and the ratios against
baseline_per_camera (``memory_baseline``, ``throughput_baseline``) beside them.

segmentation_every. The shared node ran at ``values`` (1 and a "never" value, here 10000,
plus values between). From the aggregate saturated DETECTION throughput of each round:
``segmentation_share`` f = 1 - thr(1) / thr(never), the share of a frame's work that only
segmentation costs (its head, mask decoding, upsampling, colouring, publishing);
``bound[N]`` = 1 / (1 - f (N - 1) / N), the speed-up when only every Nth frame pays it
(1 / (1 - 2f/3) for N = 3); ``gain[N]`` = thr(N) / thr(1), measured; ``efficiency[N]`` =
gain / bound, checked against >= GAIN_EFFICIENCY; ``mask_rate[N]``: masks published per
processed frame in the paced playback (1/N expected). Each is formed per round; medians and
spread are reported.
"""

import json
import math
from pathlib import Path

from mtl_perception.inference.measurement import summarize
from mtl_perception.replay.rounds import load_average_summary, median_record, safe_ratio
from mtl_perception.replay.segmentation_every import check, GAIN_EFFICIENCY, SHARED
from mtl_perception.replay.segmentation_every import segmentation_every_summary

__all__ = ['COMPARISON_FIGURES', 'GAIN_EFFICIENCY', 'MEMORY_TARGET', 'PLOTS',
           'THROUGHPUT_TARGET', 'build_camera_report', 'camera_console', 'camera_markdown',
           'combine_camera_rounds', 'compare_deployments', 'write_camera_report']

MEMORY_TARGET = 0.6
THROUGHPUT_TARGET = 1.0
PER_CAMERA, BASELINE = 'multitask_per_camera', 'baseline_per_camera'
COMPARISON_FIGURES = {
    'memory': 'shared / multitask_per_camera peak PSS',
    'memory_rss': 'shared / multitask_per_camera peak RSS',
    'throughput': 'shared / multitask_per_camera aggregate saturated fps',
    'latency_p50': 'shared / multitask_per_camera median latency',
    'memory_baseline': 'shared / baseline_per_camera peak PSS',
    'throughput_baseline': 'shared / baseline_per_camera aggregate saturated fps',
}
ROUND_KEYS = ('round', 'run_dir', 'frames_in', 'frames_out', 'dropped', 'fps', 'detection_fps',
              'paced_fps', 'latency_ms', 'peak_rss_mb', 'peak_uss_mb', 'peak_pss_mb',
              'cpu_percent', 'mask_rate', 'map50', 'miou', 'load_average')
PLOTS = {'summary': 'multicamera.png', 'latency': 'multicamera_latency.png',
         'segmentation_every': 'segmentation_every.png'}


def combine_camera_rounds(records) -> dict:
    """Return a run's R: the medians over its rounds plus ``rounds`` (each round's figures)."""
    if not records:
        raise ValueError('a run needs at least one round')
    combined = median_record(records)
    combined['rounds'] = [{key: record.get(key, index if key == 'round' else None)
                           for key in ROUND_KEYS}
                          for index, record in enumerate(records, start=1)]
    return combined


def _p50(record: dict | None) -> float | None:
    return None if record is None else (record.get('latency_ms') or {}).get('p50')


def compare_deployments(per_round: dict) -> dict | None:
    """
    Return the comparison of the deployments (see the module docstring), None without both.

    :param per_round: ``{run name: [record of round 1, round 2, ...]}``; ``shared`` and
        ``multitask_per_camera`` are needed, ``baseline_per_camera`` is used when present.
    """
    shared, per_camera = per_round.get(SHARED) or [], per_round.get(PER_CAMERA) or []
    if not shared or not per_camera:
        return None
    baseline = per_round.get(BASELINE) or []
    paired = []
    for index, (mine, theirs) in enumerate(zip(shared, per_camera)):
        pair = baseline[index] if index < len(baseline) else None
        paired.append({
            'round': mine.get('round', index + 1),
            'memory': safe_ratio(mine.get('peak_pss_mb'), theirs.get('peak_pss_mb')),
            'memory_rss': safe_ratio(mine.get('peak_rss_mb'), theirs.get('peak_rss_mb')),
            'throughput': safe_ratio(mine.get('fps'), theirs.get('fps')),
            'latency_p50': safe_ratio(_p50(mine), _p50(theirs)),
            'memory_baseline': safe_ratio(mine.get('peak_pss_mb'),
                                          None if pair is None else pair.get('peak_pss_mb')),
            'throughput_baseline': safe_ratio(mine.get('fps'),
                                              None if pair is None else pair.get('fps'))})
    spread = {name: summarize([r[name] for r in paired if r[name] is not None])
              for name in COMPARISON_FIGURES}
    ratios = {name: spread[name]['median'] for name in COMPARISON_FIGURES}
    memory, throughput = ratios['memory'], ratios['throughput']
    checks = {
        'memory': check(f'peak PSS shared / multitask_per_camera <= {MEMORY_TARGET:g} '
                        '(median over rounds)', memory, spread['memory'],
                        None if memory is None else memory <= MEMORY_TARGET),
        'throughput': check(f'aggregate saturated fps shared / multitask_per_camera >= '
                            f'{THROUGHPUT_TARGET:g} (median over rounds)', throughput,
                            spread['throughput'],
                            None if throughput is None else throughput >= THROUGHPUT_TARGET)}
    return {'figures': dict(COMPARISON_FIGURES), 'ratios': ratios, 'ratio_spread': spread,
            'ratios_per_round': paired, 'checks': checks}


def build_camera_report(bag: str, cameras, per_round: dict, extra: dict | None = None) -> dict:
    """
    Return the multi-camera report dict (see the module docstring).

    :param cameras: the camera names, in order.
    :param per_round: ``{run name: [record of round 1, ...]}`` as
        :func:`mtl_perception.replay.camera_scoring.score_camera_run` makes them.
    """
    runs = {name: combine_camera_rounds(records) for name, records in per_round.items()}
    frames = max((max(c['frames_in'] for c in r[0]['cameras'].values())
                  for r in per_round.values() if r and r[0].get('cameras')), default=0)
    report = {'kind': 'multicamera', 'bag': str(bag), 'cameras': list(cameras),
              'frames': int(frames),
              'rounds': max((len(records) for records in per_round.values()), default=0),
              'runs': runs, 'load_average': load_average_summary(per_round),
              'playback_hz': next((r[0].get('playback_hz') for r in per_round.values()
                                   if r and r[0].get('playback_hz')), None),
              'plots': {}}
    comparison = compare_deployments(per_round)
    if comparison is not None:
        report['comparison'] = comparison
    every = segmentation_every_summary(per_round)
    if every is not None:
        report['segmentation_every'] = every
    report.update(extra or {})
    return report


def _fmt(value, spec: str = '.1f', suffix: str = '') -> str:
    return 'n/a' if value is None else f'{value:{spec}}{suffix}'


def _range(summary: dict | None) -> str:
    if not summary or (summary.get('n') or 0) < 2:
        return ''
    return f'{summary["min"]:.2f}-{summary["max"]:.2f}'


def _run_rows(report: dict) -> tuple:
    names = list(report['runs'])
    table = [
        ('aggregate saturated throughput (fps)', lambda r: r.get('fps'), '.2f', 1),
        ('saturated detection throughput (fps)', lambda r: r.get('detection_fps'), '.2f', 1),
        ('paced output (fps, all cameras)', lambda r: r.get('paced_fps'), '.2f', 1),
        ('latency p50 (ms, all cameras)', lambda r: (r.get('latency_ms') or {}).get('p50'),
         '.0f', 1),
        ('latency p95 (ms, all cameras)', lambda r: (r.get('latency_ms') or {}).get('p95'),
         '.0f', 1),
        ('frames in (all cameras)', lambda r: r.get('frames_in'), 'g', 1),
        ('frames lost (paced)', lambda r: r.get('dropped'), 'g', 1),
        ('masks per processed frame', lambda r: r.get('mask_rate'), '.3f', 1),
        ('peak PSS (MB)', lambda r: r.get('peak_pss_mb'), '.0f', 1),
        ('peak USS (MB)', lambda r: r.get('peak_uss_mb'), '.0f', 1),
        ('peak RSS (MB)', lambda r: r.get('peak_rss_mb'), '.0f', 1),
        ('CPU (% of a core)', lambda r: r.get('cpu_percent'), '.0f', 1),
        ('mAP50 (%, mean over cameras)', lambda r: r.get('map50'), '.1f', 100),
        ('mIoU (%, mean over cameras)', lambda r: r.get('miou'), '.1f', 100),
    ]
    rows = []
    for label, getter, spec, scale in table:
        cells = []
        for name in names:
            value = getter(report['runs'][name])
            cells.append(_fmt(None if value is None else value * scale, spec))
        rows.append((label, *cells))
    return ('', *names), rows


def _camera_rows(report: dict) -> list:
    rows = []
    for name, run in report['runs'].items():
        for camera, figures in (run.get('cameras') or {}).items():
            latency = figures.get('latency_ms') or {}
            scale = {k: None if figures.get(k) is None else 100 * figures[k]
                     for k in ('map50', 'miou')}
            rows.append((name, camera, _fmt(figures.get('fps'), '.2f'),
                         _fmt(latency.get('p50'), '.0f'), _fmt(latency.get('p95'), '.0f'),
                         f'{_fmt(figures.get("dropped"), "g")} / '
                         f'{_fmt(figures.get("frames_in"), "g")}',
                         _fmt(scale['map50']), _fmt(scale['miou'])))
    return rows


def _markdown_table(header, rows) -> list:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    return lines + ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]


def _check_rows(report: dict) -> list:
    checks = list(((report.get('comparison') or {}).get('checks') or {}).values())
    checks += list(((report.get('segmentation_every') or {}).get('checks') or {}).values())
    rows = []
    for entry in checks:
        spread = entry.get('spread') or {}
        # Three decimals: a value just past its limit must not print as the limit itself.
        text = _fmt(entry['value'], '.3f', 'x')
        if (spread.get('n') or 0) > 1:
            text += f' (rounds {spread["min"]:.3f}-{spread["max"]:.3f}x, n={spread["n"]})'
        if entry.get('problem'):
            text += f'; {entry["problem"]}'
        rows.append((entry['target'], text,
                     {True: 'pass', False: '**FAIL**', None: 'n/a'}[entry['passed']]))
    return rows


def _every_rows(every: dict) -> list:
    rows = []
    for n in every['values']:
        key = str(n)
        gain, bound = every['gain'].get(key) or {}, every['bound'].get(key) or {}
        efficiency = every['efficiency'].get(key) or {}
        rows.append((key if n != every['never'] else f'{key} (never)',
                     _fmt(every['detection_fps'][key]['median'], '.2f'),
                     _fmt(every['mask_rate'][key]['median'], '.3f'),
                     _fmt(every['expected_mask_rate'][key], '.3f'),
                     _fmt(gain.get('median'), '.2f', 'x'), _fmt(bound.get('median'), '.2f', 'x'),
                     _fmt(efficiency.get('median'), '.2f'), _range(efficiency)))
    return rows


def camera_markdown(report: dict) -> str:
    """Return ``report.md`` of a multi-camera replay."""
    rounds = report.get('rounds') or 1
    lines = ['# Multi-camera replay', '',
             f'Bag `{report["bag"]}`: {len(report["cameras"])} cameras '
             f'({", ".join(report["cameras"])}), {report["frames"]} frames per camera']
    if report.get('playback_hz'):
        lines[-1] += f', played at {report["playback_hz"]:.2f} Hz per camera'
    lines[-1] += f'; {rounds} round(s), runs alternating; figures are medians over rounds.'
    header, rows = _run_rows(report)
    lines += [''] + _markdown_table(header, rows)
    comparison = report.get('comparison')
    if comparison:
        lines += ['', '## Shared node against a node per camera', '']
        lines += _markdown_table(
            ('ratio', 'what it divides', 'median', 'rounds min-max'),
            [(name, text, _fmt(comparison['ratios'][name], '.2f', 'x'),
              _range(comparison['ratio_spread'][name]))
             for name, text in comparison['figures'].items()])
    every = report.get('segmentation_every')
    if every:
        share = every['segmentation_share']
        lines += ['', '## segmentation_every (shared node)', '',
                  f"Segmentation-only share of a frame's work f = 1 - thr(1) / thr("
                  f'{every["never"]}) = {_fmt(share["median"], ".3f")} '
                  f'({_range(share) or "one round"}); bound = 1 / (1 - f (N - 1) / N).', '']
        lines += _markdown_table(('segmentation_every', 'detection fps (saturated)',
                                  'masks per frame', 'expected', 'gain over N=1', 'bound',
                                  'gain / bound', 'rounds min-max'), _every_rows(every))
    lines += ['', '## Per camera', '']
    lines += _markdown_table(('run', 'camera', 'saturated fps', 'latency p50 (ms)',
                              'latency p95 (ms)', 'lost / played', 'mAP50 (%)', 'mIoU (%)'),
                             _camera_rows(report))
    checks = _check_rows(report)
    if checks:
        lines += ['', '## Checks', ''] + _markdown_table(('target', 'value', 'result'), checks)
    load = (report.get('load_average') or {}).get('overall') or {}
    lines += ['', '## What is measured', '',
              "- every run alone (no other run's nodes alive), the runs alternating in rounds; "
              'every run plays the same frames of every camera at the same rate;',
              '- aggregate saturated throughput: every camera flooded at once (its own images '
              'every 10 ms x the number of cameras) for a few seconds; per camera the answers '
              'per second of its slowest required output (detections alone when masks come '
              'every Nth frame), summed over cameras;',
              "- latency: player publish to the last required output of that camera's frame; "
              'frames lost: played frames of a camera never answered;',
              "- memory: the deployment's processes sampled together every 100 ms, peak of "
              'the per-sample sum; ratios on PSS (shared pages split between processes);',
              '- mAP50 / mIoU: each camera against its own ground truth, mean over cameras.']
    if load.get('n'):
        lines.append(f'- 1-minute load average during the runs: median {load["median"]:.2f}, '
                     f'{load["min"]:.2f}-{load["max"]:.2f}.')
    plots = [name for name in PLOTS if report.get('plots', {}).get(name)]
    if plots:
        lines += ['', '## Plots', ''] + [f'![{name}]({PLOTS[name]})' for name in plots]
    return '\n'.join(lines) + '\n'


def camera_console(report: dict) -> str:
    """Return the run table and the checks as aligned plain text."""
    header, rows = _run_rows(report)
    table = [header] + rows
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    lines = ['  '.join(str(c).ljust(widths[0]) if i == 0 else str(c).rjust(widths[i])
                       for i, c in enumerate(row)).rstrip() for row in table]
    lines.insert(1, '-' * max(len(line) for line in lines))
    every = report.get('segmentation_every')
    if every:
        share = every['segmentation_share']['median']
        lines.append(f'segmentation share f = {_fmt(share, ".3f")}; ' + ', '.join(
            f'N={key}: gain {_fmt(every["gain"][key]["median"], ".2f")}x, bound '
            f'{_fmt(every["bound"][key]["median"], ".2f")}x' for key in every['gain']))
    for target, value, result in _check_rows(report):
        lines.append(f'[{result.strip("*").upper():4}] {target}: {value}')
    return '\n'.join(lines)


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_camera_report(out_dir: Path, report: dict) -> dict:
    """Write ``report.json`` and ``report.md`` into ``out_dir``; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {'json': out_dir / 'report.json', 'markdown': out_dir / 'report.md'}
    paths['json'].write_text(json.dumps(_json_safe(report), indent=2) + '\n', encoding='utf-8')
    paths['markdown'].write_text(camera_markdown(report), encoding='utf-8')
    return paths
