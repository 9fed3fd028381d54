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
Image -> network input: validate, resize to S x S, normalise with the card's mean/std.

The resize matches the evaluation transforms (PIL bilinear, aspect ratio not kept), so
a network sees at inference exactly what it saw when it was evaluated.
"""

from functools import lru_cache
from typing import Sequence

import numpy as np
from PIL import Image


def validate_image(image: np.ndarray) -> None:
    """Raise ValueError naming the problem unless ``image`` is a non-empty uint8 [H, W, 3]."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f'image must be a numpy array [H, W, 3] uint8 RGB, '
                         f'got {type(image).__name__}')
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'image must have shape [H, W, 3] (RGB), got {list(image.shape)}')
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f'image is empty: shape {list(image.shape)}')
    if image.dtype != np.uint8:
        raise ValueError(f'image must be uint8, got {image.dtype} with shape '
                         f'{list(image.shape)}')


def preprocess(image: np.ndarray, input_size: int, mean: Sequence[float],
               std: Sequence[float], *, out: np.ndarray | None = None) -> np.ndarray:
    """
    Turn one RGB image into a normalised network input.

    Inputs:
        image: uint8 ``[H, W, 3]`` RGB.
        input_size: the network's square input side S.
        mean, std: per-channel statistics on the ``[0, 1]`` scale.
        out: optional float32 C-contiguous ``[1, 3, S, S]`` array to write into (and
            return), so a caller that runs one frame at a time allocates nothing per
            frame; the caller must not reuse it while an earlier result is still needed.

    Output:
        float32 ``[1, 3, S, S]`` holding ``(pixel / 255 - mean) / std``.

    Errors:
        ValueError: the image is not a non-empty uint8 ``[H, W, 3]`` array, or ``out``
            does not have the shape and dtype above.
    """
    validate_image(image)
    if out is None:
        out = np.empty((1, 3, input_size, input_size), dtype=np.float32)
    elif (out.shape != (1, 3, input_size, input_size) or out.dtype != np.float32
          or not out.flags['C_CONTIGUOUS']):
        raise ValueError(f'out must be a C-contiguous float32 [1, 3, {input_size}, '
                         f'{input_size}] array, got {out.dtype} {list(out.shape)}')
    if image.shape[0] != input_size or image.shape[1] != input_size:
        # PIL's C resampler on uint8 is both the fastest option here and exactly what
        # the evaluation transforms did, so accuracy numbers carry over unchanged.
        image = np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize(
            (input_size, input_size), Image.BILINEAR))
    scale, offset = _affine(tuple(float(m) for m in mean), tuple(float(s) for s in std))
    # One multiply (casting uint8 on the fly) and one add, both in place in ``out``:
    # (pixel / 255 - mean) / std == pixel * scale + offset.
    np.multiply(image.transpose(2, 0, 1), scale, out=out[0])
    np.add(out[0], offset, out=out[0])
    return out


@lru_cache(maxsize=16)
def _affine(mean: tuple[float, ...], std: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """
    Fold /255, -mean and /std into per-channel scale and offset.

    :return: float32 ``[3, 1, 1]`` scale and offset, cached per (mean, std).
    """
    std_arr = np.asarray(std, dtype=np.float32)
    scale = 1.0 / (255.0 * std_arr)
    offset = -np.asarray(mean, dtype=np.float32) / std_arr
    return (scale.astype(np.float32)[:, None, None], offset.astype(np.float32)[:, None, None])
