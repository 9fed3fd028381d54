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
FCN segmentation head with skip connections (FCN-4s / FCN-8s / FCN-16s).

Class scores from C5 are upsampled x2 and added to scores from C4, upsampled x2 again
and added to scores from C3 (8s; the 16s variant stops after C4; the 4s variant goes on
to the stride-4 map C2, for objects only a few pixels wide), then bilinearly resized to
the input resolution. Maps of odd size (300 px input: 38, 19, 10) are
handled by cropping each upsampled map to the skip map: with a stride-2 transposed
conv of kernel 4 and padding 1, output cell ``i`` is centred on the same input pixel
as cell ``i`` of the finer map, so the crop keeps the grids aligned.
"""

from collections import OrderedDict

import torch
from torch import nn
from torch.nn import functional as F

FCN_VARIANTS = ('4s', '8s', '16s')


def bilinear_kernel(channels: int, kernel_size: int) -> torch.Tensor:
    """Weights ``[channels, channels, k, k]`` of a transposed conv doing bilinear upsampling."""
    factor = (kernel_size + 1) // 2
    centre = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    grid = torch.arange(kernel_size, dtype=torch.float32)
    profile = 1 - (grid - centre).abs() / factor
    kernel = profile[:, None] * profile[None, :]
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    weight[range(channels), range(channels)] = kernel
    return weight


def _conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def _skip_scorer(in_channels: int, context_channels: int, num_classes: int) -> tuple:
    """Return (context block or Identity, 1x1 scoring conv) for one skip map."""
    if context_channels > 0:
        return (_conv_bn_relu(in_channels, context_channels, 3),
                nn.Conv2d(context_channels, num_classes, 1))
    return nn.Identity(), nn.Conv2d(in_channels, num_classes, 1)


class Upsample2x(nn.Module):
    """Learnable x2 upsampling (transposed conv, bilinear init) cropped to a target size."""

    def __init__(self, channels: int) -> None:
        """Build a ``channels -> channels`` transposed conv with kernel 4, stride 2."""
        super().__init__()
        self.deconv = nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1,
                                         bias=False)
        with torch.no_grad():
            self.deconv.weight.copy_(bilinear_kernel(channels, 4))

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Upsample ``[N, C, h, w]`` to ``[N, C, 2h, 2w]`` and crop to ``size``."""
        y = self.deconv(x)
        if y.shape[-2] < size[0] or y.shape[-1] < size[1]:
            raise ValueError(f'cannot crop upsampled map {list(y.shape)} to {list(size)}')
        return y[..., :size[0], :size[1]]


class FCNHead(nn.Module):
    """
    FCN head producing per-pixel class logits at input resolution.

    :param in_channels: channels of the backbone maps, keys 'C3', 'C4', 'C5'.
    :param num_classes: segmentation classes K (void 255 is not a class).
    :param variant: '4s' (fuse C5, C4, C3 and C2), '8s' (fuse C5, C4 and C3) or '16s'
        (fuse C5 and C4).
    :param mid_channels: width of the small 1x1-3x3 block before scoring C5, or 0 to
        score C5 directly.
    :param c3_channels: width of a 3x3 conv before scoring C3 (8s and 4s), or 0 to score
        C3 directly. C3 is a shallow map; a narrow 3x3 conv gives its scores some spatial
        context at stride 8 for few parameters.
    :param c2_channels: width of the 3x3 conv before scoring C2 (4s only), or 0 to score
        C2 directly.
    """

    def __init__(self, in_channels: dict[str, int], num_classes: int, *,
                 variant: str = '8s', mid_channels: int = 256, c3_channels: int = 64,
                 c2_channels: int = 16) -> None:
        """Build the score layers and upsamplers."""
        super().__init__()
        if variant not in FCN_VARIANTS:
            raise ValueError(f'unknown FCN variant {variant!r}; known: {FCN_VARIANTS}')
        if num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
        self.variant = variant
        self.num_classes = num_classes
        c5 = in_channels['C5']
        if mid_channels > 0:
            self.context = nn.Sequential(
                _conv_bn_relu(c5, mid_channels, 1), _conv_bn_relu(mid_channels, mid_channels, 3))
            c5 = mid_channels
        else:
            self.context = nn.Identity()
        self.score_c5 = nn.Conv2d(c5, num_classes, 1)
        self.score_c4 = nn.Conv2d(in_channels['C4'], num_classes, 1)
        self.up_c5 = Upsample2x(num_classes)
        if variant in ('8s', '4s'):
            self.c3_context, self.score_c3 = _skip_scorer(in_channels['C3'], c3_channels,
                                                          num_classes)
            self.up_c4 = Upsample2x(num_classes)
        if variant == '4s':
            self.c2_context, self.score_c2 = _skip_scorer(in_channels['C2'], c2_channels,
                                                          num_classes)
            self.up_c3 = Upsample2x(num_classes)
        # Skip scores start at zero so training begins from the coarse C5 prediction
        # and the finer paths grow in, as in the staged FCN training.
        for layer in (self.score_c4, getattr(self, 'score_c3', None),
                      getattr(self, 'score_c2', None)):
            if layer is not None:
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)

    def forward(self, features: 'OrderedDict[str, torch.Tensor]',
                output_size: tuple[int, int]) -> torch.Tensor:
        """Compute logits ``[N, K, H, W]`` with ``(H, W) = output_size`` from C2-C5."""
        score = self.score_c5(self.context(features['C5']))
        skip = self.score_c4(features['C4'])
        score = self.up_c5(score, (skip.shape[-2], skip.shape[-1])) + skip
        if self.variant in ('8s', '4s'):
            skip = self.score_c3(self.c3_context(features['C3']))
            score = self.up_c4(score, (skip.shape[-2], skip.shape[-1])) + skip
        if self.variant == '4s':
            skip = self.score_c2(self.c2_context(features['C2']))
            score = self.up_c3(score, (skip.shape[-2], skip.shape[-1])) + skip
        return F.interpolate(score, size=output_size, mode='bilinear', align_corners=False)
