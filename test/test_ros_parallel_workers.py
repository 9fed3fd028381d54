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
Two inference workers in one node process on real DDS: ordered outputs, bounded latency, drops.

The node runs the ONNX Runtime export (the CPU deployment path) with ``inference_workers:=2``
sharing one session with one intra-op thread, and is flooded with frames faster than it can
answer.
"""

import time

from diagnostic_msgs.msg import DiagnosticArray
from mtl_perception.inference.export import export_checkpoint_onnx
import pytest
from ros_fixtures import make_checkpoint, make_image, make_picture, NodeProcess, Probe
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

NAMESPACE = '/parallel'
NODE = f'{NAMESPACE}/multitask_node'
IMAGE = '/parallel_test/camera/image'
OUTPUTS = (f'{NAMESPACE}/detections', f'{NAMESPACE}/segmentation/mask')


@pytest.fixture(scope='module')
def node(tmp_path_factory):
    """Start a multitask node with two ONNX Runtime workers, one thread each."""
    directory = tmp_path_factory.mktemp('parallel')
    checkpoint = make_checkpoint(directory, 'multitask')
    onnx_path = directory / 'multitask.onnx'
    export_checkpoint_onnx(checkpoint, onnx_path, images=[make_picture(96, 72)])
    process = NodeProcess('multitask_node', directory / 'node.log', '-r', f'__ns:={NAMESPACE}',
                          '-p', 'backend:=onnxruntime', '-p', f'checkpoint:={onnx_path}',
                          '-p', 'inference_workers:=2', '-p', 'inference_threads:=1',
                          '-p', 'diagnostics_period:=0.2', '-r', f'image:={IMAGE}')
    yield process
    assert process.stop() == 0, process.log()


@pytest.fixture(scope='module')
def probe(node):
    """Return a probe on the node's outputs and diagnostics, with an image publisher."""
    probe = Probe('parallel_probe')
    for topic in OUTPUTS:
        probe.subscribe(topic, Detection2DArray if topic.endswith('detections') else Image)
    probe.subscribe('/diagnostics', DiagnosticArray)
    probe.images = probe.publisher(IMAGE, Image)
    probe.send_until(probe.images, make_image(make_picture(96, 72), 'rgb8', 'first', 0),
                     lambda: all(probe.find(t, 'first') for t in OUTPUTS), 90.0,
                     lambda: f'the first outputs; log:\n{node.log()}')
    yield probe
    probe.close()


def test_two_workers_publish_a_burst_in_order_with_counted_drops(node, probe):
    # One ONNX Runtime session serves both workers (concurrent runs).
    assert '2 inference worker(s) sharing one model, 1 intra-op thread(s)' in node.log()
    before = probe.settled(NODE)
    picture = make_picture(128, 96, seed=1)
    count, sent = 120, {}
    for index in range(count):
        frame_id = f'burst_{index}'
        sent[frame_id] = time.monotonic()
        probe.images.publish(make_image(picture, 'rgb8', frame_id, index + 1))
        probe.executor.spin_once(timeout_sec=0.002)
    last = f'burst_{count - 1}'
    probe.wait_for(lambda: all(probe.find(t, last) for t in OUTPUTS), 60.0,
                   lambda: f'the outputs of the last frame; log:\n{node.log()}')
    answered = {}
    for topic in OUTPUTS:
        order = [int(m.header.frame_id.split('_')[1]) for _, m in probe.received[topic]
                 if m.header.frame_id in sent]
        # Arrival order, whichever worker finished first; no frame published twice.
        assert order == sorted(set(order)), (topic, order)
        answered[topic] = order
    assert answered[OUTPUTS[0]] == answered[OUTPUTS[1]]
    # Concurrent runs on the one shared session answer every frame of the same picture alike.
    masks = {bytes(m.data) for _, m in probe.received[OUTPUTS[1]] if m.header.frame_id in sent}
    assert len(masks) == 1
    # The header stamp travels with its frame.
    assert all(m.header.stamp.sec == int(m.header.frame_id.split('_')[1]) + 1
               for _, m in probe.received[OUTPUTS[1]] if m.header.frame_id in sent)
    latencies = [t - sent[m.header.frame_id] for t, m in probe.received[OUTPUTS[1]]
                 if m.header.frame_id in sent]
    after = probe.settled(NODE, int(before['frames_processed']) + len(latencies))
    received = int(after['frames_received']) - int(before['frames_received'])
    processed = int(after['frames_processed']) - int(before['frames_processed'])
    dropped = int(after['frames_dropped']) - int(before['frames_dropped'])
    assert 0 < received <= count and processed >= len(latencies)
    assert dropped > 0 and received == processed + dropped
    inference_s = float(after['inference_ms']) / 1000.0
    # At most one frame waits and two are in inference: no queue builds up behind them.
    assert max(latencies) < 2.0 + 6 * inference_s, (latencies, inference_s)
