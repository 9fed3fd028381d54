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
The multi-camera report on records: ratios, checks, the segmentation_every bound, scoring.

No ROS here: the scorer reads output bags written with ``rosbags`` and run.json files made by
hand, and the report is built from records (what ``score_camera_run`` returns).
"""

import json
import subprocess
import sys

from mtl_perception.replay.bag_io import BagWriter
from mtl_perception.replay.camera_nodes import camera_node_commands, camera_runs, CameraRun
from mtl_perception.replay.camera_nodes import label_topics, output_topics, RUN_FORMAT
from mtl_perception.replay.camera_report import build_camera_report, camera_console
from mtl_perception.replay.camera_report import camera_markdown, compare_deployments
from mtl_perception.replay.camera_report import write_camera_report
from mtl_perception.replay.camera_scoring import find_camera_runs, is_camera_directory
from mtl_perception.replay.camera_scoring import score_camera_run
from mtl_perception.replay.flight import write_flight_bag
from mtl_perception.replay.messages import DETECTION2D_ARRAY, IMAGE, make_detection_array
from mtl_perception.replay.messages import make_image
from mtl_perception.replay.run_files import OUTPUT_BAG, read_ground_truth, round_dir
from mtl_perception.replay.run_files import write_run_info
from mtl_perception.replay.segmentation_every import segmentation_every_bound
from mtl_perception.replay.segmentation_every import segmentation_every_round
from mtl_perception.replay.segmentation_every import segmentation_every_summary
import pytest


def _record(deployment, fps, pss, rss=None, p50=50.0, every=None, detection_fps=None,
            mask_rate=1.0, round_index=1):
    cameras = {camera: {'frames_in': 5, 'frames_out': 5, 'dropped': 0, 'fps': fps / 2,
                        'latency_ms': {'p50': p50, 'p95': 2 * p50, 'max': 3 * p50},
                        'map50': 0.5, 'miou': 0.4, 'mask_rate': mask_rate}
               for camera in ('cam0', 'cam1')}
    return {'deployment': deployment, 'segmentation_every': every, 'round': round_index,
            'fps': fps, 'detection_fps': fps if detection_fps is None else detection_fps,
            'paced_fps': 8.0, 'frames_in': 10, 'frames_out': 10, 'dropped': 0,
            'latency_ms': {'p50': p50, 'p95': 2 * p50, 'max': 3 * p50},
            'peak_pss_mb': pss, 'peak_rss_mb': rss or 1.3 * pss, 'peak_uss_mb': 0.8 * pss,
            'cpu_percent': 90.0, 'mask_rate': mask_rate, 'map50': 0.5, 'miou': 0.4,
            'cameras': cameras, 'playback_hz': 5.0,
            'load_average': {'start': 0.5, 'end': 0.7}}


def _rounds(deployment, values, **kwargs):
    return [_record(deployment, fps, pss, round_index=k, **kwargs)
            for k, (fps, pss) in enumerate(values, start=1)]


def test_comparison_ratios_are_medians_of_per_round_ratios_with_checks():
    per_round = {'shared': _rounds('shared', [(30, 200), (33, 210), (20, 190)]),
                 'multitask_per_camera': _rounds('multitask_per_camera',
                                                 [(25, 400), (30, 380), (25, 300)]),
                 'baseline_per_camera': _rounds('baseline_per_camera',
                                                [(15, 700), (16, 680), (14, 720)])}
    comparison = compare_deployments(per_round)
    rounds = comparison['ratios_per_round']
    assert [r['round'] for r in rounds] == [1, 2, 3]
    assert [r['memory'] for r in rounds] == pytest.approx([0.5, 210 / 380, 190 / 300])
    assert [r['throughput'] for r in rounds] == pytest.approx([1.2, 1.1, 0.8])
    assert rounds[0]['throughput_baseline'] == pytest.approx(2.0)
    assert rounds[0]['memory_baseline'] == pytest.approx(200 / 700)
    assert rounds[0]['latency_p50'] == pytest.approx(1.0)
    ratios, spread = comparison['ratios'], comparison['ratio_spread']
    assert ratios['memory'] == pytest.approx(210 / 380)
    assert ratios['throughput'] == pytest.approx(1.1)
    assert (spread['throughput']['min'], spread['throughput']['max']) == \
        pytest.approx((0.8, 1.2))
    assert spread['throughput']['n'] == 3
    checks = comparison['checks']
    assert checks['memory']['passed'] is True and checks['throughput']['passed'] is True
    assert checks['memory']['value'] == pytest.approx(210 / 380)
    assert checks['throughput']['spread'] == {'min': pytest.approx(0.8),
                                              'max': pytest.approx(1.2), 'n': 3}
    # Memory above 0.6 and a slower shared node fail their checks.
    worse = {'shared': _rounds('shared', [(20, 300)]),
             'multitask_per_camera': _rounds('multitask_per_camera', [(25, 400)])}
    failed = compare_deployments(worse)
    assert failed['checks']['memory']['passed'] is False
    assert failed['checks']['throughput']['passed'] is False
    assert failed['ratios']['throughput_baseline'] is None  # no baseline ran
    assert compare_deployments({'shared': worse['shared']}) is None


def test_segmentation_every_bound_gain_and_efficiency_of_one_round():
    assert segmentation_every_bound(0.3, 3) == pytest.approx(1 / (1 - 0.2))
    assert segmentation_every_bound(0.3, 1) == pytest.approx(1.0)
    assert segmentation_every_bound(None, 3) is None
    figures = segmentation_every_round({1: 70.0, 3: 85.0, 10000: 100.0})
    assert figures['segmentation_share'] == pytest.approx(0.3)
    assert figures['bound'][3] == pytest.approx(1.25)
    assert figures['gain'][3] == pytest.approx(85 / 70)
    assert figures['efficiency'][3] == pytest.approx(85 / 70 / 1.25)
    assert set(figures['bound']) == {3}  # neither 1 nor "never" has a bound
    with pytest.raises(ValueError, match='segmentation_every'):
        segmentation_every_round({3: 1.0, 10000: 2.0})
    missing = segmentation_every_round({1: 70.0, 3: None, 10000: 100.0})
    assert missing['gain'][3] is None and missing['efficiency'][3] is None


def test_segmentation_every_summary_over_rounds():
    per_round = {}
    throughput = {1: (70, 60, 72), 3: (85, 70, 70), 10000: (100, 80, 90)}
    for n, values in throughput.items():
        per_round[f'segmentation_every_{n}'] = [
            _record('shared', 10.0, 200.0, every=n, detection_fps=fps, mask_rate=1 / n,
                    round_index=k) for k, fps in enumerate(values, start=1)]
    # Other runs in the directory (not the shared node at a value) are left out.
    per_round['multitask_per_camera'] = _rounds('multitask_per_camera', [(25, 400)])
    every = segmentation_every_summary(per_round)
    assert every['values'] == [1, 3, 10000] and every['never'] == 10000
    shares = [1 - 70 / 100, 1 - 60 / 80, 1 - 72 / 90]
    assert every['segmentation_share']['median'] == pytest.approx(sorted(shares)[1])
    bounds = [1 / (1 - 2 * f / 3) for f in shares]
    gains = [85 / 70, 70 / 60, 70 / 72]
    assert every['bound']['3']['median'] == pytest.approx(sorted(bounds)[1])
    assert every['gain']['3']['median'] == pytest.approx(sorted(gains)[1])
    efficiency = sorted(g / b for g, b in zip(gains, bounds))
    assert every['efficiency']['3']['median'] == pytest.approx(efficiency[1])
    assert every['checks']['3']['passed'] is (efficiency[1] >= 0.9)
    assert every['mask_rate']['3']['median'] == pytest.approx(1 / 3)
    assert every['expected_mask_rate']['3'] == pytest.approx(1 / 3)
    assert every['detection_fps']['10000']['median'] == 90
    assert [r['round'] for r in every['per_round']] == [1, 2, 3]
    assert every['per_round'][0]['gain']['3'] == pytest.approx(85 / 70)
    # A gain far above the bound is a measurement problem, not a pass.
    fast = {name: [dict(r) for r in records] for name, records in per_round.items()}
    for record in fast['segmentation_every_3']:
        record['detection_fps'] *= 1.5
    flagged = segmentation_every_summary(fast)['checks']['3']
    assert flagged['passed'] is None and 'not a result' in flagged['problem']
    # Without a run at 1 (or with one value only) there is nothing to measure.
    assert segmentation_every_summary({k: v for k, v in per_round.items()
                                       if k != 'segmentation_every_1'}) is None


def test_report_json_markdown_and_console(tmp_path):
    per_round = {'shared': _rounds('shared', [(30, 200), (33, 210)]),
                 'multitask_per_camera': _rounds('multitask_per_camera',
                                                 [(25, 400), (30, 380)])}
    report = build_camera_report('flight', ['cam0', 'cam1'], per_round, {'config': 'cameras'})
    assert report['kind'] == 'multicamera' and report['rounds'] == 2
    assert report['frames'] == 5 and report['config'] == 'cameras'
    shared = report['runs']['shared']
    assert shared['fps'] == pytest.approx(31.5)  # the median of two rounds
    assert shared['cameras']['cam0']['fps'] == pytest.approx(31.5 / 2)
    assert [r['fps'] for r in shared['rounds']] == [30, 33]
    assert 'segmentation_every' not in report
    assert report['load_average']['overall']['n'] == 8
    write_camera_report(tmp_path, report)
    written = json.loads((tmp_path / 'report.json').read_text())
    assert written['comparison']['checks']['memory']['passed'] is True
    text = (tmp_path / 'report.md').read_text()
    assert '| aggregate saturated throughput (fps) | 31.50 | 27.50 |' in text
    assert 'shared / multitask_per_camera peak PSS' in text
    assert '| shared | cam1 |' in text
    assert camera_markdown(report) == text
    console = camera_console(report)
    assert console.splitlines()[0].split() == ['shared', 'multitask_per_camera']
    assert '[PASS] peak PSS shared / multitask_per_camera <= 0.6' in console


def _write_camera_run(out, flight, name, answered, every=1):
    """Write a run dir whose nodes answered ``answered`` frames with the ground truth."""
    run_dir = round_dir(out, name, 1)
    run_dir.mkdir(parents=True)
    outputs = output_topics('shared', [c.name for c in flight.cameras])
    frames = {c.name: [[s, s + 1_000_000 * (k + 1)] for k, s in enumerate(flight.stamps_ns)]
              for c in flight.cameras}
    with BagWriter(run_dir / OUTPUT_BAG) as bag:
        for by_task in outputs.values():
            bag.add_topic(by_task['detection'], DETECTION2D_ARRAY)
            bag.add_topic(by_task['segmentation'], IMAGE)
        for camera in flight.cameras:
            truth = read_ground_truth(flight.path, flight.stamps_ns, camera.detections_topic,
                                      camera.mask_topic)
            for k, stamp in enumerate(flight.stamps_ns[:answered]):
                received = stamp + 1_000_000 * (k + 1) + 9_000_000  # 9 ms after publish
                boxes, names = truth.detections[stamp]
                bag.write(outputs[camera.name]['detection'], received, make_detection_array(
                    boxes, names, [0.9] * len(names), stamp, camera.frame_id))
                if k % every == 0:
                    bag.write(outputs[camera.name]['segmentation'], received,
                              make_image(truth.masks[stamp], stamp, camera.frame_id))
    write_run_info(run_dir, {
        'format': RUN_FORMAT, 'config': name, 'deployment': 'shared', 'round': 1,
        'bag': str(flight.path), 'tasks': ['detection', 'segmentation'],
        'required_tasks': ['detection'] if every > 1 else ['detection', 'segmentation'],
        'segmentation_every': every, 'warmup_stamps': [],
        'cameras': {c.name: {'image_topic': c.image_topic, 'outputs': outputs[c.name],
                             'detections_truth': c.detections_topic,
                             'mask_truth': c.mask_topic, 'frames': frames[c.name]}
                    for c in flight.cameras},
        'capacity': {'fps': 40.0, 'detection_fps': 42.0, 'segmentation_fps': 40.0,
                     'cameras': {c.name: {'fps': 20.0, 'rates': {'detection': 21.0}}
                                 for c in flight.cameras}},
        'peak_pss_mb': 100.0, 'peak_rss_mb': 150.0, 'peak_uss_mb': 90.0, 'cpu_percent': 50.0,
        'processes': {}, 'load_average': {'start': 0.1, 'end': 0.2}, 'playback_hz': 10.0})
    return run_dir


def test_score_camera_run_per_camera_against_its_own_ground_truth(tmp_path):
    flight = write_flight_bag(tmp_path / 'flight', frames=6, rate=10.0, seed=7,
                              size=(160, 120), world_size=(1200, 960), speed=60.0,
                              cameras=2, progress=False)
    out = tmp_path / 'out'
    _write_camera_run(out, flight, 'shared', answered=5)
    _write_camera_run(out, flight, 'segmentation_every_3', answered=6, every=3)
    assert is_camera_directory(out) and not is_camera_directory(tmp_path)
    assert list(find_camera_runs(out)) == ['shared', 'segmentation_every_3']
    series = {}
    record = score_camera_run(round_dir(out, 'shared', 1), latencies=series)
    assert record['fps'] == 40.0 and record['fps_source'] == 'saturated'
    assert record['detection_fps'] == 42.0
    assert (record['frames_in'], record['frames_out'], record['dropped']) == (12, 10, 2)
    for camera in ('cam0', 'cam1'):
        figures = record['cameras'][camera]
        assert (figures['frames_in'], figures['frames_out'], figures['dropped']) == (6, 5, 1)
        assert figures['fps'] == 20.0 and figures['detection_fps'] == 21.0
        assert figures['latency_ms']['p50'] == pytest.approx(9.0)
        # Each camera's predictions are its own ground truth: perfect scores (a mix-up of
        # the cameras' topics would not be).
        assert figures['miou'] == pytest.approx(1.0)
        assert figures['map50'] in (None, pytest.approx(1.0))
        assert figures['mask_rate'] == pytest.approx(1.0)
        assert len(series[camera]) == 5
    assert record['latency_ms']['p50'] == pytest.approx(9.0)
    assert record['peak_pss_mb'] == 100.0 and record['miou'] == pytest.approx(1.0)
    sparse = score_camera_run(round_dir(out, 'segmentation_every_3', 1))
    # Masks on frames 1 and 4 of 6: the frames count as answered on their detections.
    assert sparse['frames_out'] == 12 and sparse['mask_rate'] == pytest.approx(2 / 6)
    assert sparse['cameras']['cam0']['miou'] == pytest.approx(1.0)


def test_camera_runs_commands_and_topics(tmp_path):
    assert [r.name for r in camera_runs('cameras')] == [
        'shared', 'multitask_per_camera', 'baseline_per_camera']
    every = camera_runs('segmentation_every', (1, 5, 10000))
    assert [(r.name, r.parameters, r.required_tasks) for r in every] == [
        ('segmentation_every_1', {'segmentation_every': 1}, ('detection', 'segmentation')),
        ('segmentation_every_5', {'segmentation_every': 5}, ('detection',)),
        ('segmentation_every_10000', {'segmentation_every': 10000}, ('detection',))]
    with pytest.raises(ValueError, match='two different values'):
        camera_runs('segmentation_every', (3,))
    with pytest.raises(ValueError, match='unknown'):
        camera_runs('both')
    cameras = {'cam0': '/cam0/image_raw', 'cam1': '/cam1/image_raw'}
    checkpoints = {'multitask': 'm.onnx', 'detection': 'd.onnx', 'segmentation': 's.onnx'}

    def commands(run):
        return {name: ' '.join(argv[1:]) for name, argv in camera_node_commands(
            run, cameras=cameras, params_file=tmp_path / 'p.yaml', checkpoints=checkpoints,
            compressed=False, parameters={'backend': 'onnxruntime', 'max_batch': 2}).items()}
    shared = commands(every[1])
    assert list(shared) == ['multitask_node']
    line = shared['multitask_node']
    for part in ('-r __ns:=/shared', '-r cam0/image:=/cam0/image_raw',
                 '-r cam1/image:=/cam1/image_raw', '-p cameras:=cam0,cam1',
                 '-p checkpoint:=m.onnx', '-p backend:=onnxruntime', '-p max_batch:=2',
                 '-p segmentation_every:=5'):
        assert part in line, part
    pairs = commands(CameraRun('baseline_per_camera', 'baseline_per_camera'))
    assert sorted(pairs) == ['detection_node_cam0', 'detection_node_cam1',
                             'segmentation_node_cam0', 'segmentation_node_cam1']
    assert '-r __ns:=/baseline_per_camera/cam1 -r image:=/cam1/image_raw' in \
        pairs['segmentation_node_cam1']
    assert 'cameras:=' not in pairs['detection_node_cam0']
    assert output_topics('multitask_per_camera', ['cam0'])['cam0'] == {
        'detection': '/multitask_per_camera/cam0/detections',
        'segmentation': '/multitask_per_camera/cam0/segmentation/mask'}
    assert label_topics('shared', ['cam0', 'cam1']) == [
        '/shared/detections/label_info', '/shared/segmentation/label_info']
    assert label_topics('baseline_per_camera', ['cam0', 'cam1']) == [
        f'/baseline_per_camera/{c}/{t}/label_info' for c in ('cam0', 'cam1')
        for t in ('detections', 'segmentation')]


def test_the_multi_camera_replay_modules_load_no_torch():
    code = ('import sys\n'
            'import mtl_perception.cli.replay, mtl_perception.replay.camera_replay\n'
            'import mtl_perception.replay.camera_runner\n'
            "print([m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision')])")
    done = subprocess.run([sys.executable, '-c', code], text=True, capture_output=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == '[]'
