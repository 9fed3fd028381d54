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

"""One image decoder: the nodes and the replay scorer accept and reject the same images."""

from mtl_perception.inference.image_decoding import ImageDecodeError
from mtl_perception.replay.messages import image_to_array, make_image
from mtl_perception.ros.conversions import image_to_rgb
import numpy as np
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
