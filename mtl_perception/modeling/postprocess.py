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

"""Turn raw SSD outputs into per-image detections: decode, threshold, class-wise NMS."""

from typing import Sequence

from mtl_perception.modeling.box_coder import decode, DEFAULT_VARIANCES
import torch
from torchvision.ops import batched_nms


def decode_detections(loc: torch.Tensor, scores: torch.Tensor, anchors: torch.Tensor, *,
                      score_threshold: float = 0.01, nms_threshold: float = 0.45,
                      max_detections: int = 200, top_k_per_class: int = 400,
                      variances: Sequence[float] = DEFAULT_VARIANCES
                      ) -> list[dict[str, torch.Tensor]]:
    """
    Decode SSD outputs and keep the best boxes per image.

    :param loc: ``[N, A, 4]`` encoded offsets.
    :param scores: ``[N, A, C + 1]`` class probabilities (softmax), index 0 = background.
    :param anchors: ``[A, 4]`` default boxes ``(cx, cy, w, h)`` normalised to ``[0, 1]``.
    :param score_threshold: minimum class probability of a kept box.
    :param nms_threshold: IoU above which a lower-scoring box of the same class is removed.
    :param max_detections: most boxes kept per image, best first.
    :param top_k_per_class: only the best this many boxes of each class enter NMS,
        which bounds its cost when many boxes pass the threshold.
    :param variances: box-coder variances.

    :return: One dict per image: 'boxes' float32 ``[M, 4]`` ``(x1, y1, x2, y2)`` normalised
    :return: to and clipped at ``[0, 1]``, 'scores' float32 ``[M]`` (descending) and 'labels'
    :return: int64 ``[M]`` (0-based, no background).
    """
    if loc.dim() != 3 or loc.shape[-1] != 4:
        raise ValueError(f'loc must have shape [N, A, 4], got {list(loc.shape)}')
    if scores.dim() != 3 or scores.shape[:2] != loc.shape[:2] or scores.shape[-1] < 2:
        raise ValueError(f'scores must have shape [N, A, C + 1] matching loc '
                         f'{list(loc.shape)}, got {list(scores.shape)}')
    boxes = decode(loc.float(), anchors.float(), variances).clamp_(0.0, 1.0)
    results = []
    for image_boxes, image_scores in zip(boxes, scores.float()):
        foreground = image_scores[:, 1:]
        k = min(top_k_per_class, foreground.shape[0])
        # [k, C]: best k boxes for each class, so every class gets candidates.
        top_scores, top_index = foreground.topk(k, dim=0)
        labels = torch.arange(foreground.shape[1], device=foreground.device).expand(k, -1)
        keep = top_scores > score_threshold
        cand_scores = top_scores[keep]
        cand_labels = labels[keep]
        cand_boxes = image_boxes[top_index[keep]]
        kept = batched_nms(cand_boxes, cand_scores, cand_labels, nms_threshold)
        kept = kept[:max_detections]
        results.append({
            'boxes': cand_boxes[kept],
            'scores': cand_scores[kept],
            'labels': cand_labels[kept].to(torch.int64),
        })
    return results
