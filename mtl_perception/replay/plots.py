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
The report's PNG plots (matplotlib, Agg backend) and the overlay image strip.

Figures are made with ``matplotlib.figure.Figure`` directly, not pyplot, so plotting touches
no global backend state and needs no display.

Every plot puts the runs side by side with one colour per configuration; times are seconds
from the run's first published frame, so runs made one after the other line up. The plots of
single runs draw round 1; ``plot_rounds`` draws every round's figures and ratios.
"""

from pathlib import Path
from typing import Sequence

from matplotlib.figure import Figure
from mtl_perception.replay.bag_io import open_bag
from mtl_perception.replay.messages import COMPRESSED_IMAGE, compressed_to_array
from mtl_perception.replay.messages import image_to_array, stamp_to_ns
from mtl_perception.ros.visualization import colorize_mask, draw_detections
import numpy as np

__all__ = ['COLOURS', 'memory_series', 'plot_ground_error_cdf', 'plot_latency_cdf',
           'plot_latency_over_time', 'plot_memory', 'plot_rounds', 'plot_throughput',
           'plot_tracking', 'overlay_strip']

COLOURS = {'multitask': 'tab:blue', 'baseline': 'tab:orange'}


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path


def _legend(axes) -> None:
    """Add a legend when something is labelled (a round without a figure draws nothing)."""
    if axes.get_legend_handles_labels()[0]:
        axes.legend()


def _figure(rows: int = 1, columns: int = 1, size: tuple = (6.4, 4.0)):
    figure = Figure(figsize=size)
    return figure, figure.subplots(rows, columns, squeeze=False)


def plot_latency_cdf(timings: dict, path: Path) -> Path:
    """Plot the end-to-end latency CDF of each run; ``timings``: config -> TimingScore."""
    figure, grid = _figure()
    axes = grid[0][0]
    for config, timing in timings.items():
        values = np.sort(timing.latency_series_ms)
        if values.size:
            axes.step(values, np.arange(1, values.size + 1) / values.size, where='post',
                      label=f'{config} (p50 {np.median(values):.0f} ms)',
                      color=COLOURS.get(config))
    axes.set(xlabel='end-to-end latency (ms)', ylabel='fraction of answered frames',
             title='Latency CDF', ylim=(0, 1.02))
    axes.grid(alpha=0.3)
    axes.legend(loc='lower right')
    return _save(figure, path)


def plot_latency_over_time(timings: dict, path: Path) -> Path:
    """Plot each answered frame's latency against its publish time."""
    figure, grid = _figure()
    axes = grid[0][0]
    for config, timing in timings.items():
        if timing.publish_ns.size and timing.latency_series_ms.size:
            seconds = (timing.publish_ns - timing.publish_ns.min()) / 1e9
            axes.plot(seconds, timing.latency_series_ms, '.-', ms=3, lw=0.8, label=config,
                      color=COLOURS.get(config))
    axes.set(xlabel='frame published (s since the first frame)', ylabel='latency (ms)',
             title='Latency over the run')
    axes.grid(alpha=0.3)
    axes.legend()
    return _save(figure, path)


def plot_throughput(timings: dict, frames: dict, path: Path) -> Path:
    """
    Plot frames published and frames answered over time.

    ``frames``: config -> [(stamp, publish_ns)] played; the gap between a run's two curves
    is what it dropped.
    """
    figure, grid = _figure()
    axes = grid[0][0]
    for config, timing in timings.items():
        published = np.asarray([p for _, p in frames[config] if p is not None], np.int64)
        origin = published.min() if published.size else (
            timing.completion_ns.min() if timing.completion_ns.size else 0)
        colour = COLOURS.get(config)
        if published.size:
            axes.plot((np.sort(published) - origin) / 1e9, np.arange(1, published.size + 1),
                      '--', lw=1, color=colour, label=f'{config}: published')
        done = np.sort(timing.completion_ns)
        axes.plot((done - origin) / 1e9, np.arange(1, done.size + 1), lw=1.5, color=colour,
                  label=f'{config}: answered ({timing.fps:.2f} fps)')
    axes.set(xlabel='time (s since the first frame)', ylabel='frames', title='Throughput')
    axes.grid(alpha=0.3)
    axes.legend()
    return _save(figure, path)


