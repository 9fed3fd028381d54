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

"""`mtl-perception benchmark` end to end with a tiny network: the report and its arithmetic."""

import json
import statistics
import subprocess
import sys

import pytest

NAMES = ('multitask', 'detection', 'segmentation')
MODEL_KEYS = {'params': int, 'size_mb': float, 'gflops': float, 'fps': float,
              'peak_rss_mb': float, 'peak_uss_mb': float, 'peak_pss_mb': float}
ROUNDS, ITERATIONS = 3, 5


def _run(repo_root, *args):
    return subprocess.run([sys.executable, '-m', 'mtl_perception.cli.main', 'benchmark',
                           *args], cwd=repo_root, capture_output=True, text=True,
                          timeout=600, check=False)


@pytest.fixture(scope='module')
def report(tmp_path_factory, repo_root):
    path = tmp_path_factory.mktemp('bench') / 'out' / 'bench.json'
    done = _run(repo_root, '--arch', 'resnet18_ssd_fcn', '--input-size', '64',
                '--iterations', str(ITERATIONS), '--rounds', str(ROUNDS), '--warmup', '1',
                '--threads', '1', '--num-classes', '5', '10', '--json', str(path))
    assert done.returncode == 0, done.stderr
    return json.loads(path.read_text()), done


def test_json_shape(report):
    result, _ = report
    assert result['device'] == 'cpu' and result['backend'] == 'torch'
    assert result['input_size'] == 64 and result['threads'] == 1
    assert result['iterations'] == ITERATIONS and result['background_load'] == 0
    # The measuring process never maps torch (it would lower the workers' PSS).
    assert result['parent_imports_torch'] is False
    assert set(result['models']) == set(NAMES)
    for name, model in result['models'].items():
        for key, kind in MODEL_KEYS.items():
            assert isinstance(model[key], kind), (name, key)
            assert model[key] > 0, (name, key)
        assert 0 < model['latency_ms']['p50'] <= model['latency_ms']['p95']
        assert model['torch_imported'] is True and model['threads'] == 1
    for key in MODEL_KEYS:
        assert isinstance(result['pair'][key], MODEL_KEYS[key]), key
    assert set(result['ratios']) == {'speed', 'params', 'flops', 'memory', 'memory_rss',
                                     'memory_uss'}
    assert all(isinstance(v, float) for v in result['ratios'].values())
    assert set(result['ratio_spread']['speed']) == {'median', 'min', 'max', 'q1', 'q3', 'n'}
    assert set(result['checks']['speed']) == {'value', 'limit', 'tolerance', 'ok', 'problem'}
    assert set(result['checks']['memory']) == {'other_processes', 'ok', 'problem'}
    load = result['checks']['load']
    assert load['limit'] == pytest.approx(result['cpu_count'] - 1 + 0.25)
    assert load['max'] == max(r['other_cpu_cores'] for r in result['rounds']) >= 0
    assert load['ok'] is (load['max'] <= load['limit'])


