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

"""Bags through rosbags: round trips in both storages, errors, byte-compatibility with rclpy."""

from mtl_perception.replay.bag_io import BagError, BagWriter, open_bag, typestore
from mtl_perception.replay.messages import (COMPRESSED_IMAGE, compressed_to_array,
                                            DETECTION2D_ARRAY, detection_array_to_numpy,
                                            IMAGE, image_to_array, make_compressed_image,
                                            make_detection_array, make_image, stamp_to_ns)
import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.rosbag2.metadata import parse_qos
from rosbags.typesys import get_types_from_msg, get_typestore, Stores
from sensor_msgs.msg import CompressedImage as RclpyCompressedImage
from sensor_msgs.msg import Image as RclpyImage
from vision_msgs.msg import Detection2D as RclpyDetection2D
from vision_msgs.msg import Detection2DArray as RclpyDetection2DArray
from vision_msgs.msg import ObjectHypothesisWithPose as RclpyHypothesis
import yaml

REAL_DETECTION2DARRAY_HASH = (
    'RIHS01_214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968')
STAMP = 1_700_000_000_123_456_789
STORAGES = ['mcap', 'sqlite3']


def _rgb(h=24, w=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _boxes():
    return np.array([[1.5, 2.0, 11.0, 22.25], [0.0, 0.0, 32.0, 24.0]], np.float32)


def _write_sample_bag(path, storage, frames=3):
    masks = [np.full((24, 32), 255, np.uint8) for _ in range(frames)]
    for i, mask in enumerate(masks):
        mask[:12] = i
    with BagWriter(path, storage) as bag:
        bag.add_topic('/image', IMAGE)
        bag.add_topic('/mask', IMAGE)
        bag.add_topic('/compressed', COMPRESSED_IMAGE)
        bag.add_topic('/detections', DETECTION2D_ARRAY)
        for i in range(frames):
            stamp = STAMP + i * 100_000_000
            bag.write('/image', stamp, make_image(_rgb(seed=i), stamp, 'camera'))
            bag.write('/mask', stamp + 1, make_image(masks[i], stamp, 'camera'))
            bag.write('/compressed', stamp + 2,
                      make_compressed_image(_rgb(seed=i), 'png', stamp, 'camera'))
            bag.write('/detections', stamp + 3, make_detection_array(
                _boxes(), ['car', 'person'], [0.9, 0.25 + i / 10], stamp, 'camera'))
    return masks


def test_vision_msgs_registered_with_the_real_type_hash():
    assert typestore().hash_rihs01(DETECTION2D_ARRAY) == REAL_DETECTION2DARRAY_HASH


@pytest.mark.parametrize('storage', STORAGES)
def test_round_trip(tmp_path, storage):
    path = tmp_path / 'bag'
    masks = _write_sample_bag(path, storage)
    with open_bag(path) as bag:
        assert bag.storage == storage
        topics = bag.topics()
        assert {name: (info.msgtype, info.count) for name, info in topics.items()} == {
            '/image': (IMAGE, 3), '/mask': (IMAGE, 3), '/compressed': (COMPRESSED_IMAGE, 3),
            '/detections': (DETECTION2D_ARRAY, 3)}
        assert bag.message_count == 12
        assert bag.start_ns == STAMP and bag.end_ns == STAMP + 200_000_003
        read = list(bag.messages())
    assert [t for _, t, _ in read] == sorted(t for _, t, _ in read)
    by_topic = {}
    for topic, timestamp, msg in read:
        by_topic.setdefault(topic, []).append((timestamp, msg))
    for i in range(3):
        stamp = STAMP + i * 100_000_000
        t, image = by_topic['/image'][i]
        assert t == stamp and stamp_to_ns(image.header.stamp) == stamp
        assert image.header.frame_id == 'camera' and image.encoding == 'rgb8'
        np.testing.assert_array_equal(image_to_array(image), _rgb(seed=i))
        t, mask = by_topic['/mask'][i]
        assert t == stamp + 1 and mask.encoding == 'mono8'
        np.testing.assert_array_equal(image_to_array(mask), masks[i])
        t, compressed = by_topic['/compressed'][i]
        assert t == stamp + 2 and 'png' in compressed.format
        np.testing.assert_array_equal(compressed_to_array(compressed), _rgb(seed=i))
        t, detections = by_topic['/detections'][i]
        assert t == stamp + 3 and stamp_to_ns(detections.header.stamp) == stamp
        boxes, names, scores = detection_array_to_numpy(detections)
        np.testing.assert_allclose(boxes, _boxes())
        assert names == ['car', 'person']
        np.testing.assert_allclose(scores, [0.9, 0.25 + i / 10], rtol=1e-6)
        covariance = detections.detections[0].results[0].pose.covariance
        assert covariance.shape == (36,) and not covariance.any()


@pytest.mark.parametrize('storage', STORAGES)
def test_topic_filter_and_raw_bytes(tmp_path, storage):
    path = tmp_path / 'bag'
    _write_sample_bag(path, storage, frames=2)
    with open_bag(path) as bag:
        raw = list(bag.messages(['/detections'], raw=True))
        assert [topic for topic, _, _ in raw] == ['/detections'] * 2
        assert all(isinstance(data, bytes) for _, _, data in raw)
        decoded = typestore().deserialize_cdr(raw[1][2], DETECTION2D_ARRAY)
        assert detection_array_to_numpy(decoded)[1] == ['car', 'person']
        with pytest.raises(BagError, match='/nope'):
            list(bag.messages(['/nope']))


def test_writer_refuses_existing_path_unless_overwrite(tmp_path):
    path = tmp_path / 'bag'
    _write_sample_bag(path, 'mcap', frames=1)
    with pytest.raises(FileExistsError, match=str(path)):
        BagWriter(path).open()
    _write_sample_bag(path.with_name('other'), 'sqlite3', frames=1)
    with BagWriter(path, 'sqlite3', overwrite=True) as bag:
        bag.add_topic('/image', IMAGE)
        bag.write('/image', 5, make_image(_rgb(), 5, 'camera'))
    with open_bag(path) as bag:
        assert bag.storage == 'sqlite3' and bag.message_count == 1
    precious = tmp_path / 'precious'
    precious.mkdir()
    (precious / 'notes.txt').write_text('keep me')
    with pytest.raises(FileExistsError, match='not part of a bag'):
        BagWriter(precious, overwrite=True).open()
    assert (precious / 'notes.txt').read_text() == 'keep me'


def test_writer_rejects_unknown_topics_and_deletes_a_failed_bag(tmp_path):
    path = tmp_path / 'bag'
    with pytest.raises(ValueError, match='not added'):
        with BagWriter(path) as bag:
            bag.add_topic('/image', IMAGE)
            bag.write('/image', 1, make_image(_rgb(), 1, 'camera'))
            bag.write('/other', 2, make_image(_rgb(), 2, 'camera'))
    assert not path.exists()
    with pytest.raises(ValueError, match='unknown message type'):
        with BagWriter(path) as bag:
            bag.add_topic('/x', 'sensor_msgs/msg/NoSuchType')
    with pytest.raises(ValueError, match='storage'):
        BagWriter(path, 'rosbag1')


def test_missing_path_and_non_bags_raise_bag_error(tmp_path):
    with pytest.raises(BagError, match='does not exist'):
        open_bag(tmp_path / 'missing')
    text = tmp_path / 'notes.txt'
    text.write_text('hello')
    with pytest.raises(BagError, match=str(text)):
        open_bag(text)
    empty = tmp_path / 'empty_dir'
    empty.mkdir()
    with pytest.raises(BagError, match='no metadata.yaml'):
        open_bag(empty)
    for suffix in ('.mcap', '.db3'):
        garbage = tmp_path / f'garbage{suffix}'
        garbage.write_bytes(b'this is not a bag at all' * 50)
        with pytest.raises(BagError, match=str(garbage)):
            with open_bag(garbage) as bag:
                list(bag.messages())


@pytest.mark.parametrize('text', ['rosbag2_bagfile_information: [unclosed',
                                  'rosbag2_bagfile_information: {version: 9}',
                                  'just a string'])
def test_corrupt_metadata_raises_bag_error(tmp_path, text):
    path = tmp_path / 'bag'
    _write_sample_bag(path, 'mcap', frames=1)
    (path / 'metadata.yaml').write_text(text)
    with pytest.raises(BagError, match=str(path)):
        open_bag(path)


@pytest.mark.parametrize('storage', STORAGES)
def test_truncated_storage_raises_bag_error(tmp_path, storage):
    path = tmp_path / 'bag'
    _write_sample_bag(path, storage, frames=3)
    (data_file,) = [p for p in path.iterdir() if p.suffix in ('.mcap', '.db3')]
    data = data_file.read_bytes()
    data_file.write_bytes(data[:len(data) // 3])
    with pytest.raises(BagError, match=str(path)):
        with open_bag(path) as bag:
            list(bag.messages())


@pytest.mark.parametrize('storage', STORAGES)
def test_storage_file_without_metadata_is_read(tmp_path, storage):
    # A killed recording leaves the storage file but no metadata.yaml.
    path = tmp_path / 'bag'
    _write_sample_bag(path, storage, frames=2)
    (path / 'metadata.yaml').unlink()
    with open_bag(path) as bag:
        assert bag.topics()['/detections'].msgtype == DETECTION2D_ARRAY
        assert len(list(bag.messages(['/image']))) == 2


def test_type_unknown_to_the_store_is_decoded_from_the_bag_definition(tmp_path):
    definition = 'string name\nfloat64[] values\n'
    store = get_typestore(Stores.ROS2_JAZZY)
    store.register(get_types_from_msg(definition, 'my_msgs/msg/Sample'))
    sample = store.types['my_msgs/msg/Sample'](name='abc', values=np.array([1.0, 2.5]))
    path = tmp_path / 'bag'
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connection = writer.add_connection('/sample', 'my_msgs/msg/Sample', typestore=store)
        writer.write(connection, 42, store.serialize_cdr(sample, 'my_msgs/msg/Sample'))
    assert 'my_msgs/msg/Sample' not in typestore().types
    with open_bag(path) as bag:
        ((topic, timestamp, msg),) = list(bag.messages())
    assert (topic, timestamp, msg.name, list(msg.values)) == ('/sample', 42, 'abc', [1.0, 2.5])
    assert 'my_msgs/msg/Sample' not in typestore().types


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'rgba8', 'bgra8'])
def test_image_to_array_colour_encodings_with_row_padding(encoding):
    rgb = _rgb(5, 7)
    pixels = rgb[..., ::-1] if encoding.startswith('bgr') else rgb
    if encoding.endswith('a8'):
        pixels = np.concatenate([pixels, np.full((5, 7, 1), 200, np.uint8)], axis=2)
    channels = pixels.shape[2]
    step = 7 * channels + 5
    rows = np.zeros((5, step), np.uint8)
    rows[:, :7 * channels] = pixels.reshape(5, -1)
    msg = make_image(rgb, 0, 'camera')
    msg.encoding, msg.step, msg.data = encoding, step, rows.reshape(-1)
    np.testing.assert_array_equal(image_to_array(msg), rgb)


def test_image_helpers_reject_bad_input():
    with pytest.raises(ValueError, match=r'\[4, 4, 2\]'):
        make_image(np.zeros((4, 4, 2), np.uint8), 0, 'camera')
    with pytest.raises(ValueError, match='float32'):
        make_image(np.zeros((4, 4), np.float32), 0, 'camera')
    msg = make_image(_rgb(4, 4), 0, 'camera')
    msg.encoding = '32FC1'
    with pytest.raises(ValueError, match='32FC1'):
        image_to_array(msg)
    msg = make_image(_rgb(4, 4), 0, 'camera')
    msg.data = msg.data[:-1]
    with pytest.raises(ValueError, match='= 48'):
        image_to_array(msg)
    with pytest.raises(ValueError, match='boxes'):
        make_detection_array(np.zeros((2, 4)), ['car'], [1.0], 0, 'camera')
    broken = make_compressed_image(_rgb(), 'jpeg', 0, 'camera')
    broken.data = broken.data[:20]
    with pytest.raises(ValueError, match='cannot decode'):
        compressed_to_array(broken)


def test_compressed_jpeg_and_mono_png():
    rgb = np.zeros((32, 48, 3), np.uint8)
    rgb[:, :24] = (200, 40, 10)
    jpeg = make_compressed_image(rgb, 'jpeg', 0, 'camera', quality=95)
    assert jpeg.format == 'rgb8; jpeg compressed bgr8'
    decoded = compressed_to_array(jpeg)
    assert decoded.shape == rgb.shape
    assert np.abs(decoded.astype(int) - rgb).mean() < 4
    mask = (np.arange(32 * 48) % 7).astype(np.uint8).reshape(32, 48)
    png = make_compressed_image(mask, 'png', 0, 'camera')
    np.testing.assert_array_equal(compressed_to_array(png), mask)
    assert compressed_to_array(png, 'rgb8').shape == (32, 48, 3)


def test_detection_labels_from_indices_and_best_hypothesis():
    msg = make_detection_array(_boxes(), np.array([1, 0]), [0.5, 0.6], 7, 'cam',
                               class_names=['car', 'truck'])
    assert detection_array_to_numpy(msg)[1] == ['truck', 'car']
    extra = make_detection_array(_boxes()[:1], ['bus'], [0.95], 7, 'cam')
    msg.detections[0].results.append(extra.detections[0].results[0])
    assert detection_array_to_numpy(msg)[1] == ['bus', 'car']
    empty = make_detection_array(np.zeros((0, 4)), [], [], 7, 'cam')
    boxes, names, scores = detection_array_to_numpy(empty)
    assert boxes.shape == (0, 4) and names == [] and scores.shape == (0,)
    with pytest.raises(ValueError, match='outside'):
        make_detection_array(_boxes(), [0, 2], [0.5, 0.6], 7, 'cam', class_names=['car'])


def test_rosbags_bytes_deserialise_in_rclpy():
    store = typestore()
    image = make_image(_rgb(6, 8), STAMP, 'camera')
    ros_image = deserialize_message(bytes(store.serialize_cdr(image, IMAGE)), RclpyImage)
    assert (ros_image.height, ros_image.width, ros_image.encoding) == (6, 8, 'rgb8')
    assert ros_image.header.stamp.sec * 10**9 + ros_image.header.stamp.nanosec == STAMP
    np.testing.assert_array_equal(np.asarray(ros_image.data, np.uint8).reshape(6, 8, 3),
                                  _rgb(6, 8))
    detections = make_detection_array(_boxes(), ['car', 'person'], [0.9, 0.3], STAMP, 'camera')
    ros_detections = deserialize_message(
        bytes(store.serialize_cdr(detections, DETECTION2D_ARRAY)), RclpyDetection2DArray)
    first = ros_detections.detections[1]
    assert first.results[0].hypothesis.class_id == 'person'
    assert first.results[0].hypothesis.score == pytest.approx(0.3)
    assert (first.bbox.center.position.x, first.bbox.size_x) == (16.0, 32.0)
    assert first.results[0].pose.pose.orientation.w == 1.0
    assert first.header.frame_id == 'camera'


@pytest.mark.parametrize('storage', STORAGES)
def test_rclpy_bytes_read_through_a_bag(tmp_path, storage):
    ros_image = RclpyImage(height=2, width=3, encoding='bgr8', step=9,
                           data=bytes(range(18)))
    ros_image.header.frame_id = 'cam'
    ros_image.header.stamp.sec, ros_image.header.stamp.nanosec = 12, 34
    ros_detections = RclpyDetection2DArray()
    ros_detections.header.frame_id = 'cam'
    detection = RclpyDetection2D()
    detection.bbox.center.position.x, detection.bbox.center.position.y = 10.0, 20.0
    detection.bbox.size_x, detection.bbox.size_y = 4.0, 6.0
    hypothesis = RclpyHypothesis()
    hypothesis.hypothesis.class_id, hypothesis.hypothesis.score = 'bus', 0.75
    detection.results.append(hypothesis)
    ros_detections.detections.append(detection)
    path = tmp_path / 'bag'
    with BagWriter(path, storage) as bag:
        bag.add_topic('/image', IMAGE)
        bag.add_topic('/detections', DETECTION2D_ARRAY)
        bag.write('/image', 1, serialize_message(ros_image))
        bag.write('/detections', 2, serialize_message(ros_detections))
    with open_bag(path) as bag:
        (_, _, image), (_, _, detections) = list(bag.messages())
    assert stamp_to_ns(image.header.stamp) == 12 * 10**9 + 34
    expected = np.arange(18, dtype=np.uint8).reshape(2, 3, 3)[..., ::-1]
    np.testing.assert_array_equal(image_to_array(image), expected)
    boxes, names, scores = detection_array_to_numpy(detections)
    np.testing.assert_allclose(boxes, [[8.0, 17.0, 12.0, 23.0]])
    assert names == ['bus'] and scores[0] == pytest.approx(0.75)
    # and back: what the bag returns serialises to bytes rclpy reads as the original
    again = deserialize_message(bytes(typestore().serialize_cdr(detections, DETECTION2D_ARRAY)),
                                RclpyDetection2DArray)
    assert again == ros_detections


# offered_qos_profiles as rosbag2 (Humble, metadata version 5) writes it: a YAML string of a
# best-effort sensor-data publisher's profile with the enums as integers.
_HUMBLE_QOS = ('- history: 3\n  depth: 0\n  reliability: 2\n  durability: 2\n'
               '  deadline:\n    sec: 2147483647\n    nsec: 4294967295\n'
               '  lifespan:\n    sec: 2147483647\n    nsec: 4294967295\n'
               '  liveliness: 1\n  liveliness_lease_duration:\n'
               '    sec: 2147483647\n    nsec: 4294967295\n'
               '  avoid_ros_namespace_conventions: false')


@pytest.mark.parametrize('storage, version', [('sqlite3', 8), ('mcap', 9), ('sqlite3', 5),
                                              ('mcap', 5)])
def test_bag_as_ros2_bag_record_writes_it(tmp_path, storage, version):
    """Bytes from rclpy publishers, stored as rosbag2 records them, read back here."""
    path = tmp_path / 'recorded'
    store = get_typestore(Stores.ROS2_JAZZY)
    qos = parse_qos(_HUMBLE_QOS)
    images = [RclpyImage(height=2, width=2, encoding='rgb8', step=6, data=bytes([i] * 12))
              for i in range(3)]
    compressed = RclpyCompressedImage(format='rgb8; png compressed bgr8', data=bytes(
        make_compressed_image(_rgb(4, 4), 'png', 0, 'c').data))
    plugin = StoragePlugin.SQLITE3 if storage == 'sqlite3' else StoragePlugin.MCAP
    with Writer(path, version=max(version, 8), storage_plugin=plugin) as writer:
        image_conn = writer.add_connection('/camera/image_raw', IMAGE, typestore=store,
                                           offered_qos_profiles=qos)
        compressed_conn = writer.add_connection('/camera/image_raw/compressed',
                                                COMPRESSED_IMAGE, typestore=store,
                                                offered_qos_profiles=qos)
        for i, image in enumerate(images):
            writer.write(image_conn, 1000 + i, serialize_message(image))
        writer.write(compressed_conn, 1500, serialize_message(compressed))
    metadata = path / 'metadata.yaml'
    info = yaml.safe_load(metadata.read_text())['rosbag2_bagfile_information']
    if version == 5:  # as a Humble recorder writes it: no type hashes, distro or custom data
        info['version'] = 5
        for entry in info['topics_with_message_count']:
            del entry['topic_metadata']['type_description_hash']
        del info['ros_distro'], info['custom_data']
        metadata.write_text(yaml.safe_dump({'rosbag2_bagfile_information': info}))
    qos_field = info['topics_with_message_count'][0]['topic_metadata']['offered_qos_profiles']
    assert isinstance(qos_field, list if version == 9 else str)
    with open_bag(path) as bag:
        assert bag.topics()['/camera/image_raw'].count == 3
        read = list(bag.messages())
    assert [t for _, t, _ in read] == [1000, 1001, 1002, 1500]
    for i in range(3):
        np.testing.assert_array_equal(image_to_array(read[i][2]), np.full((2, 2, 3), i))
    np.testing.assert_array_equal(compressed_to_array(read[3][2]), _rgb(4, 4))


def test_metadata_that_disagrees_with_the_storage_raises_bag_error(tmp_path):
    path = tmp_path / 'bag'
    _write_sample_bag(path, 'sqlite3', frames=1)
    metadata = path / 'metadata.yaml'
    info = yaml.safe_load(metadata.read_text())
    topic = info['rosbag2_bagfile_information']['topics_with_message_count'][0]
    topic['topic_metadata']['offered_qos_profiles'][0]['reliability'] = 'best_effort'
    metadata.write_text(yaml.safe_dump(info))
    with pytest.raises(BagError, match='disagree'):
        with open_bag(path) as bag:
            list(bag.messages())
