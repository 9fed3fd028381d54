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
`mtl-perception replay` end to end: real node processes on real DDS, tiny bags and networks.

The replay runs in this process (its rclpy context, the player and the recorder) and starts the
nodes through their console scripts; the environment is loopback-only (test/conftest.py). To
keep the node start-ups (the slow part) few, the comparison of both configurations runs one
round and the compressed-image replay of the multitask node two: the rounds' layout, the
frames and rate carried over to a later round and the clearing of stale rounds are exercised
on real runs, the medians and per-round ratios in test_replay_rounds.py.
"""

import json

from mtl_perception.cli.main import main as cli_main
from mtl_perception.replay.bag_io import BagWriter, open_bag
from mtl_perception.replay.flight import IMAGE_TOPIC, START_NS, write_flight_bag
from mtl_perception.replay.messages import COMPRESSED_IMAGE, make_compressed_image
from mtl_perception.replay.messages import stamp_to_ns
from mtl_perception.replay.run_files import load_run, OUTPUT_BAG, read_run_info, round_dir
import numpy as np
from ros_fixtures import checkpoints  # noqa: F401 (a fixture)
from ros_fixtures import DETECTION_CLASSES, SEGMENTATION_CLASSES

FRAMES = 6
MEMORY_KEYS = ('peak_rss_mb', 'peak_uss_mb', 'peak_pss_mb')


def _checkpoint_args(checkpoints):  # noqa: F811
    return ['--checkpoint-multitask', str(checkpoints['multitask']),
            '--checkpoint-detection', str(checkpoints['detection']),
            '--checkpoint-segmentation', str(checkpoints['segmentation'])]


def _output_stamps(run_dir):
    stamps = {}
    with open_bag(run_dir / OUTPUT_BAG) as bag:
        topics = bag.topics()
        wanted = [t for t in topics if t.endswith(('/detections', '/segmentation/mask'))]
        for topic, _, msg in bag.messages(wanted):
            assert msg.header.frame_id == 'camera', topic
            stamps.setdefault(topic, set()).add(stamp_to_ns(msg.header.stamp))
    return stamps


def test_replay_both_configurations_through_node_processes(tmp_path, checkpoints,  # noqa: F811
                                                           capsys):
    bag = tmp_path / 'flight'
    flight = write_flight_bag(bag, frames=FRAMES, rate=10.0, seed=3, size=(160, 120),
                              world_size=(600, 480), speed=60.0, progress=False)
    out = tmp_path / 'replay'
    # A stale round from an earlier replay of more rounds into the same directory is cleared.
    (round_dir(out, 'baseline', 2) / OUTPUT_BAG).mkdir(parents=True)
    rc = cli_main(['replay', '--bag', str(bag), '--config', 'both', '--out', str(out),
                   '--rate', '0.5', '--warmup-frames', '2', '--capacity-seconds', '1',
                   '--rounds', '1', '--no-progress', '--workers', '2', '--threads', '1',
                   *_checkpoint_args(checkpoints)])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert 'throughput (fps)' in printed and 'peak PSS (MB)' in printed
    assert not (out / 'rounds').exists()
    report = json.loads((out / 'report.json').read_text())
    assert report['frames'] == FRAMES and report['rounds'] == 1
    played = set(flight.stamps_ns)
    for config, nodes in (('multitask', {'multitask_node'}),
                          ('baseline', {'detection_node', 'segmentation_node'})):
        run = report['runs'][config]
        assert run['frames_in'] == FRAMES
        assert 1 <= run['frames_out'] <= FRAMES
        assert run['unmatched_outputs'] == 0
        assert 0 < run['latency_ms']['p50'] <= run['latency_ms']['max'] < 30_000
        assert run['cpu_percent'] > 0
        assert run['peak_uss_mb'] <= run['peak_pss_mb'] <= run['peak_rss_mb']
        assert run['peak_pss_mb'] > 20
        assert run['miou'] is not None  # the flight has ground truth masks
        assert [r['round'] for r in run['rounds']] == [1]
        for k, figures in enumerate(run['rounds'], start=1):
            run_dir = round_dir(out, config, k)
            assert figures['run_dir'] == str(run_dir.relative_to(out))
            assert figures['dropped'] == FRAMES - figures['frames_out']
            assert figures['peak_pss_mb'] <= figures['peak_rss_mb']
            info = read_run_info(run_dir)
            assert info['round'] == k and set(info['processes']) == nodes
            for process in info['processes'].values():
                # Every node of both configurations gets the same worker settings.
                command = ' '.join(process['command'])
                assert '-p inference_workers:=2 -p inference_threads:=1' in command, command
                assert process['peak_uss_mb'] <= process['peak_pss_mb'] <= \
                    process['peak_rss_mb']
            # The configuration's peak is that of the per-sample sum over its processes.
            for key in MEMORY_KEYS:
                assert max(p[key] for p in info['processes'].values()) <= info[key] <= \
                    sum(p[key] for p in info['processes'].values()) + 1e-6
            assert set(info['memory_mb']) == {'rss', 'uss', 'pss'}
            assert set(info['load_average']) == {'start', 'end'}
            # Throughput is the saturated rate of the flood, the paced rate kept beside it.
            assert figures['fps'] == info['capacity_fps'] > 0
            assert info['capacity']['answered'] >= 2
            assert all(p['exit_code'] == 0 for p in info['processes'].values()), \
                info['processes']
            # Every run plays the same frames at the same rate.
            assert [s for s, _ in info['frames']] == list(flight.stamps_ns)
            assert info['rate'] == 0.5
            # Every output carries the stamp of a frame played (or of a warm-up frame), and
            # the last frame is always answered (a node drops only frames a newer one
            # replaced).
            warmups = set(info['warmup_stamps'])
            for topic, stamps in _output_stamps(run_dir).items():
                assert stamps <= played | warmups, topic
                assert flight.stamps_ns[-1] in stamps, topic
            assert (run_dir / 'logs').is_dir()
            # Both tasks' latched label topics were recorded (one publisher each).
            assert load_run(run_dir, config).class_names == {
                'detection': DETECTION_CLASSES, 'segmentation': SEGMENTATION_CLASSES}
        assert run['fps_source'] == 'saturated' and run['paced_fps'] > 0
    # The baseline runs two processes: more memory than the one multitask process, on PSS
    # (shared pages split between them) as on RSS.
    mt, base = report['runs']['multitask'], report['runs']['baseline']
    assert base['peak_pss_mb'] > mt['peak_pss_mb'] and base['peak_rss_mb'] > mt['peak_rss_mb']
    assert set(report['ratios']) == {'throughput', 'memory', 'memory_rss', 'latency_p50',
                                     'capacity', 'paced_throughput'}
    assert report['ratios']['memory'] > 1 and report['ratios']['memory_rss'] > 1
    assert report['ratios']['throughput'] == report['ratios']['capacity'] > 0
    assert [r['round'] for r in report['ratios_per_round']] == [1]
    assert report['ratio_spread']['throughput']['n'] == 1
    assert len(report['load_average']['rounds']) == 1
    for name in ('report.md', 'latency_cdf.png', 'throughput.png', 'memory.png',
                 'overlay_strip.png'):
        assert (out / name).is_file(), name


def test_replay_compressed_images_into_the_multitask_node(tmp_path, checkpoints,  # noqa: F811
                                                          capsys):
    bag, topic = tmp_path / 'compressed', IMAGE_TOPIC + '/compressed'
    stamps = [START_NS + i * 100_000_000 for i in range(4)]
    rng = np.random.default_rng(0)
    with BagWriter(bag) as writer:
        writer.add_topic(topic, COMPRESSED_IMAGE)
        for stamp in stamps:
            pixels = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
            writer.write(topic, stamp, make_compressed_image(pixels, 'jpeg', stamp, 'camera'))
    out = tmp_path / 'replay'
    # A stale third round from an earlier replay into the same directory is cleared.
    (round_dir(out, 'multitask', 3) / OUTPUT_BAG).mkdir(parents=True)
    rc = cli_main(['replay', '--bag', str(bag), '--config', 'multitask', '--out', str(out),
                   '--rate', '0.5', '--warmup-frames', '1', '--max-frames', '3',
                   '--capacity-seconds', '0', '--rounds', '2',
                   '--no-progress', *_checkpoint_args(checkpoints)])
    assert rc == 0, capsys.readouterr().out
    assert not (out / 'rounds' / '3').exists()
    report = json.loads((out / 'report.json').read_text())
    run = report['runs']['multitask']
    assert run['frames_in'] == 3 and run['frames_out'] >= 1
    assert run['map50'] is None and run['miou'] is None  # no ground truth in this bag
    assert 'baseline' not in report['runs']
    assert run['capacity_fps'] is None  # not measured with --capacity-seconds 0
    assert run['peak_uss_mb'] <= run['peak_pss_mb'] <= run['peak_rss_mb']
    # Two rounds: OUT/multitask and OUT/rounds/2/multitask, each a complete run.
    assert report['rounds'] == 2
    assert [r['run_dir'] for r in run['rounds']] == ['multitask', 'rounds/2/multitask']
    assert report['ratios_per_round'] == []  # nothing to pair with
    for k, figures in enumerate(run['rounds'], start=1):
        assert figures['peak_uss_mb'] <= figures['peak_pss_mb'] <= figures['peak_rss_mb']
        run_dir = round_dir(out, 'multitask', k)
        info = read_run_info(run_dir)
        assert info['round'] == k and info['rate'] == 0.5
        # The later round plays the frames the first one played.
        assert [s for s, _ in info['frames']] == stamps[:3]
        assert info['image_type'] == COMPRESSED_IMAGE and info['publish_topic'] == topic
        assert 'use_compressed:=true' in info['processes']['multitask_node']['command']
        answered = set().union(*_output_stamps(run_dir).values())
        assert stamps[2] in answered and stamps[3] not in answered
