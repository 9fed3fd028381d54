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
Evaluation metrics: detection AP (VOC and COCO) and segmentation mIoU.

This package depends only on numpy and pycocotools; it takes torch tensors too, without
importing torch.
"""

from mtl_perception.metrics.average_precision import average_precision, box_iou
from mtl_perception.metrics.coco import coco_box_map
from mtl_perception.metrics.detection import DetectionEvaluator
from mtl_perception.metrics.segmentation import SegmentationEvaluator

__all__ = [
    'DetectionEvaluator',
    'SegmentationEvaluator',
    'average_precision',
    'box_iou',
    'coco_box_map',
]
