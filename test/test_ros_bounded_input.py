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
Oversized input images are refused from their size, before any pixel is decoded.

A 13000x13000 1-bit PNG is 20 KB on the wire and 169 M pixels (half a gigabyte as RGB) once
decoded; an 8000x6000 rgb8 Image is 144 MB. The node (max_image_pixels 4096 x 4096) must reject
both without decoding them, keep answering the frames around them, and count the rejections.
Its resident memory is measured around each: the node process's RSS (psutil).
"""

import array
import io

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from PIL import Image as PILImage
import psutil
import pytest
from ros_fixtures import (checkpoints, make_image, make_picture, NodeProcess,  # noqa: F401
                          Probe, RELIABLE)
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

NAMESPACE = '/bounded'
NODE = f'{NAMESPACE}/multitask_node'
IMAGE = '/bounded_test/image'
MASKS = f'{NAMESPACE}/segmentation/mask'
# How much the node's resident memory may grow over the two oversized frames: far less than
# either decoded image (507 MB and 144 MB), a margin for allocator and DDS noise.
RSS_MARGIN = 50 * 1024 * 1024
RAW_WIDTH, RAW_HEIGHT = 8000, 6000
RAW_BYTES = RAW_WIDTH * RAW_HEIGHT * 3


def _rss(node: NodeProcess) -> int:
    """Return the node process's resident set size in bytes."""
    return psutil.Process(node.process.pid).memory_info().rss


def _growth(rss: list, first: int, last: int) -> str:
    return f'node RSS grew from {rss[first] / 2**20:.0f} MiB to {rss[last] / 2**20:.0f} MiB'


def _png_bomb(width: int = 13000, height: int = 13000) -> CompressedImage:
    """Return a blank 1-bit PNG of ``width`` x ``height`` (about 20 KB) as CompressedImage."""
    buffer = io.BytesIO()
    PILImage.new('1', (width, height)).save(buffer, format='PNG')
    msg = CompressedImage(header=Header(frame_id='png_bomb'), format='png')
    data = array.array('B')
    data.frombytes(buffer.getbuffer())
    msg.data = data
    return msg


def _huge_raw(width: int = RAW_WIDTH, height: int = RAW_HEIGHT) -> Image:
    """Return an rgb8 Image of ``width`` x ``height`` (144 MB of zeros)."""
    msg = Image(header=Header(frame_id='huge_raw'), height=height, width=width,
                encoding='rgb8', step=width * 3)
    data = array.array('B')
    data.frombytes(bytes(width * height * 3))
    msg.data = data
    return msg


def _warned(probe) -> bool:
    """Whether the node has reported a WARN status (rejected inputs since its last report)."""
    return any(status.name == NODE and status.level == DiagnosticStatus.WARN
               for _, msg in probe.received['/diagnostics'] for status in msg.status)


@pytest.fixture
def probe():
    """Return a probe recording the node's masks and diagnostics."""
    probe = Probe('bounded_probe')
    probe.subscribe(MASKS, Image)
    probe.subscribe('/diagnostics', DiagnosticArray)
    yield probe
    probe.close()


