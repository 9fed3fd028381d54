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
The vision_msgs built here are wire compatible with a real ROS 2 install's.

ROS 2 refuses to connect endpoints whose type hashes differ, so the hash rclpy reports for a live
Detection2DArray (or Detection3DArray) publisher must equal the one Jazzy/Kilted compute for
vision_msgs 4.x. Type hashes (RIHS01) came with Iron: on a distribution without them (Humble)
there is nothing to compare, and the hash test is skipped. The bag typestore (rosbags), built
from the same definitions, must agree on the hashes and the bytes.
"""

from mtl_perception.replay.bag_io import BagWriter, open_bag, typestore
import pytest
import rclpy
from rclpy.qos import qos_profile_sensor_data
from rclpy.serialization import deserialize_message, serialize_message
from rclpy.topic_endpoint_info import TopicEndpointInfo
from vision_msgs.msg import (BoundingBox3D, Detection2DArray, Detection3D, Detection3DArray,
                             LabelInfo, ObjectHypothesisWithPose)

REAL_DETECTION2DARRAY_HASH = (
    'RIHS01_214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968')
REAL_DETECTION3DARRAY_HASH = (
    'RIHS01_793f5eab9595ac1c0da07873cc859db42eae51f0ee76056db8562515d830e018')
REAL_HASHES = {Detection2DArray: REAL_DETECTION2DARRAY_HASH,
               Detection3DArray: REAL_DETECTION3DARRAY_HASH}
DETECTION3D_ARRAY = 'vision_msgs/msg/Detection3DArray'

HAS_TYPE_HASHES = hasattr(TopicEndpointInfo, 'topic_type_hash')


@pytest.mark.skipif(not HAS_TYPE_HASHES,
                    reason='this ROS 2 distribution has no type hashes (RIHS01 came with Iron)')
@pytest.mark.parametrize('msg_type', list(REAL_HASHES), ids=lambda t: t.__name__)
def test_detection_array_type_hash_matches_real_vision_msgs(msg_type):
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node('type_hash_check', context=context)
        node.create_publisher(msg_type, 'hash_check', qos_profile_sensor_data)
        infos = node.get_publishers_info_by_topic('hash_check')
        assert len(infos) == 1
        assert str(infos[0].topic_type_hash) == REAL_HASHES[msg_type]
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_all_vision_msgs_fields_present():
    label = LabelInfo()
    assert set(label.get_fields_and_field_types()) == {'header', 'class_map', 'threshold'}
    fields = Detection2DArray().get_fields_and_field_types()
    assert fields == {'header': 'std_msgs/Header',
                      'detections': 'sequence<vision_msgs/Detection2D>'}
    assert Detection3DArray.get_fields_and_field_types() == {
        'header': 'std_msgs/Header', 'detections': 'sequence<vision_msgs/Detection3D>'}
    assert Detection3D.get_fields_and_field_types() == {
        'header': 'std_msgs/Header',
        'results': 'sequence<vision_msgs/ObjectHypothesisWithPose>',
        'bbox': 'vision_msgs/BoundingBox3D', 'id': 'string'}
    assert BoundingBox3D.get_fields_and_field_types() == {
        'center': 'geometry_msgs/Pose', 'size': 'geometry_msgs/Vector3'}


def _detection3d_array() -> Detection3DArray:
    hypothesis = ObjectHypothesisWithPose()
    hypothesis.hypothesis.class_id = 'car'
    hypothesis.hypothesis.score = 0.75
    hypothesis.pose.pose.position.x = 3.5
    detection = Detection3D(results=[hypothesis], id='12')
    detection.header.frame_id = 'map'
    detection.bbox.center.position.x = 3.5
    detection.bbox.center.position.y = -1.25
    detection.bbox.size.x = 4.5
    msg = Detection3DArray(detections=[detection])
    msg.header.frame_id = 'map'
    msg.header.stamp.sec = 7
    return msg


def test_bag_typestore_carries_detection3darray(tmp_path):
    store = typestore()
    for msg_type, real_hash in REAL_HASHES.items():
        assert store.hash_rihs01(f'vision_msgs/msg/{msg_type.__name__}') == real_hash
    # rclpy's bytes read through the typestore, are written to a bag and come back equal.
    data = serialize_message(_detection3d_array())
    decoded = store.deserialize_cdr(data, DETECTION3D_ARRAY)
    (detection,) = decoded.detections
    assert decoded.header.frame_id == 'map' and decoded.header.stamp.sec == 7
    assert detection.id == '12' and detection.results[0].hypothesis.class_id == 'car'
    assert (detection.bbox.center.position.y, detection.bbox.size.x) == (-1.25, 4.5)
    assert bytes(store.serialize_cdr(decoded, DETECTION3D_ARRAY)) == bytes(data)
    with BagWriter(tmp_path / 'bag') as bag:
        bag.add_topic('/objects', DETECTION3D_ARRAY)
        bag.write('/objects', 5, decoded)
    with open_bag(tmp_path / 'bag') as bag:
        ((topic, stamp, raw),) = list(bag.messages(raw=True))
    assert (topic, stamp) == ('/objects', 5)
    assert deserialize_message(bytes(raw), Detection3DArray) == _detection3d_array()
