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

"""`mtl-perception benchmark --backend onnxruntime` end to end with a tiny network."""

import json
import subprocess
import sys

from conftest import REPO_ROOT


def test_onnxruntime_benchmark_json(tmp_path):
    path = tmp_path / 'bench.json'
    done = subprocess.run(
        [sys.executable, '-m', 'mtl_perception.cli.main', 'benchmark', '--backend',
         'onnxruntime', '--arch', 'resnet18_ssd_fcn', '--input-size', '64', '--iterations',
         '2', '--warmup', '1', '--threads', '1', '--num-classes', '5', '10', '--json',
         str(path)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(path.read_text())
    assert result['backend'] == 'onnxruntime' and result['threads'] == 1
    assert set(result['models']) == {'multitask', 'detection', 'segmentation'}
    for name, model in result['models'].items():
        assert model['threads'] == 1
        # What deploys: the ONNX Runtime worker runs without torch.
        assert model['torch_imported'] is False, name
        assert 0 < model['latency_ms']['p50'] <= model['latency_ms']['p95']
        assert model['peak_rss_mb'] >= model['rss_loaded_mb'] > model['rss_start_mb']
        # The ONNX file holds the float32 weights (batch norm folded into the convolutions).
        assert 0.9 * model['params'] * 4 / 1e6 <= model['artifact_mb'] <= model['size_mb']
    assert result['ratios']['params'] > 1.0
    assert 'onnxruntime on cpu' in done.stdout
