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

"""Label statistics of a data set (numpy only)."""

import numpy as np
from tqdm import tqdm

__all__ = ['class_pixel_counts']


def class_pixel_counts(dataset, num_classes: int, progress: bool = True) -> np.ndarray:
    """
    Count the labelled pixels of each segmentation class over a data set's masks.

    Inputs:
        dataset: samples per the data contract; samples without a mask are skipped.
        num_classes: K; void (255) pixels are not counted.
        progress: show a progress bar.

    Output:
        int64 [K]. A mask value in [K, 255) raises ValueError naming the image.
    """
    if num_classes < 1:
        raise ValueError(f'num_classes must be >= 1, got {num_classes}')
    counts = np.zeros(256, np.int64)
    for index in tqdm(range(len(dataset)), desc='class pixel counts', unit='image',
                      disable=not progress):
        sample = dataset[index]
        mask = sample.get('mask')
        if mask is None:
            continue
        image_counts = np.bincount(np.asarray(mask, np.uint8).ravel(), minlength=256)
        if image_counts[num_classes:255].any():
            bad = int(np.flatnonzero(image_counts[num_classes:255])[0]) + num_classes
            raise ValueError(f'{sample.get("image_id", index)}: mask value {bad} is not a '
                             f'class of {num_classes} (nor void 255)')
        counts += image_counts
    return counts[:num_classes]