def test_oversized_images_are_rejected_before_decoding(probe, checkpoints,  # noqa: F811
                                                       tmp_path):
    node = NodeProcess('multitask_node', tmp_path / 'node.log', '-r', f'__ns:={NAMESPACE}',
                       '-p', f'checkpoint:={checkpoints["multitask"]}',
                       '-r', f'image:={IMAGE}', '-p', 'use_compressed:=true',
                       '-p', 'qos_reliability:=reliable', '-p', 'qos_depth:=5',
                       '-p', 'diagnostics_period:=0.2')
    try:
        raw = probe.publisher(IMAGE, Image, RELIABLE)
        compressed = probe.publisher(f'{IMAGE}/compressed', CompressedImage, RELIABLE)
        picture = make_picture(96, 72)

        def good(frame_id: str) -> None:
            probe.send_until(raw, make_image(picture, 'rgb8', frame_id),
                             lambda: probe.find(MASKS, frame_id), 60.0,
                             lambda: f'the mask of {frame_id}; log:\n{node.log()}')

        def rejected(count: int):
            return lambda: probe.counter(NODE, 'inputs_rejected') >= count

        for index in range(3):  # warm up: first inferences allocate their buffers
            good(f'warm_{index}')
        probe.settled(NODE, min_processed=3)
        rss = [_rss(node)]

        compressed.publish(_png_bomb())
        probe.wait_for(rejected(1), 30.0, lambda: f'the PNG rejection; log:\n{node.log()}')
        good('after_png')
        rss.append(_rss(node))
        for count in (2, 3):
            raw.publish(_huge_raw())
            probe.wait_for(rejected(count), 60.0,
                           lambda: f'the raw rejection; log:\n{node.log()}')
            good(f'after_raw_{count}')
            rss.append(_rss(node))
        stats = probe.settled(NODE, min_processed=6)
        print('node RSS (MiB) warm, after the PNG, after each raw frame: '
              + ', '.join(f'{value / 2**20:.0f}' for value in rss))

        assert int(stats['inputs_rejected']) == 3, stats
        assert probe.find(MASKS, 'png_bomb') is None and probe.find(MASKS, 'huge_raw') is None
        log = node.log()
        assert 'PNG image of 13000x13000 = 169000000 pixels exceeds the limit of 16777216' in log
        assert 'rgb8 image of 8000x6000 = 48000000 pixels exceeds the limit' in log
        # The PNG is refused from its header: nothing of its 169 M pixels is ever allocated.
        assert rss[1] - rss[0] < RSS_MARGIN, _growth(rss, 0, 1)
        # A raw frame must be received whole before its fields can be read: DDS keeps a
        # receive buffer of its size for reuse, but no decoded or resized copy stays (with no
        # limit, such a frame left about 1 GiB behind). The next one costs nothing more.
        assert rss[2] - rss[1] < RAW_BYTES + RSS_MARGIN, _growth(rss, 1, 2)
        assert rss[3] - rss[2] < RSS_MARGIN, _growth(rss, 2, 3)
    finally:
        assert node.stop() == 0, node.log()


def test_rejection_reaches_the_diagnostics_level(probe, checkpoints, tmp_path):  # noqa: F811
    """A limit set by parameter rejects an ordinary frame; diagnostics turn WARN."""
    node = NodeProcess('multitask_node', tmp_path / 'node.log', '-r', f'__ns:={NAMESPACE}',
                       '-p', f'checkpoint:={checkpoints["multitask"]}',
                       '-r', f'image:={IMAGE}', '-p', 'max_image_pixels:=4000',
                       '-p', 'qos_reliability:=reliable', '-p', 'diagnostics_period:=0.2')
    try:
        raw = probe.publisher(IMAGE, Image, RELIABLE)
        small = make_image(make_picture(48, 40), 'rgb8', 'small')  # 1920 pixels: accepted
        probe.send_until(raw, small, lambda: probe.find(MASKS, 'small'), 60.0,
                         lambda: f'the mask of the small frame; log:\n{node.log()}')
        raw.publish(make_image(make_picture(96, 72), 'rgb8', 'large'))  # 6912 pixels
        probe.wait_for(lambda: probe.counter(NODE, 'inputs_rejected') >= 1, 30.0,
                       lambda: f'the rejection; log:\n{node.log()}')
        probe.wait_for(lambda: _warned(probe), 10.0, 'a WARN diagnostics status')
        assert probe.find(MASKS, 'large') is None
        assert 'exceeds the limit of 4000 pixels' in node.log()
    finally:
        assert node.stop() == 0, node.log()


def test_max_image_pixels_rejects_bad_values():
    from mtl_perception.ros.parameters import PARAMETERS, validate_settings
    values = dict({spec.name: spec.default for spec in PARAMETERS}, checkpoint='m')
    assert values['max_image_pixels'] == 4096 * 4096
    assert validate_settings(values, None).max_image_pixels == 4096 * 4096
    with pytest.raises(ValueError, match='max_image_pixels=0 is outside'):
        validate_settings(dict(values, max_image_pixels=0), None)
    descriptor = {spec.name: spec.descriptor() for spec in PARAMETERS}['max_image_pixels']
    assert descriptor.integer_range[0].from_value == 1
    assert descriptor.integer_range[0].to_value >= 4096 * 4096
