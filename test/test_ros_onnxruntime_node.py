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

"""The multitask node with `backend: onnxruntime` on an exported model, over real DDS."""

from mtl_perception.inference.export import export_checkpoint_onnx
from mtl_perception.inference.predictor import Predictor
import numpy as np
from ros_fixtures import make_checkpoint, make_image, make_picture, NodeProcess, Probe
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

IMAGE = '/ort_test/camera/image'


def test_node_runs_the_onnx_export(tmp_path):
    checkpoint = make_checkpoint(tmp_path, 'multitask')
    onnx_path = tmp_path / 'export' / 'multitask.onnx'
    export_checkpoint_onnx(checkpoint, onnx_path, images=[make_picture(96, 72)])
    node = NodeProcess('multitask_node', tmp_path / 'node.log', '-p', 'backend:=onnxruntime',
                       '-p', f'checkpoint:={onnx_path}', '-r', f'image:={IMAGE}')
    probe = Probe('onnxruntime_probe')
    try:
        probe.subscribe('/detections', Detection2DArray)
        probe.subscribe('/segmentation/mask', Image)
        publisher = probe.publisher(IMAGE, Image)
        picture = make_picture(96, 72, seed=3)
        probe.send_until(publisher, make_image(picture, 'rgb8', 'ort_frame', 7),
                         lambda: probe.find('/detections', 'ort_frame')
                         and probe.find('/segmentation/mask', 'ort_frame'), 90.0,
                         lambda: f'detections and mask from the node; log:\n{node.log()}')
        mask = probe.find('/segmentation/mask', 'ort_frame')[1]
        detections = probe.find('/detections', 'ort_frame')[1]
        assert 'backend onnxruntime' in node.log()
        assert (mask.width, mask.height, mask.encoding) == (96, 72, 'mono8')
        pixels = np.frombuffer(mask.data, np.uint8).reshape(72, mask.step)[:, :96]
        # The node's mask is the ONNX Runtime Predictor's mask for the same picture.
        with Predictor.from_checkpoint(onnx_path, backend='onnxruntime') as predictor:
            expected = predictor.predict(picture)
        np.testing.assert_array_equal(pixels, expected.mask)
        assert len(detections.detections) == len(expected.boxes)
        assert detections.header.stamp.sec == 7
    finally:
        probe.close()
        assert node.stop() == 0, node.log()
