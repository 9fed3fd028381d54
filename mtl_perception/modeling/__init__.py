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
Network definitions: backbones, SSD and FCN heads, the multitask model and its registry.

Losses and loss weighting live in the submodules ``losses`` and ``weighting``.
"""

from mtl_perception.modeling.anchors import default_boxes
from mtl_perception.modeling.backbones import build_backbone
from mtl_perception.modeling.box_coder import decode, encode
from mtl_perception.modeling.fcn import FCNHead
from mtl_perception.modeling.multitask import MultiTaskModel, TASKS
from mtl_perception.modeling.registry import build_model, list_models, register_model
from mtl_perception.modeling.ssd import SSDHead

__all__ = [
    'build_backbone',
    'build_model',
    'decode',
    'default_boxes',
    'encode',
    'FCNHead',
    'list_models',
    'MultiTaskModel',
    'register_model',
    'SSDHead',
    'TASKS',
]
