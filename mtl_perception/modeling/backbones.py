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
Backbones: torchvision classifiers trimmed to a pyramid of named feature maps.

Every backbone maps images ``[N, 3, H, W]`` to an ``OrderedDict`` with the keys
``'C2'`` (stride 4), ``'C3'`` (stride 8), ``'C4'`` (stride 16) and ``'C5'`` (stride 32)
and exposes
``out_channels`` (key -> channel count). Weights are never downloaded: networks are
built with ``weights=None`` and may be initialised from a local ImageNet state dict
whose keys follow torchvision's classifier of the same name.
"""

from collections import OrderedDict
import os
from typing import Callable

import torch
from torch import nn
import torchvision

FEATURE_NAMES = ('C2', 'C3', 'C4', 'C5')

# Classifier-only parameters that a backbone drops, so an ImageNet file may carry them.
_CLASSIFIER_PREFIXES = ('fc.', 'classifier.')


def load_state_dict_file(path: str) -> dict[str, torch.Tensor]:
    """
    Read a state dict from a ``.safetensors`` file or a ``torch.save`` file.

    Raises FileNotFoundError naming the file when it does not exist.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'backbone weights file not found: {path}')
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        return load_file(path, device='cpu')
    state = torch.load(path, map_location='cpu', weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f'{path} does not hold a state dict (got {type(state).__name__})')
    return state


def _load_backbone_weights(module: nn.Module, path: str) -> None:
    """Copy matching ImageNet weights into ``module``; every backbone tensor must be present."""
    state = load_state_dict_file(path)
    state = {k: v for k, v in state.items() if not k.startswith(_CLASSIFIER_PREFIXES)}
    result = module.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f'{path} does not match the backbone: missing keys {result.missing_keys[:5]}, '
            f'unexpected keys {result.unexpected_keys[:5]}')


class ResNetBackbone(nn.Module):
    """
    ResNet trunk returning C2 (layer1), C3 (layer2), C4 (layer3) and C5 (layer4).

    Submodule names equal torchvision's so ImageNet state dicts load unchanged.
    """

    def __init__(self, arch: str = 'resnet50', weights_path: str | None = None) -> None:
        """Build ``arch`` ('resnet18', 'resnet34' or 'resnet50') without downloading weights."""
        super().__init__()
        builders = {
            'resnet18': torchvision.models.resnet18,
            'resnet34': torchvision.models.resnet34,
            'resnet50': torchvision.models.resnet50,
        }
        if arch not in builders:
            raise ValueError(f'unknown ResNet arch {arch!r}; known: {sorted(builders)}')
        net = builders[arch](weights=None)
        self.conv1 = net.conv1
        self.bn1 = net.bn1
        self.relu = net.relu
        self.maxpool = net.maxpool
        self.layer1 = net.layer1
        self.layer2 = net.layer2
        self.layer3 = net.layer3
        self.layer4 = net.layer4
        expansion = 4 if arch == 'resnet50' else 1
        self.out_channels: dict[str, int] = {
            'C2': 64 * expansion, 'C3': 128 * expansion, 'C4': 256 * expansion,
            'C5': 512 * expansion}
        if weights_path is not None:
            _load_backbone_weights(self, weights_path)

    def forward(self, images: torch.Tensor) -> 'OrderedDict[str, torch.Tensor]':
        """Map images ``[N, 3, H, W]`` to C2/C3/C4/C5 maps at strides 4/8/16/32."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return OrderedDict([('C2', c2), ('C3', c3), ('C4', c4), ('C5', c5)])


class MobileNetV3Backbone(nn.Module):
    """
    MobileNetV3-Large trunk returning C2 (24 ch), C3 (40 ch), C4 (112 ch) and C5 (960 ch).

    ``features[0:4]`` ends at stride 4, ``features[4:7]`` at stride 8, ``features[7:13]`` at
    stride 16 and ``features[13:17]`` (including the final 1x1 expansion to 960) at stride 32.
    """

    # Index of the last block of each stage in torchvision's ``features``.
    _STAGE_ENDS = {'C2': 3, 'C3': 6, 'C4': 12, 'C5': 16}

    def __init__(self, weights_path: str | None = None) -> None:
        """Build MobileNetV3-Large without downloading weights."""
        super().__init__()
        net = torchvision.models.mobilenet_v3_large(weights=None)
        self.features = net.features
        self.out_channels: dict[str, int] = {}
        for name, end in self._STAGE_ENDS.items():
            self.out_channels[name] = int(self.features[end].out_channels)
        if weights_path is not None:
            _load_backbone_weights(self, weights_path)

    def forward(self, images: torch.Tensor) -> 'OrderedDict[str, torch.Tensor]':
        """Map images ``[N, 3, H, W]`` to C2/C3/C4/C5 maps at strides 4/8/16/32."""
        outputs: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
        ends = {end: name for name, end in self._STAGE_ENDS.items()}
        x = images
        for index, block in enumerate(self.features):
            x = block(x)
            if index in ends:
                outputs[ends[index]] = x
        return outputs


_BACKBONES: dict[str, Callable[[str | None], nn.Module]] = {
    'resnet18': lambda path: ResNetBackbone('resnet18', path),
    'resnet34': lambda path: ResNetBackbone('resnet34', path),
    'resnet50': lambda path: ResNetBackbone('resnet50', path),
    'mobilenet_v3_large': lambda path: MobileNetV3Backbone(path),
}


def build_backbone(name: str, weights_path: str | None = None) -> nn.Module:
    """Build a backbone by name, optionally initialised from a local weights file."""
    if name not in _BACKBONES:
        raise ValueError(f'unknown backbone {name!r}; known: {sorted(_BACKBONES)}')
    return _BACKBONES[name](weights_path)


def feature_size(input_size: int, stride: int) -> int:
    """
    Spatial size of a backbone map at ``stride`` for a square input of ``input_size``.

    Every stride-2 layer of the supported backbones pads by ``(k - 1) // 2`` and so
    rounds up: the size is ``ceil`` halved once per factor of two.
    """
    size = input_size
    while stride > 1:
        size = (size + 1) // 2
        stride //= 2
    return size
