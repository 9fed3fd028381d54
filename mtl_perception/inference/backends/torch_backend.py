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
PyTorch backend: runs ``MultiTaskModel.forward_raw`` on CPU or a CUDA device.

Without segmentation, only the detection head runs on the backbone's features
(``forward_raw(images, tasks=('detection',))``).
"""

from mtl_perception.inference.backends.base import Backend
from mtl_perception.inference.checkpoint import complete_card, load_checkpoint
from mtl_perception.model_card import ModelCard, output_names, TASKS
from mtl_perception.modeling import MultiTaskModel
import numpy as np
import torch


def resolve_device(device: str | torch.device, half: bool) -> torch.device:
    """
    Parse 'cpu', 'cuda' or 'cuda:N' and check that it can be used.

    Errors:
        ValueError: the name is malformed, the GPU does not exist, or half precision
            is asked for on a CPU (fp16 convolutions are slow or missing there).
    """
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f'bad device {device!r}: use cpu, cuda or cuda:N') from error
    if resolved.type not in ('cpu', 'cuda'):
        raise ValueError(f'unsupported device {device!r}: use cpu, cuda or cuda:N')
    if resolved.type == 'cuda':
        if not torch.cuda.is_available():
            raise ValueError(f'device {device!r} asked for but no CUDA GPU is available')
        index = resolved.index if resolved.index is not None else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise ValueError(f'device {device!r} does not exist: '
                             f'{torch.cuda.device_count()} CUDA device(s) visible')
        resolved = torch.device('cuda', index)
    if half and resolved.type != 'cuda':
        raise ValueError('half precision needs a CUDA GPU: pass device=cuda (or cuda:N) '
                         f'or half=False; got device {device!r}')
    return resolved


class TorchBackend(Backend):
    """
    Run a ``MultiTaskModel`` with PyTorch.

    Inputs:
        model: the network (moved to ``device`` and put in eval mode).
        card: its model card; a partial card (a dict, as during training) is completed
            from the model.
        device: 'cpu', 'cuda' or 'cuda:N'.
        half: run in float16 (CUDA only); outputs are returned as float32.
    """

    def __init__(self, model: MultiTaskModel, card: ModelCard | dict, *, device: str = 'cpu',
                 half: bool = False) -> None:
        """Place the model on ``device`` in eval mode."""
        self.device = resolve_device(device, half)
        self.dtype = torch.float16 if half else torch.float32
        self.model: MultiTaskModel | None = model.to(self.device, self.dtype).eval()
        self.card = card if isinstance(card, ModelCard) else complete_card(model, card)
        self.output_names = tuple(model.output_names)
        self.anchors = (model.anchors.detach().float().cpu().numpy()
                        if 'detection' in model.tasks else None)
        self.skips_segmentation = set(model.tasks) == set(TASKS)

    def run(self, batch: np.ndarray, segmentation: bool = True) -> dict[str, np.ndarray]:
        """
        Run ``forward_raw`` on float32 ``[N, 3, S, S]``; return float32 arrays by name.

        :param segmentation: False: run only the detection head (nothing for a
            segmentation-only network) and return no 'seg_logits'.
        """
        if self.model is None:
            raise RuntimeError('the backend is closed')
        self.check_batch(batch)
        tasks = tuple(t for t in self.model.tasks if segmentation or t != 'segmentation')
        if not tasks:
            return {}
        with torch.inference_mode():
            images = torch.from_numpy(batch).to(self.device, self.dtype)
            outputs = self.model.forward_raw(images, tasks)
            return {name: tensor.float().cpu().numpy()
                    for name, tensor in zip(output_names(tasks), outputs)}

    def close(self) -> None:
        """Drop the model and return cached GPU memory."""
        if self.model is not None:
            self.model = None
            if self.device.type == 'cuda':
                torch.cuda.empty_cache()


def create(path, *, device: str = 'cpu', half: bool = False) -> TorchBackend:
    """Load the checkpoint ``path`` (``<stem>``, ``.safetensors`` or ``.yaml``)."""
    resolved = resolve_device(device, half)
    model, card = load_checkpoint(path, device=resolved)
    return TorchBackend(model, card, device=str(resolved), half=half)
