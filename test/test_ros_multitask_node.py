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

"""The multitask node as a separate process on real DDS: outputs, bad inputs, bursts."""

import array
import time

from diagnostic_msgs.msg import DiagnosticArray
from mtl_perception.ros.conversions import DETECTION_ID_OFFSET, rgb_to_compressed
import numpy as np
import pytest
from ros_fixtures import (checkpoints, DETECTION_CLASSES, LATCHED, make_image,  # noqa: F401
                          make_picture, NodeProcess, Probe,
                          SEGMENTATION_CLASSES)
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray, LabelInfo

NODE = '/multitask_node'
IMAGE = '/mt_test/camera/image'
# The node's label topics: detection classes, segmentation classes.
LABEL_TOPICS = ('/detections/label_info', '/segmentation/label_info')


@pytest.fixture(scope='module')
def node(checkpoints, tmp_path_factory):  # noqa: F811
    """One multitask node for the whole module (compressed input on, fast diagnostics)."""
    log = tmp_path_factory.mktemp('multitask_node') / 'node.log'
    process = NodeProcess('multitask_node', log, '-p', f'checkpoint:={checkpoints["multitask"]}',
                          '-p', 'use_compressed:=true', '-p', 'diagnostics_period:=0.2',
                          '-r', f'image:={IMAGE}')
    yield process
    assert process.stop() == 0, process.log()


@pytest.fixture(scope='module')
def probe(node):
    """Return a probe subscribed to every output, with matched image publishers."""
    probe = Probe('multitask_probe')
    probe.subscribe('/detections', Detection2DArray)
    probe.subscribe('/segmentation/mask', Image)
    probe.subscribe('/diagnostics', DiagnosticArray)
    for topic in LABEL_TOPICS:
        probe.subscribe(topic, LabelInfo, LATCHED)
    probe.wait_for(lambda: all(probe.received[topic] for topic in LABEL_TOPICS), 60.0,
                   lambda: f'label_info from an active node; log:\n{node.log()}')
    probe.images = probe.publisher(IMAGE, Image)
    probe.compressed = probe.publisher(IMAGE + '/compressed', CompressedImage)
    yield probe
    probe.close()


def _results(probe, publisher, msg, frame_id, timeout=30.0):
    probe.send_until(publisher, msg, lambda: probe.find('/detections', frame_id)
                     and probe.find('/segmentation/mask', frame_id), timeout,
                     f'detections and mask for {frame_id}')
    return probe.find('/detections', frame_id)[1], probe.find('/segmentation/mask', frame_id)[1]


def _mask_array(mask: Image) -> np.ndarray:
    return np.frombuffer(mask.data, np.uint8).reshape(mask.height, mask.step)[:, :mask.width]


def _boxes(detections: Detection2DArray) -> list:
    return [(d.results[0].hypothesis.class_id, round(d.results[0].hypothesis.score, 4),
             round(d.bbox.center.position.x, 2), round(d.bbox.size_y, 2))
            for d in detections.detections]


