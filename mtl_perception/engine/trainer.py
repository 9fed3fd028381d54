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
The training loop: one device per process, everything it uses passed in.

Per batch: forward, :class:`~mtl_perception.modeling.losses.MultiTaskLoss`, the GradNorm hook
(a no-op for other weightings) before ``backward``, optional gradient clipping, optimizer and
per-iteration scheduler step; AMP (float16 autocast + gradient scaling) only on CUDA. After each
epoch the weighting's ``end_epoch`` hook (DWA), optional evaluation with the Predictor on a
held-out set, a checkpoint (safetensors + model card) and the resumable training state (no
pickle, see :mod:`.state`). Data order and augmentation are seeded per epoch, so a run resumed
at an epoch boundary continues as the uninterrupted run would have.

Given a :class:`~mtl_perception.engine.distributed.DistributedContext` of several processes,
the model trains inside DistributedDataParallel with global BatchNorm, losses normalised over
the global batch and the loss weighting's gradients averaged (see :mod:`.distributed`); rank 0
alone evaluates, logs, shows progress and saves, and every process resumes from the same
saved state.
"""

import logging
import math
import os
from pathlib import Path
import random
import time

from mtl_perception.engine.distributed import (average_gradients, DistributedContext,
                                               reduce_losses, wrap_model)
from mtl_perception.engine.evaluation import evaluate_predictor, predictor_for_model
from mtl_perception.engine.metric_log import MetricLogger
from mtl_perception.engine.state import (load_training_state, rng_state,
                                         save_training_state, set_rng_state)
from mtl_perception.inference.checkpoint import checkpoint_paths, save_checkpoint
from mtl_perception.modeling import MultiTaskModel
from mtl_perception.modeling.losses import MultiTaskLoss
import numpy as np
from safetensors.torch import load_file
import torch
from torch import nn
from tqdm import tqdm

_LOG = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def last_shared_parameters(model: MultiTaskModel) -> list[nn.Parameter]:
    """Return the weights of the backbone's last convolution (GradNorm's shared layer)."""
    convs = [m for m in model.backbone.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError('the backbone has no Conv2d layer to take GradNorm gradients from')
    return [convs[-1].weight]


def _to_device(targets: dict, device: torch.device) -> dict:
    moved = {}
    for key, value in targets.items():
        if isinstance(value, torch.Tensor):
            moved[key] = value.to(device, non_blocking=True)
        elif isinstance(value, list) and value and isinstance(value[0], torch.Tensor):
            moved[key] = [v.to(device, non_blocking=True) for v in value]
        else:
            moved[key] = value
    return moved


class Trainer:
    """
    Train a MultiTaskModel; save checkpoints and resumable state into ``output_dir``.

    :param model: the network (moved to ``device``).
    :param criterion: MultiTaskLoss built for ``model.tasks`` (owns the weighting).
    :param optimizer: over the model's (and the weighting's) parameters.
    :param scheduler: per-iteration LR scheduler (stepped after every optimizer step).
    :param loader: training DataLoader yielding ``collate_samples`` batches (with several
        processes: this process's share of each global batch, e.g. through a
        :class:`~mtl_perception.engine.distributed.ShardedBatchSampler`); the ``generator``
        of its (batch sampler's) sampler is reseeded every epoch, and a sampler, batch sampler
        or dataset with ``set_epoch`` is told the epoch.
    :param epochs: total number of epochs.
    :param output_dir: where ``<name>.safetensors``/``.yaml``, the state and the logs go.
    :param card: model card template (name, architecture, arch_kwargs, classes, mean, std,
        recipe); the trainer adds 'metrics'.
    :param eval_dataset: held-out contract samples (original images) or None.
    :param eval_interval: evaluate every this many epochs (and after the last); 0 = never.
    :param eval_max_images: cap on evaluated images per evaluation.
    :param grad_clip: max gradient norm (None: no clipping).
    :param amp: use mixed precision (ignored unless ``device`` is CUDA).
    :param seed: base seed for the per-epoch data order.
    :param channels_last: train in the channels-last memory format (faster depthwise
        convolutions on CPUs; the saved weights are contiguous either way).
    :param distributed: this process's place in a distributed job (None: a single process);
        its device overrides ``device``.
    """

    def __init__(self, model: MultiTaskModel, criterion: MultiTaskLoss,
                 optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler, loader, *, epochs: int,
                 output_dir: str | os.PathLike, card: dict, eval_dataset=None,
                 eval_interval: int = 1, eval_max_images: int | None = None,
                 grad_clip: float | None = None, amp: bool = False,
                 device: str | torch.device = 'cpu', seed: int = 0, progress: bool = True,
                 tensorboard: bool = True, channels_last: bool = False,
                 distributed: DistributedContext | None = None) -> None:
        """Keep the parts and prepare the device, AMP and logging."""
        if epochs < 1:
            raise ValueError(f'epochs must be >= 1, got {epochs}')
        self.dist = distributed or DistributedContext(device=torch.device(device))
        if self.dist.enabled and criterion.weighting.requires_shared_grads:
            raise ValueError('training.weighting=gradnorm cannot train distributed: its '
                             'gradient norms would be per process; use one process or '
                             'another weighting')
        self.device = self.dist.device if distributed is not None else torch.device(device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.to(self.device, memory_format=self.memory_format)
        self.criterion = criterion.to(self.device)
        self.optimizer, self.scheduler, self.loader = optimizer, scheduler, loader
        self.epochs, self.card = int(epochs), dict(card)
        self.output_dir = Path(output_dir)
        self.stem = self.output_dir / str(card['name'])
        self.eval_dataset, self.eval_interval = eval_dataset, int(eval_interval)
        self.eval_max_images = eval_max_images
        self.grad_clip = grad_clip
        self.amp = bool(amp) and self.device.type == 'cuda'
        if amp and not self.amp:
            _LOG.info('AMP requested but the device is %s: training in float32', self.device)
        self.scaler = torch.amp.GradScaler('cuda', enabled=self.amp)
        self.seed, self.tensorboard = int(seed), tensorboard
        self.progress = progress and self.dist.is_main
        # What runs the training forward pass: the model itself, or it inside DDP.
        self.network = wrap_model(self.model, self.dist)
        self.epoch, self.step = 0, 0
        self.metrics: dict = {}
        self.shared = (last_shared_parameters(model)
                       if criterion.weighting.requires_shared_grads else [])

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict:
        """Return everything besides the weights needed to resume (tensors + plain data)."""
        return {'epoch': self.epoch, 'step': self.step, 'metrics': self.metrics,
                'optimizer': self.optimizer.state_dict(),
                'scheduler': self.scheduler.state_dict(),
                'criterion': dict(self.criterion.state_dict()),
                'scaler': self.scaler.state_dict(), 'rng': rng_state()}

    def save(self) -> Path:
        """Write the checkpoint (weights + card with metrics) and the training state."""
        weights = checkpoint_paths(self.stem)[0]
        if self.dist.is_main:
            card = {**self.card, 'metrics': self.metrics}
            weights, _ = save_checkpoint(self.model, self.stem, card)
            save_training_state(self.stem, self.state_dict())
        self.dist.barrier()
        return weights

    def resume(self) -> None:
        """Load the weights and training state saved in ``output_dir``."""
        weights_path, _ = checkpoint_paths(self.stem)
        if not weights_path.is_file():
            raise FileNotFoundError(f'cannot resume: no checkpoint {weights_path}')
        state = load_training_state(self.stem)
        self.model.load_state_dict(load_file(str(weights_path), device=str(self.device)))
        self.optimizer.load_state_dict(state['optimizer'])
        self.scheduler.load_state_dict(state['scheduler'])
        self.criterion.load_state_dict(state['criterion'])
        if state.get('scaler'):
            self.scaler.load_state_dict(state['scaler'])
        set_rng_state(state['rng'])
        self.epoch, self.step = int(state['epoch']), int(state['step'])
        if not self.dist.is_main:  # the saved RNG state is rank 0's
            seed_everything(self.seed + self.dist.rank + 1_000_003 * self.epoch)
        self.metrics = state.get('metrics') or {}
        if self.dist.is_main:
            _LOG.info('resumed from %s at epoch %d, step %d', weights_path, self.epoch,
                      self.step)

    # ----------------------------------------------------------------- loop
    def _start_epoch(self, epoch: int) -> None:
        sampler = getattr(self.loader, 'sampler', None)
        batch_sampler = getattr(self.loader, 'batch_sampler', None)
        # Usually one sampler reached two ways; reseeding it twice leaves the same state.
        for part in (sampler, getattr(batch_sampler, 'sampler', None)):
            generator = getattr(part, 'generator', None)
            if isinstance(generator, torch.Generator):
                generator.manual_seed(self.seed * 1_000_003 + epoch)
        for part in (sampler, batch_sampler, getattr(self.loader, 'dataset', None)):
            if hasattr(part, 'set_epoch'):
                part.set_epoch(epoch)

    def train_one_epoch(self, epoch: int, logger: MetricLogger | None = None) -> dict:
        """Run one pass over the loader; return the mean per-task losses."""
        self.model.train()
        self._start_epoch(epoch)
        anchors = self.model.anchors if 'detection' in self.model.tasks else None
        sums: dict[str, float] = {}
        # Non-zero global task losses, the epoch means DWA needs when several processes train.
        task_sums = dict.fromkeys(self.criterion.tasks, 0.0)
        task_counts = dict.fromkeys(self.criterion.tasks, 0)
        batches = 0
        bar = tqdm(self.loader, desc=f'epoch {epoch + 1}/{self.epochs}', unit='batch',
                   disable=not self.progress, dynamic_ncols=True)
        for images, targets in bar:
            images = images.to(self.device, non_blocking=True,
                               memory_format=self.memory_format)
            targets = _to_device(targets, self.device)
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
                outputs = self.network(images)
                losses = self.criterion(outputs, targets, anchors)
            if self.dist.enabled:
                total, values = reduce_losses(self.criterion, losses, targets,
                                              self.dist.world_size)
            else:
                total = losses['total']
                values = {k: float(v.detach()) for k, v in losses.items()}
            # The values are the same on every process, so all stop together.
            if not math.isfinite(values['total']):
                raise RuntimeError(f'non-finite loss at epoch {epoch + 1}, step {self.step}: '
                                   f'{values}')
            self.optimizer.zero_grad(set_to_none=True)
            # GradNorm needs the graph of the task losses before backward frees it.
            gradnorm = self.criterion.weighting.gradnorm_step(
                {t: losses[t] for t in self.criterion.tasks}, self.shared) \
                if self.shared else None
            self.scaler.scale(total).backward()
            if self.dist.enabled:
                average_gradients(self.criterion.parameters(), self.dist.world_size)
            if self.grad_clip:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), float(self.grad_clip))
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            self.step += 1
            batches += 1
            for key, value in values.items():
                sums[key] = sums.get(key, 0.0) + value
            for task in task_sums:
                task_sums[task] += values[task]
                task_counts[task] += values[task] != 0.0
            means = {k: v / batches for k, v in sums.items()}
            bar.set_postfix({**{k[:3]: f'{v:.3f}' for k, v in means.items()},
                             'lr': f'{self.optimizer.param_groups[0]["lr"]:.2g}'})
            if logger is not None:
                extra = {f'weight/{t}': w for t, w in self.criterion.weighting.weights.items()}
                if gradnorm is not None:
                    extra['gradnorm_loss'] = float(gradnorm)
                logger.log(self.step, epoch + 1, 'train',
                           {**{f'loss/{k}': v for k, v in values.items()},
                            'lr': self.optimizer.param_groups[0]['lr'], **extra})
        bar.close()
        if batches == 0:
            raise ValueError('the training loader is empty')
        if self.dist.enabled:  # the weighting saw this process's share, not the global batch
            self.criterion.weighting.end_epoch(
                {t: task_sums[t] / max(task_counts[t], 1) for t in task_sums})
        else:
            self.criterion.weighting.end_epoch()
        return {k: v / batches for k, v in sums.items()}

    def evaluate(self) -> dict:
        """Evaluate the current model on ``eval_dataset`` with the Predictor."""
        predictor = predictor_for_model(self.model, self.card)
        try:
            return evaluate_predictor(predictor, self.eval_dataset,
                                      max_images=self.eval_max_images)
        finally:
            self.model.train()

    def fit(self, resume: bool = False) -> dict:
        """
        Train up to ``epochs`` (continuing a saved run if ``resume``).

        :return: {'epochs', 'steps', 'seconds', 'train_loss' (last epoch means), 'metrics'
            (last evaluation, {} if none)}.
        """
        if resume:
            self.resume()
        else:
            seed_everything(self.seed + self.dist.rank)
        logger = (MetricLogger(self.output_dir, tensorboard=self.tensorboard)
                  if self.dist.is_main else None)
        start = time.perf_counter()
        train_loss: dict = {}
        try:
            while self.epoch < self.epochs:
                epoch = self.epoch
                train_loss = self.train_one_epoch(epoch, logger)
                if logger is not None:
                    logger.log(self.step, epoch + 1, 'epoch',
                               {f'loss/{k}': v for k, v in train_loss.items()})
                last = epoch + 1 == self.epochs
                due = self.eval_interval > 0 and ((epoch + 1) % self.eval_interval == 0 or last)
                if self.eval_dataset is not None and due:
                    # Rank 0 evaluates the whole held-out set: the single-process metrics.
                    if self.dist.is_main:
                        self.metrics = self.evaluate()
                        logger.log(self.step, epoch + 1, 'eval', _flat_metrics(self.metrics))
                        _LOG.info('epoch %d: %s', epoch + 1, _summary(self.metrics))
                    self.metrics = self.dist.broadcast(self.metrics)
                self.epoch = epoch + 1
                self.save()
        finally:
            if logger is not None:
                logger.close()
        return {'epochs': self.epoch, 'steps': self.step,
                'seconds': time.perf_counter() - start, 'train_loss': train_loss,
                'metrics': self.metrics}


def _flat_metrics(metrics: dict) -> dict:
    flat = {}
    for task in ('detection', 'segmentation'):
        for key, value in (metrics.get(task) or {}).items():
            if isinstance(value, (int, float)) and value is not None \
                    and math.isfinite(float(value)):
                flat[f'{task}/{key}'] = value
    return flat


def _summary(metrics: dict) -> str:
    return ', '.join(f'{k} {v:.4f}' for k, v in _flat_metrics(metrics).items())
