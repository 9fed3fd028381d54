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
Training losses: SSD MultiBox loss, segmentation loss and the multitask loss.

Box formats: ground truth boxes are ``[x1, y1, x2, y2]`` normalised to ``[0, 1]`` of the
network input; anchors (default boxes) are ``[cx, cy, w, h]`` normalised to ``[0, 1]``.
Detection labels are 0-based without background; inside the loss, class ``label + 1`` is the
SSD classifier target and 0 is background.
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from mtl_perception.modeling.box_coder import encode
from mtl_perception.modeling.multitask import TASKS
from mtl_perception.modeling.weighting import LossWeighting
import torch
from torch import nn
import torch.nn.functional as F
from torchvision.ops import box_convert, box_iou


__all__ = [
    'MultiBoxLoss',
    'MultiBoxLossParts',
    'MultiTaskLoss',
    'balanced_class_weights',
    'match_anchors',
    'segmentation_loss',
]

IGNORE_INDEX = 255


def match_anchors(gt_boxes: torch.Tensor, gt_labels: torch.Tensor, anchors: torch.Tensor,
                  iou_threshold: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Assign ground truth boxes to anchors the SSD way.

    Every ground truth box first claims its best-overlapping anchor (so no object goes
    unmatched, however small), then every other anchor takes its best ground truth box if
    their IoU is at least ``iou_threshold``. Boxes with zero width or height are ignored.

    Inputs:
        gt_boxes: float [M, 4] ``x1, y1, x2, y2`` normalised to [0, 1].
        gt_labels: int64 [M], 0-based class indices (no background).
        anchors: float [A, 4] ``cx, cy, w, h`` normalised to [0, 1].
        iou_threshold: minimum IoU for a non-forced match.

    Output:
        ``(matched_boxes, anchor_labels)``: float [A, 4] xyxy box assigned to every anchor
        (the anchor itself, in xyxy, where nothing is matched, so encoding stays finite) and
        int64 [A] with 0 for background and ``label + 1`` for matched anchors.
    """
    if gt_boxes.dim() != 2 or gt_boxes.shape[-1] != 4:
        raise ValueError(f'gt_boxes must be [M, 4], got {tuple(gt_boxes.shape)}')
    if gt_labels.shape != gt_boxes.shape[:1]:
        raise ValueError(f'gt_labels must be [M]={gt_boxes.shape[0]}, '
                         f'got {tuple(gt_labels.shape)}')
    if anchors.dim() != 2 or anchors.shape[-1] != 4:
        raise ValueError(f'anchors must be [A, 4], got {tuple(anchors.shape)}')
    anchors_xyxy = box_convert(anchors, 'cxcywh', 'xyxy')
    gt_boxes = gt_boxes.to(anchors_xyxy)
    valid = (gt_boxes[:, 2] > gt_boxes[:, 0]) & (gt_boxes[:, 3] > gt_boxes[:, 1])
    gt_boxes, gt_labels = gt_boxes[valid], gt_labels[valid].to(torch.long)
    num_anchors = anchors.shape[0]
    labels = torch.zeros(num_anchors, dtype=torch.long, device=anchors.device)
    if gt_boxes.shape[0] == 0:
        return anchors_xyxy.clone(), labels
    iou = box_iou(gt_boxes, anchors_xyxy)  # [M, A]
    best_iou, best_gt = iou.max(dim=0)  # per anchor
    best_anchor = iou.argmax(dim=1)  # per gt
    # Forced matches win over the threshold rule; when two objects share a best anchor the
    # later one keeps it (it cannot serve both).
    best_gt[best_anchor] = torch.arange(gt_boxes.shape[0], device=anchors.device)
    best_iou[best_anchor] = 2.0
    positive = best_iou >= iou_threshold
    labels[positive] = gt_labels.to(anchors.device)[best_gt[positive]] + 1
    matched = torch.where(positive[:, None], gt_boxes[best_gt], anchors_xyxy)
    return matched, labels


class MultiBoxLossParts(NamedTuple):
    """Components of the MultiBox loss, each already divided by the normaliser."""

    total: torch.Tensor
    loc: torch.Tensor
    conf: torch.Tensor
    num_positives: torch.Tensor
    num_negatives: torch.Tensor


class MultiBoxLoss(nn.Module):
    """
    SSD MultiBox loss: smooth L1 on positives + cross-entropy with hard negative mining.

    For each image labelled for detection, anchors are matched with :func:`match_anchors`;
    the localisation loss is smooth L1 (beta 1) between predicted and encoded offsets of the
    positive anchors; the confidence loss is cross-entropy over the positives plus the
    ``neg_pos_ratio`` x (number of positives) negatives with the highest background loss (all
    negatives if there are fewer). Both sums are divided by the number of positives.

    Images with ``has_boxes`` False contribute nothing. An image labelled with no objects has
    no positives to size its negative budget, so it is treated as holding
    ``empty_image_positives`` pseudo-positives: it keeps ``neg_pos_ratio *
    empty_image_positives`` hardest negatives (6 by default, about the budget of an image with
    two objects, enough to punish its worst false positives without letting background-only
    frames swamp the batch) and adds ``empty_image_positives`` to the normaliser, so an
    all-background batch stays on the scale of a normal one. The normaliser is at least 1.

    Inputs:
        neg_pos_ratio: negatives kept per positive.
        iou_threshold: matching IoU threshold.
        variances: box coder variances (centre, size).
        empty_image_positives: pseudo-positives of a labelled image without objects.
    """

    def __init__(self, neg_pos_ratio: int = 3, iou_threshold: float = 0.5,
                 variances: tuple[float, float] = (0.1, 0.2),
                 empty_image_positives: int = 2) -> None:
        super().__init__()
        if neg_pos_ratio < 0:
            raise ValueError(f'neg_pos_ratio must be >= 0, got {neg_pos_ratio}')
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f'iou_threshold must be in (0, 1], got {iou_threshold}')
        if empty_image_positives < 0:
            raise ValueError(f'empty_image_positives must be >= 0, got {empty_image_positives}')
        self.neg_pos_ratio = int(neg_pos_ratio)
        self.iou_threshold = float(iou_threshold)
        self.variances = tuple(float(v) for v in variances)
        self.empty_image_positives = int(empty_image_positives)

    def forward(self, loc: torch.Tensor, logits: torch.Tensor, anchors: torch.Tensor,
                target_boxes: Sequence[torch.Tensor], target_labels: Sequence[torch.Tensor],
                has_boxes: torch.Tensor) -> torch.Tensor:
        """Return the scalar MultiBox loss (see :meth:`parts` for the arguments)."""
        return self.parts(loc, logits, anchors, target_boxes, target_labels, has_boxes).total

    def parts(self, loc: torch.Tensor, logits: torch.Tensor, anchors: torch.Tensor,
              target_boxes: Sequence[torch.Tensor], target_labels: Sequence[torch.Tensor],
              has_boxes: torch.Tensor) -> MultiBoxLossParts:
        """
        Compute the loss and its components.

        Inputs:
            loc: float [N, A, 4] predicted encoded offsets.
            logits: float [N, A, C+1] class logits, index 0 = background.
            anchors: float [A, 4] ``cx, cy, w, h`` normalised.
            target_boxes: N float tensors [M_i, 4] ``x1, y1, x2, y2`` normalised.
            target_labels: N int64 tensors [M_i], 0-based (no background).
            has_boxes: bool [N], False where the image has no box labels.

        Output:
            :class:`MultiBoxLossParts` (total, loc, conf as scalars; counts as int64 scalars).
        """
        n, a = self._check(loc, logits, anchors, target_boxes, target_labels, has_boxes)
        num_classes = logits.shape[-1] - 1
        has_boxes = has_boxes.to(device=logits.device, dtype=torch.bool)
        labelled = has_boxes.tolist()
        # Matching and encoding stay in float32 even when the heads run in half precision.
        anchors = anchors.to(device=loc.device, dtype=torch.float32)
        target_xyxy = anchors.new_zeros(n, a, 4)
        target_cls = torch.zeros(n, a, dtype=torch.long, device=logits.device)
        used = [target_labels[i].reshape(-1) for i in range(n) if labelled[i]]
        if used and sum(t.numel() for t in used):
            # One host sync for the whole batch; an out-of-range label would otherwise surface
            # as an opaque cross-entropy (or CUDA device-side) error.
            all_labels = torch.cat([t.to(logits.device) for t in used])
            low, high = torch.stack([all_labels.min(), all_labels.max()]).tolist()
            if low < 0 or high >= num_classes:
                raise ValueError(f'target labels must be in [0, {num_classes - 1}] '
                                 f'(C={num_classes}), got min {low} max {high}')
        for i in range(n):
            if labelled[i]:
                target_xyxy[i], target_cls[i] = match_anchors(
                    target_boxes[i].to(anchors), target_labels[i].to(logits.device), anchors,
                    self.iou_threshold)

        positive = target_cls > 0  # [N, A]; all False for unlabelled images
        num_pos = positive.sum(dim=1)
        ce = F.cross_entropy(logits.reshape(-1, num_classes + 1), target_cls.reshape(-1),
                             reduction='none').view(n, a)
        negative = self._mine_negatives(ce.detach(), positive, num_pos, has_boxes)

        conf_loss = ce[positive | negative].sum()
        pred = loc[positive]
        target = encode(target_xyxy[positive], anchors.expand(n, a, 4)[positive], self.variances)
        loc_loss = F.smooth_l1_loss(pred, target.to(pred), reduction='sum', beta=1.0)

        empty = has_boxes & (num_pos == 0)
        normaliser = (num_pos.sum() + self.empty_image_positives * empty.sum()).clamp(min=1)
        normaliser = normaliser.to(ce.dtype)
        loc_loss = loc_loss / normaliser
        conf_loss = conf_loss / normaliser
        return MultiBoxLossParts(loc_loss + conf_loss, loc_loss, conf_loss,
                                 num_pos.sum(), negative.sum())

    def _mine_negatives(self, background_loss: torch.Tensor, positive: torch.Tensor,
                        num_pos: torch.Tensor, has_boxes: torch.Tensor) -> torch.Tensor:
        """Return bool [N, A]: the hardest negatives of every labelled image."""
        # For a negative anchor the cross-entropy with target 0 is its background loss.
        ranking = background_loss.masked_fill(positive, float('-inf'))
        budget = torch.where(num_pos > 0, self.neg_pos_ratio * num_pos,
                             torch.full_like(num_pos,
                                             self.neg_pos_ratio * self.empty_image_positives))
        budget = torch.minimum(budget, (~positive).sum(dim=1))
        budget = torch.where(has_boxes, budget, torch.zeros_like(budget))
        order = ranking.argsort(dim=1, descending=True)
        rank = order.argsort(dim=1)
        return (rank < budget[:, None]) & ~positive

    @staticmethod
    def _check(loc, logits, anchors, target_boxes, target_labels, has_boxes) -> tuple[int, int]:
        if loc.dim() != 3 or loc.shape[-1] != 4:
            raise ValueError(f'loc must be [N, A, 4], got {tuple(loc.shape)}')
        n, a = loc.shape[:2]
        if logits.dim() != 3 or logits.shape[:2] != loc.shape[:2] or logits.shape[-1] < 2:
            raise ValueError(f'logits must be [N, A, C+1]=[{n}, {a}, >=2], '
                             f'got {tuple(logits.shape)}')
        if anchors.shape != (a, 4):
            raise ValueError(f'anchors must be [A, 4]=[{a}, 4], got {tuple(anchors.shape)}')
        if len(target_boxes) != n or len(target_labels) != n:
            raise ValueError(f'target_boxes and target_labels must hold N={n} tensors, got '
                             f'{len(target_boxes)} and {len(target_labels)}')
        if has_boxes.shape != (n,):
            raise ValueError(f'has_boxes must be [N]=[{n}], got {tuple(has_boxes.shape)}')
        return n, a


def segmentation_loss(logits: torch.Tensor, mask: torch.Tensor, has_mask: torch.Tensor,
                      class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """
    Pixel cross-entropy over the images that have a mask; 255 pixels are ignored.

    Inputs:
        logits: float [N, K, S, S] class logits at mask resolution.
        mask: int64 [N, S, S] class index per pixel, 255 = void.
        has_mask: bool [N], False where the image has no mask label.
        class_weights: optional float [K], the weight of a pixel of each true class (see
            :func:`balanced_class_weights`); None weighs every pixel 1.

    Output:
        Scalar weighted mean over the labelled, non-void pixels (the weights' sum is the
        divisor, as for ``F.cross_entropy(weight=...)``). When there are none it is zero and
        still attached to ``logits`` (zero gradient), so ``backward()`` works.
    """
    if logits.dim() != 4:
        raise ValueError(f'logits must be [N, K, H, W], got {tuple(logits.shape)}')
    n, k, h, w = logits.shape
    if mask.shape != (n, h, w):
        raise ValueError(f'mask must be [N, H, W]=[{n}, {h}, {w}], got {tuple(mask.shape)}')
    if has_mask.shape != (n,):
        raise ValueError(f'has_mask must be [N]=[{n}], got {tuple(has_mask.shape)}')
    if class_weights is not None and class_weights.shape != (k,):
        raise ValueError(f'class_weights must be [K]=[{k}], got {tuple(class_weights.shape)}')
    has_mask = has_mask.to(device=logits.device, dtype=torch.bool)
    selected_logits = logits[has_mask]
    selected_mask = mask.to(logits.device, torch.long)[has_mask]
    if selected_logits.shape[0] == 0:
        return logits.sum() * 0.0
    valid = selected_mask != IGNORE_INDEX
    if class_weights is None:
        divisor = valid.sum()
    else:
        class_weights = class_weights.to(logits.device, logits.dtype)
        divisor = class_weights[selected_mask[valid]].sum()
    total = F.cross_entropy(selected_logits, selected_mask, weight=class_weights,
                            ignore_index=IGNORE_INDEX, reduction='sum')
    # Dividing the sum (not reduction='mean') keeps an all-void batch at 0 instead of NaN.
    return total / divisor.clamp(min=1e-12 if class_weights is not None else 1).to(total.dtype)


def balanced_class_weights(pixel_counts, power: float = 0.5) -> torch.Tensor:
    """
    Class weights ``frequency ** -power`` scaled so the mean weight of a pixel is 1.

    ``power`` 0.5 (inverse square-root frequency) lifts rare classes (a UAV's persons and
    bicycles cover under 0.2% of the pixels) without letting them swamp the loss. A class
    with no pixels gets the largest weight of the others (it cannot affect training data
    that lack it, and stays sane for data that has it).

    Inputs:
        pixel_counts: [K] labelled pixels per class (sequence or tensor), not all zero.
        power: exponent (0 gives all ones).

    Output:
        float32 [K].
    """
    counts = torch.as_tensor(pixel_counts, dtype=torch.float64)
    if counts.dim() != 1 or counts.numel() == 0 or (counts < 0).any() or counts.sum() <= 0:
        raise ValueError(f'pixel_counts must be [K] non-negative with a positive sum, '
                         f'got {pixel_counts!r}')
    if power < 0:
        raise ValueError(f'power must be >= 0, got {power}')
    freq = counts / counts.sum()
    present = freq > 0
    weights = torch.zeros_like(freq)
    weights[present] = freq[present] ** -power
    weights = weights / (freq * weights).sum()
    weights[~present] = weights[present].max()
    return weights.float()


class MultiTaskLoss(nn.Module):
    """
    Per-task losses plus their weighted ``total``.

    Calling it returns ``{task: loss, ..., 'total': loss}`` for the tasks it was built with.
    A task with no labelled sample in the batch has loss 0 with zero gradient. After every
    call ``last_components`` holds detached extras for logging: ``'detection/loc'``,
    ``'detection/conf'``, ``'detection/num_positives'`` (when detection is a task).

    Inputs:
        tasks: subset of ``('detection', 'segmentation')``.
        weighting: strategy from :func:`mtl_perception.modeling.weighting.build_weighting`
            built for the same tasks; registered as a submodule, so its parameters are in
            ``self.parameters()`` and its state in ``state_dict()``.
        detection_loss: MultiBox loss to use (default ``MultiBoxLoss()``).
        segmentation_class_weights: optional float [K] per-class pixel weights of the
            segmentation loss (a buffer: saved with the training state).
    """

    def __init__(self, tasks: Iterable[str], weighting: LossWeighting, *,
                 detection_loss: MultiBoxLoss | None = None,
                 segmentation_class_weights: torch.Tensor | None = None) -> None:
        super().__init__()
        tasks = tuple(tasks)
        unknown = [t for t in tasks if t not in TASKS]
        if not tasks or unknown or len(set(tasks)) != len(tasks):
            raise ValueError(f'tasks must be unique names from {TASKS}, got {tasks}')
        if set(weighting.tasks) != set(tasks):
            raise ValueError(f'weighting was built for {weighting.tasks}, loss for {tasks}')
        self.tasks = tasks
        self.weighting = weighting
        self.detection_loss = detection_loss if detection_loss is not None else MultiBoxLoss()
        self.last_components: dict[str, torch.Tensor] = {}
        if segmentation_class_weights is not None:
            if 'segmentation' not in tasks:
                raise ValueError('segmentation_class_weights need the segmentation task')
            segmentation_class_weights = torch.as_tensor(
                segmentation_class_weights, dtype=torch.float32).detach().clone()
            if segmentation_class_weights.dim() != 1 or \
                    not (segmentation_class_weights > 0).all():
                raise ValueError('segmentation_class_weights must be [K] positive numbers, '
                                 f'got {segmentation_class_weights.tolist()}')
        self.register_buffer('segmentation_class_weights', segmentation_class_weights)

    def forward(self, outputs: Mapping[str, object], targets: Mapping[str, object],
                anchors: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """
        Compute the losses.

        Inputs:
            outputs: model output dict (``'detection': {'loc', 'logits'}``,
                ``'segmentation': [N, K, S, S]``).
            targets: batch targets (``'boxes'``, ``'labels'``, ``'has_boxes'``, ``'mask'``,
                ``'has_mask'``), see the data contract.
            anchors: float [A, 4] ``cx, cy, w, h``; required when detection is a task.

        Output:
            ``{task: scalar, ..., 'total': scalar}``.
        """
        losses: dict[str, torch.Tensor] = {}
        components: dict[str, torch.Tensor] = {}
        for task in self.tasks:
            if task not in outputs:
                raise ValueError(f'outputs lack task {task!r}; got {list(outputs)}')
        if 'detection' in self.tasks:
            if anchors is None:
                raise ValueError('anchors are required for the detection loss')
            det = outputs['detection']
            parts = self.detection_loss.parts(
                det['loc'], det['logits'], anchors, targets['boxes'], targets['labels'],
                targets['has_boxes'])
            losses['detection'] = parts.total
            components['detection/loc'] = parts.loc.detach()
            components['detection/conf'] = parts.conf.detach()
            components['detection/num_positives'] = parts.num_positives
        if 'segmentation' in self.tasks:
            losses['segmentation'] = segmentation_loss(
                outputs['segmentation'], targets['mask'], targets['has_mask'],
                self.segmentation_class_weights)
        losses['total'] = self.weighting.combine({t: losses[t] for t in self.tasks})
        self.last_components = components
        return losses
