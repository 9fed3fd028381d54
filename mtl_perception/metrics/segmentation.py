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


"""Semantic segmentation evaluation from one data-set-wide confusion matrix."""

from typing import Any, Sequence

from mtl_perception.metrics._arrays import to_numpy
import numpy as np


class SegmentationEvaluator:
    """
    Accumulate a confusion matrix over a data set; report IoU and pixel accuracy.

    The matrix is ``[K, K]`` int64 with rows = ground-truth class and columns = predicted
    class, summed over every pixel whose target is not ``ignore_index`` (IoU is computed from
    the totals, not averaged per image).

    Conventions:
        * IoU_k = TP / (TP + FP + FN). A class with no gt pixel and no predicted pixel has
          NaN IoU and is left out of ``miou`` (torchmetrics' MulticlassJaccardIndex with
          average='macro' drops the same classes, but reports 0 for them with average=None).
        * A class that is predicted but absent from the gt has IoU 0 and counts in the mean.
        * ``pixel_accuracy`` = correct / non-void pixels; ``mean_accuracy`` = mean over
          classes with gt pixels of per-class recall.

    :param class_names: segmentation class names; index k is class value k in the masks.
    :param ignore_index: target value that marks void pixels (255 in this project).
    """

    def __init__(self, class_names: Sequence[str], ignore_index: int = 255) -> None:
        if len(class_names) == 0:
            raise ValueError('class_names must not be empty')
        self.class_names = [str(name) for name in class_names]
        self.ignore_index = int(ignore_index)
        if 0 <= self.ignore_index < len(self.class_names):
            raise ValueError(
                f'ignore_index {self.ignore_index} collides with a class index '
                f'(num classes {len(self.class_names)})')
        self.reset()

    @property
    def num_classes(self) -> int:
        """Return the number of segmentation classes K."""
        return len(self.class_names)

    @property
    def confusion_matrix(self) -> np.ndarray:
        """Return a copy of the ``[K, K]`` int64 matrix (rows: gt, columns: prediction)."""
        return self._matrix.copy()

    def reset(self) -> None:
        """Zero the confusion matrix."""
        self._matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def update(self, pred: Any, target: Any) -> None:
        """
        Add predictions and targets.

        :param pred: integer class map ``[H, W]`` or ``[N, H, W]`` (numpy or torch), values in
            ``[0, K)`` wherever the target is not void (argmax logits first).
        :param target: same shape; values in ``[0, K)`` or ``ignore_index``.

        :raises ValueError: on a shape mismatch, non-integer arrays or out-of-range values.
        """
        pred_array = to_numpy(pred, 'pred')
        target_array = to_numpy(target, 'target')
        if pred_array.shape != target_array.shape:
            raise ValueError(
                f'pred and target must have the same shape, got {pred_array.shape} and '
                f'{target_array.shape}')
        if pred_array.ndim not in (2, 3):
            raise ValueError(
                f'pred and target must be [H, W] or [N, H, W], got {pred_array.shape}')
        for name, array in (('pred', pred_array), ('target', target_array)):
            if array.dtype.kind not in 'iu':
                raise ValueError(f'{name} must hold integer class indices, got {array.dtype}')
        target_flat = target_array.reshape(-1).astype(np.int64)
        pred_flat = pred_array.reshape(-1).astype(np.int64)
        valid = target_flat != self.ignore_index
        target_flat = target_flat[valid]
        pred_flat = pred_flat[valid]
        k = self.num_classes
        if target_flat.size:
            if target_flat.min() < 0 or target_flat.max() >= k:
                raise ValueError(
                    f'target values must be in [0, {k}) or {self.ignore_index}, got range '
                    f'[{target_flat.min()}, {target_flat.max()}]')
            if pred_flat.min() < 0 or pred_flat.max() >= k:
                raise ValueError(
                    f'pred values must be in [0, {k}) on non-void pixels, got range '
                    f'[{pred_flat.min()}, {pred_flat.max()}]')
        counts = np.bincount(target_flat * k + pred_flat, minlength=k * k)
        self._matrix += counts.reshape(k, k)

    def merge(self, other: 'SegmentationEvaluator') -> None:
        """Add the confusion matrix of ``other`` (e.g. from another process)."""
        if other.class_names != self.class_names or other.ignore_index != self.ignore_index:
            raise ValueError('cannot merge evaluators with different classes or ignore_index')
        self._matrix += other._matrix

    def state_dict(self) -> dict:
        """Return the state (class names and the confusion matrix as nested lists)."""
        return {'class_names': list(self.class_names), 'ignore_index': self.ignore_index,
                'confusion_matrix': self._matrix.tolist()}

    def load_state_dict(self, state: dict) -> None:
        """Restore a state produced by :meth:`state_dict`."""
        if list(state['class_names']) != self.class_names:
            raise ValueError('state was produced with different class_names')
        matrix = np.asarray(state['confusion_matrix'], dtype=np.int64)
        if matrix.shape != self._matrix.shape:
            raise ValueError(
                f'confusion_matrix must be {self._matrix.shape}, got {matrix.shape}')
        self._matrix = matrix.copy()

    def compute(self) -> dict:
        """
        Return the metrics as plain Python values.

        :return: dict with ``miou`` (NaN-excluding mean of per-class IoU), ``pixel_accuracy``,
            ``mean_accuracy``, ``per_class_iou`` {name: float, NaN when the class is absent
            from both gt and prediction}, ``confusion_matrix`` (list of lists, rows gt) and
            ``num_pixels`` (non-void pixels counted). Everything is NaN before any pixel.
        """
        matrix = self._matrix.astype(np.float64)
        true_positive = np.diag(matrix)
        gt_pixels = matrix.sum(axis=1)
        pred_pixels = matrix.sum(axis=0)
        union = gt_pixels + pred_pixels - true_positive
        with np.errstate(divide='ignore', invalid='ignore'):
            iou = np.where(union > 0, true_positive / union, np.nan)
            recall = np.where(gt_pixels > 0, true_positive / gt_pixels, np.nan)
        total = matrix.sum()
        present = ~np.isnan(iou)
        with_gt = ~np.isnan(recall)
        return {
            'miou': float(iou[present].mean()) if present.any() else float('nan'),
            'pixel_accuracy': float(true_positive.sum() / total) if total else float('nan'),
            'mean_accuracy': float(recall[with_gt].mean()) if with_gt.any() else float('nan'),
            'per_class_iou': {name: float(v) for name, v in zip(self.class_names, iou)},
            'confusion_matrix': self._matrix.tolist(),
            'num_pixels': int(total),
        }
