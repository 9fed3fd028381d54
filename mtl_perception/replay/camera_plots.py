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
The multi-camera report's plots (matplotlib ``Figure``, no pyplot, no display).

``plot_camera_summary``: aggregate saturated throughput and peak memory per run (bars: the
medians; dots: the rounds) and each camera's latency p50 with its p95; ``plot_camera_latency``:
the latency CDF of every camera of every run (round 1); ``plot_segmentation_every``: the shared
node's saturated detection throughput per segmentation_every value, the measured gain against
its bound per round, and the masks published per frame against 1/N.
"""

from pathlib import Path

from matplotlib.figure import Figure
import numpy as np

__all__ = ['plot_camera_latency', 'plot_camera_summary', 'plot_segmentation_every']

COLOURS = ('tab:blue', 'tab:green', 'tab:orange', 'tab:purple', 'tab:red', 'tab:brown')
STYLES = ('-', '--', ':', '-.')


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path


def _bars_with_rounds(axes, runs: dict, key: str, title: str) -> None:
    names = list(runs)
    for index, name in enumerate(names):
        run = runs[name]
        colour = COLOURS[index % len(COLOURS)]
        if run.get(key) is not None:
            axes.bar(index, run[key], color=colour, alpha=0.6)
            axes.text(index, run[key], f'{run[key]:.1f}', ha='center', va='bottom', fontsize=8)
        points = [r.get(key) for r in run.get('rounds', []) if r.get(key) is not None]
        axes.plot([index] * len(points), points, 'k.', ms=5)
    axes.set_xticks(range(len(names)), [n.replace('_', '\n') for n in names], fontsize=8)
    axes.set_title(title)
    axes.grid(alpha=0.3, axis='y')


def plot_camera_summary(report: dict, path: Path) -> Path:
    """Plot aggregate throughput, peak PSS and per-camera latency of every run."""
    figure = Figure(figsize=(14.0, 4.2))
    grid = figure.subplots(1, 3)
    runs = report['runs']
    _bars_with_rounds(grid[0], runs, 'fps', 'Aggregate saturated throughput (fps)')
    _bars_with_rounds(grid[1], runs, 'peak_pss_mb', 'Peak PSS, processes summed (MB)')
    for index, run in enumerate(runs.values()):
        if run.get('peak_rss_mb') is not None:
            grid[1].plot(index, run['peak_rss_mb'], 'x', color='grey',
                         label='peak RSS' if index == 0 else None)
    if grid[1].get_legend_handles_labels()[0]:
        grid[1].legend(fontsize=8)
    axes = grid[2]
    cameras = report['cameras']
    width = 0.8 / max(len(runs), 1)
    for index, (name, run) in enumerate(runs.items()):
        p50, p95 = [], []
        for camera in cameras:
            latency = ((run.get('cameras') or {}).get(camera) or {}).get('latency_ms') or {}
            p50.append(latency.get('p50') or np.nan)
            p95.append(latency.get('p95') or np.nan)
        x = np.arange(len(cameras)) + (index - (len(runs) - 1) / 2) * width
        axes.bar(x, p50, width, color=COLOURS[index % len(COLOURS)], alpha=0.7, label=name)
        axes.plot(x, p95, '_', color='black', ms=10)
    axes.set_xticks(range(len(cameras)), cameras)
    axes.set(ylabel='ms', title='Latency per camera: p50 (bars), p95 (dashes)')
    axes.grid(alpha=0.3, axis='y')
    axes.legend(fontsize=8)
    return _save(figure, path)


def plot_camera_latency(latencies: dict, path: Path) -> Path:
    """Plot latency CDFs; ``latencies``: run -> camera -> latency ms array (round 1)."""
    figure = Figure(figsize=(6.4, 4.2))
    axes = figure.subplots()
    for index, (name, by_camera) in enumerate(latencies.items()):
        for position, (camera, values) in enumerate(by_camera.items()):
            values = np.sort(np.asarray(values, np.float64))
            if values.size:
                axes.step(values, np.arange(1, values.size + 1) / values.size, where='post',
                          color=COLOURS[index % len(COLOURS)],
                          ls=STYLES[position % len(STYLES)],
                          label=f'{name} {camera} (p50 {np.median(values):.0f} ms)')
    axes.set(xlabel='end-to-end latency (ms)', ylabel='fraction of answered frames',
             title='Latency CDF per camera (round 1)', ylim=(0, 1.02))
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=7, loc='lower right')
    return _save(figure, path)


def plot_segmentation_every(every: dict, path: Path) -> Path:
    """Plot the segmentation_every section: throughput per N, gain against bound, masks."""
    figure = Figure(figsize=(14.0, 4.2))
    grid = figure.subplots(1, 3)
    values = [str(n) for n in every['values']]
    labels = [v if int(v) != every['never'] else f'{v}\n(never)' for v in values]
    axes = grid[0]
    for index, key in enumerate(values):
        median = every['detection_fps'][key]['median']
        if median is not None:
            axes.bar(index, median, color='tab:blue', alpha=0.6)
        points = [r['detection_fps'].get(key) for r in every['per_round']]
        points = [p for p in points if p is not None]
        axes.plot([index] * len(points), points, 'k.', ms=5)
    axes.set_xticks(range(len(values)), labels)
    axes.set(xlabel='segmentation_every', ylabel='fps',
             title='Saturated detection throughput (all cameras)')
    axes.grid(alpha=0.3, axis='y')
    axes = grid[1]
    for index, key in enumerate(every['gain']):
        rounds = [r['round'] for r in every['per_round']]
        colour = COLOURS[index % len(COLOURS)]
        axes.plot(rounds, [r['gain'].get(key) for r in every['per_round']], 'o-',
                  color=colour, label=f'N={key}: measured gain')
        axes.plot(rounds, [r['bound'].get(key) for r in every['per_round']], 's--',
                  color=colour, alpha=0.6, label=f'N={key}: bound 1/(1-f(N-1)/N)')
    axes.axhline(1.0, color='black', lw=0.8)
    axes.set(xlabel='round', title='Gain over segmentation_every 1')
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=8)
    axes = grid[2]
    measured = [every['mask_rate'][key]['median'] for key in values]
    expected = [every['expected_mask_rate'][key] for key in values]
    x = np.arange(len(values))
    axes.bar(x - 0.2, [np.nan if m is None else m for m in measured], 0.4, label='measured')
    axes.bar(x + 0.2, expected, 0.4, label='1/N', alpha=0.6)
    axes.set_xticks(x, labels)
    axes.set(xlabel='segmentation_every', title='Masks per processed frame (paced)')
    axes.grid(alpha=0.3, axis='y')
    axes.legend(fontsize=8)
    return _save(figure, path)
