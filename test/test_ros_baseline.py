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

"""The single-task baseline: detection_node + segmentation_node publish the multitask topics."""

from diagnostic_msgs.msg import DiagnosticArray
from mtl_perception.ros.conversions import DETECTION_ID_OFFSET
import numpy as np
from ros_fixtures import (checkpoints, LATCHED, make_image, make_picture,  # noqa: F401
                          NodeProcess, Probe, SEGMENTATION_CLASSES)
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray, LabelInfo

IMAGE = '/bl_test/camera/image'
# Topic -> the baseline node that must be its only publisher.
OUTPUTS = {
    '/baseline/detections': 'detection_node',
    '/baseline/detections/overlay': 'detection_node',
    '/baseline/segmentation/mask': 'segmentation_node',
    '/baseline/segmentation/color': 'segmentation_node',
}
# Label topic -> its one publisher: each baseline node latches its own task's classes.
LABELS = {
    '/baseline/detections/label_info': 'detection_node',
    '/baseline/segmentation/label_info': 'segmentation_node',
}


def test_baseline_nodes_share_the_image_and_publish_the_multitask_topics(
        checkpoints, tmp_path):  # noqa: F811
    nodes = [NodeProcess(f'{kind}_node', tmp_path / f'{kind}.log', '-r', '__ns:=/baseline',
                         '-p', f'checkpoint:={checkpoints[kind]}', '-p', 'diagnostics_period:=0.3',
                         '-r', f'image:={IMAGE}')
             for kind in ('detection', 'segmentation')]
    probe = Probe('baseline_probe')
    try:
        probe.subscribe('/baseline/detections', Detection2DArray)
        probe.subscribe('/baseline/segmentation/mask', Image)
        probe.subscribe('/diagnostics', DiagnosticArray)
        labels = {topic: probe.subscribe(topic, LabelInfo, LATCHED) for topic in LABELS}
        probe.wait_for(lambda: all(labels.values()), 60.0,
                       lambda: 'label_info from both nodes; logs:\n'
                       + '\n'.join(node.log() for node in nodes))
        images = probe.publisher(IMAGE, Image)
        probe.wait_for(lambda: images.get_subscription_count() == 2, 10.0, 'both subscribers')
        msg = make_image(make_picture(88, 64), 'bgr8', 'baseline_frame', 5)
        probe.send_until(images, msg, lambda: probe.find('/baseline/detections', 'baseline_frame')
                         and probe.find('/baseline/segmentation/mask', 'baseline_frame'),
                         30.0, 'detections and mask from the baseline')
        detections = probe.find('/baseline/detections', 'baseline_frame')[1]
        mask = probe.find('/baseline/segmentation/mask', 'baseline_frame')[1]
        for header in (detections.header, mask.header):
            assert (header.frame_id, header.stamp.sec) == ('baseline_frame', 5)
        assert (mask.width, mask.height, mask.encoding) == (88, 64, 'mono8')
        assert np.frombuffer(mask.data, np.uint8).max() < len(SEGMENTATION_CLASSES)

        for topic, owner in {**OUTPUTS, **LABELS}.items():
            publishers = probe.node.get_publishers_info_by_topic(topic)
            assert [(p.node_namespace, p.node_name) for p in publishers] == \
                [('/baseline', owner)], topic
        # Each node lists its own task's classes on its own topic, with the shared id scheme.
        (_, detection), = labels['/baseline/detections/label_info']
        (_, segmentation), = labels['/baseline/segmentation/label_info']
        assert [item.class_id for item in detection.class_map] == \
            [DETECTION_ID_OFFSET + i for i in range(5)]
        assert [item.class_id for item in segmentation.class_map] == \
            [*range(len(SEGMENTATION_CLASSES)), 255]
        for node in ('/baseline/detection_node', '/baseline/segmentation_node'):
            probe.wait_for(lambda: probe.counter(node, 'frames_processed') >= 1, 10.0,
                           f'diagnostics of {node}')
    finally:
        probe.close()
        for node in nodes:
            assert node.stop() == 0, node.log()
