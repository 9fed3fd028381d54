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
Raw network outputs -> detections and masks, in numpy (the deployment runtime's decoding).

Detection: SSD offsets are decoded against the default boxes, (anchor, class) pairs under the
score threshold are dropped, each class keeps its best ``top_k_per_class`` candidates, boxes
of the same class that overlap a better one by more than the NMS threshold are removed, and
the best ``max_detections`` remain. Only candidates above the threshold are decoded, so the
cost follows the number of candidates, not the number of anchors. The results equal
torchvision's ``batched_nms`` on the same candidates (a test holds them to 1e-6).

Segmentation: the per-pixel argmax of the logits at the network resolution, resized to the
image with nearest-neighbour sampling exactly as PIL's NEAREST does.

This module needs numpy and Pillow only: the nodes on ONNX Runtime or TensorRT never load
torch.
"""

from functools import lru_cache
from typing import Sequence

from mtl_perception.model_card import BOX_VARIANCES
import numpy as np
from PIL import Image


def decode_boxes(loc: np.ndarray, anchors: np.ndarray,
                 variances: Sequence[float] = BOX_VARIANCES) -> np.ndarray:
    """
    Decode SSD offsets into boxes.

    :param loc: float32 ``[..., A, 4]`` offsets ``(dx, dy, dw, dh)``.
    :param anchors: float32 ``[A, 4]`` default boxes ``(cx, cy, w, h)`` in ``[0, 1]``.
    :param variances: centre and size variances.
    :return: float32 ``[..., A, 4]`` boxes ``(x1, y1, x2, y2)`` normalised (not clipped).
    """
    if loc.shape[-1] != 4 or anchors.ndim != 2 or anchors.shape[-1] != 4 \
            or loc.shape[-2] != anchors.shape[0]:
        raise ValueError(f'loc {list(loc.shape)} must be [..., A, 4] for anchors '
                         f'{list(anchors.shape)} [A, 4]')
    centre_var, size_var = np.float32(variances[0]), np.float32(variances[1])
    centre = anchors[:, :2] + loc[..., :2] * centre_var * anchors[:, 2:]
    size = anchors[:, 2:] * np.exp(loc[..., 2:] * size_var)
    half = size / np.float32(2)
    boxes = np.concatenate([centre - half, centre + half], axis=-1)
    return boxes.astype(np.float32, copy=False)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """
    Greedy non-maximum suppression.

    :param boxes: float ``[N, 4]`` ``(x1, y1, x2, y2)``.
    :param scores: float ``[N]``.
    :param iou_threshold: a box overlapping a kept, better-scoring box by more than this
        IoU is removed.
    :return: int64 indices of the kept boxes, best score first (ties: lower index first).
    """
    order = np.argsort(-scores, kind='stable')
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    areas = (x2 - x1) * (y2 - y1)
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        width = np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest])
        height = np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest])
        inter = np.clip(width, 0, None) * np.clip(height, 0, None)
        with np.errstate(invalid='ignore', divide='ignore'):
            iou = inter / (areas[best] + areas[rest] - inter)
        # NaN (two zero-area boxes) compares False: such a box is kept, as torchvision does.
        order = rest[~(iou > iou_threshold)]
    return np.asarray(keep, dtype=np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
                iou_threshold: float) -> np.ndarray:
    """
    NMS within each class: boxes of different labels never suppress each other.

    Each class's boxes are shifted by an offset larger than every coordinate, so one NMS
    pass over all boxes never lets two classes overlap.

    :return: int64 indices of the kept boxes, best score first.
    """
    if boxes.size == 0:
        return np.zeros(0, np.int64)
    offset = labels.astype(boxes.dtype) * (boxes.max() + 1)
    return nms(boxes + offset[:, None], scores, iou_threshold)


def decode_image_detections(loc: np.ndarray, scores: np.ndarray, anchors: np.ndarray, *,
                            score_threshold: float = 0.01, nms_threshold: float = 0.45,
                            max_detections: int = 200, top_k_per_class: int = 400,
                            variances: Sequence[float] = BOX_VARIANCES
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    Decode one image's SSD outputs and keep the best boxes.

    :param loc: float32 ``[A, 4]`` encoded offsets.
    :param scores: float32 ``[A, C + 1]`` class probabilities, index 0 = background.
    :param anchors: float32 ``[A, 4]`` default boxes ``(cx, cy, w, h)`` in ``[0, 1]``.
    :param score_threshold: minimum class probability of a kept box.
    :param nms_threshold: IoU above which a lower-scoring box of the same class is removed.
    :param max_detections: most boxes kept, best first.
    :param top_k_per_class: only the best this many boxes of each class enter NMS, which
        bounds its cost when many boxes pass the threshold.
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
    boxes = np.clip(decode_boxes(loc[anchor_index].astype(np.float32, copy=False),
                                 anchors[anchor_index].astype(np.float32, copy=False),
                                 variances), 0.0, 1.0)
    cand_scores = cand_scores.astype(np.float32, copy=False)
    kept = batched_nms(boxes, cand_scores, labels, nms_threshold)[:max_detections]
    return boxes[kept], cand_scores[kept], labels[kept].astype(np.int64, copy=False)


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


def argmax_uint8(logits: np.ndarray) -> np.ndarray:
    """
    Return the per-pixel argmax of ``logits`` as uint8.

    :param logits: ``[K, H, W]`` class scores, K <= 256.
    :return: uint8 ``[H, W]``; ties go to the lowest class index, as ``np.argmax``.
    """
    if logits.ndim != 3 or not 1 <= logits.shape[0] <= 256:
        raise ValueError(f'logits must have shape [K, H, W] with 1 <= K <= 256, '
                         f'got {list(logits.shape)}')
    # A running maximum over K contiguous planes is several times faster than
    # np.argmax(axis=0), which walks the K values of each pixel with a stride.
    best = logits[0].copy()
    index = np.zeros(best.shape, np.uint8)
    for k in range(1, logits.shape[0]):
        better = logits[k] > best
        np.copyto(index, np.uint8(k), where=better)
        np.maximum(best, logits[k], out=best)
    return index


def decode_mask(logits: np.ndarray, height: int, width: int) -> np.ndarray:
    """
    Turn one image's segmentation logits into its class mask at the image size.

    Resizing the K-channel logits bilinearly and taking the argmax at full size would cost
    K times as many interpolated values for boundaries the network never resolved (its
    logits are themselves upsampled from a stride-8 map), so the argmax is taken at the
    network resolution and resized with nearest-neighbour sampling.

    :param logits: ``[K, S, S]`` class scores.
    :return: uint8 ``[height, width]`` class indices.
    """
    mask = argmax_uint8(logits)
    if mask.shape != (height, width):
        mask = resize_nearest(mask, height, width)
    return mask


def resize_nearest(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """
    Resize a 2-D mask with nearest-neighbour sampling, identical to PIL's NEAREST.

    :param mask: ``[h, w]`` array (any dtype).
    :return: ``[height, width]`` array of the same dtype.
    """
    if mask.ndim != 2:
        raise ValueError(f'mask must have shape [H, W], got {list(mask.shape)}')
    rows = _nearest_index(mask.shape[0], height)
    cols = _nearest_index(mask.shape[1], width)
    return mask.take(cols, axis=1).take(rows, axis=0)


@lru_cache(maxsize=64)
def _nearest_index(size_in: int, size_out: int) -> np.ndarray:
    """
    Source index of each output position along one axis, as PIL's NEAREST picks it.

    :return: read-only intp ``[size_out]``; asking PIL with an index ramp keeps its
        fixed-point rounding exactly.
    """
    ramp = Image.fromarray(np.arange(size_in, dtype=np.int32)[None, :])
    index = np.asarray(ramp.resize((size_out, 1), Image.NEAREST))[0].astype(np.intp)
    index.setflags(write=False)
    return index
