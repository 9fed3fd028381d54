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

"""`mtl-perception benchmark --backend onnxruntime --load-check` end to end, tiny network."""

import json
import subprocess
import sys

import pytest


def test_onnxruntime_benchmark_with_load_check(tmp_path, repo_root):
    path = tmp_path / 'bench.json'
    done = subprocess.run(
        [sys.executable, '-m', 'mtl_perception.cli.main', 'benchmark', '--backend',
         'onnxruntime', '--arch', 'resnet18_ssd_fcn', '--input-size', '64', '--iterations',
         '2', '--rounds', '2', '--warmup', '1', '--threads', '1', '--num-classes', '5', '10',
         '--load-check', '--json', str(path)], cwd=repo_root, capture_output=True, text=True,
        timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(path.read_text())
    assert set(report) == {'quiet', 'loaded', 'load_check'}
    quiet, loaded, check = report['quiet'], report['loaded'], report['load_check']
    assert quiet['background_load'] == 0 and loaded['background_load'] == 1
    for result in (quiet, loaded):
        assert result['backend'] == 'onnxruntime' and result['threads'] == 1
        assert set(result['models']) == {'multitask', 'detection', 'segmentation'}
        assert len(result['rounds']) == 2
        for name, model in result['models'].items():
            assert model['threads'] == 1
            # What deploys: the ONNX Runtime worker runs without torch.
            assert model['torch_imported'] is False, name
            assert 0 < model['latency_ms']['p50'] <= model['latency_ms']['p95']
            assert model['peak_uss_mb'] <= model['peak_pss_mb'] <= model['peak_rss_mb']
            # The ONNX file holds the float32 weights (batch norm folded into convolutions).
            assert 0.9 * model['params'] * 4 / 1e6 <= model['artifact_mb'] <= model['size_mb']
        assert result['ratios']['params'] > 1.0
        assert result['pair']['peak_pss_mb'] > result['models']['multitask']['peak_pss_mb']
    assert check['quiet'] == quiet['ratios'] and check['loaded'] == loaded['ratios']
    assert check['background_load'] == 1
    assert check['speed_ratio_change'] == pytest.approx(
        (loaded['ratios']['speed'] - quiet['ratios']['speed']) / quiet['ratios']['speed'])
    assert check['within_10_percent'] is (abs(check['speed_ratio_change']) <= 0.1)
    assert 'onnxruntime on cpu' in done.stdout and 'load check: speed ratio' in done.stdout
    assert 'rounds alternate between 0 busy processes and 1 busy processes' in done.stderr
    # The rounds alternate quiet and loaded, the same workers serving both.
    assert [r['background_load'] for r in quiet['rounds']] == [0, 0]
    assert [r['background_load'] for r in loaded['rounds']] == [1, 1]
    assert quiet['memory'] == loaded['memory']
    # The busy loop shows as another process keeping a core busy.
    assert max(r['other_cpu_cores'] for r in loaded['rounds']) > 0.3
    assert '[round 2/2, 1 busy]' in done.stderr
