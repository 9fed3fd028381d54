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
The multitask node with `backend: onnxruntime` on an exported model, over real DDS.

The deployment runtime must not load torch: the running node process maps no torch or
torchvision library, and answers with exactly the detections and mask of the ONNX Runtime
Predictor (whose decoding is held to torchvision's elsewhere).
"""

from pathlib import Path

from mtl_perception.inference.export import export_checkpoint_onnx
from mtl_perception.inference.predictor import Predictor
import numpy as np
from ros_fixtures import (DETECTION_CLASSES, make_checkpoint, make_image, make_picture,
                          NodeProcess, Probe)
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

IMAGE = '/ort_test/camera/image'


def _mapped_files(pid: int) -> set:
    """Return the files mapped into process ``pid`` (/proc/<pid>/maps)."""
    lines = Path(f'/proc/{pid}/maps').read_text().splitlines()
    return {line.split(maxsplit=5)[5] for line in lines if len(line.split(maxsplit=5)) == 6}


def _detections(msg: Detection2DArray, class_names: list) -> tuple:
    """Return boxes [M, 4] x1y1x2y2, scores [M] and label indices [M] of a Detection2DArray."""
    boxes, scores, labels = [], [], []
    for detection in msg.detections:
        centre, box = detection.bbox.center.position, detection.bbox
        boxes.append([centre.x - box.size_x / 2, centre.y - box.size_y / 2,
                      centre.x + box.size_x / 2, centre.y + box.size_y / 2])
        scores.append(detection.results[0].hypothesis.score)
        labels.append(class_names.index(detection.results[0].hypothesis.class_id))
    return np.asarray(boxes).reshape(-1, 4), np.asarray(scores), np.asarray(labels)


def test_node_runs_the_onnx_export(tmp_path):
    checkpoint = make_checkpoint(tmp_path, 'multitask')
    onnx_path = tmp_path / 'export' / 'multitask.onnx'
    export_checkpoint_onnx(checkpoint, onnx_path, images=[make_picture(96, 72)])
    # A low threshold: the random network's boxes score about 1/6, and there should be many.
    node = NodeProcess('multitask_node', tmp_path / 'node.log', '-p', 'backend:=onnxruntime',
                       '-p', f'checkpoint:={onnx_path}', '-r', f'image:={IMAGE}',
                       '-p', 'score_threshold:=0.05')
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
        with Predictor.from_checkpoint(onnx_path, backend='onnxruntime',
                                       score_threshold=0.05) as predictor:
            expected = predictor.predict(picture)
        np.testing.assert_array_equal(pixels, expected.mask)
        assert len(expected.boxes) > 5
        boxes, scores, labels = _detections(detections, DETECTION_CLASSES)
        np.testing.assert_allclose(boxes, expected.boxes, atol=1e-3)
        np.testing.assert_allclose(scores, expected.scores, atol=1e-4)
        assert labels.tolist() == expected.labels.tolist()
        assert detections.header.stamp.sec == 7
        libraries = _mapped_files(node.process.pid)
        assert libraries, 'no mapped files read from /proc'
        assert not [f for f in libraries if 'torch' in Path(f).name.lower()], \
            'the onnxruntime node mapped torch libraries'
        assert any('onnxruntime' in f for f in libraries)
    finally:
        probe.close()
        assert node.stop() == 0, node.log()