def test_outputs_follow_the_input_in_every_encoding(probe):
    picture = make_picture(96, 72)
    alpha = np.full((72, 96, 1), 200, np.uint8)
    inputs = {
        'rgb8': make_image(picture, 'rgb8', 'enc_rgb8', 11),
        'bgr8': make_image(picture[..., ::-1], 'bgr8', 'enc_bgr8', 12),
        'rgba8': make_image(np.concatenate([picture, alpha], 2), 'rgba8', 'enc_rgba8', 13),
        'bgra8': make_image(np.concatenate([picture[..., ::-1], alpha], 2), 'bgra8',
                            'enc_bgra8', 14),
        'rgb8_padded': make_image(picture, 'rgb8', 'enc_rgb8_padded', 15, padding=13),
    }
    results = {name: _results(probe, probe.images, msg, msg.header.frame_id)
               for name, msg in inputs.items()}
    reference_detections, reference_mask = results['rgb8']
    for name, (detections, mask) in results.items():
        source = inputs[name].header
        for header in (detections.header, mask.header):
            assert header.frame_id == source.frame_id
            assert (header.stamp.sec, header.stamp.nanosec) == (source.stamp.sec, 123)
        assert (mask.width, mask.height, mask.encoding) == (96, 72, 'mono8')
        assert mask.step == 96 and len(mask.data) == 96 * 72
        pixels = _mask_array(mask)
        assert pixels.max() < len(SEGMENTATION_CLASSES)
        # The same picture in any channel order or row padding gives the same network output.
        np.testing.assert_array_equal(pixels, _mask_array(reference_mask), err_msg=name)
        assert _boxes(detections) == _boxes(reference_detections), name
        for detection in detections.detections:
            # A track identity, or '' while its track is not confirmed (tracking is on).
            assert detection.id == '' or detection.id.isdigit()
            assert detection.header.frame_id == source.frame_id
            hypothesis = detection.results[0].hypothesis
            assert hypothesis.class_id in DETECTION_CLASSES
            assert 0.3 <= hypothesis.score <= 1.0
            centre, box = detection.bbox.center.position, detection.bbox
            assert -1 <= centre.x - box.size_x / 2 and centre.x + box.size_x / 2 <= 97
            assert -1 <= centre.y - box.size_y / 2 and centre.y + box.size_y / 2 <= 73


def test_mono8_and_compressed_inputs(probe):
    grey = make_picture(80, 64)[..., :1]
    grey_rgb = np.repeat(grey, 3, axis=2)
    _, mono_mask = _results(probe, probe.images, make_image(grey, 'mono8', 'mono', 21), 'mono')
    _, rgb_mask = _results(probe, probe.images, make_image(grey_rgb, 'rgb8', 'grey_rgb', 22),
                           'grey_rgb')
    np.testing.assert_array_equal(_mask_array(mono_mask), _mask_array(rgb_mask))
    header = Header(frame_id='png')
    png = rgb_to_compressed(make_picture(80, 64), header, 'png')
    _, png_mask = _results(probe, probe.compressed, png, 'png')
    _, raw_mask = _results(probe, probe.images, make_image(make_picture(80, 64), 'rgb8', 'raw'),
                           'raw')
    # PNG is lossless: the decoded frame is the raw frame.
    np.testing.assert_array_equal(_mask_array(png_mask), _mask_array(raw_mask))
    jpeg = rgb_to_compressed(make_picture(80, 64), Header(frame_id='jpeg'), 'jpeg')
    detections, mask = _results(probe, probe.compressed, jpeg, 'jpeg')
    assert (mask.width, mask.height) == (80, 64) and detections.header.frame_id == 'jpeg'


def test_label_info_per_task_reaches_a_late_subscriber(probe):
    late = Probe('late_label_subscriber')
    try:
        records = {topic: late.subscribe(topic, LabelInfo, LATCHED) for topic in LABEL_TOPICS}
        late.wait_for(lambda: all(records.values()), 30.0, f'latched {LABEL_TOPICS}')
        detection, segmentation = (records[topic][0][1] for topic in LABEL_TOPICS)
        for topic in LABEL_TOPICS:
            # The graph learns an endpoint's node name from a separate discovery message.
            late.wait_for(lambda: all(p.node_name != '_NODE_NAME_UNKNOWN_' for p in
                                      late.node.get_publishers_info_by_topic(topic)),
                          10.0, f'the node names of the publishers of {topic}')
            publishers = late.node.get_publishers_info_by_topic(topic)
            assert [p.node_name for p in publishers] == ['multitask_node'], topic
    finally:
        late.close()
    assert {item.class_id: item.class_name for item in detection.class_map} == \
        {DETECTION_ID_OFFSET + i: name for i, name in enumerate(DETECTION_CLASSES)}
    assert detection.threshold == pytest.approx(0.3)
    assert {item.class_id: item.class_name for item in segmentation.class_map} == \
        {**dict(enumerate(SEGMENTATION_CLASSES)), 255: 'void'}
    assert segmentation.threshold == 0.0


