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
Batch normalisation over the global batch of all training processes, on CPUs too.

With DistributedDataParallel every process sees only its share of the global batch; plain
BatchNorm would normalise over that share, so a distributed run would not train the network
a single process trains with the same global batch. ``torch.nn.SyncBatchNorm`` fixes that on
GPUs only (it refuses CPU tensors, and DDP refuses it in a CPU module), so on CPUs
:func:`convert_batchnorm` uses :class:`CpuSyncBatchNorm`, a BatchNorm with its own two-pass
synchronisation over gloo: forward reduces the per-channel sums and counts, then the squared
deviations from the global mean (no ``E[x^2] - mean^2`` cancellation); backward reduces the
two per-channel gradient sums the input gradient needs. The running statistics see the global
mean and unbiased variance, so every process keeps the same ones. In eval mode, or without a
process group, it is an ordinary BatchNorm.
"""

import torch
from torch import nn
import torch.distributed as dist


class _CpuSyncBatchNorm(torch.autograd.Function):
    """Batch norm over the batches of all processes: ``[N, C, *]`` in, same shape out."""

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, eps, momentum, group):
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        # Statistics accumulate in float64, as ATen's CPU batch norm does (and the exchanged
        # count stays exact beyond 2 ** 24 pixels).
        count = x.new_full((1,), x.numel() // x.shape[1], dtype=torch.float64)
        sums = torch.cat([x.sum(dims, dtype=torch.float64), count])
        dist.all_reduce(sums, group=group)
        total = sums[-1]
        mean = sums[:-1] / total
        centred = x - mean.to(x.dtype).view(shape)
        squares = (centred * centred).sum(dims, dtype=torch.float64)
        dist.all_reduce(squares, group=group)
        var = squares / total
        invstd = torch.rsqrt(var + eps).to(x.dtype)
        normalised = centred * invstd.view(shape)
        out = normalised
        if weight is not None:
            out = out * weight.view(shape) + bias.view(shape)
        if running_mean is not None:
            with torch.no_grad():
                unbiased = var * total / (total - 1).clamp(min=1)
                running_mean.mul_(1.0 - momentum).add_(mean.to(x.dtype) * momentum)
                running_var.mul_(1.0 - momentum).add_(unbiased.to(x.dtype) * momentum)
        ctx.save_for_backward(normalised, invstd, weight)
        ctx.total, ctx.group, ctx.dims, ctx.shape = total.item(), group, dims, shape
        return out

    @staticmethod
    def backward(ctx, grad_out):
        normalised, invstd, weight = ctx.saved_tensors
        dims, shape = ctx.dims, ctx.shape
        sum_dy = grad_out.sum(dims, dtype=torch.float64)
        sum_dy_xhat = (grad_out * normalised).sum(dims, dtype=torch.float64)
        # The affine gradients stay local: DDP averages them with the other parameters.
        grad_weight = sum_dy_xhat.to(grad_out.dtype) if ctx.needs_input_grad[1] else None
        grad_bias = sum_dy.to(grad_out.dtype) if ctx.needs_input_grad[2] else None
        grad_x = None
        if ctx.needs_input_grad[0]:
            both = torch.cat([sum_dy, sum_dy_xhat])
            dist.all_reduce(both, group=ctx.group)
            mean_dy, mean_dy_xhat = (both / ctx.total).to(grad_out.dtype).chunk(2)
            scale = invstd if weight is None else invstd * weight
            grad_x = (grad_out - mean_dy.view(shape)
                      - normalised * mean_dy_xhat.view(shape)) * scale.view(shape)
        return grad_x, grad_weight, grad_bias, None, None, None, None, None


class CpuSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """
    BatchNorm over the global batch of all processes (any ``[N, C, *]`` input; gloo).

    Same arguments, parameters and state-dict keys as ``torch.nn.BatchNorm2d``.
    """

    process_group = None  # the default (whole world) group

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f'expected input [N, C, *], got {tuple(x.shape)}')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x`` ``[N, C, *]`` over the global batch while training."""
        self._check_input_dim(x)
        if not self.training or not dist.is_initialized() or dist.get_world_size() == 1:
            return super().forward(x)
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average, as _BatchNorm does
                momentum = 1.0 / float(self.num_batches_tracked)
        running_mean = self.running_mean if self.track_running_stats else None
        running_var = self.running_var if self.track_running_stats else None
        group = self.process_group or dist.group.WORLD
        return _CpuSyncBatchNorm.apply(x, self.weight, self.bias, running_mean,
                                       running_var, self.eps, momentum, group)


def convert_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """
    Make every BatchNorm layer in ``module`` normalise over the global batch, in place.

    On CUDA this is ``torch.nn.SyncBatchNorm.convert_sync_batchnorm``; elsewhere the layers
    become :class:`CpuSyncBatchNorm`. Either way the new layers take over the old layers'
    parameter and buffer objects, so an optimizer built before the conversion still updates
    them and the state dict keeps its keys.

    :return: ``module`` (or the replacement when ``module`` itself is a BatchNorm layer).
    """
    if torch.device(device).type == 'cuda':
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _convert_cpu(module)


def _convert_cpu(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.modules.batchnorm._BatchNorm) \
            and not isinstance(module, CpuSyncBatchNorm):
        converted = CpuSyncBatchNorm(module.num_features, module.eps, module.momentum,
                                     module.affine, module.track_running_stats)
        if module.affine:
            converted.weight, converted.bias = module.weight, module.bias
        converted.running_mean, converted.running_var = module.running_mean, module.running_var
        converted.num_batches_tracked = module.num_batches_tracked
        converted.train(module.training)
        if hasattr(module, 'qconfig'):
            converted.qconfig = module.qconfig
        return converted
    for name, child in module.named_children():
        replacement = _convert_cpu(child)
        if replacement is not child:
            setattr(module, name, replacement)
    return module
