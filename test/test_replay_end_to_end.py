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
nodes through their console scripts; the environment is loopback-only (test/conftest.py).
"""

import json

from mtl_perception.cli.main import main as cli_main
from mtl_perception.replay.bag_io import BagWriter, open_bag
from mtl_perception.replay.flight import IMAGE_TOPIC, START_NS, write_flight_bag
from mtl_perception.replay.messages import COMPRESSED_IMAGE, make_compressed_image
from mtl_perception.replay.messages import stamp_to_ns
from mtl_perception.replay.run_files import OUTPUT_BAG, read_run_info
import numpy as np
from ros_fixtures import checkpoints  # noqa: F401 (a fixture)

FRAMES = 6


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
    rc = cli_main(['replay', '--bag', str(bag), '--config', 'both', '--out', str(out),
                   '--rate', '0.5', '--warmup-frames', '2', '--capacity-seconds', '1',
                   '--no-progress', '--workers', '2', '--threads', '1',
                   *_checkpoint_args(checkpoints)])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert 'throughput (fps)' in printed
    report = json.loads((out / 'report.json').read_text())
    assert report['frames'] == FRAMES
    played = set(flight.stamps_ns)
    for config, nodes in (('multitask', {'multitask_node'}),
                          ('baseline', {'detection_node', 'segmentation_node'})):
        run = report['runs'][config]
        assert run['frames_in'] == FRAMES
        assert 1 <= run['frames_out'] <= FRAMES
        assert run['dropped'] == FRAMES - run['frames_out']
        assert run['unmatched_outputs'] == 0
        assert 0 < run['latency_ms']['p50'] <= run['latency_ms']['max'] < 30_000
        assert run['peak_rss_mb'] > 50 and run['cpu_percent'] > 0
        assert run['miou'] is not None  # the flight has ground truth masks
        info = read_run_info(out / config)
        assert set(info['processes']) == nodes
        # Every node of both configurations gets the same worker settings.
        for process in info['processes'].values():
            command = ' '.join(process['command'])
            assert '-p inference_workers:=2 -p inference_threads:=1' in command, command
        # Throughput is the saturated rate of the flood, the paced rate is kept beside it.
        assert run['fps_source'] == 'saturated' and run['fps'] == info['capacity_fps'] > 0
        assert run['paced_fps'] > 0 and info['capacity']['answered'] >= 2
        assert all(p['exit_code'] == 0 for p in info['processes'].values()), info['processes']
        assert [s for s, _ in info['frames']] == list(flight.stamps_ns)
        # Every output carries the stamp of a frame played (or of a warm-up frame), and the
        # last frame is always answered (a node drops only frames that a newer one replaced).
        warmups = set(info['warmup_stamps'])
        for topic, stamps in _output_stamps(out / config).items():
            assert stamps <= played | warmups, topic
            assert flight.stamps_ns[-1] in stamps, topic
        assert (out / config / 'logs').is_dir()
    # The two nodes of the baseline are summed.
    assert report['runs']['baseline']['peak_rss_mb'] > report['runs']['multitask']['peak_rss_mb']
    assert set(report['ratios']) == {'throughput', 'memory', 'latency_p50', 'capacity',
                                     'paced_throughput'}
    assert report['ratios']['throughput'] == report['ratios']['capacity'] > 0
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
    rc = cli_main(['replay', '--bag', str(bag), '--config', 'multitask', '--out', str(out),
                   '--rate', '0.5', '--warmup-frames', '1', '--max-frames', '3',
                   '--capacity-seconds', '0',
                   '--no-progress', *_checkpoint_args(checkpoints)])
    assert rc == 0, capsys.readouterr().out
    report = json.loads((out / 'report.json').read_text())
    run = report['runs']['multitask']
    assert run['frames_in'] == 3 and run['frames_out'] >= 1
    assert run['map50'] is None and run['miou'] is None  # no ground truth in this bag
    assert 'baseline' not in report['runs']
    assert run['capacity_fps'] is None  # not measured with --capacity-seconds 0
    info = read_run_info(out / 'multitask')
    assert info['image_type'] == COMPRESSED_IMAGE and info['publish_topic'] == topic
    assert '-p' in info['processes']['multitask_node']['command']
    assert 'use_compressed:=true' in info['processes']['multitask_node']['command']
    answered = set().union(*_output_stamps(out / 'multitask').values())
    assert stamps[2] in answered and stamps[3] not in answered
