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
Optimizers and learning-rate schedules: SGD or AdamW, linear warm-up, then step or cosine.

The schedule is a per-iteration multiplier of the base learning rate (a ``LambdaLR`` stepped
after every optimizer step), so warm-up and decay are defined in iterations and a resumed run
continues exactly where it stopped. Its ``state_dict`` holds only numbers, so it can be saved
without pickle.
"""

from collections.abc import Iterable, Sequence
import math

import torch
from torch import nn

OPTIMIZERS = ('sgd', 'adamw')
SCHEDULES = ('step', 'cosine', 'constant')


def build_optimizer(modules: Iterable[nn.Module], name: str, lr: float, *,
                    momentum: float = 0.9, weight_decay: float = 0.0,
                    betas: Sequence[float] = (0.9, 0.999),
                    nesterov: bool = False) -> torch.optim.Optimizer:
    """
    Build the optimizer over the trainable parameters of ``modules``.

    Weight decay applies to weights of dimension >= 2 only; biases, normalisation
    parameters and loss-weighting parameters (scalars and vectors) are not decayed, which
    would otherwise pull e.g. the uncertainty log-variances towards zero.

    :param modules: the model and, for learnable loss weightings, the criterion.
    :param name: 'sgd' or 'adamw'.
    :param lr: base learning rate (> 0).
    :return: the optimizer, with two parameter groups (decayed, not decayed).
    """
    if name not in OPTIMIZERS:
        raise ValueError(f'unknown optimizer {name!r}; known: {list(OPTIMIZERS)}')
    if not lr > 0:
        raise ValueError(f'learning rate must be > 0, got {lr}')
    decay, no_decay, seen = [], [], set()
    for module in modules:
        for param in module.parameters():
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            (decay if param.dim() >= 2 else no_decay).append(param)
    groups = [{'params': decay, 'weight_decay': float(weight_decay)},
              {'params': no_decay, 'weight_decay': 0.0}]
    if name == 'sgd':
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov)
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas))


def lr_factor(step: int, *, total_steps: int, warmup_steps: int = 0,
              warmup_factor: float = 0.001, schedule: str = 'step',
              milestones: Sequence[float] = (0.67, 0.89), gamma: float = 0.1,
              min_factor: float = 0.0) -> float:
    """
    Return the learning-rate multiplier at iteration ``step`` (0-based).

    Warm-up rises linearly from ``warmup_factor`` to 1 over ``warmup_steps``; then 'step'
    multiplies by ``gamma`` at each milestone (fractions of ``total_steps`` if < 1, else
    iteration numbers), 'cosine' decays from 1 to ``min_factor`` at ``total_steps`` and
    'constant' stays at 1.
    """
    if step < warmup_steps:
        alpha = step / max(1, warmup_steps)
        return warmup_factor + (1.0 - warmup_factor) * alpha
    if schedule == 'constant':
        return 1.0
    if schedule == 'step':
        bounds = [m * total_steps if m < 1 else m for m in milestones]
        return gamma ** sum(step >= b for b in bounds)
    if schedule == 'cosine':
        span = max(1, total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / span)
        return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f'unknown schedule {schedule!r}; known: {list(SCHEDULES)}')


def build_scheduler(optimizer: torch.optim.Optimizer, *, total_steps: int,
                    warmup_steps: int = 0, warmup_factor: float = 0.001,
                    schedule: str = 'step', milestones: Sequence[float] = (0.67, 0.89),
                    gamma: float = 0.1,
                    min_factor: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """Build the per-iteration schedule of :func:`lr_factor` (call ``step()`` per batch)."""
    if schedule not in SCHEDULES:
        raise ValueError(f'unknown schedule {schedule!r}; known: {list(SCHEDULES)}')
    if total_steps < 1 or warmup_steps < 0:
        raise ValueError(f'total_steps must be >= 1 and warmup_steps >= 0, got '
                         f'{total_steps}, {warmup_steps}')
    options = {'total_steps': int(total_steps), 'warmup_steps': int(warmup_steps),
               'warmup_factor': float(warmup_factor), 'schedule': schedule,
               'milestones': tuple(milestones), 'gamma': float(gamma),
               'min_factor': float(min_factor)}
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, **options))
