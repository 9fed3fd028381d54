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
SSD default boxes (anchors) for a list of square source feature maps.

Scales follow the SSD paper, ``s_k = s_min + (s_max - s_min) (k - 1) / (m - 1)``, with
one change taken from the reference SSD300 implementation: the first source (the
high-resolution, L2-normalised map) gets its own smaller scale ``first_scale``
(default ``min_scale / 2`` = 0.1) and the linear spread covers the remaining
``m - 1`` sources. Small objects, the common case in UAV imagery, then have boxes
that fit. Each cell holds a square box of side ``s_k``, a square box of side
``sqrt(s_k s_{k+1})`` (``s_{m+1}`` continues the linear spread) and, for every
aspect ratio ``r``, boxes ``(s_k sqrt(r), s_k / sqrt(r))`` and their transpose.
"""

import math
from typing import Sequence

import torch

# Aspect ratios per source for the six-source SSD layout.
SSD_ASPECT_RATIOS: tuple[tuple[int, ...], ...] = ((2,), (2, 3), (2, 3), (2, 3), (2,), (2,))


def boxes_per_cell(aspect_ratios: Sequence[Sequence[float]]) -> list[int]:
    """Count the default boxes in one cell of each source: ``2 + 2 * len(ratios)``."""
    return [2 + 2 * len(ratios) for ratios in aspect_ratios]


def source_scales(num_sources: int, min_scale: float = 0.2, max_scale: float = 0.9,
                  first_scale: float | None = None) -> list[float]:
    """
    Box scales ``s_1 .. s_{m+1}`` (fractions of the input side) for ``m`` sources.

    The extra last entry is only used for the ``sqrt(s_k s_{k+1})`` box of the last source.
    """
    if num_sources < 2:
        raise ValueError(f'need at least two sources, got {num_sources}')
    if not 0.0 < min_scale < max_scale:
        raise ValueError(f'need 0 < min_scale < max_scale, got {min_scale}, {max_scale}')
    if first_scale is None:
        first_scale = min_scale / 2.0
    step = (max_scale - min_scale) / (num_sources - 2) if num_sources > 2 else 0.0
    linear = [min_scale + step * k for k in range(num_sources)]
    return [first_scale] + linear


def default_boxes(feature_sizes: Sequence[int],
                  aspect_ratios: Sequence[Sequence[float]] = SSD_ASPECT_RATIOS,
                  min_scale: float = 0.2, max_scale: float = 0.9,
                  first_scale: float | None = None) -> torch.Tensor:
    """
    Build the default boxes for square source maps of the given sizes.

    Returns float32 ``[A, 4]`` boxes ``(cx, cy, w, h)`` normalised to ``[0, 1]`` of the
    input, ordered source by source, then row, column, and box within a cell (the order
    in which the SSD head flattens its predictions). Widths and heights are clipped to
    ``[0, 1]``; centres ``(j + 0.5) / f_k`` always lie inside.
    """
    if len(feature_sizes) != len(aspect_ratios):
        raise ValueError(f'{len(feature_sizes)} feature sizes but '
                         f'{len(aspect_ratios)} aspect-ratio sets')
    if any(size < 1 for size in feature_sizes):
        raise ValueError(f'feature sizes must be positive, got {list(feature_sizes)}')
    scales = source_scales(len(feature_sizes), min_scale, max_scale, first_scale)
    per_source = []
    for k, (size, ratios) in enumerate(zip(feature_sizes, aspect_ratios)):
        scale = scales[k]
        shapes = [(scale, scale)]
        between = math.sqrt(scale * scales[k + 1])
        shapes.append((between, between))
        for ratio in ratios:
            root = math.sqrt(ratio)
            shapes.append((scale * root, scale / root))
            shapes.append((scale / root, scale * root))
        wh = torch.tensor(shapes, dtype=torch.float64)
        centres = (torch.arange(size, dtype=torch.float64) + 0.5) / size
        cy, cx = torch.meshgrid(centres, centres, indexing='ij')
        xy = torch.stack([cx, cy], dim=-1).reshape(-1, 1, 2).expand(-1, len(shapes), 2)
        boxes = torch.cat([xy, wh.unsqueeze(0).expand(xy.shape[0], -1, 2)], dim=-1)
        per_source.append(boxes.reshape(-1, 4))
    return torch.cat(per_source).clamp_(0.0, 1.0).to(torch.float32)
