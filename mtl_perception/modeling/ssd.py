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
SSD detection head: extra layers, L2Norm, default boxes and 3x3 loc/conf predictors.

The head takes three backbone maps (C3, C4, C5) and adds light 1x1-3x3 bottleneck
layers below C5 until there are six source maps. For a 300 px input the sources are
38, 19, 10, 5, 3, 1 cells wide (8732 default boxes); for 512 px they are
64, 32, 16, 8, 4, 2 (24528 boxes). SSD512 proper has a seventh source; we keep six so
that every input size shares one layout of aspect ratios.
"""

from collections import OrderedDict
from typing import Sequence

from mtl_perception.modeling.anchors import boxes_per_cell, default_boxes, SSD_ASPECT_RATIOS
import torch
from torch import nn

SOURCE_NAMES = ('C3', 'C4', 'C5')
DEFAULT_EXTRA_CHANNELS = ((256, 256), (128, 256), (128, 256))
# Narrower extras for the 'lite' head, whose 3x3 convs are depthwise.
LITE_EXTRA_CHANNELS = ((128, 256), (64, 128), (64, 128))
HEAD_STYLES = ('ssd', 'lite')


class L2Norm(nn.Module):
    """
    Channel-wise L2 normalisation with a learnable per-channel scale.

    The high-resolution source has much larger activations than deeper ones; normalising
    it keeps its predictor's gradients in line with the others (ParseNet, SSD).
    """

    def __init__(self, channels: int, scale: float = 20.0, eps: float = 1e-10) -> None:
        """Create the scale parameter ``[channels]`` initialised to ``scale``."""
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.full((channels,), float(scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``[N, C, H, W]`` over C and rescale."""
        norm = x.pow(2).sum(dim=1, keepdim=True).sqrt() + self.eps
        return x / norm * self.weight.view(1, -1, 1, 1)


def extra_layer_geometry(size: int) -> tuple[int, int, int]:
    """
    Stride, padding and output size of the 3x3 conv of an extra layer on a ``size`` map.

    A 3-cell map is reduced to one cell with an unpadded conv, as in SSD300; any other
    size is halved (rounding up) by a padded stride-2 conv.
    """
    if size == 3:
        return 1, 0, 1
    return 2, 1, (size + 1) // 2


class ExtraBlock(nn.Sequential):
    """
    1x1 bottleneck then 3x3 conv producing the next, smaller source map.

    No batch norm: the last sources are 1x1 maps, on which batch statistics of a small
    batch are degenerate (and undefined for a batch of one), as in the original SSD.
    """

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int,
                 stride: int, padding: int) -> None:
        """Build conv-ReLU twice; the 3x3 conv uses ``stride`` and ``padding``."""
        super().__init__(
            nn.Conv2d(in_channels, mid_channels, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_channels, out_channels, 3, stride=stride, padding=padding),
            nn.ReLU(inplace=True),
        )


class LiteExtraBlock(nn.Sequential):
    """
    SSDLite extra layer: 1x1 reduce, depthwise 3x3 (strided), 1x1 expand.

    Convs with bias and ReLU6, no batch norm, for the reason given in ``ExtraBlock``.
    """

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int,
                 stride: int, padding: int) -> None:
        """Build the three convs; the depthwise conv uses ``stride`` and ``padding``."""
        super().__init__(
            nn.Conv2d(in_channels, mid_channels, 1),
            nn.ReLU6(inplace=True),
            nn.Conv2d(mid_channels, mid_channels, 3, stride=stride, padding=padding,
                      groups=mid_channels),
            nn.ReLU6(inplace=True),
            nn.Conv2d(mid_channels, out_channels, 1),
            nn.ReLU6(inplace=True),
        )


class SeparablePredictor(nn.Sequential):
    """
    Depthwise 3x3 conv, norm, ReLU6, then a pointwise 1x1 conv to ``out_channels``.

    Batch norm is used only when the source map has more than one cell (``norm=True``):
    on a 1x1 map its training statistics would come from the batch alone.
    """

    def __init__(self, in_channels: int, out_channels: int, norm: bool) -> None:
        """Build the depthwise and pointwise convs; ``norm`` adds batch norm in between."""
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels,
                      bias=not norm)]
        if norm:
            layers.append(nn.BatchNorm2d(in_channels))
        layers += [nn.ReLU6(inplace=True), nn.Conv2d(in_channels, out_channels, 1)]
        super().__init__(*layers)


