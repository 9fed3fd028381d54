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
Task loss weighting strategies for multitask training.

Every strategy is an ``nn.Module`` with the same interface:

- ``combine(losses) -> total``: ``losses`` maps each task name to a scalar loss tensor.
- ``weights``: the current task weights as a ``dict[str, float]``.
- ``end_epoch(mean_losses=None)``: hook called once after every training epoch (used by DWA).
- ``requires_shared_grads`` and ``gradnorm_step(losses, shared_parameters)``: used by GradNorm.

Hooks a strategy does not need are no-ops, so the trainer calls them unconditionally.

A task loss that is exactly zero is taken to mean "no sample in this batch was labelled for this
task" (the contract of ``MultiTaskLoss``; a real cross-entropy is never exactly zero). Adaptive
strategies then leave that task's weight alone for the batch instead of learning from a fake
perfect loss.

With a single task every strategy returns the plain loss (weight 1), so a single-task baseline
trains exactly like an unweighted model whatever the recipe says.

Trainer calling convention (GradNorm needs the step before ``backward``)::

    losses = criterion(outputs, targets, anchors)      # includes 'total'
    optimizer.zero_grad()
    task_losses = {t: losses[t] for t in weighting.tasks}
    weighting.gradnorm_step(task_losses, shared_parameters)   # no-op unless GradNorm
    losses['total'].backward()
    optimizer.step()                                   # optimizer holds weighting.parameters()
    ...
    weighting.end_epoch()                              # after each training epoch