def test_rounds_are_interleaved_and_reported_as_medians(report):
    result, _ = report
    rounds, per_round = result['rounds'], result['iterations_per_round']
    assert len(rounds) == ROUNDS and per_round == -(-ITERATIONS // ROUNDS)
    assert [r['order'] for r in rounds] == [
        ['multitask', 'detection', 'segmentation'], ['detection', 'segmentation', 'multitask'],
        ['segmentation', 'multitask', 'detection']]
    for record in rounds:
        fps = record['fps']
        assert record['pair_fps'] == pytest.approx(
            1 / (1 / fps['detection'] + 1 / fps['segmentation']))
        assert record['speed_ratio'] == pytest.approx(fps['multitask'] / record['pair_fps'])
        for name in NAMES:
            runs = record['latency_ms'][name]
            assert len(runs) == per_round == len(record['cpu_ms'][name])
            assert record['latency_ms_p50'][name] == pytest.approx(statistics.median(runs))
            assert fps[name] == pytest.approx(1000 / record['latency_ms_p50'][name])
            assert record['cpu_ms_p50'][name] == pytest.approx(
                statistics.median(record['cpu_ms'][name]))
        assert record['background_load'] == 0
    for name in NAMES:
        model = result['models'][name]
        per_round_fps = [r['fps'][name] for r in rounds]
        assert model['fps'] == pytest.approx(statistics.median(per_round_fps))
        assert model['fps_spread']['n'] == ROUNDS
        assert model['timed_iterations'] == ROUNDS * per_round
    speeds = [r['speed_ratio'] for r in rounds]
    assert result['ratios']['speed'] == pytest.approx(statistics.median(speeds))
    spread = result['ratio_spread']['speed']
    assert spread['n'] == ROUNDS and spread['min'] <= spread['median'] <= spread['max']
    assert spread['min'] == pytest.approx(min(speeds))
    assert result['pair']['fps'] == pytest.approx(
        statistics.median(r['pair_fps'] for r in rounds))
    load = result['load_average']
    assert set(load) == {'before', 'after', 'per_round'} and len(load['per_round']) == ROUNDS


def test_memory_is_measured_per_deployment(report):
    result, _ = report
    models, pair, ratios = result['models'], result['pair'], result['ratios']
    for name, model in models.items():
        assert model['peak_uss_mb'] <= model['peak_pss_mb'] <= model['peak_rss_mb'], name
        # Sampled from outside, the peak cannot pass the kernel's high-water mark.
        assert model['peak_rss_mb'] <= model['peak_rss_hwm_mb'] * 1.02, name
        assert model['peak_rss_hwm_mb'] >= model['rss_loaded_mb'] > model['rss_start_mb']
    det, seg, multi = models['detection'], models['segmentation'], models['multitask']
    # The pair's peaks are peaks of the summed samples: at most the sum of the peaks.
    for kind in ('rss', 'uss', 'pss'):
        key = f'peak_{kind}_mb'
        assert max(det[key], seg[key]) < pair[key] <= (det[key] + seg[key]) * 1.0001, kind
    # Two interpreters with their own framework state cost more than one.
    assert pair['peak_pss_mb'] > multi['peak_pss_mb']
    # Alive together, the pair shares the libraries' pages: PSS counts them once.
    assert pair['peak_pss_mb'] < pair['peak_rss_mb']
    assert ratios['memory'] == pytest.approx(pair['peak_pss_mb'] / multi['peak_pss_mb'])
    assert ratios['memory_rss'] == pytest.approx(pair['peak_rss_mb'] / multi['peak_rss_mb'])
    assert ratios['memory_uss'] == pytest.approx(pair['peak_uss_mb'] / multi['peak_uss_mb'])
    memory = result['memory']
    assert memory['period_s'] <= 0.1 and memory['runs'] >= 10
    assert memory['deployments']['multitask']['processes'] == ['multitask']
    assert memory['deployments']['baseline']['processes'] == ['detection', 'segmentation']
    for name, deployment in memory['deployments'].items():
        assert deployment['samples'] >= 3
        assert set(deployment['shared_library']) == {'paths', 'resident_mb', 'other_processes'}
        others = deployment['shared_library']['other_processes']
        assert result['checks']['memory']['other_processes'][name] == others
    assert result['checks']['memory']['ok'] is not any(
        d['shared_library']['other_processes'] for d in memory['deployments'].values())


def test_ratios_follow_from_the_models(report):
    result, _ = report
    multi, det, seg = (result['models'][k] for k in NAMES)
    pair, ratios = result['pair'], result['ratios']
    assert pair['params'] == det['params'] + seg['params']
    assert pair['gflops'] == pytest.approx(det['gflops'] + seg['gflops'])
    assert ratios['params'] == pytest.approx(pair['params'] / multi['params'])
    assert ratios['flops'] == pytest.approx(pair['gflops'] / multi['gflops'])
    # The shared backbone: each single-task network is smaller than the multitask one,
    # and the pair holds the backbone twice.
    assert det['params'] < multi['params'] and seg['params'] < multi['params']
    assert ratios['params'] > 1.0 and ratios['flops'] > 1.0
    # The checkpoint holds float32 parameters plus batch-norm statistics.
    for model in (multi, det, seg):
        assert model['size_mb'] >= model['params'] * 4 / 1e6
    check = result['checks']['speed']
    assert check['value'] == ratios['speed'] and check['limit'] == ratios['flops']
    assert check['ok'] is (ratios['speed'] <= 1.1 * ratios['flops'])
    assert (check['problem'] is None) is check['ok']


def test_table_and_progress(report):
    _, done = report
    for name in ('multitask', 'detection', 'segmentation', 'det + seg', 'PSS (MB)',
                 'load average'):
        assert name in done.stdout
    assert 'multitask vs pair' in done.stdout
    assert '[memory] multitask alone' in done.stderr
    assert '[memory] baseline: detection + segmentation alive together' in done.stderr
    assert f'[round {ROUNDS}/{ROUNDS}]' in done.stderr


def test_bad_arguments_exit_2(repo_root):
    done = _run(repo_root, '--arch', 'no_such_arch', '--iterations', '1')
    assert done.returncode == 2
    assert 'no_such_arch' in done.stderr
    done = _run(repo_root, '--arch', 'resnet18_ssd_fcn', '--backend', 'no_such_backend',
                '--input-size', '64', '--iterations', '1')
    assert done.returncode == 2
    assert 'no_such_backend' in done.stderr
    done = _run(repo_root, '--rounds', '0')
    assert done.returncode == 2 and '--rounds' in done.stderr
