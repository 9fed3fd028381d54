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

"""Debug images: a fixed colour palette for masks and box overlays (numpy + PIL, no ROS)."""

from typing import Sequence

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw


def _make_palette() -> np.ndarray:
    """
    Return the fixed palette uint8 [256, 3]: index i -> RGB colour, 255 (void) -> black.

    Colours come from spreading the bits of the index over the three channels (as the VOC
    palette does), so neighbouring class indices get clearly different colours.
    """
    palette = np.zeros((256, 3), dtype=np.uint8)
    for index in range(255):
        value, colour = index + 1, [0, 0, 0]
        for shift in range(7, -1, -1):
            for channel in range(3):
                colour[channel] |= ((value >> channel) & 1) << shift
            value >>= 3
        palette[index] = colour
    return palette


PALETTE = _make_palette()
PALETTE.setflags(write=False)


def colorize_mask(mask: np.ndarray) -> np.ndarray:
    """Return the colour image uint8 [H, W, 3] of a class-index mask uint8 [H, W]."""
    if mask.dtype != np.uint8 or mask.ndim != 2:
        raise ValueError(f'expected a uint8 mask [H, W], got {mask.dtype} {list(mask.shape)}')
    return PALETTE[mask]


def draw_detections(image: np.ndarray, boxes: np.ndarray, scores: np.ndarray,
                    labels: np.ndarray, class_names: Sequence[str]) -> np.ndarray:
    """
    Return a copy of ``image`` uint8 [H, W, 3] RGB with boxes and 'name score' labels drawn.

    ``boxes`` are float [M, 4] x1, y1, x2, y2 in pixels of ``image``; ``labels`` index
    ``class_names``; box colours follow PALETTE by class index.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'expected a uint8 RGB image [H, W, 3], got {image.dtype} '
                         f'{list(image.shape)}')
    canvas = PILImage.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    for box, score, label in zip(np.asarray(boxes, dtype=np.float64).reshape(-1, 4).tolist(),
                                 np.asarray(scores).tolist(), np.asarray(labels).tolist()):
        colour = tuple(int(c) for c in PALETTE[label % 255])
        draw.rectangle(box, outline=colour, width=2)
        text = f'{class_names[label]} {score:.2f}'
        left, top = box[0], max(0.0, box[1] - 11)
        draw.rectangle(draw.textbbox((left, top), text), fill=colour)
        draw.text((left, top), text, fill=(255, 255, 255))
    return np.asarray(canvas)
