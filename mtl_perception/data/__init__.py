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
Data sets, joint transforms and batching (standalone: numpy, PIL, torch, yaml only).

Every data set yields samples per the data contract: a dict with 'image' uint8 [H, W, 3] RGB,
'boxes' float32 [M, 4] x1, y1, x2, y2 px or None, 'labels' int64 [M] or None, 'difficult'
bool [M] or None, 'mask' uint8 [H, W] (255 = void) or None, 'image_id' str; and exposes
``detection_classes`` / ``segmentation_classes`` name lists (None when not labelled).
"""

from .coco_folder import CocoFolderDataset, write_coco_folder
from .collate import collate_samples
from .combined import build_lookup, CombinedDataset, load_class_mapping
from .synthetic import (apply_camera_effects, CameraEffects,
                        DETECTION_CLASSES as SYNTHETIC_DETECTION_CLASSES, render_view,
                        render_world,
                        SEGMENTATION_CLASSES as SYNTHETIC_SEGMENTATION_CLASSES,
                        SyntheticAerialDataset, World)
from .transforms import (as_generator, build_eval_transforms, build_train_transforms, Compose,
                         Expand, PhotometricDistort, RandomHorizontalFlip, RandomSampleCrop,
                         Resize, ToTensorNormalize, TransformedDataset, validate_sample)
from .voc import VOC_DETECTION_CLASSES, VOC_SEGMENTATION_CLASSES, VOCDataset

__all__ = [
    'CameraEffects', 'CocoFolderDataset', 'CombinedDataset', 'Compose', 'Expand',
    'PhotometricDistort', 'RandomHorizontalFlip', 'RandomSampleCrop', 'Resize',
    'SYNTHETIC_DETECTION_CLASSES', 'SYNTHETIC_SEGMENTATION_CLASSES', 'SyntheticAerialDataset',
    'ToTensorNormalize', 'TransformedDataset', 'VOCDataset', 'VOC_DETECTION_CLASSES',
    'VOC_SEGMENTATION_CLASSES', 'World', 'apply_camera_effects', 'as_generator',
    'build_eval_transforms', 'build_lookup', 'build_train_transforms', 'collate_samples',
    'load_class_mapping', 'render_view', 'render_world', 'validate_sample',
    'write_coco_folder',
]
