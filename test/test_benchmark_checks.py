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

"""The benchmark's pure parts: the FLOP-ratio check, the load-check comparison, the table."""

import math
import subprocess
import sys

from mtl_perception.cli.benchmark import format_table
from mtl_perception.inference.benchmark import (
    check_load, check_memory_sharing, check_speed_ratio, compare_runs)
from mtl_perception.inference.measurement import summarize, tree_usage
import psutil
import pytest


def _model(fps: float, pss: float) -> dict:
    return {'params': 10_000_000, 'size_mb': 40.0, 'gflops': 1.0, 'fps': fps,
            'latency_ms': {'p50': 1000 / fps, 'p95': 1100 / fps, 'mean': 1000 / fps},
            'peak_rss_mb': 2 * pss, 'peak_uss_mb': pss / 2, 'peak_pss_mb': pss,
            'peak_rss_hwm_mb': 2 * pss + 1}


def _result(speed: float, flops: float = 1.6, others: int = 0) -> dict:
    """Fabricate a result with the median speed ratio ``speed``."""
    return {
        'arch': 'fake', 'input_size': 300, 'backend': 'torch', 'device': 'cpu', 'threads': 2,
        'warmup': 5, 'iterations_per_round': 6, 'background_load': 0,
        'rounds': [{'round': 1, 'other_cpu_cores': 0.0}, {'round': 2, 'other_cpu_cores': 0.1},
                   {'round': 3, 'other_cpu_cores': 0.05}],
        'models': {'multitask': _model(10.0, 500.0), 'detection': _model(12.0, 400.0),
                   'segmentation': _model(12.0, 400.0)},
        'pair': _model(6.0, 700.0),
        'ratios': {'speed': speed, 'params': 1.6, 'flops': flops, 'memory': 1.4,
                   'memory_rss': 1.9, 'memory_uss': 1.1},
        'ratio_spread': {'speed': summarize([speed - 0.1, speed, speed + 0.1])},
        'checks': {'speed': check_speed_ratio(speed, flops),
                   'memory': check_memory_sharing({'multitask': 0, 'baseline': others}),
                   'load': check_load([0.0, 0.1, 0.05], 2, 2)},
        'load_average': {'before': 0.5, 'after': 1.5, 'per_round': [0.6, 0.9, 1.2]},
        'memory': {'period_s': 0.05, 'deployments': {
            'multitask': {'processes': ['multitask'], 'samples': 40,
                          'shared_library': {'paths': ['/x/libtorch_cpu.so'],
                                             'other_processes': 0}},
            'baseline': {'processes': ['detection', 'segmentation'], 'samples': 40,
                         'shared_library': {'paths': ['/x/libtorch_cpu.so'],
                                            'other_processes': others}}}},
    }


def test_a_speed_ratio_beyond_the_flop_ratio_is_flagged():
    check = check_speed_ratio(2.4, 1.6)
    assert check['ok'] is False and check['limit'] == 1.6 and check['value'] == 2.4
    assert 'FLOP ratio' in check['problem']


@pytest.mark.parametrize('speed', [1.0, 1.6, 1.75])
def test_a_plausible_speed_ratio_passes(speed):
    check = check_speed_ratio(speed, 1.6)
    assert check == {'value': speed, 'limit': 1.6, 'tolerance': 1.1, 'ok': True,
                     'problem': None}


def test_a_missing_ratio_is_not_ok():
    assert check_speed_ratio(math.nan, 1.6)['ok'] is False
    assert check_speed_ratio(2.0, 1.6, tolerance=1.5)['ok'] is True


def test_the_table_shows_a_flagged_ratio_as_a_problem():
    flagged = format_table(_result(speed=2.4))
    assert 'speed   FLAGGED as a measurement problem: ratio 2.40 (2.30-2.50)' in flagged
    assert 'x faster' not in flagged
    fine = format_table(_result(speed=1.5))
    assert 'multitask vs pair (median of 3 rounds, min-max)' in fine
    assert 'speed   1.50x faster (1.40-1.60)' in fine
    assert 'FLAGGED' not in fine
    assert 'memory  1.40x less memory (PSS; RSS 1.90x, USS 1.10x)' in fine
    assert 'load average (1 min): 0.50 before, 1.50 after, 0.60-1.20 over the rounds' in fine
    assert 'missed' not in fine
    missed = _result(speed=1.5)
    missed['models']['detection']['peak_rss_hwm_mb'] = 900.0
    assert 'the samples missed up to 100 MB of a short peak: detection reached 900 MB' \
        in format_table(missed)


def test_memory_shared_with_other_processes_is_flagged():
    assert check_memory_sharing({'multitask': 0, 'baseline': 0}) == {
        'other_processes': {'multitask': 0, 'baseline': 0}, 'ok': True, 'problem': None}
    assert check_memory_sharing({'multitask': None, 'baseline': 0})['ok'] is True
    check = check_memory_sharing({'multitask': 0, 'baseline': 2})
    assert check['ok'] is False and '2 during baseline' in check['problem']
    # Other processes sharing the framework's pages lower PSS: the table says so.
    table = format_table(_result(speed=1.5, others=2))
    assert 'memory  FLAGGED as a measurement problem: ratio 1.40 on PSS' in table
    assert 'x less memory' not in table


def test_load_check_comparison():
    quiet, loaded = _result(1.5), _result(1.59)
    loaded['background_load'] = 1
    check = compare_runs(quiet, loaded)
    assert check['speed_ratio_change'] == pytest.approx(0.06)
    assert check['within_10_percent'] is True and check['background_load'] == 1
    assert check['quiet'] == quiet['ratios'] and check['loaded'] == loaded['ratios']
    assert compare_runs(quiet, _result(1.2))['within_10_percent'] is False
    table = format_table({'quiet': quiet, 'loaded': loaded, 'load_check': check})
    assert 'load check: speed ratio 1.50 quiet, 1.59 loaded (+6.0%, within 10%)' in table


def test_the_measuring_process_does_not_import_torch():
    code = ('import sys; import mtl_perception.inference.benchmark, '
            'mtl_perception.cli.benchmark; print("torch" in sys.modules)')
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.strip() == 'False'


def test_a_loaded_machine_is_flagged():
    assert check_load([0.0, 0.2], 2, 2) == {'max': 0.2, 'limit': 0.25, 'ok': True,
                                            'problem': None}
    # Cores the workers leave free may be used by others.
    assert check_load([1.2], 4, 2)['ok'] is True
    check = check_load([0.1, 1.05], 2, 2)
    assert check['ok'] is False and 'up to 1.05 cores busy' in check['problem']
    result = _result(speed=1.5)
    result['checks']['load'] = check
    table = format_table(result)
    assert 'other processes kept 0.00-0.10 cores busy over the rounds (limit 0.25)' in table
    assert '  FLAGGED: other processes kept up to 1.05 cores busy' in table


def test_memory_kinds_come_from_one_page_walk():
    memory, cpu = tree_usage(psutil.Process())
    assert 0 < memory['uss'] <= memory['pss'] <= memory['rss'] and cpu > 0
