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
Name -> builder registry of the multitask (and single-task) networks.

Each builder is keyword-only and builds only the heads of the requested tasks, so a
single-task baseline is the same builder with ``tasks=('detection',)`` or
``tasks=('segmentation',)``.
"""

from typing import Callable, Sequence

from mtl_perception.modeling.anchors import SSD_ASPECT_RATIOS
from mtl_perception.modeling.backbones import build_backbone, feature_size
from mtl_perception.modeling.fcn import FCNHead
from mtl_perception.modeling.multitask import MultiTaskModel, TASKS, validate_tasks
from mtl_perception.modeling.ssd import DEFAULT_EXTRA_CHANNELS, LITE_EXTRA_CHANNELS, SSDHead
from torch import nn

# Smallest input for which every source map still has at least one cell after C5.
MIN_INPUT_SIZE = 64

_MODELS: dict[str, Callable[..., MultiTaskModel]] = {}


def register_model(name: str) -> Callable[[Callable[..., MultiTaskModel]],
                                          Callable[..., MultiTaskModel]]:
    """Register a builder under ``name`` (decorator)."""
    def decorator(builder: Callable[..., MultiTaskModel]) -> Callable[..., MultiTaskModel]:
        if name in _MODELS:
            raise ValueError(f'model {name!r} is already registered')
        _MODELS[name] = builder
        return builder
    return decorator


def list_models() -> list[str]:
    """Names of the registered builders, sorted."""
    return sorted(_MODELS)


def build_model(name: str, *, num_classes: dict[str, int], input_size: int = 300,
                tasks: Sequence[str] = TASKS, backbone_weights: str | None = None,
                **kwargs) -> MultiTaskModel:
    """Build the registered network ``name``; see ``_build_ssd_fcn`` for the arguments."""
    if name not in _MODELS:
        raise ValueError(f'unknown model {name!r}; known: {list_models()}')
    return _MODELS[name](num_classes=num_classes, input_size=input_size, tasks=tasks,
                         backbone_weights=backbone_weights, **kwargs)


def _build_ssd_fcn(backbone_name: str, *, num_classes: dict[str, int], input_size: int,
                   tasks: Sequence[str], backbone_weights: str | None,
                   fcn_variant: str = '8s', fcn_mid_channels: int = 256,
                   fcn_c3_channels: int = 64, fcn_c2_channels: int = 16,
                   min_scale: float = 0.2, max_scale: float = 0.9,
                   first_scale: float | None = None,
                   extra_channels: Sequence[tuple[int, int]] = DEFAULT_EXTRA_CHANNELS,
                   ssd_head_style: str = 'ssd',
                   ) -> MultiTaskModel:
    """
    Build backbone + SSD head + FCN head for the requested tasks.

    :param backbone_name: a name known to ``backbones.build_backbone``.
    :param num_classes: {'detection': C (no background), 'segmentation': K}; only the
        entries of ``tasks`` are needed.
    :param input_size: square input side S (e.g. 300 or 512); fixes the default boxes.
    :param tasks: non-empty subset of ('detection', 'segmentation').
    :param backbone_weights: optional local ImageNet state-dict file for the backbone, read
        when training starts; never part of a model card (``model_card.FILE_ARGUMENTS``): a
        trained network's weights are the safetensors file beside its card.
    :param fcn_variant: '4s', '8s' or '16s'.
    :param fcn_mid_channels: width of the FCN block before scoring C5 (0: none).
    :param fcn_c3_channels: width of the FCN 3x3 conv before scoring C3 (0: none).
    :param fcn_c2_channels: width of the FCN 3x3 conv before scoring C2 (4s only; 0: none).
    :param min_scale, max_scale, first_scale: default-box scales.
    :param extra_channels: ``(mid, out)`` channels of the SSD extra layers.
    :param ssd_head_style: 'ssd' or 'lite' (depthwise-separable predictors and extras).
    """
    tasks = validate_tasks(tasks)
    if not isinstance(input_size, int) or input_size < MIN_INPUT_SIZE:
        raise ValueError(f'input_size must be an int >= {MIN_INPUT_SIZE}, got {input_size!r}')
    for task in tasks:
        count = num_classes.get(task) if isinstance(num_classes, dict) else None
        if not isinstance(count, int) or count < 1:
            raise ValueError(f'num_classes must map {task!r} to a positive int, '
                             f'got {num_classes!r}')
    backbone = build_backbone(backbone_name, backbone_weights)
    heads: dict[str, nn.Module] = {}
    if 'detection' in tasks:
        heads['detection'] = SSDHead(
            [backbone.out_channels[k] for k in ('C3', 'C4', 'C5')],
            [feature_size(input_size, s) for s in (8, 16, 32)],
            num_classes['detection'], extra_channels=extra_channels,
            aspect_ratios=SSD_ASPECT_RATIOS, min_scale=min_scale, max_scale=max_scale,
            first_scale=first_scale, head_style=ssd_head_style)
    if 'segmentation' in tasks:
        heads['segmentation'] = FCNHead(
            backbone.out_channels, num_classes['segmentation'], variant=fcn_variant,
            mid_channels=fcn_mid_channels, c3_channels=fcn_c3_channels,
            c2_channels=fcn_c2_channels)
    return MultiTaskModel(backbone, heads, tasks, input_size=input_size)


@register_model('resnet50_ssd_fcn')
def resnet50_ssd_fcn(*, num_classes: dict[str, int], input_size: int = 300,
                     tasks: Sequence[str] = TASKS, backbone_weights: str | None = None,
                     **kwargs) -> MultiTaskModel:
    """ResNet-50 backbone with SSD and FCN heads (the reference design)."""
    return _build_ssd_fcn('resnet50', num_classes=num_classes, input_size=input_size,
                          tasks=tasks, backbone_weights=backbone_weights, **kwargs)


@register_model('resnet34_ssd_fcn')
def resnet34_ssd_fcn(*, num_classes: dict[str, int], input_size: int = 300,
                     tasks: Sequence[str] = TASKS, backbone_weights: str | None = None,
                     **kwargs) -> MultiTaskModel:
    """ResNet-34 backbone with SSD and FCN heads."""
    return _build_ssd_fcn('resnet34', num_classes=num_classes, input_size=input_size,
                          tasks=tasks, backbone_weights=backbone_weights, **kwargs)


@register_model('resnet18_ssd_fcn')
def resnet18_ssd_fcn(*, num_classes: dict[str, int], input_size: int = 300,
                     tasks: Sequence[str] = TASKS, backbone_weights: str | None = None,
                     **kwargs) -> MultiTaskModel:
    """ResNet-18 backbone with SSD and FCN heads."""
    return _build_ssd_fcn('resnet18', num_classes=num_classes, input_size=input_size,
                          tasks=tasks, backbone_weights=backbone_weights, **kwargs)


@register_model('mobilenet_v3_large_ssd_fcn')
def mobilenet_v3_large_ssd_fcn(*, num_classes: dict[str, int], input_size: int = 300,
                               tasks: Sequence[str] = TASKS,
                               backbone_weights: str | None = None,
                               **kwargs) -> MultiTaskModel:
    """MobileNetV3-Large backbone with SSD and FCN heads."""
    return _build_ssd_fcn('mobilenet_v3_large', num_classes=num_classes,
                          input_size=input_size, tasks=tasks,
                          backbone_weights=backbone_weights, **kwargs)


# Defaults of the light MobileNetV3 network. The heads stay small next to the backbone,
# so the multitask network costs little more than one single-task network. The default
# boxes are smaller than SSD's: with first_scale 0.1 an aerial person (about 10 px at a
# 300 px input) overlaps no default box with IoU >= 0.5; with 0.04 about half do, while
# cars (about 30 px) still find matches on C4 at min_scale 0.1.
_LITE_DEFAULTS = {
    'ssd_head_style': 'lite',
    'extra_channels': LITE_EXTRA_CHANNELS,
    'fcn_mid_channels': 128,
    'fcn_c3_channels': 32,
    'min_scale': 0.1,
    'max_scale': 0.6,
    'first_scale': 0.04,
}


@register_model('mobilenet_v3_large_ssdlite_fcn')
def mobilenet_v3_large_ssdlite_fcn(*, num_classes: dict[str, int], input_size: int = 300,
                                   tasks: Sequence[str] = TASKS,
                                   backbone_weights: str | None = None,
                                   **kwargs) -> MultiTaskModel:
    """
    MobileNetV3-Large backbone with an SSDLite head and a narrow FCN head.

    The demo network for CPUs: the heads are a fraction of the backbone, which is what
    the multitask network shares. ``kwargs`` override the defaults in ``_LITE_DEFAULTS``.
    """
    return _build_ssd_fcn('mobilenet_v3_large', num_classes=num_classes,
                          input_size=input_size, tasks=tasks,
                          backbone_weights=backbone_weights, **{**_LITE_DEFAULTS, **kwargs})
