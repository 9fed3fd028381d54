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
Rounds of a replay: per-round run records, their medians and the per-round ratios.

A replay runs the multitask node and the baseline alternately, each round a complete run.
A configuration's figures are the medians of its rounds' figures; each ratio is formed per
round, from round k's multitask run and round k's baseline run, so drift from other load on
the machine lands on both sides of a ratio alike, and the median over rounds is reported
with its spread (:func:`mtl_perception.inference.measurement.summarize`).
"""

import statistics
from typing import Sequence

from mtl_perception.inference.measurement import summarize

__all__ = ['RATIO_FIGURES', 'ROUND_KEYS', 'combine_rounds', 'load_average_summary',
           'median_record', 'ratios', 'round_ratios', 'safe_ratio']

# What each ratio divides (> 1 favours the multitask node).
RATIO_FIGURES = {
    'throughput': 'multitask / baseline saturated fps',
    'memory': 'baseline / multitask peak PSS',
    'memory_rss': 'baseline / multitask peak RSS',
    'latency_p50': 'baseline / multitask median latency',
    'capacity': 'multitask / baseline saturated fps',
    'paced_throughput': 'multitask / baseline paced output fps',
}
# The figures of one round kept in R['rounds'].
ROUND_KEYS = ('round', 'run_dir', 'frames_in', 'frames_out', 'dropped', 'fps', 'paced_fps',
              'capacity_fps', 'latency_ms', 'peak_rss_mb', 'peak_uss_mb', 'peak_pss_mb',
              'cpu_percent', 'map50', 'miou', 'load_average')
# Keys of a run record that are not medians over rounds.
_NOT_MEDIANS = {'round', 'run_dir', 'load_average'}


def safe_ratio(numerator: float | None, denominator: float | None) -> float | None:
    """Return ``numerator / denominator``, or None when either is missing or it is zero."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return float(numerator) / float(denominator)


def ratios(runs: dict) -> dict:
    """
    Return the ratios of one round (None where a run or a figure is missing).

    :param runs: ``{'multitask': R, 'baseline': R}`` of the same round.
    :return: ``{name: ratio}`` for every name of :data:`RATIO_FIGURES`.
    """
    mt, base = runs.get('multitask'), runs.get('baseline')
    if mt is None or base is None:
        return dict.fromkeys(RATIO_FIGURES)
    return {'throughput': safe_ratio(mt.get('fps'), base.get('fps')),
            'memory': safe_ratio(base.get('peak_pss_mb'), mt.get('peak_pss_mb')),
            'memory_rss': safe_ratio(base.get('peak_rss_mb'), mt.get('peak_rss_mb')),
            'latency_p50': safe_ratio((base.get('latency_ms') or {}).get('p50'),
                                      (mt.get('latency_ms') or {}).get('p50')),
            'capacity': safe_ratio(mt.get('capacity_fps'), base.get('capacity_fps')),
            'paced_throughput': safe_ratio(mt.get('paced_fps'), base.get('paced_fps'))}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def median_record(records: Sequence[dict]) -> dict:
    """
    Return the record of medians over ``records`` (one run record per round).

    Numbers become the median of the rounds that have them (None when none has; an integer
    median stays an int), dicts are combined key by key, anything else is round 1's value;
    an ``exit_code`` is the worst (non-zero) one. ``round``, ``run_dir`` and
    ``load_average`` are left out (they describe a round).
    """
    combined = {}
    keys = [key for record in records for key in record]
    for key in dict.fromkeys(keys):
        if key in _NOT_MEDIANS:
            continue
        values = [record.get(key) for record in records]
        present = [value for value in values if value is not None]
        if key == 'exit_code':
            combined[key] = next((v for v in present if v != 0), present[0] if present else None)
        elif present and all(_is_number(v) for v in present):
            median = statistics.median(present)
            integral = all(isinstance(v, int) for v in present) and float(median).is_integer()
            combined[key] = int(median) if integral else float(median)
        elif present and all(isinstance(v, dict) for v in present):
            combined[key] = median_record(present)
        else:
            combined[key] = present[0] if present else None
    return combined


def combine_rounds(records: Sequence[dict]) -> dict:
    """
    Return a configuration's R: the medians over its rounds plus ``rounds`` (per round).

    :param records: one run record per round, in round order; a record without ``round`` is
        numbered by its position (from 1).
    """
    if not records:
        raise ValueError('a configuration needs at least one round')
    combined = median_record(records)
    combined['rounds'] = [
        {key: record.get(key, index if key == 'round' else None) for key in ROUND_KEYS}
        for index, record in enumerate(records, start=1)]
    return combined


def round_ratios(per_round: dict) -> list:
    """
    Return ``[{'round': k, name: ratio, ...}]``: round k's multitask run against round k's.

    :param per_round: ``{config: [R of round 1, R of round 2, ...]}``; only rounds that both
        configurations completed are paired.
    """
    multitask, baseline = per_round.get('multitask') or [], per_round.get('baseline') or []
    paired = []
    for index, (mt, base) in enumerate(zip(multitask, baseline), start=1):
        paired.append({'round': mt.get('round', index),
                       **ratios({'multitask': mt, 'baseline': base})})
    return paired


def load_average_summary(per_round: dict) -> dict:
    """
    Return the 1-minute load average around each round and over all of them.

    Each run records the load average when it starts (before its nodes) and when it ends.
    :return: ``{'rounds': [{'round': k, 'start': first run's start, 'end': last run's end}],
        'overall': summarize(every value recorded)}``.
    """
    count = max((len(records) for records in per_round.values()), default=0)
    rounds, values = [], []
    for index in range(count):
        loads = [(records[index].get('load_average') or {}) for records in per_round.values()
                 if index < len(records)]
        values += [load.get(key) for load in loads for key in ('start', 'end')]
        rounds.append({'round': index + 1, 'start': loads[0].get('start'),
                       'end': loads[-1].get('end')})
    return {'rounds': rounds, 'overall': summarize([v for v in values if v is not None])}
