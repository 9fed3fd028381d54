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
Replay rounds: the report's medians, per-round ratios and spread, and the rounds' layout.

The report functions are fed synthetic per-round run records (no bags, no ROS).
"""

import statistics

from mtl_perception.cli.replay import capacity_seconds_per_round, default_rounds
from mtl_perception.replay.report import build_report, console_table, markdown
from mtl_perception.replay.rounds import combine_rounds, median_record, RATIO_FIGURES, ROUND_KEYS
from mtl_perception.replay.run_files import config_tasks, find_rounds, OUTPUT_BAG, round_dir
import pytest


def _record(round_index, fps, pss, rss, p50, dropped=0, miou=0.6):
    return {'round': round_index, 'run_dir': f'r{round_index}', 'frames_in': 10,
            'frames_out': 10 - dropped, 'dropped': dropped, 'fps': fps, 'paced_fps': 5.0,
            'capacity_fps': fps, 'fps_source': 'saturated',
            'latency_ms': {'p50': p50, 'p95': 1.2 * p50, 'max': 2.0 * p50},
            'peak_rss_mb': rss, 'peak_uss_mb': 0.5 * pss, 'peak_pss_mb': pss,
            'cpu_percent': 150.0, 'map50': 0.5, 'miou': miou,
            'processes': {'node': {'peak_pss_mb': pss, 'exit_code': 0, 'checkpoint': 'c'}},
            'load_average': {'start': 0.1 * round_index, 'end': 0.2 * round_index}}


MULTITASK = [_record(1, 90.0, 400.0, 1000.0, 20.0), _record(2, 100.0, 420.0, 1010.0, 22.0),
             _record(3, 80.0, 380.0, 990.0, 19.0, dropped=1, miou=0.61)]
BASELINE = [_record(1, 60.0, 700.0, 2000.0, 30.0), _record(2, 50.0, 740.0, 2050.0, 25.0),
            _record(3, 55.0, 720.0, 1900.0, 28.0)]


def test_a_configurations_figures_are_the_medians_of_its_rounds():
    combined = combine_rounds(MULTITASK)
    for key in ('fps', 'peak_pss_mb', 'peak_rss_mb', 'peak_uss_mb', 'cpu_percent', 'miou',
                'dropped', 'frames_out'):
        assert combined[key] == statistics.median(r[key] for r in MULTITASK), key
    assert combined['latency_ms'] == {'p50': 20.0, 'p95': 24.0, 'max': 40.0}
    assert combined['processes']['node'] == {'peak_pss_mb': 400.0, 'exit_code': 0,
                                             'checkpoint': 'c'}
    assert isinstance(combined['dropped'], int) and combined['fps_source'] == 'saturated'
    assert 'round' not in combined and 'load_average' not in combined
    assert [r['round'] for r in combined['rounds']] == [1, 2, 3]
    assert all(set(r) == set(ROUND_KEYS) for r in combined['rounds'])
    # Missing figures are left out of a median; a failed node's exit code is kept.
    assert median_record([{'x': None, 'exit_code': 0}, {'x': 2, 'exit_code': -2},
                          {'x': 4, 'exit_code': 0}]) == {'x': 3, 'exit_code': -2}
    assert median_record([{'x': 1}, {'x': 2}]) == {'x': 1.5}


def test_ratios_are_medians_of_per_round_ratios_with_their_spread_memory_on_pss():
    report = build_report('bag', 10, {'multitask': MULTITASK, 'baseline': BASELINE})
    assert report['rounds'] == 3
    assert set(report['ratios']) == set(report['ratio_spread']) == set(RATIO_FIGURES)
    per_round = report['ratios_per_round']
    assert [r['round'] for r in per_round] == [1, 2, 3]
    assert [r['throughput'] for r in per_round] == pytest.approx([1.5, 2.0, 80 / 55])
    assert [r['memory'] for r in per_round] == pytest.approx([1.75, 740 / 420, 720 / 380])
    assert [r['memory_rss'] for r in per_round] == pytest.approx(
        [2.0, 2050 / 1010, 1900 / 990])
    assert report['ratios']['throughput'] == pytest.approx(1.5)
    assert report['ratios']['memory'] == pytest.approx(740 / 420)
    assert report['ratios']['memory_rss'] == pytest.approx(2.0)
    assert report['ratios']['latency_p50'] == pytest.approx(statistics.median(
        [30 / 20, 25 / 22, 28 / 19]))
    spread = report['ratio_spread']['throughput']
    assert set(spread) == {'median', 'min', 'max', 'q1', 'q3', 'n'}
    assert (spread['n'], spread['min'], spread['max']) == (3, pytest.approx(80 / 55), 2.0)
    assert report['load_average']['rounds'][1] == {'round': 2, 'start': 0.2, 'end': 0.4}
    assert report['load_average']['overall']['n'] == 12
    # A frame lost in any round fails the target, though the median round lost none.
    checks = {c['name']: c for c in report['targets']}
    assert report['runs']['multitask']['dropped'] == 0
    assert checks['no_frame_lost']['passed'] is False
    assert 'per round: 0, 0, 1' in checks['no_frame_lost']['value']
    assert 'PSS' in checks['memory']['target'] and 'n=3' in checks['memory']['value']
    table = console_table(report)
    assert 'peak PSS (MB)' in table and 'memory ratio on peak PSS' in table
    assert '- memory: baseline / multitask peak PSS' in markdown(report)


def test_unpaired_rounds_are_left_out_of_the_ratios():
    report = build_report('bag', 10, {'multitask': MULTITASK, 'baseline': BASELINE[:2]})
    assert report['ratio_spread']['throughput']['n'] == 2
    assert report['ratios']['throughput'] == pytest.approx(1.75)
    single = build_report('bag', 10, {'multitask': MULTITASK[0]})
    assert single['rounds'] == 1 and single['ratios'] == dict.fromkeys(RATIO_FIGURES)


def test_round_layout_and_defaults(tmp_path):
    assert round_dir(tmp_path, 'baseline') == tmp_path / 'baseline'
    assert round_dir(tmp_path, 'baseline', 3) == tmp_path / 'rounds' / '3' / 'baseline'
    with pytest.raises(ValueError, match='from 1'):
        round_dir(tmp_path, 'baseline', 0)
    for k in (1, 2, 4):
        (round_dir(tmp_path, 'multitask', k) / OUTPUT_BAG).mkdir(parents=True)
    assert find_rounds(tmp_path, 'multitask') == [(1, tmp_path / 'multitask'),
                                                  (2, tmp_path / 'rounds' / '2' / 'multitask')]
    assert find_rounds(tmp_path, 'baseline') == []
    assert config_tasks('baseline') == config_tasks('multitask') == ('detection', 'segmentation')
    assert default_rounds(('multitask', 'baseline')) == 3 and default_rounds(('baseline',)) == 1
    assert capacity_seconds_per_round(1) == 8.0 and capacity_seconds_per_round(3) == 3.0


def test_stale_rounds_of_an_earlier_replay_are_cleared(tmp_path):
    from mtl_perception.replay.runner import clear_stale_rounds
    for k in (1, 2, 3):
        for config in ('multitask', 'baseline'):
            (round_dir(tmp_path, config, k) / OUTPUT_BAG).mkdir(parents=True)
    clear_stale_rounds(tmp_path, ('multitask', 'baseline'), 2)
    assert [k for k, _ in find_rounds(tmp_path, 'baseline')] == [1, 2]
    assert not (tmp_path / 'rounds' / '3').exists()
    clear_stale_rounds(tmp_path, ('multitask', 'baseline'), 1)
    assert not (tmp_path / 'rounds').exists() and (tmp_path / 'multitask').is_dir()
    # Anything a run does not write is not removed.
    (round_dir(tmp_path, 'multitask', 2) / 'notes.txt').parent.mkdir(parents=True)
    (round_dir(tmp_path, 'multitask', 2) / 'notes.txt').write_text('mine')
    with pytest.raises(FileExistsError, match='not a replay run'):
        clear_stale_rounds(tmp_path, ('multitask',), 1)


@pytest.mark.parametrize('gflops,flagged', [((1.0, 1.7), False), ((1.0, 1.2), True),
                                            ((None, 1.85), None)])
def test_a_throughput_ratio_above_the_compute_limit_is_flagged_not_reported(gflops, flagged):
    # Per-round throughput ratios here: 1.5, 2.0, 1.45 (median 1.5).
    multitask = [dict(r, gflops=gflops[0]) for r in MULTITASK]
    baseline = [dict(r, gflops=gflops[1]) for r in BASELINE]
    report = build_report('bag', 10, {'multitask': multitask, 'baseline': baseline})
    check = report['checks']['throughput']
    target = next(t for t in report['targets'] if t['name'] == 'throughput')
    if flagged is None:
        assert check['limit'] is None and check['ok'] is None
        assert target['passed'] is False  # judged as usual: 1.5x < 1.6x
        return
    assert check['limit'] == pytest.approx(gflops[1] / gflops[0])
    assert check['ok'] is (not flagged)
    if flagged:
        assert check['rounds_over'] == [1, 2, 3] and 'GFLOPs ratio' in check['problem']
        assert target['passed'] is None and target['value'].startswith('not a result')
        assert 'not a result' in markdown(report)
    else:
        assert check['rounds_over'] == [2]  # 2.0 > 1.1 x 1.7
        assert target['value'].startswith('1.50x')
