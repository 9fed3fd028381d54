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

"""ROS-free conversions: image messages <-> arrays, detections, masks, LabelInfo, debug images."""

import array

from mtl_perception.ros import conversions
from mtl_perception.ros.conversions import ImageConversionError
from mtl_perception.ros.visualization import colorize_mask, draw_detections, PALETTE
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

RNG = np.random.default_rng(0)
PICTURE = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)


def _message(pixels: np.ndarray, encoding: str, padding: int = 0, overrides=None) -> Image:
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1)
    rows = np.concatenate([rows, np.full((height, padding), 99, np.uint8)], axis=1)
    msg = Image(height=height, width=width, encoding=encoding, step=rows.shape[1])
    data = array.array('B')
    data.frombytes(rows.tobytes())
    msg.data = data
    for name, value in (overrides or {}).items():
        setattr(msg, name, value)
    return msg


def _header() -> Header:
    header = Header(frame_id='camera')
    header.stamp.sec, header.stamp.nanosec = 17, 42
    return header


ALPHA = np.full((5, 7, 1), 9, np.uint8)
ENCODED = {
    'rgb8': PICTURE,
    'bgr8': PICTURE[..., ::-1],
    'rgba8': np.concatenate([PICTURE, ALPHA], axis=2),
    'bgra8': np.concatenate([PICTURE[..., ::-1], ALPHA], axis=2),
}


@pytest.mark.parametrize('padding', [0, 3])
@pytest.mark.parametrize('encoding', sorted(ENCODED))
def test_colour_encodings_give_rgb(encoding, padding):
    rgb = conversions.image_to_rgb(_message(ENCODED[encoding], encoding, padding))
    assert rgb.dtype == np.uint8 and rgb.shape == (5, 7, 3)
    np.testing.assert_array_equal(rgb, PICTURE)


@pytest.mark.parametrize('padding', [0, 1])
def test_mono8_is_replicated_to_three_channels(padding):
    grey = PICTURE[..., :1]
    rgb = conversions.image_to_rgb(_message(grey, 'mono8', padding))
    np.testing.assert_array_equal(rgb, np.repeat(grey, 3, axis=2))


def test_unpadded_rgb8_is_a_view_of_the_message():
    msg = _message(PICTURE, 'rgb8')
    rgb = conversions.image_to_rgb(msg)
    assert not rgb.flags.owndata
    np.testing.assert_array_equal(rgb, PICTURE)


@pytest.mark.parametrize('overrides, reason, text', [
    ({'encoding': 'yuv422'}, 'encoding', "unsupported image encoding 'yuv422'"),
    ({'encoding': '16UC1'}, 'encoding', "unsupported image encoding '16UC1'"),
    ({'width': 0}, 'size', 'empty image: width=0, height=5'),
    ({'height': 0, 'data': array.array('B')}, 'size', 'width=7, height=0'),
    ({'step': 20}, 'step', 'step 20 is smaller than width 7 x 3 channels'),
    ({'step': 22}, 'data_length', 'data holds 105 bytes but step 22 x height 5 = 110'),
    ({'data': array.array('B', bytes(104))}, 'data_length', 'data holds 104 bytes'),
    ({'width': 8}, 'step', 'step 21 is smaller than width 8'),
])
def test_malformed_images_raise_naming_the_problem(overrides, reason, text):
    with pytest.raises(ImageConversionError, match=text.replace('(', r'\(')) as caught:
        conversions.image_to_rgb(_message(PICTURE, 'rgb8', overrides=overrides))
    assert caught.value.reason == reason
    assert isinstance(caught.value, ValueError)


def test_png_round_trip_is_exact_and_jpeg_close():
    header = _header()
    picture = np.repeat(np.repeat(PICTURE, 8, axis=0), 8, axis=1)
    png = conversions.rgb_to_compressed(picture, header, 'png')
    assert png.format == 'png' and png.header.frame_id == 'camera'
    np.testing.assert_array_equal(conversions.compressed_to_rgb(png), picture)
    jpeg = conversions.rgb_to_compressed(picture, header, 'jpeg', quality=95)
    decoded = conversions.compressed_to_rgb(jpeg)
    assert decoded.shape == picture.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - picture).mean() < 12


@pytest.mark.parametrize('data', [b'', b'\xff\xd8\xff garbage', b'GIF89a not allowed'])
def test_undecodable_compressed_images_raise(data):
    with pytest.raises(ImageConversionError, match='compressed image') as caught:
        conversions.compressed_to_rgb(CompressedImage(format='jpeg', data=data))
    assert caught.value.reason == 'decode'


