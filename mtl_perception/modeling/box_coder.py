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
SSD box coder: offsets of boxes relative to default boxes, scaled by variances.

For a box ``(x1, y1, x2, y2)`` with centre ``(cx, cy)`` and size ``(w, h)`` and a default
box ``(acx, acy, aw, ah)`` (all normalised to ``[0, 1]``) the encoded offsets are
``((cx - acx) / (v0 aw), (cy - acy) / (v0 ah), log(w / aw) / v1, log(h / ah) / v1)``.
"""

from typing import Sequence

from mtl_perception.model_card import BOX_VARIANCES
import torch

# Keeps log() finite for degenerate (zero-size) boxes.
_MIN_SIZE = 1e-6


def _check_last_dim(name: str, tensor: torch.Tensor) -> None:
    if tensor.shape[-1] != 4:
        raise ValueError(f'{name} must have shape [..., 4], got {list(tensor.shape)}')


def encode(boxes: torch.Tensor, anchors: torch.Tensor,
           variances: Sequence[float] = BOX_VARIANCES) -> torch.Tensor:
    """
    Encode matched boxes against their default boxes.

    :param boxes: ``[M, 4]`` boxes ``(x1, y1, x2, y2)`` normalised to ``[0, 1]``.
    :param anchors: ``[M, 4]`` default boxes ``(cx, cy, w, h)`` normalised to ``[0, 1]``.
    :param variances: centre and size variances.

    :return: ``[M, 4]`` offsets ``(dx, dy, dw, dh)``.
    """
    _check_last_dim('boxes', boxes)
    _check_last_dim('anchors', anchors)
    if boxes.shape != anchors.shape:
        raise ValueError(f'boxes {list(boxes.shape)} and anchors {list(anchors.shape)} '
                         'must have the same shape')
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2
    size = (boxes[..., 2:] - boxes[..., :2]).clamp(min=_MIN_SIZE)
    d_centre = (centre - anchors[..., :2]) / (variances[0] * anchors[..., 2:])
    d_size = torch.log(size / anchors[..., 2:]) / variances[1]
    return torch.cat([d_centre, d_size], dim=-1)


def decode(loc: torch.Tensor, anchors: torch.Tensor,
           variances: Sequence[float] = BOX_VARIANCES) -> torch.Tensor:
    """
    Decode predicted offsets into boxes.

    :param loc: ``[..., A, 4]`` offsets ``(dx, dy, dw, dh)``.
    :param anchors: ``[A, 4]`` default boxes ``(cx, cy, w, h)`` normalised to ``[0, 1]``.
    :param variances: centre and size variances.

    :return: ``[..., A, 4]`` boxes ``(x1, y1, x2, y2)`` normalised to the input (not clipped).
    """
    _check_last_dim('loc', loc)
    if anchors.dim() != 2 or anchors.shape[-1] != 4:
        raise ValueError(f'anchors must have shape [A, 4], got {list(anchors.shape)}')
    if loc.dim() < 2 or loc.shape[-2] != anchors.shape[0]:
        raise ValueError(f'loc {list(loc.shape)} does not match {anchors.shape[0]} anchors')
    centre = anchors[:, :2] + loc[..., :2] * variances[0] * anchors[:, 2:]
    size = anchors[:, 2:] * torch.exp(loc[..., 2:] * variances[1])
    return torch.cat([centre - size / 2, centre + size / 2], dim=-1)
