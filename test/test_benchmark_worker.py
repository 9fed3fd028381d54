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

"""The benchmark's child processes: the network worker's line protocol and the busy loop."""

import json
import time

from mtl_perception.inference.benchmark_processes import background_load, NetworkWorker
from mtl_perception.inference.checkpoint import save_checkpoint
from mtl_perception.modeling import build_model
import psutil
import pytest


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    model = build_model('resnet18_ssd_fcn', input_size=64, tasks=('segmentation',),
                        num_classes={'segmentation': 3}).eval()
    weights, _ = save_checkpoint(model, tmp_path_factory.mktemp('worker') / 'seg', {
        'name': 'seg', 'architecture': 'resnet18_ssd_fcn',
        'classes': {'segmentation': ['a', 'b', 'c']}}, verify=False)
    return str(weights)


def test_worker_loads_runs_and_quits(checkpoint):
    worker = NetworkWorker('seg', 'torch', checkpoint, device='cpu', half=False, threads=1,
                           warmup=1)
    with worker:
        ready = worker.ready()
        assert ready['event'] == 'ready' and ready['label'] == 'seg'
        assert ready['pid'] == worker.pid and ready['threads'] == 1
        assert ready['input_size'] == 64 and ready['rss_loaded_mb'] > ready['rss_start_mb']
        assert ready['torch_imported'] is True
        timings = worker.run(3, warmup=1)
        assert len(timings['latency_ms']) == 3 and all(ms > 0 for ms in timings['latency_ms'])
        # CPU time over all threads; one thread cannot spend more than the wall time.
        assert len(timings['cpu_ms']) == 3
        pairs = zip(timings['cpu_ms'], timings['latency_ms'])
        assert all(0 < cpu <= wall * 1.05 + 1 for cpu, wall in pairs)
        stats = worker.stats()
        assert stats['peak_rss_hwm_mb'] >= stats['rss_mb'] > 0
        # A bad command is answered with an error, and the worker goes on serving.
        worker._send('jump 3')
        reply = json.loads(worker.process.stdout.readline())
        assert reply['event'] == 'error' and 'unknown command' in reply['message']
        assert len(worker.run(1)['latency_ms']) == 1
    assert worker.process.returncode == 0


def test_worker_ends_at_end_of_input(checkpoint):
    worker = NetworkWorker('seg', 'torch', checkpoint, device='cpu', half=False, threads=1,
                           warmup=0)
    worker.ready()
    worker.process.stdin.close()
    assert worker.process.wait(timeout=60) == 0
    worker.close()


def test_a_worker_that_cannot_load_reports_why(tmp_path):
    with NetworkWorker('gone', 'torch', str(tmp_path / 'missing.safetensors'), device='cpu',
                       half=False, threads=1, warmup=0) as worker:
        with pytest.raises(RuntimeError, match='gone: '):
            worker.ready()
    assert worker.process.returncode == 1


def test_background_load_is_busy_and_always_ended():
    with pytest.raises(KeyError):
        with background_load(1) as pids:
            process = psutil.Process(pids[0])
            process.cpu_percent()
            time.sleep(0.5)
            assert process.cpu_percent() > 20
            raise KeyError('the body fails')
    assert not psutil.pid_exists(pids[0])