def test_debug_images_while_subscribed(probe):
    overlay = probe.subscribe('/detections/overlay', Image)
    color = probe.subscribe('/segmentation/color', Image)
    msg = make_image(make_picture(64, 48), 'rgb8', 'debug', 31)
    probe.send_until(probe.images, msg, lambda: probe.find('/detections/overlay', 'debug')
                     and probe.find('/segmentation/color', 'debug'), 30.0, 'debug images')
    for records in (overlay, color):
        image = next(m for _, m in records if m.header.frame_id == 'debug')
        assert (image.width, image.height, image.encoding, image.step) == (64, 48, 'rgb8', 192)
        assert image.header.stamp.sec == 31


def _with(msg: Image, **fields) -> Image:
    for name, value in fields.items():
        setattr(msg, name, value)
    return msg


def _bad(**fields):
    return lambda: _with(make_image(make_picture(32, 32), 'rgb8', 'bad'), **fields)


BAD_INPUTS = {
    'unknown encoding': (_bad(encoding='yuv422'), "unsupported image encoding 'yuv422'"),
    'step smaller than a row': (_bad(step=50, data=array.array('B', bytes(50 * 32))),
                                'step 50 is smaller than width 32'),
    'data length': (_bad(data=array.array('B', bytes(96 * 32 - 5))), 'data holds 3067 bytes'),
    'zero size': (_bad(height=0, data=array.array('B')), 'empty image: width=32, height=0'),
}


@pytest.mark.parametrize('kind', [*BAD_INPUTS, 'undecodable compressed'])
def test_bad_input_is_counted_and_the_next_frame_processed(probe, node, kind):
    probe.wait_for(lambda: probe.counter(NODE, 'inputs_rejected') >= 0, 10.0, 'diagnostics')
    rejected = probe.counter(NODE, 'inputs_rejected')
    if kind == 'undecodable compressed':
        bad = CompressedImage(format='jpeg', data=b'\xff\xd8 not really a jpeg')
        publisher, expected = probe.compressed, 'cannot decode compressed image'
    else:
        make, expected = BAD_INPUTS[kind]
        bad, publisher = make(), probe.images
    probe.send_until(publisher, bad, lambda: probe.counter(NODE, 'inputs_rejected') > rejected,
                     30.0, f'a rejected-input count for {kind}')
    frame_id = 'after_' + kind.replace(' ', '_')
    _results(probe, probe.images, make_image(make_picture(48, 40), 'rgb8', frame_id), frame_id)
    probe.wait_for(lambda: expected in node.log(), 10.0, f'a log line naming {expected!r}')


def test_burst_keeps_latency_bounded_and_counts_drops(probe):
    before = probe.settled(NODE)
    picture = make_picture(128, 96)
    count, sent = 150, {}
    for index in range(count):
        frame_id = f'burst_{index}'
        sent[frame_id] = time.monotonic()
        probe.images.publish(make_image(picture, 'rgb8', frame_id, index))
        probe.executor.spin_once(timeout_sec=0.002)
    last = f'burst_{count - 1}'
    probe.wait_for(lambda: probe.find('/segmentation/mask', last), 60.0,
                   'the output of the last frame of the burst')
    outputs = [(t, m.header.frame_id) for t, m in probe.received['/segmentation/mask']
               if m.header.frame_id in sent]
    latencies = [t - sent[frame_id] for t, frame_id in outputs]
    after = probe.settled(NODE, int(before['frames_processed']) + len(outputs))
    received = int(after['frames_received']) - int(before['frames_received'])
    processed = int(after['frames_processed']) - int(before['frames_processed'])
    dropped = int(after['frames_dropped']) - int(before['frames_dropped'])
    assert 0 < received <= count and processed >= len(outputs)
    assert dropped > 0 and received == processed + dropped
    inference_s = float(after['inference_ms']) / 1000.0
    # Most frames are dropped instead of queued; a queue would make the last frame wait for
    # every earlier one (count x inference time).
    assert processed < count / 2
    assert max(latencies) < 2.0 + 4 * inference_s, (latencies, inference_s)
    assert max(latencies) < 0.5 * count * inference_s + 1.0
    assert float(after['end_to_end_ms']) < 2000.0 + 4000 * inference_s
