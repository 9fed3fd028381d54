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
Detection2DArray publisher must equal the one Jazzy/Kilted compute for vision_msgs 4.x. Type
hashes (RIHS01) came with Iron: on a distribution without them (Humble) there is nothing to
compare, and the hash test is skipped.
"""

import pytest
import rclpy
from rclpy.qos import qos_profile_sensor_data
from rclpy.topic_endpoint_info import TopicEndpointInfo
from vision_msgs.msg import Detection2DArray, LabelInfo

REAL_DETECTION2DARRAY_HASH = (
    'RIHS01_214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968')

HAS_TYPE_HASHES = hasattr(TopicEndpointInfo, 'topic_type_hash')


@pytest.mark.skipif(not HAS_TYPE_HASHES,
                    reason='this ROS 2 distribution has no type hashes (RIHS01 came with Iron)')
def test_detection2darray_type_hash_matches_real_vision_msgs():
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node('type_hash_check', context=context)
        node.create_publisher(Detection2DArray, 'hash_check', qos_profile_sensor_data)
        infos = node.get_publishers_info_by_topic('hash_check')
        assert len(infos) == 1
        assert str(infos[0].topic_type_hash) == REAL_DETECTION2DARRAY_HASH
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_all_vision_msgs_fields_present():
    label = LabelInfo()
    assert set(label.get_fields_and_field_types()) == {'header', 'class_map', 'threshold'}
    fields = Detection2DArray().get_fields_and_field_types()
    assert fields == {'header': 'std_msgs/Header',
                      'detections': 'sequence<vision_msgs/Detection2D>'}