def test_rgb_and_mask_images_keep_header_and_pixels():
    header = _header()
    msg = conversions.rgb_to_image(PICTURE, header)
    assert (msg.width, msg.height, msg.step, msg.encoding) == (7, 5, 21, 'rgb8')
    assert msg.header.frame_id == 'camera' and msg.header.stamp.nanosec == 42
    np.testing.assert_array_equal(conversions.image_to_rgb(msg), PICTURE)
    mask = RNG.integers(0, 10, (5, 7), dtype=np.uint8)
    mask[0, 0] = 255
    mono = conversions.mask_to_image(mask, header)
    assert (mono.width, mono.height, mono.step, mono.encoding) == (7, 5, 7, 'mono8')
    assert bytes(mono.data) == mask.tobytes() and mono.header.stamp.sec == 17
    with pytest.raises(ValueError, match=r'uint8 array \[H, W\], got int64 \[5, 7\]'):
        conversions.mask_to_image(mask.astype(np.int64), header)
    with pytest.raises(ValueError, match=r'\[5, 7, 4\]'):
        conversions.rgb_to_image(ENCODED['rgba8'], header)


def test_detections_message_fields():
    header = _header()
    boxes = np.array([[10, 20, 30, 60], [0.5, 1.5, 2.5, 3.5]], np.float32)
    msg = conversions.detections_to_msg(boxes, np.array([0.9, 0.4], np.float32),
                                        np.array([2, 0]), ['car', 'truck', 'bus'], header)
    assert msg.header.frame_id == 'camera' and msg.header.stamp.sec == 17
    first, second = msg.detections
    assert (first.bbox.center.position.x, first.bbox.center.position.y) == (20.0, 40.0)
    assert (first.bbox.size_x, first.bbox.size_y) == (20.0, 40.0)
    assert first.bbox.center.theta == 0.0
    assert [r.hypothesis.class_id for r in first.results] == ['bus']
    assert first.results[0].hypothesis.score == pytest.approx(0.9)
    assert (first.id, second.id) == ('0', '1')
    assert second.results[0].hypothesis.class_id == 'car'
    assert (second.bbox.center.position.x, second.bbox.size_y) == (1.5, 2.0)
    assert second.header.frame_id == 'camera'
    empty = conversions.detections_to_msg(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int),
                                          ['car'], header)
    assert empty.detections == [] and empty.header.stamp.nanosec == 42
    with pytest.raises(ValueError, match='label 3 outside the 3 detection classes'):
        conversions.detections_to_msg(boxes, np.ones(2), np.array([3, 0]),
                                      ['car', 'truck', 'bus'], header)
    with pytest.raises(ValueError, match='same length'):
        conversions.detections_to_msg(boxes, np.ones(1), np.array([0, 0]), ['car'], header)


def test_label_info_per_task_id_scheme():
    detection = conversions.label_info('detection', ['car', 'person'], 0.25, _header())
    segmentation = conversions.label_info('segmentation', ['road', 'car', 'water'])
    assert [(item.class_id, item.class_name) for item in detection.class_map] == \
        [(256, 'car'), (257, 'person')]
    assert detection.threshold == pytest.approx(0.25) and detection.header.frame_id == 'camera'
    assert [(item.class_id, item.class_name) for item in segmentation.class_map] == \
        [(0, 'road'), (1, 'car'), (2, 'water'), (255, 'void')]
    assert segmentation.threshold == 0.0
    assert set(conversions.LABEL_INFO_TOPICS) == {'detection', 'segmentation'}
    with pytest.raises(ValueError, match='unknown task'):
        conversions.label_info('depth', ['near'])
    with pytest.raises(ValueError, match='do not fit a mono8 mask'):
        conversions.label_info('segmentation', [f'c{i}' for i in range(256)])


def test_image_limits_are_checked_before_decoding():
    big = _message(PICTURE, 'rgb8')
    height, width = PICTURE.shape[:2]
    np.testing.assert_array_equal(conversions.image_to_rgb(big, height * width), PICTURE)
    with pytest.raises(conversions.ImageConversionError, match='exceeds the limit'):
        conversions.image_to_rgb(big, height * width - 1)
    png = conversions.rgb_to_compressed(PICTURE, _header(), 'png')
    np.testing.assert_array_equal(conversions.compressed_to_rgb(png, height * width), PICTURE)
    with pytest.raises(conversions.ImageConversionError, match='exceeds the limit'):
        conversions.compressed_to_rgb(png, height * width - 1)


def test_colorize_mask_uses_the_fixed_palette():
    mask = np.array([[0, 1, 2], [255, 1, 0]], np.uint8)
    colour = colorize_mask(mask)
    assert colour.shape == (2, 3, 3) and colour.dtype == np.uint8
    np.testing.assert_array_equal(colour[1, 0], [0, 0, 0])
    np.testing.assert_array_equal(colour[0, 1], colour[1, 1])
    assert len({tuple(PALETTE[i]) for i in range(255)}) == 255
    assert not PALETTE.flags.writeable


def test_draw_detections_marks_boxes_and_leaves_the_input():
    image = np.zeros((40, 50, 3), np.uint8)
    drawn = draw_detections(image, np.array([[10, 15, 30, 35]]), np.array([0.8]),
                            np.array([1]), ['car', 'truck'])
    assert image.sum() == 0 and drawn.shape == image.shape
    np.testing.assert_array_equal(drawn[25, 10], PALETTE[1])
    assert drawn[25, 20].sum() == 0
    untouched = draw_detections(image, np.zeros((0, 4)), np.zeros(0), np.zeros(0, int), ['a'])
    np.testing.assert_array_equal(untouched, image)
