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
Distributed data-parallel training: N processes train the network one process would.

Started by ``torchrun``, every process reads its place from the environment (``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT``) and joins the process group:
gloo on CPUs, NCCL on GPUs (process ``LOCAL_RANK`` on ``cuda:LOCAL_RANK``). Without those
variables training is the single process it always was.

The recipe's ``training.batch_size`` is the GLOBAL batch: each of the N processes takes
``batch_size / N`` images of every global batch (it must divide evenly). The global batches
are exactly those a single process draws (:class:`ShardedBatchSampler`), and the run is kept
equal to that single process in the three places data parallelism would otherwise change it:

- BatchNorm normalises over the global batch (:mod:`.sync_batchnorm`);
- each task loss is divided by its GLOBAL normaliser (the SSD loss by the positives of the
  whole global batch, the segmentation loss by its labelled pixels), not by each process's
  share, before DDP averages the gradients (:func:`reduce_losses`);
- the learned loss weights, which live outside the DDP module, get their gradients averaged
  (:func:`average_gradients`).

What is left is floating-point summation order. The logged losses are the global batch's.
Rank 0 alone evaluates (on the whole held-out set, so the metrics are the single-process
ones), logs, shows progress and writes checkpoints; the others wait at a barrier.

Limits: GradNorm weighting is refused (its gradient norms would be per process). Uncertainty
weighting skips a task whose loss is zero in the batch; with partially labelled data that is
decided per process, so a global batch labelled for a task on one process only weights that
task's regulariser differently from one process. A single machine's sockets stay on loopback
with :mod:`.launch` (plain torchrun's stores listen on every interface).
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
import ipaddress
import os
import socket

from mtl_perception.modeling.losses import IGNORE_INDEX, MultiTaskLoss
import torch
import torch.distributed as dist

# Rank 0 evaluates while the others wait at a barrier: allow a long held-out evaluation.
PROCESS_GROUP_TIMEOUT = timedelta(hours=1)
ENV_VARIABLES = ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')


@dataclass(frozen=True)
class DistributedContext:
    """
    Where this process stands in the training job (rank 0 of 1 when not distributed).

    :param rank: global rank.
    :param local_rank: rank on this machine (selects the GPU).
    :param world_size: number of processes.
    :param device: the device this process trains on.
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device('cpu')

    @property
    def enabled(self) -> bool:
        """Return whether there are other processes to synchronise with."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Return whether this process writes files, logs and progress (rank 0)."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait until every process gets here (nothing when not distributed)."""
        if self.enabled:
            if self.device.type == 'cuda':
                dist.barrier(device_ids=[self.device.index])
            else:
                dist.barrier()

    def broadcast(self, value):
        """Return rank 0's ``value`` (picklable plain data) on every process."""
        if not self.enabled:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0, device=self.device)
        return box[0]


def _loopback_interface() -> str | None:
    names = [name for _, name in socket.if_nameindex()]
    return next((n for n in names if n == 'lo'), next((n for n in names if n.startswith('lo')),
                                                      None))


def _is_loopback(host: str) -> bool:
    if host == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def init_distributed(device: torch.device, environ: Mapping[str, str] | None = None
                     ) -> DistributedContext:
    """
    Join the process group described by the torchrun environment, if there is one.

    Without ``WORLD_SIZE`` (or with 1) nothing happens and ``device`` is returned as given. A
    CUDA device becomes ``cuda:LOCAL_RANK`` with the NCCL backend; a CPU device uses gloo.
    When every process runs on this machine and the master address is loopback, gloo and
    NCCL sockets are kept on the loopback interface unless ``GLOO_SOCKET_IFNAME`` /
    ``NCCL_SOCKET_IFNAME`` say otherwise.

    :param device: the device the recipe asks for (type only matters when distributed).
    :param environ: the environment (default ``os.environ``; the socket variables are set
        in ``os.environ`` either way, where the backends read them).
    :return: this process's :class:`DistributedContext`.
    """
    env = os.environ if environ is None else environ
    world_size = int(env.get('WORLD_SIZE', '1') or 1)
    if world_size <= 1:
        return DistributedContext(device=torch.device(device))
    missing = [name for name in ENV_VARIABLES if not env.get(name)]
    if missing:
        raise ValueError(f'WORLD_SIZE={world_size} but {", ".join(missing)} not set: start '
                         'distributed training with torchrun')
    rank, local_rank = int(env['RANK']), int(env['LOCAL_RANK'])
    device = torch.device(device)
    if device.type == 'cuda':
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f'LOCAL_RANK {local_rank} has no GPU: this machine has '
                             f'{torch.cuda.device_count()}; start at most that many processes '
                             'per machine')
        device = torch.device('cuda', local_rank)
        torch.cuda.set_device(device)
        backend = 'nccl'
    elif device.type == 'cpu':
        backend = 'gloo'
    else:
        raise ValueError(f'distributed training runs on cpu or cuda, not {device}')
    single_machine = int(env.get('LOCAL_WORLD_SIZE', '0') or 0) == world_size
    loopback = _loopback_interface()
    if single_machine and _is_loopback(env['MASTER_ADDR']) and loopback:
        for name in ('GLOO_SOCKET_IFNAME', 'NCCL_SOCKET_IFNAME'):
            os.environ.setdefault(name, loopback)
    dist.init_process_group(backend, rank=rank, world_size=world_size,
                            timeout=PROCESS_GROUP_TIMEOUT,
                            **({'device_id': device} if backend == 'nccl' else {}))
    return DistributedContext(rank=rank, local_rank=local_rank, world_size=world_size,
                              device=device)


