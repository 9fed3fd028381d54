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
               std: Sequence[float]) -> np.ndarray:
    """
    Turn one RGB image into a normalised network input.

    Inputs:
        image: uint8 ``[H, W, 3]`` RGB.
        input_size: the network's square input side S.
        mean, std: per-channel statistics on the ``[0, 1]`` scale.

    Output:
        float32 ``[1, 3, S, S]`` holding ``(pixel / 255 - mean) / std``.

    Errors:
        ValueError: the image is not a non-empty uint8 ``[H, W, 3]`` array.
    """
    validate_image(image)
    if image.shape[0] != input_size or image.shape[1] != input_size:
        image = np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize(
            (input_size, input_size), Image.BILINEAR))
    # Fold /255, -mean and /std into one multiply-add per pixel.
    scale = 1.0 / (255.0 * np.asarray(std, dtype=np.float32))
    offset = -np.asarray(mean, dtype=np.float32) / np.asarray(std, dtype=np.float32)
    chw = image.transpose(2, 0, 1).astype(np.float32)
    chw *= scale[:, None, None]
    chw += offset[:, None, None]
    return chw[None]
