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
Scoring run directories written by hand: report.json shape and values, report.md, plots.

A 4-frame input bag with ground truth, a multitask run that answers every frame exactly after
20 / 30 ms, and a baseline run whose segmentation node misses one frame and answers 60 ms late
with an all-'ground' mask; then the same in three rounds (``OUT/<config>/`` and
``OUT/rounds/<k>/<config>/``) with other capacity and memory per round; then a recording made
by ``ros2 bag record`` (no run.json: the recorded camera topic gives the publish times);
then tracks and ground positions, scored where the bag and the node have them.
"""

import json

from mtl_perception.cli.main import main as cli_main
from mtl_perception.replay.bag_io import BagWriter
from mtl_perception.replay.evaluation import score_directory
from mtl_perception.replay.flight import CUSTOM_DATA_KEY, DETECTIONS_TOPIC, IMAGE_TOPIC
from mtl_perception.replay.flight import MASK_TOPIC, OBJECTS_TOPIC
from mtl_perception.replay.messages import DETECTION2D_ARRAY, DETECTION3D_ARRAY, IMAGE
from mtl_perception.replay.messages import make_detection3d_array, make_detection_array
from mtl_perception.replay.messages import make_image
from mtl_perception.replay.run_files import OUTPUT_BAG, round_dir, write_run_info
import numpy as np
import pytest

MS = 1_000_000
START = 1_767_225_600 * 10**9
STAMPS = [START + i * 100 * MS for i in range(4)]
PUBLISHED = [2_000_000 * 10**9 + i * 100 * MS for i in range(4)]
DETECTION_CLASSES = ['car', 'person']
SEGMENTATION_CLASSES = ['ground', 'road']
BOX = np.array([[1, 1, 5, 4]], np.float32)
MASK = np.repeat(np.array([[0, 0, 0, 0, 1, 1, 1, 1]], np.uint8), 6, axis=0)
RUN_KEYS = {'frames_in', 'frames_out', 'dropped', 'fps', 'latency_ms', 'peak_rss_mb',
            'peak_uss_mb', 'peak_pss_mb', 'cpu_percent', 'map50', 'miou', 'rounds'}
RATIO_KEYS = {'throughput', 'memory', 'memory_rss', 'latency_p50', 'capacity',
              'paced_throughput'}


# The ground truth's car: track id 7, standing at (1, 2) m in 'map' (ground_truth_version 2).
TRUE_POSITION = np.array([[1.0, 2.0, 0.0]])


def _input_bag(path, tracked=False):
    description = {'detection_classes': DETECTION_CLASSES,
                   'segmentation_classes': SEGMENTATION_CLASSES}
    with BagWriter(path, custom_data={CUSTOM_DATA_KEY: json.dumps(description)}) as bag:
        for topic, msgtype in ((IMAGE_TOPIC, IMAGE), (DETECTIONS_TOPIC, DETECTION2D_ARRAY),
                               (MASK_TOPIC, IMAGE)):
            bag.add_topic(topic, msgtype)
        if tracked:
            bag.add_topic(OBJECTS_TOPIC, DETECTION3D_ARRAY)
        for stamp in STAMPS:
            bag.write(IMAGE_TOPIC, stamp, make_image(np.full((6, 8, 3), 90, np.uint8), stamp,
                                                     'camera'))
            bag.write(DETECTIONS_TOPIC, stamp, make_detection_array(
                BOX, ['car'], [1.0], stamp, 'camera', ids=['7'] if tracked else None))
            bag.write(MASK_TOPIC, stamp, make_image(MASK, stamp, 'camera'))
            if tracked:
                bag.write(OBJECTS_TOPIC, stamp, make_detection3d_array(
                    TRUE_POSITION, ['car'], ['7'], stamp, 'map'))
    return path


def _output_bag(path, namespace, delays_ms, mask, inputs=False, track_ids=None, ground=None):
    """
    Write a recording; ``delays_ms``: task -> per frame delay after publish, None = lost.

    ``track_ids``: the detection's id per frame (default ''); ``ground``: the detection's
    position [1, 3] m, published on ``detections_3d`` beside every detection (default none).
    """
    topics = {'detection': f'{namespace}/detections',
              'segmentation': f'{namespace}/segmentation/mask'}
    with BagWriter(path) as bag:
        bag.add_topic(topics['detection'], DETECTION2D_ARRAY)
        bag.add_topic(topics['segmentation'], IMAGE)
        if ground is not None:
            bag.add_topic(f'{namespace}/detections_3d', DETECTION3D_ARRAY)
        if inputs:
            bag.add_topic(IMAGE_TOPIC, IMAGE)
        messages = []
        for i, (stamp, published) in enumerate(zip(STAMPS, PUBLISHED)):
            if inputs:
                messages.append((published, IMAGE_TOPIC,
                                 make_image(np.zeros((6, 8, 3), np.uint8), stamp, 'camera')))
            det, seg = delays_ms['detection'][i], delays_ms['segmentation'][i]
            track = None if track_ids is None else [track_ids[i]]
            if det is not None:
                messages.append((published + det * MS, topics['detection'], make_detection_array(
                    BOX, ['car'], [0.9], stamp, 'camera', ids=track)))
            if det is not None and ground is not None:
                messages.append((published + det * MS + 1, f'{namespace}/detections_3d',
                                 make_detection3d_array(ground, ['car'], track, stamp, 'map')))
            if seg is not None:
                messages.append((published + seg * MS, topics['segmentation'],
                                 make_image(mask, stamp, 'camera')))
        for received, topic, msg in sorted(messages, key=lambda m: m[0]):
            bag.write(topic, received, msg)
    return topics


def _run(out_dir, config, delays_ms, mask, memory_mb, capacity_fps, round_index=1, **tracks):
    """Write a run; ``memory_mb``: (peak RSS, peak USS, peak PSS) of the configuration."""
    run_dir = round_dir(out_dir, config, round_index)
    run_dir.mkdir(parents=True)
    topics = _output_bag(run_dir / OUTPUT_BAG, f'/{config}', delays_ms, mask, **tracks)
    rss, uss, pss = memory_mb
    series = {kind: [[PUBLISHED[0] - 10**9, 10.0, {}], [PUBLISHED[0], peak, {}]]
              for kind, peak in zip(('rss', 'uss', 'pss'), memory_mb)}
    write_run_info(run_dir, {
        'config': config, 'round': round_index, 'bag': str(out_dir.parent / 'input'),
        'image_topic': IMAGE_TOPIC, 'outputs': topics,
        'frames': [[s, p] for s, p in zip(STAMPS, PUBLISHED)],
        'peak_rss_mb': rss, 'peak_uss_mb': uss, 'peak_pss_mb': pss, 'cpu_percent': 95.0,
        'playback_hz': 10.0, 'capacity_fps': capacity_fps,
        'load_average': {'start': 0.5 * round_index, 'end': 1.0 * round_index},
        'marks_ns': {'play_start': PUBLISHED[0]}, 'memory_mb': series})


MULTITASK_DELAYS = {'detection': [20] * 4, 'segmentation': [30] * 4}
BASELINE_DELAYS = {'detection': [40] * 4, 'segmentation': [60, 60, None, 60]}


@pytest.fixture()
def replay_dir(tmp_path):
    _input_bag(tmp_path / 'input')
    out = tmp_path / 'out'
    _run(out, 'multitask', MULTITASK_DELAYS, MASK, (600.0, 400.0, 500.0), 30.0)
    _run(out, 'baseline', BASELINE_DELAYS, np.zeros_like(MASK), (1400.0, 800.0, 1000.0), 12.0)
    return out


def test_report_json_has_the_issue_shape_and_the_known_values(replay_dir):
    report = score_directory(replay_dir)
    on_disk = json.loads((replay_dir / 'report.json').read_text())
    assert {'bag', 'frames', 'rounds', 'runs', 'ratios', 'ratio_spread', 'ratios_per_round',
            'load_average', 'targets'} <= set(on_disk)
    assert on_disk['bag'].endswith('input') and on_disk['frames'] == 4
    assert on_disk['rounds'] == 1
    assert set(on_disk['runs']) == {'multitask', 'baseline'}
    for run in on_disk['runs'].values():
        assert RUN_KEYS <= set(run)
        assert set(run['latency_ms']) >= {'p50', 'p95', 'max'}
        assert len(run['rounds']) == 1 and run['rounds'][0]['round'] == 1
    assert set(on_disk['ratios']) == set(on_disk['ratio_spread']) == RATIO_KEYS
    mt, base = report['runs']['multitask'], report['runs']['baseline']
    assert (mt['frames_in'], mt['frames_out'], mt['dropped']) == (4, 4, 0)
    assert (base['frames_in'], base['frames_out'], base['dropped']) == (4, 3, 1)
    assert mt['latency_ms'] == pytest.approx({'p50': 30.0, 'p95': 30.0, 'max': 30.0})
    assert base['latency_ms'] == pytest.approx({'p50': 60.0, 'p95': 60.0, 'max': 60.0})
    # Throughput is the saturated rate; the paced playback's output rate is kept beside it.
    assert (mt['fps'], base['fps']) == (30.0, 12.0)
    assert mt['fps_source'] == base['fps_source'] == 'saturated'
    assert mt['paced_fps'] == pytest.approx(4 / 0.330)
    assert base['paced_fps'] == pytest.approx(3 / 0.360)
    # Memory on PSS (1000 / 500), the RSS ratio (1400 / 600) beside it.
    assert (mt['peak_rss_mb'], mt['peak_uss_mb'], mt['peak_pss_mb']) == (600.0, 400.0, 500.0)
    assert report['ratios'] == pytest.approx({'throughput': 2.5, 'memory': 2.0,
                                              'memory_rss': 1400 / 600,
                                              'latency_p50': 2.0, 'capacity': 2.5,
                                              'paced_throughput': (4 / 0.330) / (3 / 0.360)})
    assert mt['map50'] == pytest.approx(1.0) and mt['miou'] == pytest.approx(1.0)
    # All 'ground': ground IoU 24/48 (half the pixels), road IoU 0.
    assert base['map50'] == pytest.approx(1.0) and base['miou'] == pytest.approx(0.25)
    checks = {check['name']: check['passed'] for check in on_disk['targets']}
    assert checks == {'throughput': True, 'memory': True, 'latency_tail': True,
                      'no_frame_lost': True, 'accuracy': True}
    # A bag without track ids or world positions: no tracking or ground scores, and why.
    for run in on_disk['runs'].values():
        assert run['tracking']['hota'] is None and run['ground_error_m']['median'] is None
        assert 'no ground-truth track ids' in run['tracking']['reason']
        assert 'no ground-truth world positions' in run['ground_error_m']['reason']


def test_report_markdown_and_plots_are_written(replay_dir):
    score_directory(replay_dir)
    markdown = (replay_dir / 'report.md').read_text()
    assert '| throughput (fps) | 30.00 | 12.00 | 2.50x |  |' in markdown
    assert '| peak PSS (MB) | 500 | 1000 | 2.00x |  |' in markdown
    assert '| peak USS (MB) | 400 | 800 |  |  |' in markdown
    assert '| peak RSS (MB) | 600 | 1400 | 2.33x |  |' in markdown
    assert '| paced output (fps) | 12.12 | 8.33 | 1.45x |  |' in markdown
    assert '- memory: baseline / multitask peak PSS' in markdown
    assert 'saturated throughput' in markdown
    assert '| mIoU (%) | 100.0 | 25.0 |  |  |' in markdown
    assert '(rounds.png)' not in markdown  # one round: nothing to plot per round
    for name in ('latency_cdf', 'latency_over_time', 'throughput', 'memory', 'overlay_strip'):
        png = replay_dir / f'{name}.png'
        assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n', name
        assert f'({name}.png)' in markdown


def test_score_only_reads_a_ros2_bag_record_layout(tmp_path, capsys):
    bag = _input_bag(tmp_path / 'input')
    recorded = tmp_path / 'launch'
    (recorded / 'multitask').mkdir(parents=True)
    _output_bag(recorded / 'multitask' / OUTPUT_BAG, '/multitask',
                {'detection': [25] * 4, 'segmentation': [35, 35, 35, None]}, MASK, inputs=True)
    assert cli_main(['replay', '--score-only', str(recorded), '--bag', str(bag)]) == 0
    printed = capsys.readouterr().out
    assert 'frames out' in printed and 'report:' in printed
    report = json.loads((recorded / 'report.json').read_text())
    run = report['runs']['multitask']
    assert run['publish_times'] == 'recorded input'
    assert (run['frames_in'], run['frames_out'], run['dropped']) == (4, 3, 1)
    assert run['latency_ms']['max'] == pytest.approx(35.0)
    assert run['peak_rss_mb'] is None and run['peak_pss_mb'] is None
    assert run['map50'] == pytest.approx(1.0)
    # No flood in an outside recording: throughput falls back to the paced output rate.
    assert run['fps_source'] == 'paced' and run['fps'] == run['paced_fps'] > 0
    assert report['rounds'] == 1 and len(run['rounds']) == 1
    assert report['ratios'] == dict.fromkeys(RATIO_KEYS)
    assert all(spread['n'] == 0 for spread in report['ratio_spread'].values())


def test_score_only_names_a_directory_without_runs(tmp_path, capsys):
    assert cli_main(['replay', '--score-only', str(tmp_path)]) == 2
    assert 'no replay run in' in capsys.readouterr().err


def test_rounds_are_scored_each_and_reported_as_medians_with_spread(replay_dir):
    # Rounds 2 and 3: other saturated rates and memory; the same frames and answers.
    for k, (mt_fps, base_fps, mt_pss, base_pss) in ((2, (40.0, 10.0, 520.0, 1300.0)),
                                                    (3, (20.0, 10.0, 480.0, 960.0))):
        _run(replay_dir, 'multitask', MULTITASK_DELAYS, MASK, (620.0, 410.0, mt_pss), mt_fps,
             round_index=k)
        _run(replay_dir, 'baseline', BASELINE_DELAYS, np.zeros_like(MASK),
             (1500.0, 850.0, base_pss), base_fps, round_index=k)
    report = score_directory(replay_dir)
    assert report['rounds'] == 3
    mt, base = report['runs']['multitask'], report['runs']['baseline']
    assert [r['round'] for r in mt['rounds']] == [1, 2, 3]
    assert [r['run_dir'] for r in base['rounds']] == [
        'baseline', 'rounds/2/baseline', 'rounds/3/baseline']
    assert [r['fps'] for r in mt['rounds']] == [30.0, 40.0, 20.0]
    # Today's keys hold the medians over rounds.
    assert (mt['fps'], base['fps']) == (30.0, 10.0)
    assert (mt['peak_pss_mb'], base['peak_pss_mb']) == (500.0, 1000.0)
    assert mt['miou'] == pytest.approx(1.0) and base['miou'] == pytest.approx(0.25)
    # Ratios: the median of the per-round ratios (2.5, 4, 2), not the ratio of the medians.
    assert [r['throughput'] for r in report['ratios_per_round']] == [2.5, 4.0, 2.0]
    assert report['ratios']['throughput'] == 2.5
    assert report['ratio_spread']['throughput'] == pytest.approx(
        {'median': 2.5, 'min': 2.0, 'max': 4.0, 'q1': 2.25, 'q3': 3.25, 'n': 3})
    assert report['ratios']['memory'] == pytest.approx(2.0)  # PSS: 2.0, 2.5, 2.0
    assert report['ratios']['memory_rss'] == pytest.approx(1500 / 620)
    assert report['load_average']['rounds'] == [
        {'round': k, 'start': 0.5 * k, 'end': 1.0 * k} for k in (1, 2, 3)]
    assert report['load_average']['overall']['n'] == 12
    markdown = (replay_dir / 'report.md').read_text()
    assert '| throughput (fps) | 30.00 | 10.00 | 2.50x | 2.00-4.00x |' in markdown
    assert '## Rounds' in markdown and '(rounds.png)' in markdown
    assert (replay_dir / 'rounds.png').read_bytes()[:4] == b'\x89PNG'
    # Fewer rounds on disk (a gap) end the series: round 3 without round 2 is not read.
    (replay_dir / 'rounds' / '2' / 'multitask' / OUTPUT_BAG / 'metadata.yaml').unlink()
    assert score_directory(replay_dir, make_plots=False)['runs']['multitask']['fps'] == 30.0


def test_tracks_and_ground_positions_are_scored_where_there_are_some(tmp_path):
    _input_bag(tmp_path / 'input', tracked=True)
    out = tmp_path / 'out'
    # The multitask node tracks the car as '3' throughout and puts it 0.5 m off (0.3, 0.4);
    # the baseline's detection node answers untracked and publishes no 3D detections.
    _run(out, 'multitask', MULTITASK_DELAYS, MASK, (600.0, 400.0, 500.0), 30.0,
         track_ids=['3'] * 4, ground=TRUE_POSITION + [0.3, 0.4, 0.0])
    _run(out, 'baseline', BASELINE_DELAYS, np.zeros_like(MASK), (1400.0, 800.0, 1000.0), 12.0)
    score_directory(out)
    report = json.loads((out / 'report.json').read_text())
    mt, base = report['runs']['multitask'], report['runs']['baseline']
    tracking = mt['tracking']
    assert tracking['reason'] is None and tracking['frames'] == 4
    assert tracking['hota'] == pytest.approx(1.0) and tracking['idf1'] == pytest.approx(1.0)
    assert tracking['mota'] == pytest.approx(1.0) and tracking['id_switches'] == 0
    assert tracking['id_switches_per_100_frames'] == 0.0
    assert set(tracking['per_class']) == {'car'}
    ground = mt['ground_error_m']
    assert ground['reason'] is None and ground['median'] == pytest.approx(0.5)
    assert ground['p90'] == pytest.approx(0.5) and ground['matched'] == 4
    assert ground['unmatched_predictions'] == ground['unmatched_truth'] == 0
    assert ground['per_class']['car']['matched'] == 4
    assert base['tracking']['hota'] is None
    assert 'no track ids' in base['tracking']['reason']
    assert 'no 3D detections' in base['ground_error_m']['reason']
    # The medians over rounds keep the figures (one round here).
    assert mt['rounds'][0]['round'] == 1
    markdown = (out / 'report.md').read_text()
    assert '## Tracks and ground positions' in markdown
    assert '| multitask | HOTA 100.0 %, IDF1 100.0 %, MOTA 100.0 %, 0 ID switches in 4 ' \
        'frames | median 0.50 m, p90 0.50 m over 4 matches; unmatched 0 predicted, 0 true |' \
        in markdown
    assert '| baseline | n/a: the node published no track ids' in markdown
    assert '| HOTA (%) | 100.0 | n/a |  |  |' in markdown
    assert '| ground error median (m) | 0.50 | n/a |  |  |' in markdown
    for name in ('tracking', 'ground_error_cdf'):
        assert (out / f'{name}.png').read_bytes()[:4] == b'\x89PNG', name
        assert f'({name}.png)' in markdown
