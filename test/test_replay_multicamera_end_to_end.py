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
Multi-camera replay end to end: real node processes on real DDS, a tiny two-camera flight.

The replay runs in this process (rclpy context, one player per camera, the recorder) and
starts the nodes through their console scripts on ONNX Runtime (the tiny test networks
exported once through the replay's export cache); the environment is loopback-only
(test/conftest.py, and the replay sets it again). One round each keeps the node start-ups
few: the three deployments side by side, then the shared node at three segmentation_every
values. Ratios, bounds and medians over rounds are tested on records in
test_replay_multicamera_report.py.
"""

import json

from mtl_perception.cli.main import main as cli_main
from mtl_perception.replay.bag_io import open_bag
from mtl_perception.replay.flight import write_flight_bag
from mtl_perception.replay.messages import stamp_to_ns
from mtl_perception.replay.run_files import OUTPUT_BAG, read_run_info, round_dir
import pytest
from ros_fixtures import checkpoints  # noqa: F401 (a fixture)

CAMERAS = ('cam0', 'cam1')


def _checkpoint_args(checkpoints):  # noqa: F811
    return ['--checkpoint-multitask', str(checkpoints['multitask']),
            '--checkpoint-detection', str(checkpoints['detection']),
            '--checkpoint-segmentation', str(checkpoints['segmentation'])]


@pytest.fixture(scope='module')
def flight(tmp_path_factory):
    path = tmp_path_factory.mktemp('multicamera') / 'flight'
    return write_flight_bag(path, frames=9, rate=10.0, seed=3, size=(160, 120),
                            world_size=(1200, 960), speed=60.0, cameras=len(CAMERAS),
                            progress=False)


def _outputs(run_dir):
    """Return {topic: {stamp: frame_id}} of the run's detections and masks."""
    found = {}
    with open_bag(run_dir / OUTPUT_BAG) as bag:
        wanted = [t for t in bag.topics() if t.endswith(('/detections', '/segmentation/mask'))]
        for topic, _, msg in bag.messages(wanted):
            found.setdefault(topic, {})[stamp_to_ns(msg.header.stamp)] = msg.header.frame_id
    return found


def _replay(args, tmp_path, checkpoints, capsys):  # noqa: F811
    rc = cli_main(['replay', *args, '--rate', '0.5', '--warmup-frames', '2',
                   '--capacity-seconds', '1.5', '--rounds', '1', '--no-progress',
                   '--backend', 'onnxruntime', '--workers', '1', '--threads', '1',
                   '--export-cache', str(tmp_path.parent / 'export_cache'),
                   *_checkpoint_args(checkpoints)])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    return printed


def test_three_deployments_serve_two_cameras(flight, tmp_path, checkpoints,  # noqa: F811
                                             capsys):
    out = tmp_path / 'cameras'
    printed = _replay(['--bag', str(flight.path), '--config', 'cameras', '--out', str(out),
                       '--max-frames', '4'], tmp_path, checkpoints, capsys)
    assert 'aggregate saturated throughput (fps)' in printed
    report = json.loads((out / 'report.json').read_text())
    assert report['kind'] == 'multicamera' and report['cameras'] == list(CAMERAS)
    assert report['rounds'] == 1 and report['frames'] == 4
    played = set(flight.stamps_ns[:4])
    processes = {'shared': {'multitask_node'},
                 'multitask_per_camera': {f'multitask_node_{c}' for c in CAMERAS},
                 'baseline_per_camera': {f'{n}_{c}' for c in CAMERAS
                                         for n in ('detection_node', 'segmentation_node')}}
    for name, nodes in processes.items():
        run = report['runs'][name]
        info = read_run_info(round_dir(out, name, 1))
        assert set(info['processes']) == nodes
        assert all(p['exit_code'] == 0 for p in info['processes'].values()), info['processes']
        assert '-p inference_threads:=1' in ' '.join(info['processes'][min(nodes)]['command'])
        # Every camera was flooded and answered: the aggregate is the sum over cameras.
        rates = info['capacity']['cameras']
        assert set(rates) == set(CAMERAS) and all(r['fps'] > 0 for r in rates.values())
        assert run['fps'] == pytest.approx(sum(r['fps'] for r in rates.values()))
        assert run['peak_uss_mb'] <= run['peak_pss_mb'] <= run['peak_rss_mb']
        assert run['frames_in'] == 4 * len(CAMERAS)
        for camera in CAMERAS:
            figures = run['cameras'][camera]
            assert figures['frames_in'] == 4 and 1 <= figures['frames_out'] <= 4
            assert 0 < figures['latency_ms']['p50'] < 30_000
            assert figures['miou'] is not None  # each camera against its own ground truth
            assert [s for s, _ in info['cameras'][camera]['frames']] == sorted(played)
        # Each camera's outputs carry that camera's stamps and frame_id, on its own topics.
        warmups = set(info['warmup_stamps'])
        outputs = _outputs(round_dir(out, name, 1))
        assert set(outputs) == {f'/{name}/{c}/{t}' for c in CAMERAS
                                for t in ('detections', 'segmentation/mask')}
        for topic, stamps in outputs.items():
            camera = topic.split('/')[2]
            assert set(stamps) <= played | warmups, topic
            assert flight.stamps_ns[3] in stamps, topic  # the last frame is always answered
            assert set(stamps.values()) == {camera}, topic
    # Two processes of one network each take more than the one shared process.
    runs = report['runs']
    assert runs['shared']['peak_pss_mb'] < runs['multitask_per_camera']['peak_pss_mb']
    comparison = report['comparison']
    assert comparison['ratios']['memory'] == pytest.approx(
        runs['shared']['peak_pss_mb'] / runs['multitask_per_camera']['peak_pss_mb'])
    assert comparison['ratios']['throughput'] == pytest.approx(
        runs['shared']['fps'] / runs['multitask_per_camera']['fps'])
    assert set(comparison['checks']) == {'memory', 'throughput'}
    for name in ('report.md', 'multicamera.png', 'multicamera_latency.png'):
        assert (out / name).is_file(), name
    assert 'segmentation_every' not in report


def test_segmentation_every_on_the_shared_node(flight, tmp_path, checkpoints,  # noqa: F811
                                               capsys):
    out = tmp_path / 'every'
    _replay(['--bag', str(flight.path), '--config', 'segmentation_every', '--out', str(out),
             '--segmentation-every', '1', '3', '10000'], tmp_path, checkpoints, capsys)
    report = json.loads((out / 'report.json').read_text())
    every = report['segmentation_every']
    assert every['values'] == [1, 3, 10000] and every['never'] == 10000
    for n in (1, 3, 10000):
        info = read_run_info(round_dir(out, f'segmentation_every_{n}', 1))
        assert f'-p segmentation_every:={n}' in ' '.join(
            info['processes']['multitask_node']['command'])
        assert info['required_tasks'] == (['detection', 'segmentation'] if n == 1
                                          else ['detection'])
        assert every['detection_fps'][str(n)]['median'] > 0
    # A mask on every frame, on every third, and (after the first frame) on none.
    rates = {n: every['mask_rate'][n]['median'] for n in ('1', '3', '10000')}
    assert rates['1'] == pytest.approx(1.0)
    assert abs(rates['3'] - 1 / 3) <= 0.15, rates
    assert rates['10000'] <= 0.15, rates
    share = every['segmentation_share']['median']
    assert every['bound']['3']['median'] == pytest.approx(1 / (1 - 2 * share / 3))
    assert every['gain']['3']['median'] == pytest.approx(
        every['detection_fps']['3']['median'] / every['detection_fps']['1']['median'])
    assert set(every['checks']) == {'3'}
    assert (out / 'segmentation_every.png').is_file()
    assert 'comparison' not in report
