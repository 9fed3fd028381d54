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
MultiTaskModel: one shared backbone feeding a detection and/or a segmentation head.

The single-task baselines are the same class with one task, so the multitask network
and the pair of single-task networks differ only in the task list.
"""

from typing import Sequence

from mtl_perception.model_card import output_names, TASKS, validate_tasks
import torch
from torch import nn

__all__ = ['MultiTaskModel', 'TASKS', 'validate_tasks']


class MultiTaskModel(nn.Module):
    """
    Shared backbone with one head per task.

    :param backbone: module mapping ``[N, 3, S, S]`` to an OrderedDict of maps C3/C4/C5.
    :param heads: ``{'detection': SSDHead, 'segmentation': FCNHead}``; at least the heads
        of ``tasks`` (others are ignored and not registered).
    :param tasks: non-empty subset of ('detection', 'segmentation').
    :param input_size: the square input side S the model was built for (the default boxes
        depend on it); None accepts any square input (segmentation only).

    ``forward`` returns ``{'detection': {'loc': [N, A, 4], 'logits': [N, A, C + 1]},
    'segmentation': [N, K, S, S]}`` restricted to ``tasks``; a subset of them may be asked
    for per call (the backbone still runs once), so a deployment can skip a head on frames
    that do not need its output.
    """

    def __init__(self, backbone: nn.Module, heads: dict[str, nn.Module],
                 tasks: Sequence[str], *, input_size: int | None = None) -> None:
        """Register the backbone and the heads of ``tasks``."""
        super().__init__()
        self.tasks = validate_tasks(tasks)
        missing = [t for t in self.tasks if t not in heads]
        if missing:
            raise ValueError(f'no head for tasks {missing}; heads given: {sorted(heads)}')
        if 'detection' in self.tasks and input_size is None:
            raise ValueError('a detection model needs input_size (default boxes depend on it)')
        self.input_size = input_size
        self.backbone = backbone
        self.heads = nn.ModuleDict({t: heads[t] for t in self.tasks})
        self.output_names: tuple[str, ...] = output_names(self.tasks)

    @property
    def anchors(self) -> torch.Tensor:
        """Return the default boxes ``[A, 4]`` (cx, cy, w, h) in ``[0, 1]`` (detection only)."""
        if 'detection' not in self.tasks:
            raise AttributeError('a model without the detection task has no anchors')
        return self.heads['detection'].anchors

    def _check_input(self, images: torch.Tensor) -> None:
        if images.dim() != 4 or images.shape[1] != 3 or images.shape[2] != images.shape[3]:
            raise ValueError(f'images must have shape [N, 3, S, S], got {list(images.shape)}')
        if self.input_size is not None and images.shape[2] != self.input_size:
            raise ValueError(f'images of shape {list(images.shape)} do not match the model '
                             f'input size {self.input_size} (expected [N, 3, '
                             f'{self.input_size}, {self.input_size}])')

    def _asked(self, tasks: Sequence[str] | None) -> tuple[str, ...]:
        """Return ``tasks`` (default: all of the model's) in canonical order."""
        if tasks is None:
            return self.tasks
        asked = validate_tasks(tasks)
        foreign = [t for t in asked if t not in self.tasks]
        if foreign:
            raise ValueError(f'tasks {foreign} are not tasks of this model '
                             f'{list(self.tasks)}')
        return asked

    def forward(self, images: torch.Tensor, tasks: Sequence[str] | None = None) -> dict:
        """
        Run the backbone once and the heads of ``tasks`` on its features.

        :param images: float ``[N, 3, S, S]``, normalised.
        :param tasks: non-empty subset of the model's tasks whose heads run (default: all);
            the heads of the other tasks are not computed.

        :return: dict with 'detection' -> {'loc', 'logits'} and/or 'segmentation' -> logits,
            for the tasks run.
        :raises ValueError: bad image shape, or ``tasks`` not a subset of the model's.
        """
        self._check_input(images)
        run = self._asked(tasks)
        features = self.backbone(images)
        outputs: dict = {}
        if 'detection' in run:
            loc, logits = self.heads['detection'](features)
            outputs['detection'] = {'loc': loc, 'logits': logits}
        if 'segmentation' in run:
            outputs['segmentation'] = self.heads['segmentation'](
                features, (images.shape[2], images.shape[3]))
        return outputs

    def forward_raw(self, images: torch.Tensor,
                    tasks: Sequence[str] | None = None) -> tuple[torch.Tensor, ...]:
        """
        Plain-tensor outputs for export, in the order of ``output_names(tasks)``.

        'loc' ``[N, A, 4]`` encoded offsets, 'scores' ``[N, A, C + 1]`` softmax
        probabilities, 'seg_logits' ``[N, K, S, S]``; decoding and NMS happen outside.

        :param tasks: as in ``forward`` (default: all, i.e. ``self.output_names``).
        """
        outputs = self.forward(images, tasks)
        raw: list[torch.Tensor] = []
        if 'detection' in outputs:
            raw.append(outputs['detection']['loc'])
            raw.append(outputs['detection']['logits'].softmax(dim=-1))
        if 'segmentation' in outputs:
            raw.append(outputs['segmentation'])
        return tuple(raw)