def shutdown_distributed() -> None:
    """Leave the process group (if this process joined one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class ShardedBatchSampler(torch.utils.data.Sampler):
    """
    This process's share of the global batches another batch sampler yields.

    Process ``rank`` of ``world_size`` takes ``batch[rank::world_size]`` of every global batch,
    so together the processes see exactly the batches a single process would, in the same
    order. ``sampler`` is the wrapped batch sampler's sampler, so a trainer that reseeds the
    shuffle's generator each epoch reaches it.

    :param batch_sampler: yields the global batches (lists of indices), e.g. a
        ``torch.utils.data.BatchSampler``.
    :param rank: this process's rank.
    :param world_size: number of processes.
    """

    def __init__(self, batch_sampler, rank: int, world_size: int) -> None:
        """Check that every global batch leaves every process at least one image."""
        self.batch_sampler, self.rank, self.world_size = batch_sampler, rank, world_size
        self.sampler = getattr(batch_sampler, 'sampler', None)
        size = int(getattr(batch_sampler, 'batch_size', world_size))
        if size % world_size:
            raise ValueError(f'training.batch_size is the global batch: {size} does not '
                             f'divide evenly among {world_size} processes')
        if self.sampler is not None and not getattr(batch_sampler, 'drop_last', True):
            tail = len(self.sampler) % size
            if 0 < tail < world_size:
                raise ValueError(f'the last batch of {tail} images cannot be shared by '
                                 f'{world_size} processes: use a batch size that divides the '
                                 f'{len(self.sampler)} training images or fewer processes')

    def __iter__(self):
        """Yield this process's part of each global batch."""
        for batch in self.batch_sampler:
            yield list(batch)[self.rank::self.world_size]

    def __len__(self) -> int:
        """Return the number of global batches (the same on every process)."""
        return len(self.batch_sampler)


def _local_normalisers(criterion: MultiTaskLoss, targets: Mapping) -> torch.Tensor:
    """Return float64 [T]: what each task loss of this process's batch was divided by."""
    values = []
    for task in criterion.tasks:
        if task == 'detection':
            # Every labelled box of non-zero size claims an anchor (forced match), so an
            # image counts as empty (pseudo-positives) when it is labelled but has none.
            has_boxes = targets['has_boxes'].tolist()
            empty = sum(1 for labelled, boxes in zip(has_boxes, targets['boxes'])
                        if labelled and not bool(((boxes[:, 2] > boxes[:, 0])
                                                  & (boxes[:, 3] > boxes[:, 1])).any()))
            positives = criterion.last_components['detection/num_positives']
            values.append(positives.to(torch.float64)
                          + criterion.detection_loss.empty_image_positives * empty)
        else:
            mask = targets['mask'][targets['has_mask'].to(torch.bool)]
            values.append((mask != IGNORE_INDEX).sum().to(torch.float64))
    return torch.stack(values)


def reduce_losses(criterion: MultiTaskLoss, losses: Mapping[str, torch.Tensor],
                  targets: Mapping, world_size: int) -> tuple[torch.Tensor, dict]:
    """
    Turn this process's losses into its part of the global batch's loss.

    Each task loss (a sum divided by this process's normaliser) is re-divided by the global
    normaliser and multiplied by ``world_size``, so the gradients DDP averages are those of
    the global batch's loss. Call right after ``criterion(...)`` (it reads the criterion's
    ``last_components``); every process must call it (one ``all_reduce``).

    :param criterion: the loss that produced ``losses``.
    :param losses: its output, ``{task: scalar, ..., 'total': scalar}``.
    :param targets: the batch targets (on the training device).
    :param world_size: number of processes.
    :return: ``(total, global_losses)``: the weighted total to back-propagate on this process
        and the global batch's losses ``{task: float, 'total': float}`` for logging.
    """
    tasks = criterion.tasks
    device = losses['total'].device
    local = _local_normalisers(criterion, targets).to(device)
    divisor = local.clamp(min=1)  # what the loss functions divided by
    sums = torch.stack([losses[t].detach().to(torch.float64) for t in tasks]) * divisor
    packed = torch.cat([sums, local])
    dist.all_reduce(packed)
    global_sums, global_norm = packed[:len(tasks)], packed[len(tasks):].clamp(min=1)
    scale = world_size * divisor / global_norm
    scaled = {t: losses[t] * scale[i].to(losses[t].dtype) for i, t in enumerate(tasks)}
    total = criterion.weighting.combine(scaled)
    values = (global_sums / global_norm).tolist()
    with torch.no_grad():  # no_grad: DWA would count the losses of this extra call
        global_total = criterion.weighting.combine(
            {t: torch.tensor(v, dtype=torch.float32, device=device)
             for t, v in zip(tasks, values)})
    return total, {**dict(zip(tasks, values)), 'total': float(global_total)}


def average_gradients(parameters: Iterable[torch.nn.Parameter], world_size: int) -> None:
    """
    Average the gradients of parameters outside the DDP module (the loss weighting's).

    A parameter without a gradient is skipped; the graph, and so which parameters have one,
    is the same on every process.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset:offset + grad.numel()].view_as(grad))
        offset += grad.numel()


def wrap_model(model: torch.nn.Module, context: DistributedContext) -> torch.nn.Module:
    """Return ``model`` with global BatchNorm inside DDP (``model`` itself if not distributed)."""
    if not context.enabled:
        return model
    from mtl_perception.engine.sync_batchnorm import convert_batchnorm
    from torch.nn.parallel import DistributedDataParallel

    convert_batchnorm(model, context.device)
    ids = [context.device.index] if context.device.type == 'cuda' else None
    return DistributedDataParallel(model, device_ids=ids, output_device=ids[0] if ids else None)
