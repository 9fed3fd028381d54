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
Data sets, joint transforms and batching.

Standalone: numpy, PIL and yaml; torch only for the transforms and batching.

Every data set yields samples per the data contract: a dict with 'image' uint8 [H, W, 3] RGB,
'boxes' float32 [M, 4] x1, y1, x2, y2 px or None, 'labels' int64 [M] or None, 'difficult'
bool [M] or None, 'mask' uint8 [H, W] (255 = void) or None, 'image_id' str; and exposes
``detection_classes`` / ``segmentation_classes`` name lists (None when not labelled).
"""

import importlib

# name -> submodule defining it. Loaded on first use (PEP 562), so reading data sets for
# evaluation on the deployment runtime does not import torch, which only the transforms
# and batching need.
_EXPORTS = {
    'CocoFolderDataset': 'coco_folder', 'write_coco_folder': 'coco_folder',
    'collate_samples': 'collate',
    'build_lookup': 'combined', 'CombinedDataset': 'combined', 'load_class_mapping': 'combined',
    'apply_camera_effects': 'synthetic', 'CameraEffects': 'synthetic',
    'render_view': 'synthetic', 'render_world': 'synthetic',
    'SyntheticAerialDataset': 'synthetic', 'SyntheticFlightViews': 'synthetic',
    'World': 'synthetic',
    'class_pixel_counts': 'label_statistics',
    'SYNTHETIC_DETECTION_CLASSES': ('synthetic', 'DETECTION_CLASSES'),
    'SYNTHETIC_SEGMENTATION_CLASSES': ('synthetic', 'SEGMENTATION_CLASSES'),
    'as_generator': 'transforms', 'build_eval_transforms': 'transforms',
    'build_train_transforms': 'transforms', 'Compose': 'transforms', 'Expand': 'transforms',
    'PhotometricDistort': 'transforms', 'RandomHorizontalFlip': 'transforms',
    'RandomSampleCrop': 'transforms', 'Resize': 'transforms',
    'ToTensorNormalize': 'transforms', 'TransformedDataset': 'transforms',
    'validate_sample': 'transforms',
    'VOC_DETECTION_CLASSES': 'voc', 'VOC_SEGMENTATION_CLASSES': 'voc', 'VOCDataset': 'voc',
}


def __getattr__(name: str):
    """Import the submodule that defines ``name`` on first use."""
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    module, attribute = (target, name) if isinstance(target, str) else target
    return getattr(importlib.import_module(f'{__name__}.{module}'), attribute)


__all__ = [
    'CameraEffects', 'CocoFolderDataset', 'CombinedDataset', 'Compose', 'Expand',
    'PhotometricDistort', 'RandomHorizontalFlip', 'RandomSampleCrop', 'Resize',
    'SYNTHETIC_DETECTION_CLASSES', 'SYNTHETIC_SEGMENTATION_CLASSES', 'SyntheticAerialDataset',
    'SyntheticFlightViews',
    'ToTensorNormalize', 'TransformedDataset', 'VOCDataset', 'VOC_DETECTION_CLASSES',
    'VOC_SEGMENTATION_CLASSES', 'World', 'apply_camera_effects', 'as_generator',
    'build_eval_transforms', 'build_lookup', 'build_train_transforms', 'class_pixel_counts',
    'collate_samples',
    'load_class_mapping', 'render_view', 'render_world', 'validate_sample',
    'write_coco_folder',
]