class SSDHead(nn.Module):
    """
    SSD head over backbone maps C3/C4/C5 plus extra layers.

    :param in_channels: channels of C3, C4, C5.
    :param feature_sizes: spatial sizes of C3, C4, C5 for the model's (square) input size.
    :param num_classes: detection classes without background; the classifier has
        ``num_classes + 1`` outputs with index 0 = background.
    :param extra_channels: ``(mid, out)`` channels of each extra layer.
    :param aspect_ratios: aspect ratios per source (one set per source, six in all).
    :param min_scale, max_scale, first_scale: default-box scales, see ``anchors``.
    :param head_style: 'ssd' (plain 3x3 predictors, 1x1-3x3 extras, as in SSD) or 'lite'
        (SSDLite: depthwise-separable predictors and 1x1-depthwise-1x1 extras, for
        backbones such as MobileNetV3 whose features the full head would outweigh).

    The buffer ``anchors`` holds the default boxes ``[A, 4]`` ``(cx, cy, w, h)`` in
    ``[0, 1]``; it is derived from the arguments, so it is not saved in the state dict.
    """

    def __init__(self, in_channels: Sequence[int], feature_sizes: Sequence[int],
                 num_classes: int, *,
                 extra_channels: Sequence[tuple[int, int]] = DEFAULT_EXTRA_CHANNELS,
                 aspect_ratios: Sequence[Sequence[float]] = SSD_ASPECT_RATIOS,
                 min_scale: float = 0.2, max_scale: float = 0.9,
                 first_scale: float | None = None, head_style: str = 'ssd') -> None:
        """Build extras, predictors and default boxes."""
        super().__init__()
        if head_style not in HEAD_STYLES:
            raise ValueError(f'unknown SSD head style {head_style!r}; known: {HEAD_STYLES}')
        if len(in_channels) != len(SOURCE_NAMES) or len(feature_sizes) != len(SOURCE_NAMES):
            raise ValueError(f'need channels and sizes of {SOURCE_NAMES}, got '
                             f'{list(in_channels)} and {list(feature_sizes)}')
        if num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
        if len(aspect_ratios) != len(SOURCE_NAMES) + len(extra_channels):
            raise ValueError(f'{len(aspect_ratios)} aspect-ratio sets for '
                             f'{len(SOURCE_NAMES) + len(extra_channels)} sources')
        self.num_classes = num_classes
        self.head_style = head_style
        self.l2norm = L2Norm(in_channels[0])

        channels = list(in_channels)
        sizes = list(feature_sizes)
        self.extras = nn.ModuleList()
        for mid, out in extra_channels:
            stride, padding, size = extra_layer_geometry(sizes[-1])
            block = ExtraBlock if head_style == 'ssd' else LiteExtraBlock
            self.extras.append(block(channels[-1], mid, out, stride, padding))
            channels.append(out)
            sizes.append(size)
        self.source_sizes: tuple[int, ...] = tuple(sizes)

        boxes = boxes_per_cell(aspect_ratios)
        self.loc_layers = nn.ModuleList(
            self._predictor(c, b * 4, size) for c, b, size in zip(channels, boxes, sizes))
        self.conf_layers = nn.ModuleList(
            self._predictor(c, b * (num_classes + 1), size)
            for c, b, size in zip(channels, boxes, sizes))
        self.register_buffer(
            'anchors',
            default_boxes(sizes, aspect_ratios, min_scale, max_scale, first_scale),
            persistent=False)
        self._init_weights()

    def _predictor(self, in_channels: int, out_channels: int, size: int) -> nn.Module:
        if self.head_style == 'ssd':
            return nn.Conv2d(in_channels, out_channels, 3, padding=1)
        return SeparablePredictor(in_channels, out_channels, norm=size > 1)

    def _init_weights(self) -> None:
        predictors = list(self.loc_layers) + list(self.conf_layers)
        if self.head_style == 'lite':
            # The depthwise convs feed a nonlinearity like the extras; the last
            # pointwise conv of each predictor is the linear output layer.
            hidden = [layer[0] for layer in predictors]
            predictors = [layer[-1] for layer in predictors]
        else:
            hidden = []
        for module in list(self.extras.modules()) + hidden:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode='fan_out', nonlinearity='relu')
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        for module in predictors:
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(self, features: 'OrderedDict[str, torch.Tensor]'
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Predict offsets and class logits for every default box.

        :param features: backbone maps with keys 'C3', 'C4', 'C5', each ``[N, C, H, W]``.

        :return: ``loc`` ``[N, A, 4]`` encoded offsets and ``logits`` ``[N, A, C + 1]``.
        """
        sources = [self.l2norm(features['C3']), features['C4'], features['C5']]
        x = sources[-1]
        for extra in self.extras:
            x = extra(x)
            sources.append(x)
        for source, size in zip(sources, self.source_sizes):
            if source.shape[-2:] != (size, size):
                raise ValueError(f'source map of shape {list(source.shape)} does not match '
                                 f'the {size}x{size} layout the default boxes were built for')
        batch = sources[0].shape[0]
        locs, confs = [], []
        for source, loc_layer, conf_layer in zip(sources, self.loc_layers, self.conf_layers):
            # NCHW -> NHWC so the flattening order matches the default boxes.
            locs.append(loc_layer(source).permute(0, 2, 3, 1).reshape(batch, -1, 4))
            confs.append(conf_layer(source).permute(0, 2, 3, 1)
                         .reshape(batch, -1, self.num_classes + 1))
        return torch.cat(locs, dim=1), torch.cat(confs, dim=1)
