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
One image decoder: the nodes and the replay scorer accept and reject the same images.

With a pixel limit, oversized images are refused from their size fields or compressed header,
before any pixel is decoded.
"""

import io
import warnings

from mtl_perception.inference.image_decoding import (decode_compressed, decode_image,
                                                     ImageDecodeError)
from mtl_perception.replay.messages import image_to_array, make_image
from mtl_perception.ros.conversions import image_to_rgb
import numpy as np
from PIL import Image as PILImage, ImageFile
import pytest
from sensor_msgs.msg import Image

PIXELS = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)


def _both(encoding: str, step: int, data: bytes, height: int = 4, width: int = 5):
    """Return the same image as an rclpy message (node side) and a rosbags message (scorer)."""
    node_msg = Image(height=height, width=width, encoding=encoding, step=step)
    node_msg.data = data
    bag_msg = make_image(PIXELS, 0, 'camera')
    bag_msg.height, bag_msg.width, bag_msg.encoding, bag_msg.step = height, width, encoding, step
    bag_msg.data = np.frombuffer(data, np.uint8).copy()
    return node_msg, bag_msg


@pytest.mark.parametrize('encoding,step,data,reason', [
    ('rgb8', 15, PIXELS.tobytes() + b'\x00' * 15, 'data_length'),  # one row too many
    ('rgb8', 15, PIXELS.tobytes()[:-1], 'data_length'),
    ('rgb8', 14, PIXELS.tobytes(), 'step'),
    ('32FC1', 15, PIXELS.tobytes(), 'encoding'),
    ('rgb8', 0, b'', 'size'),
])
def test_both_sides_reject_the_same_image(encoding, step, data, reason):
    height = 0 if reason == 'size' else 4
    node_msg, bag_msg = _both(encoding, step, data, height=height)
    with pytest.raises(ImageDecodeError) as node_error:
        image_to_rgb(node_msg)
    with pytest.raises(ImageDecodeError) as bag_error:
        image_to_array(bag_msg)
    assert node_error.value.reason == bag_error.value.reason == reason
    assert str(node_error.value) == str(bag_error.value)


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'rgba8'])
def test_both_sides_decode_the_same_pixels(encoding):
    pixels = {'rgb8': PIXELS, 'bgr8': PIXELS[..., ::-1],
              'rgba8': np.concatenate([PIXELS, np.zeros((4, 5, 1), np.uint8)], axis=2)}[encoding]
    step = 5 * pixels.shape[2] + 3
    rows = np.zeros((4, step), np.uint8)
    rows[:, :5 * pixels.shape[2]] = pixels.reshape(4, -1)
    node_msg, bag_msg = _both(encoding, step, rows.tobytes())
    np.testing.assert_array_equal(image_to_rgb(node_msg), PIXELS)
    np.testing.assert_array_equal(image_to_array(bag_msg), PIXELS)


def _png(width: int, height: int, mode: str = '1') -> bytes:
    buffer = io.BytesIO()
    PILImage.new(mode, (width, height)).save(buffer, format='PNG')
    return buffer.getvalue()


@pytest.fixture
def no_pixel_decoding(monkeypatch):
    """Make any attempt to decompress pixels fail the test."""
    def load(self):
        raise AssertionError('pixels were decoded')
    monkeypatch.setattr(ImageFile.ImageFile, 'load', load)


def test_raw_size_limit_is_checked_before_the_data(no_pixel_decoding):
    # ``data`` is not even a buffer: the fields alone decide.
    with pytest.raises(ImageDecodeError, match='8000x6000 = 48000000 pixels exceeds the '
                       'limit of 16777216') as error:
        decode_image('rgb8', 6000, 8000, 24000, None, max_pixels=4096 * 4096)
    assert error.value.reason == 'size'
    assert decode_image('rgb8', 4, 5, 15, PIXELS.tobytes(), max_pixels=20).shape == (4, 5, 3)
    with pytest.raises(ImageDecodeError, match='exceeds the limit of 19 pixels'):
        decode_image('rgb8', 4, 5, 15, PIXELS.tobytes(), max_pixels=19)


def test_compressed_size_limit_is_checked_on_the_header(no_pixel_decoding):
    bomb = _png(5000, 5000)  # a few KB on the wire, 25 M pixels decoded
    assert len(bomb) < 20000
    with pytest.raises(ImageDecodeError, match='PNG image of 5000x5000 = 25000000 pixels '
                       'exceeds the limit of 1000000') as error:
        decode_compressed(bomb, 'png', max_pixels=1000 * 1000)
    assert error.value.reason == 'size'
    jpeg = io.BytesIO()
    PILImage.new('RGB', (40, 30)).save(jpeg, format='JPEG')
    with pytest.raises(ImageDecodeError, match='JPEG image of 40x30') as error:
        decode_compressed(jpeg.getvalue(), 'jpeg', max_pixels=40 * 30 - 1)
    assert error.value.reason == 'size'


def test_compressed_images_within_the_limit_decode():
    jpeg = io.BytesIO()
    PILImage.new('RGB', (40, 30), (200, 10, 10)).save(jpeg, format='JPEG')
    assert decode_compressed(jpeg.getvalue(), max_pixels=40 * 30).shape == (30, 40, 3)
    assert decode_compressed(_png(40, 30), max_pixels=40 * 30).shape == (30, 40, 3)
    assert decode_compressed(_png(40, 30, 'L'), mode=None, max_pixels=10**6).shape == (30, 40)
    with pytest.raises(ImageDecodeError) as error:
        decode_compressed(b'not an image at all', 'png', max_pixels=10**6)
    assert error.value.reason == 'decode'
    with pytest.raises(ImageDecodeError) as error:
        decode_compressed(_png(40, 30)[:30], 'png', max_pixels=10**6)
    assert error.value.reason == 'decode'


def test_pil_decompression_bomb_limit_is_a_size_rejection(monkeypatch):
    monkeypatch.setattr(PILImage, 'MAX_IMAGE_PIXELS', 1000)
    # Without a limit of our own, PIL's applies: over twice its value is an error ...
    with pytest.raises(ImageDecodeError) as error:
        decode_compressed(_png(50, 50), 'png')
    assert error.value.reason == 'size'
    # ... and over it a warning, which where warnings are errors is a rejection too.
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        with pytest.raises(ImageDecodeError) as error:
            decode_compressed(_png(40, 40), 'png')
        assert error.value.reason == 'size'
        # A caller's limit replaces PIL's process-wide one: no warning, no error.
        assert decode_compressed(_png(50, 50), 'png', max_pixels=2500).shape == (50, 50, 3)