def memory_series(info: dict) -> tuple:
    """
    Return ``(kind, [[time_ns, total MB, {name: MB}], ...])`` of a run.json to plot.

    PSS when the run has it (``memory_mb`` holds a series per kind), else the RSS series of
    a run.json from before PSS was sampled (``memory_mb`` a plain list); ``(None, [])``
    when there is none.
    """
    series = info.get('memory_mb')
    if isinstance(series, dict):
        for kind in ('pss', 'rss'):
            if series.get(kind):
                return kind, series[kind]
        return None, []
    return ('rss', series) if series else (None, [])


def plot_memory(memory: dict, path: Path) -> Path:
    """
    Plot the nodes' summed memory (PSS where measured) over time.

    ``memory``: config -> (``(kind, [[time_ns, total MB, {name: MB}], ...])``, play start ns
    or None), the first item as :func:`memory_series` returns it; time 0 is the run's play
    start (negative: start-up and warm-up).
    """
    figure, grid = _figure()
    axes = grid[0][0]
    kinds = set()
    for config, ((kind, series), play_start) in memory.items():
        if not series:
            continue
        kinds.add(kind.upper())
        times = np.asarray([s[0] for s in series], np.int64)
        origin = play_start if play_start is not None else times.min()
        totals = [s[1] for s in series]
        axes.plot((times - origin) / 1e9, totals, lw=1.5, color=COLOURS.get(config),
                  label=f'{config} (peak {kind.upper()} {max(totals):.0f} MB)')
    label = '/'.join(sorted(kinds)) or 'PSS'
    axes.axvline(0.0, color='grey', lw=0.8, ls=':')
    axes.set(xlabel='time (s since playback started)', ylabel=f'{label} (MB)',
             title=f'Node memory: {label}, processes summed')
    axes.grid(alpha=0.3)
    axes.legend()
    return _save(figure, path)


def plot_rounds(report: dict, path: Path) -> Path:
    """
    Plot every round: saturated fps and peak PSS per configuration, and the per-round ratios.

    ``report``: as :func:`mtl_perception.replay.report.build_report` returns it; the dashed
    lines are the medians the report gives.
    """
    figure, grid = _figure(1, 3, (12.8, 3.8))
    for axes, key, title in ((grid[0][0], 'fps', 'Saturated throughput (fps)'),
                             (grid[0][1], 'peak_pss_mb', 'Peak PSS (MB)')):
        for config, run in report['runs'].items():
            points = [(r['round'], r[key]) for r in run.get('rounds', []) if r.get(key)]
            if points:
                axes.plot(*zip(*points), 'o-', color=COLOURS.get(config), label=config)
                axes.axhline(run[key], color=COLOURS.get(config), lw=0.8, ls='--')
        axes.set(xlabel='round', title=title)
        axes.grid(alpha=0.3)
        _legend(axes)
    axes = grid[0][2]
    for key, label, colour in (('throughput', 'throughput', 'tab:green'),
                               ('memory', 'memory (PSS)', 'tab:purple'),
                               ('memory_rss', 'memory (RSS)', 'tab:grey')):
        points = [(r['round'], r[key]) for r in report.get('ratios_per_round', [])
                  if r.get(key) is not None]
        if points:
            axes.plot(*zip(*points), 'o-', color=colour, label=label)
            axes.axhline(report['ratios'][key], color=colour, lw=0.8, ls='--')
    axes.axhline(1.0, color='black', lw=0.8)
    axes.set(xlabel='round', title='Ratios (> 1 favours multitask)')
    axes.grid(alpha=0.3)
    _legend(axes)
    for row in grid:
        for each in row:
            each.xaxis.get_major_locator().set_params(integer=True)
    return _save(figure, path)


