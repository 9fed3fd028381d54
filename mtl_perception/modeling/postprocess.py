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
import numpy as np
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
        to and clipped at ``[0, 1]``, 'scores' float32 ``[M]`` (descending) and 'labels'
        int64 ``[M]`` (0-based, no background), on the device of ``loc``.
    """
    if loc.dim() != 3 or loc.shape[-1] != 4:
        raise ValueError(f'loc must have shape [N, A, 4], got {list(loc.shape)}')
    if scores.dim() != 3 or scores.shape[:2] != loc.shape[:2] or scores.shape[-1] < 2:
        raise ValueError(f'scores must have shape [N, A, C + 1] matching loc '
                         f'{list(loc.shape)}, got {list(scores.shape)}')
    # The work is a threshold over [A, C] and a little arithmetic on a few candidates:
    # numpy does it on one core without the thread-pool wake-ups that large torch ops
    # pay on a busy CPU, and without moving every anchor off an accelerator twice.
    with torch.inference_mode():
        loc_np = loc.detach().float().cpu().numpy()
        scores_np = scores.detach().float().cpu().numpy()
        anchors_np = anchors.detach().float().cpu().numpy()
    results = []
    for image_loc, image_scores in zip(loc_np, scores_np):
        boxes, kept_scores, labels = decode_image_detections(
            image_loc, image_scores, anchors_np, score_threshold=score_threshold,
            nms_threshold=nms_threshold, max_detections=max_detections,
            top_k_per_class=top_k_per_class, variances=variances)
        results.append({'boxes': torch.from_numpy(boxes).to(loc.device),
                        'scores': torch.from_numpy(kept_scores).to(loc.device),
                        'labels': torch.from_numpy(labels).to(loc.device)})
    return results


def decode_image_detections(loc: np.ndarray, scores: np.ndarray, anchors: np.ndarray, *,
                            score_threshold: float = 0.01, nms_threshold: float = 0.45,
                            max_detections: int = 200, top_k_per_class: int = 400,
                            variances: Sequence[float] = DEFAULT_VARIANCES
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    Decode one image's SSD outputs (numpy in, numpy out), as ``decode_detections``.

    Only (anchor, class) pairs above ``score_threshold`` are decoded and enter NMS, so
    the cost follows the number of candidates, not the number of anchors.

    :param loc: float32 ``[A, 4]`` encoded offsets.
    :param scores: float32 ``[A, C + 1]`` class probabilities, index 0 = background.
    :param anchors: float32 ``[A, 4]`` default boxes ``(cx, cy, w, h)`` in ``[0, 1]``.
    :param score_threshold: minimum class probability of a kept box.
    :param nms_threshold: IoU above which a lower-scoring box of the same class is removed.
    :param max_detections: most boxes kept, best first.
    :param top_k_per_class: only the best this many boxes of each class enter NMS.
    :param variances: box-coder variances.

    :return: float32 ``[M, 4]`` boxes ``(x1, y1, x2, y2)`` normalised to and clipped at
        ``[0, 1]``, float32 ``[M]`` scores (descending), int64 ``[M]`` labels (0-based).
    """
    if loc.ndim != 2 or loc.shape[1] != 4:
        raise ValueError(f'loc must have shape [A, 4], got {list(loc.shape)}')
    if scores.ndim != 2 or scores.shape[0] != loc.shape[0] or scores.shape[1] < 2:
        raise ValueError(f'scores must have shape [A, C + 1] matching loc '
                         f'{list(loc.shape)}, got {list(scores.shape)}')
    if anchors.shape != loc.shape:
        raise ValueError(f'anchors must have shape {list(loc.shape)}, '
                         f'got {list(anchors.shape)}')
    foreground = scores[:, 1:]
    anchor_index, labels = np.nonzero(foreground > score_threshold)
    cand_scores = foreground[anchor_index, labels]
    if len(cand_scores) > top_k_per_class:
        keep = _top_k_per_class(cand_scores, labels, foreground.shape[1], top_k_per_class)
        if keep is not None:
            anchor_index, labels, cand_scores = (
                anchor_index[keep], labels[keep], cand_scores[keep])
    if len(cand_scores) == 0:
        return (np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                np.zeros(0, np.int64))
    with torch.inference_mode():
        boxes = decode(torch.from_numpy(loc[anchor_index]),
                       torch.from_numpy(anchors[anchor_index]), variances).clamp_(0.0, 1.0)
        scores_t = torch.from_numpy(np.ascontiguousarray(cand_scores, dtype=np.float32))
        labels_t = torch.from_numpy(labels)
        kept = batched_nms(boxes, scores_t, labels_t, nms_threshold)[:max_detections]
        kept_np = kept.numpy()
        return (boxes[kept].numpy(), cand_scores[kept_np].astype(np.float32, copy=False),
                labels[kept_np].astype(np.int64, copy=False))


def _top_k_per_class(cand_scores: np.ndarray, labels: np.ndarray, num_classes: int,
                     k: int) -> np.ndarray | None:
    """
    Pick the best ``k`` candidates of each class.

    :return: indices into the candidates, or None when no class has more than ``k``.
    """
    counts = np.bincount(labels, minlength=num_classes)
    if counts.max() <= k:
        return None
    # Group by class, best first within a class; a candidate's rank is its position
    # minus where its class's group starts.
    order = np.lexsort((-cand_scores, labels))
    starts = np.cumsum(counts) - counts
    rank = np.arange(len(order)) - starts[labels[order]]
    return order[rank < k]
