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

"""End-to-end check: a small multitask model overfits four synthetic images."""

from mtl_perception.modeling.losses import MultiTaskLoss
from mtl_perception.modeling.registry import build_model
from mtl_perception.modeling.weighting import build_weighting
import numpy as np
import torch


SIZE = 128
TASKS = ('detection', 'segmentation')
# Per image: (class, x1, y1, x2, y2) in pixels; detection class c is segmentation class c + 1.
SCENES = [
    [(0, 10, 12, 60, 70), (1, 80, 30, 120, 110)],
    [(1, 20, 20, 100, 60)],
    [(0, 64, 64, 124, 124)],
    [(0, 5, 80, 45, 120), (1, 50, 5, 90, 45)],
]
COLOURS = np.array([[40, 40, 40], [220, 60, 30], [30, 90, 220]], dtype=np.float32)


def synthetic_batch() -> tuple[torch.Tensor, dict]:
    """Draw the scenes: flat-coloured rectangles on a noisy grey background."""
    rng = np.random.default_rng(0)
    images, boxes, labels, masks = [], [], [], []
    for scene in SCENES:
        image = COLOURS[0] + rng.normal(0.0, 10.0, (SIZE, SIZE, 3)).astype(np.float32)
        mask = np.zeros((SIZE, SIZE), dtype=np.int64)
        for cls, x1, y1, x2, y2 in scene:
            image[y1:y2, x1:x2] = COLOURS[cls + 1]
            mask[y1:y2, x1:x2] = cls + 1
        images.append(torch.from_numpy((image - 110.0) / 70.0).permute(2, 0, 1))
        boxes.append(torch.tensor([s[1:] for s in scene], dtype=torch.float32) / SIZE)
        labels.append(torch.tensor([s[0] for s in scene], dtype=torch.int64))
        masks.append(torch.from_numpy(mask))
    targets = {'boxes': boxes, 'labels': labels,
               'has_boxes': torch.ones(len(SCENES), dtype=torch.bool),
               'mask': torch.stack(masks), 'has_mask': torch.ones(len(SCENES), dtype=torch.bool)}
    return torch.stack(images).contiguous(), targets


def test_multitask_model_overfits_four_images():
    torch.manual_seed(0)
    model = build_model('resnet18_ssd_fcn', num_classes={'detection': 2, 'segmentation': 3},
                        input_size=SIZE, tasks=TASKS)
    criterion = MultiTaskLoss(TASKS, build_weighting('fixed', TASKS))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    images, targets = synthetic_batch()
    model.train()
    history = []
    for _ in range(150):
        losses = criterion(model(images), targets, model.anchors)
        optimizer.zero_grad()
        losses['total'].backward()
        optimizer.step()
        history.append({k: float(v.detach()) for k, v in losses.items()})
        if fell_enough(history[0], history[-1]):
            break
    # About 12 steps (~20 s on two shared cores) usually suffice; 150 is the safety margin.
    assert fell_enough(history[0], history[-1]), (history[0], history[-1], len(history))


def fell_enough(first: dict, last: dict) -> bool:
    """Total down by 10x and each task's loss by at least 5x."""
    return (last['total'] < first['total'] / 10.0
            and last['detection'] < first['detection'] / 5.0
            and last['segmentation'] < first['segmentation'] / 5.0)
