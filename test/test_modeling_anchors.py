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
"""Default boxes and the box coder."""

import math

from mtl_perception.modeling.anchors import (
    boxes_per_cell, default_boxes, source_scales, SSD_ASPECT_RATIOS)
from mtl_perception.modeling.box_coder import decode, encode
import pytest
import torch

SSD300_SIZES = (38, 19, 10, 5, 3, 1)


def test_ssd300_layout_has_8732_boxes():
    assert boxes_per_cell(SSD_ASPECT_RATIOS) == [4, 6, 6, 6, 4, 4]
    anchors = default_boxes(SSD300_SIZES)
    assert anchors.shape == (8732, 4)
    assert anchors.dtype == torch.float32


def test_ssd512_layout():
    assert default_boxes((64, 32, 16, 8, 4, 2)).shape == (24528, 4)


def test_boxes_within_unit_square():
    anchors = default_boxes(SSD300_SIZES)
    assert anchors.min() >= 0.0
    assert anchors.max() <= 1.0


def test_centres_follow_cell_grid():
    anchors = default_boxes(SSD300_SIZES)
    first = anchors[:38 * 38 * 4].reshape(38, 38, 4, 4)
    # Row i, column j of the first source: centre ((j + .5) / 38, (i + .5) / 38).
    assert torch.allclose(first[0, 0, :, :2], torch.full((4, 2), 0.5 / 38))
    assert torch.allclose(first[2, 5, 0, :2], torch.tensor([5.5 / 38, 2.5 / 38]))
    last = anchors[-4:]
    assert torch.allclose(last[:, :2], torch.full((4, 2), 0.5))


def test_scales_and_shapes_per_cell():
    scales = source_scales(6, 0.2, 0.9)
    assert scales[0] == pytest.approx(0.1)
    assert scales[1] == pytest.approx(0.2)
    assert scales[5] == pytest.approx(0.9)
    assert scales[6] == pytest.approx(0.9 + 0.175)
    anchors = default_boxes(SSD300_SIZES)
    cell = anchors[:4, 2:]
    root2 = math.sqrt(2)
    expected = torch.tensor([[0.1, 0.1], [math.sqrt(0.02)] * 2,
                             [0.1 * root2, 0.1 / root2], [0.1 / root2, 0.1 * root2]])
    assert torch.allclose(cell, expected, atol=1e-6)
    # Second source (19x19, ratios 2 and 3): scale 0.2, six boxes.
    second = anchors[38 * 38 * 4:38 * 38 * 4 + 6, 2:]
    assert second[0].tolist() == pytest.approx([0.2, 0.2])
    assert second[4].tolist() == pytest.approx([0.2 * math.sqrt(3), 0.2 / math.sqrt(3)])
    # The last source's widest boxes are clipped to the image.
    assert anchors[-2, 2].item() == pytest.approx(1.0)


def test_first_scale_is_configurable():
    anchors = default_boxes(SSD300_SIZES, first_scale=0.07)
    assert anchors[0, 2].item() == pytest.approx(0.07)


def test_bad_layout_raises():
    with pytest.raises(ValueError, match='aspect-ratio'):
        default_boxes((38, 19, 10))
    with pytest.raises(ValueError, match='min_scale'):
        default_boxes(SSD300_SIZES, min_scale=0.9, max_scale=0.2)


def test_encode_decode_round_trip():
    generator = torch.Generator().manual_seed(0)
    anchors = default_boxes(SSD300_SIZES)[::97]
    xy = torch.rand(anchors.shape[0], 2, generator=generator) * 0.6
    wh = torch.rand(anchors.shape[0], 2, generator=generator) * 0.35 + 0.02
    boxes = torch.cat([xy, xy + wh], dim=1)
    loc = encode(boxes, anchors)
    assert loc.shape == boxes.shape
    assert torch.allclose(decode(loc, anchors), boxes, atol=1e-5)


def test_encode_uses_variances():
    anchors = torch.tensor([[0.5, 0.5, 0.2, 0.4]])
    boxes = torch.tensor([[0.42, 0.34, 0.62, 0.74]])  # centre (0.52, 0.54), size (0.2, 0.4)
    loc = encode(boxes, anchors, (0.1, 0.2))
    assert loc[0].tolist() == pytest.approx([1.0, 1.0, 0.0, 0.0], abs=1e-5)
    # Batched decode with a leading batch dimension.
    batched = decode(loc.expand(3, 1, 4), anchors)
    assert batched.shape == (3, 1, 4)
    assert torch.allclose(batched[2], boxes, atol=1e-6)


def test_coder_shape_errors():
    with pytest.raises(ValueError, match=r'\[3, 4\]'):
        encode(torch.zeros(3, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match='anchors'):
        decode(torch.zeros(1, 5, 4), torch.zeros(4, 4))