def plot_tracking(report: dict, path: Path) -> Path:
    """
    Plot each configuration's tracking scores: HOTA, IDF1, MOTA (%) and ID switches.

    ``report``: as :func:`mtl_perception.replay.report.build_report` returns it; a
    configuration without scores (``tracking.reason`` set) is left out.
    """
    figure, grid = _figure(1, 2, (10.0, 3.8))
    runs = {config: run['tracking'] for config, run in report['runs'].items()
            if (run.get('tracking') or {}).get('hota') is not None}
    keys = (('hota', 'HOTA'), ('idf1', 'IDF1'), ('mota', 'MOTA'))
    width = 0.8 / max(len(runs), 1)
    axes = grid[0][0]
    for index, (config, tracking) in enumerate(runs.items()):
        offsets = np.arange(len(keys)) + (index - (len(runs) - 1) / 2) * width
        axes.bar(offsets, [100.0 * tracking[key] for key, _ in keys], width,
                 color=COLOURS.get(config), label=config)
    axes.set_xticks(np.arange(len(keys)), [label for _, label in keys])
    axes.axhline(0.0, color='black', lw=0.8)
    axes.set(ylabel='%', title='Tracking (higher is better)',
             ylim=(min(0.0, axes.get_ylim()[0]), 100.0))
    axes.grid(alpha=0.3, axis='y')
    _legend(axes)
    axes = grid[0][1]
    names = list(runs)
    axes.bar(np.arange(len(names)), [runs[c]['id_switches_per_100_frames'] for c in names],
             0.6, color=[COLOURS.get(c) for c in names])
    axes.set_xticks(np.arange(len(names)), names)
    axes.set(ylabel='per 100 frames', title='ID switches (lower is better)')
    axes.grid(alpha=0.3, axis='y')
    return _save(figure, path)


def plot_ground_error_cdf(errors: dict, path: Path) -> Path:
    """Plot the CDF of the ground-position errors; ``errors``: config -> metres [K] or None."""
    figure, grid = _figure()
    axes = grid[0][0]
    for config, values in errors.items():
        values = np.sort(np.asarray(values if values is not None else [], np.float64))
        if values.size:
            axes.step(values, np.arange(1, values.size + 1) / values.size, where='post',
                      label=f'{config} (median {np.median(values):.2f} m, n={values.size})',
                      color=COLOURS.get(config))
    axes.set(xlabel='ground position error (m)', ylabel='fraction of matched objects',
             title='Ground position error CDF', ylim=(0, 1.02))
    axes.set_xlim(left=0.0)
    axes.grid(alpha=0.3)
    _legend(axes)
    return _save(figure, path)


def _read_images(bag_path: Path, topic: str, stamps: set) -> dict:
    images = {}
    with open_bag(bag_path) as bag:
        msgtype = bag.topics()[topic].msgtype
        for _, _, msg in bag.messages(topic):
            stamp = stamp_to_ns(msg.header.stamp)
            if stamp in stamps:
                images[stamp] = compressed_to_array(msg, 'rgb8') \
                    if msgtype == COMPRESSED_IMAGE else image_to_array(msg)
                if images[stamp].ndim == 2:
                    images[stamp] = np.repeat(images[stamp][..., None], 3, axis=2)
            if len(images) == len(stamps):
                break
    return images


def _overlay(image: np.ndarray, detections, mask, class_names: list) -> np.ndarray:
    canvas = image
    if mask is not None:
        colours = colorize_mask(mask).astype(np.float32)
        canvas = (0.55 * image + 0.45 * colours).astype(np.uint8)
    if detections is not None:
        boxes, names, scores = detections
        known = list(class_names)
        for name in names:
            if name not in known:
                known.append(name)
        labels = np.asarray([known.index(n) for n in names], np.int64)
        canvas = draw_detections(np.ascontiguousarray(canvas), boxes, scores, labels, known)
    return canvas


def overlay_strip(bag_path: Path, image_topic: str, runs: dict, truth, stamps: Sequence[int],
                  class_names: list, path: Path) -> Path:
    """
    Draw a few frames: each run's boxes and mask colours, and the ground truth, side by side.

    ``runs``: config -> RecordedRun; ``truth``: GroundTruth; ``stamps``: the frames to show.
    """
    images = _read_images(bag_path, image_topic, set(stamps))
    stamps = [s for s in stamps if s in images]
    columns = list(runs) + ['ground truth']
    figure, axes = _figure(len(stamps), len(columns),
                           (3.2 * len(columns), 2.5 * len(stamps)))
    for row, stamp in enumerate(stamps):
        for column, name in enumerate(columns):
            if name == 'ground truth':
                gt = truth.detections.get(stamp)
                detections = None if gt is None else (gt[0], gt[1], np.ones(len(gt[1])))
                tile = _overlay(images[stamp], detections, truth.masks.get(stamp), class_names)
            else:
                run = runs[name]
                tile = _overlay(images[stamp], run.detections.get(stamp), run.masks.get(stamp),
                                class_names)
            axes[row][column].imshow(tile)
            axes[row][column].set_axis_off()
            if row == 0:
                axes[row][column].set_title(name)
    return _save(figure, path)
