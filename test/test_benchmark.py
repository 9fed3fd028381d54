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

"""`mtl-perception benchmark` end to end with a tiny network (shape of the report only)."""

import json
import subprocess
import sys

from conftest import REPO_ROOT
import pytest

MODEL_KEYS = {'params': int, 'size_mb': float, 'gflops': float, 'fps': float,
              'peak_rss_mb': float}


def _run(*args):
    return subprocess.run([sys.executable, '-m', 'mtl_perception.cli.main', 'benchmark',
                           *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=600, check=False)


@pytest.fixture(scope='module')
def report(tmp_path_factory):
    path = tmp_path_factory.mktemp('bench') / 'out' / 'bench.json'
    done = _run('--arch', 'resnet18_ssd_fcn', '--input-size', '64', '--iterations', '2',
                '--warmup', '1', '--threads', '1', '--num-classes', '5', '10',
                '--json', str(path))
    assert done.returncode == 0, done.stderr
    return json.loads(path.read_text()), done


def test_json_shape(report):
    result, _ = report
    assert result['device'] == 'cpu'
    assert result['backend'] == 'torch'
    assert result['input_size'] == 64
    assert result['threads'] == 1
    assert set(result['models']) == {'multitask', 'detection', 'segmentation'}
    for name, model in result['models'].items():
        for key, kind in MODEL_KEYS.items():
            assert isinstance(model[key], kind), (name, key)
            assert model[key] > 0, (name, key)
        assert set(model['latency_ms']) >= {'p50', 'p95'}
        assert 0 < model['latency_ms']['p50'] <= model['latency_ms']['p95']
        # The peak covers at least what the worker held once its network was loaded.
        assert model['peak_rss_mb'] >= model['rss_loaded_mb'] > model['rss_start_mb']
    for key, kind in (('params', int), ('gflops', float), ('fps', float),
                      ('peak_rss_mb', float)):
        assert isinstance(result['pair'][key], kind)
    assert set(result['ratios']) >= {'speed', 'params', 'memory', 'flops'}
    assert all(isinstance(v, float) for v in result['ratios'].values())


def test_ratios_follow_from_the_models(report):
    result, _ = report
    multi, det, seg = (result['models'][k] for k in ('multitask', 'detection', 'segmentation'))
    pair, ratios = result['pair'], result['ratios']
    assert pair['params'] == det['params'] + seg['params']
    assert pair['gflops'] == pytest.approx(det['gflops'] + seg['gflops'])
    assert pair['peak_rss_mb'] == pytest.approx(det['peak_rss_mb'] + seg['peak_rss_mb'])
    assert pair['fps'] == pytest.approx(1 / (1 / det['fps'] + 1 / seg['fps']))
    assert ratios['speed'] == pytest.approx(multi['fps'] / pair['fps'])
    assert ratios['params'] == pytest.approx(pair['params'] / multi['params'])
    assert ratios['memory'] == pytest.approx(pair['peak_rss_mb'] / multi['peak_rss_mb'])
    assert ratios['flops'] == pytest.approx(pair['gflops'] / multi['gflops'])
    # The shared backbone: each single-task network is smaller than the multitask one,
    # and the pair holds the backbone twice.
    assert det['params'] < multi['params'] and seg['params'] < multi['params']
    assert ratios['params'] > 1.0 and ratios['flops'] > 1.0
    # The checkpoint holds float32 parameters plus batch-norm statistics.
    for model in (multi, det, seg):
        assert model['size_mb'] >= model['params'] * 4 / 1e6


def test_table_and_progress(report):
    _, done = report
    for name in ('multitask', 'detection', 'segmentation', 'det + seg'):
        assert name in done.stdout
    assert 'multitask vs pair' in done.stdout
    for name in ('multitask', 'detection', 'segmentation'):
        assert f'[{name}] iteration 2/2' in done.stderr


def test_bad_arguments_exit_2():
    done = _run('--arch', 'no_such_arch', '--iterations', '1')
    assert done.returncode == 2
    assert 'no_such_arch' in done.stderr
    done = _run('--arch', 'resnet18_ssd_fcn', '--backend', 'no_such_backend',
                '--input-size', '64', '--iterations', '1')
    assert done.returncode == 2
    assert 'no_such_backend' in done.stderr