``shared_parameters`` are the parameters of the last layer shared by all task heads (for our
models, the last backbone stage feeding both the SSD and the FCN head).
"""

from collections.abc import Iterable, Mapping
import math

import torch
from torch import nn

__all__ = [
    'DynamicWeightAverage',
    'FixedWeighting',
    'GradNormWeighting',
    'LossWeighting',
    'UncertaintyWeighting',
    'WEIGHTINGS',
    'build_weighting',
    'list_weightings',
]


class LossWeighting(nn.Module):
    """Base class: validates task names and provides the no-op hooks."""

    requires_shared_grads = False

    def __init__(self, tasks: Iterable[str]) -> None:
        super().__init__()
        tasks = tuple(tasks)
        if not tasks:
            raise ValueError('tasks must name at least one task')
        if len(set(tasks)) != len(tasks):
            raise ValueError(f'tasks must be unique, got {tasks}')
        for task in tasks:
            if not isinstance(task, str) or not task:
                raise ValueError(f'task names must be non-empty strings, got {task!r}')
        self.tasks = tasks

    def _stack(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Return the task losses as a tensor [T] in the order of ``self.tasks``."""
        missing = [t for t in self.tasks if t not in losses]
        extra = [k for k in losses if k not in self.tasks]
        if missing or extra:
            raise ValueError(
                f'losses must have exactly the keys {list(self.tasks)}; '
                f'missing {missing}, unexpected {extra}')
        values = []
        for task in self.tasks:
            value = torch.as_tensor(losses[task])
            if value.dim() != 0:
                raise ValueError(
                    f'loss for {task!r} must be a scalar, got shape {tuple(value.shape)}')
            values.append(value)
        return torch.stack(values)

    def _task_weights(self) -> torch.Tensor:
        """Return the weights [T] applied in ``combine`` (overridden by subclasses)."""
        raise NotImplementedError

    def combine(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Return the weighted total of the per-task scalar losses."""
        stacked = self._stack(losses)
        if len(self.tasks) == 1:
            return stacked[0]
        weights = self._task_weights().to(device=stacked.device, dtype=stacked.dtype)
        return (weights * stacked).sum()

    def forward(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Alias of :meth:`combine`."""
        return self.combine(losses)

    @property
    def weights(self) -> dict[str, float]:
        """Return the current weight of every task (effective multiplier of its loss)."""
        if len(self.tasks) == 1:
            return {self.tasks[0]: 1.0}
        values = self._task_weights().detach().cpu().tolist()
        return dict(zip(self.tasks, values))

    def end_epoch(self, mean_losses: Mapping[str, float] | None = None) -> None:
        """Epoch hook; no-op unless the strategy adapts per epoch."""

    def gradnorm_step(self, losses: Mapping[str, torch.Tensor],
                      shared_parameters: Iterable[torch.Tensor]) -> torch.Tensor | None:
        """Run the GradNorm hook; a no-op (returns None) unless the strategy is GradNorm."""
        return None


class FixedWeighting(LossWeighting):
    """
    Constant task weights; the reference work weights detection and segmentation 1:1.

    Inputs:
        tasks: task names.
        weights: optional ``{task: weight}``; missing tasks default to 1.0, weights for tasks
            not in ``tasks`` are ignored so one recipe serves multitask and single-task runs.
    """

    def __init__(self, tasks: Iterable[str], weights: Mapping[str, float] | None = None) -> None:
        super().__init__(tasks)
        weights = dict(weights or {})
        values = []
        for task in self.tasks:
            value = float(weights.get(task, 1.0))
            if not math.isfinite(value) or value < 0.0:
                raise ValueError(f'weight for {task!r} must be finite and >= 0, got {value}')
            values.append(value)
        self.register_buffer('fixed_weights', torch.tensor(values, dtype=torch.float32))

    def _task_weights(self) -> torch.Tensor:
        return self.fixed_weights


class UncertaintyWeighting(LossWeighting):
    """
    Homoscedastic uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018).

    Learns ``s_t = log(sigma_t^2)`` per task and returns
    ``total = sum_t(exp(-s_t) * L_t + s_t)``. This is the paper's classification form applied
    to every task (no 1/2 factor; the regression form ``1/(2 sigma^2)`` only rescales by 2).
    The optimum for a fixed loss is ``exp(-s_t) = 1 / L_t``: a task with a larger (noisier)
    loss gets a smaller weight. ``weights`` reports ``exp(-s_t)``. A task whose loss is exactly
    zero (unlabelled in the batch) contributes neither term, so ``s_t`` does not drift.

    Inputs:
        tasks: task names.
        init_log_var: initial ``s_t`` (0 -> weight 1).
    """

    def __init__(self, tasks: Iterable[str], init_log_var: float = 0.0) -> None:
        super().__init__(tasks)
        self.log_vars = nn.Parameter(torch.full((len(self.tasks),), float(init_log_var)))

    def _task_weights(self) -> torch.Tensor:
        return torch.exp(-self.log_vars)

    def combine(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Return ``sum_t(exp(-s_t) * L_t + s_t)`` over the tasks with a loss this batch."""
        stacked = self._stack(losses)
        if len(self.tasks) == 1:
            return stacked[0]
        log_vars = self.log_vars.to(dtype=stacked.dtype)
        present = (stacked.detach() != 0).to(stacked.dtype)
        return (present * (torch.exp(-log_vars) * stacked + log_vars)).sum()


class DynamicWeightAverage(LossWeighting):
    """
    Dynamic Weight Average (Liu, Johns & Davison, CVPR 2019).

    For epoch ``e >= 3``: ``r_t = L_t(e-1) / L_t(e-2)`` from the mean training losses of the
    last two epochs, ``w_t = T * softmax(r / temperature)_t`` (weights sum to the number of
    tasks ``T``); the first two epochs use weight 1. A task whose loss falls more slowly gets
    the larger weight.

    Call :meth:`end_epoch` after each training epoch, either with the epoch's mean per-task
    losses or with no argument: then the means of the losses seen by ``combine`` while grad
    was enabled (so validation under ``torch.no_grad`` is not counted) are used. Zero losses
    (task unlabelled in the batch) are left out of the means.

    Inputs:
        tasks: task names.
        temperature: softmax temperature (the paper uses 2).
    """

    def __init__(self, tasks: Iterable[str], temperature: float = 2.0) -> None:
        super().__init__(tasks)
        if not temperature > 0.0:
            raise ValueError(f'temperature must be > 0, got {temperature}')
        self.temperature = float(temperature)
        n = len(self.tasks)
        # Buffers so that a resumed run continues with the same weights and history.
        self.register_buffer('dwa_weights', torch.ones(n))
        self.register_buffer('history', torch.zeros(2, n))  # row 0: e-2, row 1: e-1
        self.register_buffer('epochs_seen', torch.zeros((), dtype=torch.long))
        self.register_buffer('_loss_sum', torch.zeros(n))
        self.register_buffer('_loss_count', torch.zeros(n))

    def _task_weights(self) -> torch.Tensor:
        return self.dwa_weights

    def combine(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Return the weighted total and accumulate the raw losses for the epoch mean."""
        stacked = self._stack(losses)
        if torch.is_grad_enabled():
            with torch.no_grad():
                raw = stacked.detach().to(self._loss_sum)
                self._loss_sum += raw
                self._loss_count += (raw != 0).to(raw)
        if len(self.tasks) == 1:
            return stacked[0]
        return (self.dwa_weights.to(stacked.device, stacked.dtype) * stacked).sum()

    @torch.no_grad()
    def end_epoch(self, mean_losses: Mapping[str, float] | None = None) -> None:
        """Record the finished epoch's mean losses and compute the next epoch's weights."""
        if mean_losses is None:
            means = self._loss_sum / self._loss_count.clamp(min=1.0)
        else:
            means = torch.tensor([float(mean_losses[t]) for t in self.tasks])
        self._loss_sum.zero_()
        self._loss_count.zero_()
        means = means.to(self.history.device, self.history.dtype)
        self.history[0] = self.history[1]
        self.history[1] = means
        self.epochs_seen += 1
        if int(self.epochs_seen) < 2 or len(self.tasks) == 1:
            return
        previous, last = self.history[0], self.history[1]
        valid = (previous > 0) & (last > 0)
        # A task without losses in either epoch keeps a neutral ratio.
        ratio = torch.where(valid, last / previous.clamp(min=1e-12), torch.ones_like(last))
        self.dwa_weights.copy_(len(self.tasks) * torch.softmax(ratio / self.temperature, dim=0))


class GradNormWeighting(LossWeighting):
    """
    GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, ICML 2018).

    Learnable weights ``w_t`` (kept positive and renormalised to sum to the number of tasks)
    scale the task losses; ``combine`` uses them as constants, so the network loss never pushes
    them to zero. They are trained only by the auxiliary loss computed in
    :meth:`gradnorm_step`::

        G_t = || d(w_t L_t) / dW ||       (W: parameters of the last shared layer)
        r_t = (L_t / L_t(0)) / mean_k(L_k / L_k(0))
        L_grad = sum_t | G_t - mean_k(G_k) * r_t ** alpha |   (target held constant)

    ``gradnorm_step`` writes ``dL_grad/dw`` into ``self.task_weights.grad`` and touches no other
    gradient, so the usual optimizer (with ``weighting.parameters()`` in a param group) updates
    the weights in its ``step()``; the next ``gradnorm_step`` or ``combine`` renormalises. Call
    it after ``optimizer.zero_grad()`` and before ``total.backward()`` (it needs the graph).
    Tasks whose loss is exactly zero in the batch (unlabelled) sit the step out; ``L_t(0)`` is
    the first non-zero loss seen for each task.

    Inputs:
        tasks: task names.
        alpha: restoring-force strength (1.5 in the paper's NYUv2 experiments).
        min_weight: lower clamp so a weight cannot flip sign after a large optimizer step.
    """

    def __init__(self, tasks: Iterable[str], alpha: float = 1.5, min_weight: float = 1e-3) -> None:
        super().__init__(tasks)
        if alpha < 0.0:
            raise ValueError(f'alpha must be >= 0, got {alpha}')
        self.alpha = float(alpha)
        self.min_weight = float(min_weight)
        n = len(self.tasks)
        self.task_weights = nn.Parameter(torch.ones(n))
        self.register_buffer('initial_losses', torch.zeros(n))
        self.requires_shared_grads = n > 1

    def _normalised(self) -> torch.Tensor:
        w = self.task_weights.clamp(min=self.min_weight)
        return len(self.tasks) * w / w.sum()

    def _task_weights(self) -> torch.Tensor:
        return self._normalised().detach()

    def gradnorm_step(self, losses: Mapping[str, torch.Tensor],
                      shared_parameters: Iterable[torch.Tensor]) -> torch.Tensor | None:
        """
        Compute the GradNorm loss, set ``task_weights.grad`` and return the loss (detached).

        Inputs:
            losses: ``{task: scalar loss}`` still attached to the graph (unweighted).
            shared_parameters: parameters of the last shared layer; their ``.grad`` is not
                modified.

        Output:
            The GradNorm auxiliary loss, or None when fewer than two tasks have a loss.
        """
        stacked = self._stack(losses)
        params = [p for p in shared_parameters if p.requires_grad]
        if not params:
            raise ValueError('shared_parameters must contain parameters that require grad')
        with torch.no_grad():
            self.task_weights.copy_(self._normalised())
            self.task_weights.grad = torch.zeros_like(self.task_weights)
        if len(self.tasks) == 1:
            return None
        raw = stacked.detach()
        with torch.no_grad():
            first = (self.initial_losses == 0) & (raw != 0)
            self.initial_losses.copy_(
                torch.where(first, raw.to(self.initial_losses), self.initial_losses))
        active = [i for i in range(len(self.tasks))
                  if float(raw[i]) != 0.0 and float(self.initial_losses[i]) != 0.0
                  and stacked[i].requires_grad]
        if len(active) < 2:
            return None
        grad_norms = []
        for i in active:
            grads = torch.autograd.grad(stacked[i], params, retain_graph=True,
                                        allow_unused=True)
            sq = sum((g.detach().pow(2).sum() for g in grads if g is not None),
                     torch.zeros((), device=stacked.device))
            grad_norms.append(sq.sqrt())
        idx = torch.tensor(active, device=self.task_weights.device)
        norms = torch.stack(grad_norms).to(self.task_weights)
        weighted_norms = self.task_weights[idx] * norms  # G_t, differentiable in w only
        with torch.no_grad():
            inverse_rate = raw[idx].to(norms) / self.initial_losses[idx]
            relative = inverse_rate / inverse_rate.mean()
            target = weighted_norms.mean() * relative.pow(self.alpha)
        gradnorm_loss = (weighted_norms - target).abs().sum()
        (grad,) = torch.autograd.grad(gradnorm_loss, self.task_weights)
        self.task_weights.grad = grad
        return gradnorm_loss.detach()


WEIGHTINGS: dict[str, type[LossWeighting]] = {
    'fixed': FixedWeighting,
    'uncertainty': UncertaintyWeighting,
    'dwa': DynamicWeightAverage,
    'gradnorm': GradNormWeighting,
}


def list_weightings() -> list[str]:
    """Return the registered weighting strategy names."""
    return sorted(WEIGHTINGS)


def build_weighting(name: str, tasks: Iterable[str], **kwargs) -> LossWeighting:
    """
    Build the weighting strategy ``name`` for ``tasks``.

    Inputs:
        name: one of :func:`list_weightings` ('fixed', 'uncertainty', 'dwa', 'gradnorm').
        tasks: task names, e.g. ``('detection', 'segmentation')``.
        **kwargs: strategy arguments (``weights``, ``init_log_var``, ``temperature``,
            ``alpha``, ...).

    Errors:
        ValueError: unknown name or bad arguments.
    """
    if name not in WEIGHTINGS:
        raise ValueError(f'unknown weighting {name!r}; available: {list_weightings()}')
    try:
        return WEIGHTINGS[name](tasks, **kwargs)
    except TypeError as err:
        raise ValueError(f'bad arguments for weighting {name!r}: {err}') from err
