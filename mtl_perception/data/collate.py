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

"""Batch transformed samples into the training batch of the data contract."""

import torch


def collate_samples(samples: list) -> tuple:
    """
    Collate samples produced by ``ToTensorNormalize`` (all the same size S x S).

    Output:
        images: float32 [N, 3, S, S].
        targets: dict with
            'boxes': list of N float32 [M_i, 4] x1, y1, x2, y2 normalised to [0, 1] of the
            network input (pixels divided by W, H),
            'labels': list of N int64 [M_i] (0-based, no background),
            'has_boxes': bool [N],
            'mask': int64 [N, S, S] (255 where void or where the sample has no mask),
            'has_mask': bool [N],
            and, for evaluation, 'difficult': list of N bool [M_i] and 'image_ids': list of
            N str.
    """
    if not samples:
        raise ValueError('collate_samples needs at least one sample')
    for s in samples:
        if not isinstance(s.get('image'), torch.Tensor) or s['image'].dim() != 3:
            raise ValueError('samples must be ToTensorNormalize outputs with image [3, H, W]')
    shapes = {tuple(s['image'].shape) for s in samples}
    if len(shapes) != 1:
        raise ValueError(f'all images must have the same shape, got {sorted(shapes)}')
    _, h, w = samples[0]['image'].shape
    scale = torch.tensor([w, h, w, h], dtype=torch.float32)
    images = torch.stack([s['image'] for s in samples])
    targets = {
        'boxes': [s['boxes'].float().reshape(-1, 4) / scale for s in samples],
        'labels': [s['labels'].long() for s in samples],
        'has_boxes': torch.tensor([bool(s['has_boxes']) for s in samples]),
        'mask': torch.stack([s['mask'].long() for s in samples]),
        'has_mask': torch.tensor([bool(s['has_mask']) for s in samples]),
        'difficult': [s['difficult'].bool() for s in samples],
        'image_ids': [str(s.get('image_id', '')) for s in samples],
    }
    return images, targets
