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
Size and compute of a network: parameters and GFLOPs per image.

GFLOPs = FLOPs / 1e9 as ``torch.utils.flop_counter.FlopCounterMode`` counts them for one
``forward_raw`` on ``[1, 3, S, S]``: a multiply-add is 2 FLOPs, and only convolutions and
matrix products are counted (batch norm, activations, softmax and resizing are not). The
ratio of two networks' GFLOPs bounds the ratio of their speeds on the same hardware.
"""

import torch
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: torch.nn.Module) -> int:
    """Count the parameters (buffers such as batch-norm statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


def count_gflops(model: torch.nn.Module, input_size: int) -> float:
    """Count the GFLOPs of one ``forward_raw`` on ``[1, 3, S, S]`` (multiply-add = 2 FLOPs)."""
    images = torch.zeros(1, 3, input_size, input_size)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model.forward_raw(images)
    return counter.get_total_flops() / 1e9
