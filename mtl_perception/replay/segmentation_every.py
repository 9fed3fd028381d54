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
What segmentation_every buys: the measured gain against the bound the work split allows.

The shared node runs at several ``segmentation_every`` values N (1, some between, and a
"never" value such as 10000); detection runs on every frame, the mask on every Nth. From the
aggregate saturated DETECTION throughput thr(N) of each round:

* ``segmentation_share`` f = 1 - thr(1) / thr(never): the share of a frame's work that only
  segmentation costs (its head, mask decoding, upsampling, colouring, publishing);
* ``bound[N]`` = 1 / (1 - f (N - 1) / N): the speed-up when only every Nth frame pays it
  (1 / (1 - 2f/3) for N = 3);
* ``gain[N]`` = thr(N) / thr(1), measured; ``efficiency[N]`` = gain / bound, checked
  against >= GAIN_EFFICIENCY; above BOUND_TOLERANCE the check is not judged (``passed``
  None, ``problem`` says why): skipping the mask cannot save more than the mask costs;
* ``mask_rate[N]``: masks published per processed frame in the paced playback (1/N expected).

Each is formed per round, from that round's runs; medians and spread are reported.
"""

from mtl_perception.inference.measurement import summarize
from mtl_perception.replay.rounds import safe_ratio

__all__ = ['BOUND_TOLERANCE', 'GAIN_EFFICIENCY', 'SHARED', 'check', 'segmentation_every_bound',
           'segmentation_every_round', 'segmentation_every_summary']

GAIN_EFFICIENCY = 0.9
# A gain above the bound by more than this is a measurement problem, not a result.
BOUND_TOLERANCE = 1.1
SHARED = 'shared'


def check(target: str, value: float | None, spread: dict, passed: bool | None) -> dict:
    """Return a report check: what is aimed for, the median, its spread and the verdict."""
    return {'target': target, 'value': value, 'passed': passed,
            'spread': {k: spread.get(k) for k in ('min', 'max', 'n')}}


def segmentation_every_bound(share: float | None, every: int) -> float | None:
    """Return 1 / (1 - f (N - 1) / N): the speed-up when every Nth frame pays the share f."""
    if share is None:
        return None
    remaining = 1.0 - share * (every - 1) / every
    return None if remaining <= 0 else 1.0 / remaining


def segmentation_every_round(detection_fps: dict) -> dict:
    """
    Return one round's figures from ``{N: aggregate saturated detection fps}``.

    The smallest N must be 1 and the largest stands for "never". Returns ``{'segmentation_share':
    f, 'bound': {N: ...}, 'gain': {N: ...}, 'efficiency': {N: ...}}`` for the N between them
    (None where a throughput is missing).
    """
    values = sorted(int(n) for n in detection_fps)
    if len(values) < 2 or values[0] != 1:
        raise ValueError(f'segmentation_every needs 1 and a larger value, got {values}')
    every_frame, never = detection_fps[values[0]], detection_fps[values[-1]]
    ratio = safe_ratio(every_frame, never)
    share = None if ratio is None else 1.0 - ratio
    result = {'segmentation_share': share, 'bound': {}, 'gain': {}, 'efficiency': {}}
    for n in values[1:-1]:
        bound = segmentation_every_bound(share, n)
        gain = safe_ratio(detection_fps[n], every_frame)
        result['bound'][n], result['gain'][n] = bound, gain
        result['efficiency'][n] = safe_ratio(gain, bound)
    return result


def _summary(values) -> dict:
    return summarize([v for v in values if v is not None])


def segmentation_every_summary(per_round: dict) -> dict | None:
    """
    Return the segmentation_every section (see the module docstring), None without its runs.

    :param per_round: ``{run name: [record, ...]}``; the runs whose records carry a
        ``segmentation_every`` and come from the shared deployment take part when there are at
        least two values, one of them 1.
    """
    by_value = {}
    for records in per_round.values():
        first = records[0] if records else {}
        if first.get('deployment') == SHARED and first.get('segmentation_every'):
            by_value[int(first['segmentation_every'])] = records
    values = sorted(by_value)
    if len(values) < 2 or values[0] != 1:
        return None
    count = min(len(records) for records in by_value.values())
    rounds = []
    for index in range(count):
        fps = {n: by_value[n][index].get('detection_fps') for n in values}
        rounds.append({'round': by_value[1][index].get('round', index + 1),
                       'detection_fps': fps, **segmentation_every_round(fps)})
    middle = values[1:-1]
    efficiency = {n: _summary(r['efficiency'][n] for r in rounds) for n in middle}
    checks = {}
    for n in middle:
        value = efficiency[n]['median']
        checks[str(n)] = check(f'segmentation_every {n}: measured gain >= {GAIN_EFFICIENCY:g} x '
                               'the bound (median over rounds of gain / bound)', value,
                               efficiency[n], None if value is None else
                               value >= GAIN_EFFICIENCY)
        if value is not None and value > BOUND_TOLERANCE:
            # Skipping the mask cannot save more than the mask costs: load fell unevenly.
            checks[str(n)].update(passed=None, problem=(
                f'gain {value:.2f}x the bound, above {BOUND_TOLERANCE:g}x: not a result (other '
                'load fell on some runs, or f is mismeasured); re-run on a quiet machine or '
                'with more rounds'))
    mask_rates = {n: [r.get('mask_rate') for r in by_value[n]] for n in values}
    return {
        'values': values, 'never': values[-1],
        'detection_fps': {str(n): _summary(r.get('detection_fps') for r in by_value[n])
                          for n in values},
        'segmentation_share': _summary(r['segmentation_share'] for r in rounds),
        'bound': {str(n): _summary(r['bound'][n] for r in rounds) for n in middle},
        'gain': {str(n): _summary(r['gain'][n] for r in rounds) for n in middle},
        'efficiency': {str(n): efficiency[n] for n in middle},
        'mask_rate': {str(n): _summary(mask_rates[n]) for n in values},
        'expected_mask_rate': {str(n): 1.0 / n for n in values},
        'per_round': [{**r, 'detection_fps': {str(k): v for k, v in r['detection_fps'].items()},
                       **{key: {str(k): v for k, v in r[key].items()}
                          for key in ('bound', 'gain', 'efficiency')}} for r in rounds],
        'checks': checks}
