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
TensorRT backend: runs a serialized engine built by ``mtl-perception export --format tensorrt``.

``path`` is the ``.engine`` file, or a checkpoint name with ``<stem>.engine`` beside it.
Before deserialising, the engine's recorded TensorRT version and GPU are compared with
this machine (``tensorrt_support.check_build``); a mismatch raises an error carrying the
rebuild command. The engine is deserialised once; input and output buffers are torch
CUDA tensors allocated once for the engine's largest batch, their addresses bound once
with ``set_tensor_address``; each run copies the batch in, sets the input shape and
calls ``execute_async_v3`` on the backend's own CUDA stream. The precision is fixed when
the engine is built, so ``half`` is not used here.
"""

from pathlib import Path

from mtl_perception.inference import artifacts
from mtl_perception.inference.backends.base import Backend
from mtl_perception.inference.tensorrt_support import (build_target, check_build,
                                                       cuda_device_index, import_tensorrt,
                                                       rebuild_command)
import numpy as np


class TensorRTBackend(Backend):
    """
    Run a TensorRT engine with device buffers allocated once.

    :param path: the ``.engine`` file.
    :param card: the card beside it (with ``export.tensorrt``).
    :param anchors: float32 ``[A, 4]`` default boxes, or None without detection.
    :param device: 'cuda' or 'cuda:N'.
    """

    def __init__(self, path: Path, card: dict, anchors: np.ndarray | None, *,
                 device: str = 'cuda') -> None:
        """Check the build target, deserialise the engine and allocate the buffers."""
        trt = import_tensorrt()
        import torch

        self._torch = torch
        index = cuda_device_index(device)
        info = card['export']['tensorrt']
        check_build(info, build_target(trt, index), path)
        self.device = torch.device('cuda', index)
        self._logger = trt.Logger(trt.Logger.WARNING)
        with torch.cuda.device(index):
            self._runtime = trt.Runtime(self._logger)
            self.engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
            if self.engine is None:
                raise artifacts.ExportedModelError(
                    f'{path}: TensorRT cannot deserialise the engine (corrupt or built '
                    f'elsewhere); rebuild it with: {rebuild_command(info, path)}')
            self.context = self.engine.create_execution_context()
            self.stream = torch.cuda.Stream(self.device)
        self.path, self.card, self.anchors = path, card, anchors
        self.output_names = artifacts.output_names(card)
        self._allocate(trt)

    def _allocate(self, trt) -> None:
        torch = self._torch
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names
                  if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        size = int(self.card['input_size'])
        if inputs != [artifacts.INPUT_NAME]:
            raise artifacts.ExportedModelError(f'{self.path}: expected one input '
                                               f'{artifacts.INPUT_NAME!r}, got {inputs}')
        missing = [n for n in self.output_names if n not in names]
        if missing:
            raise artifacts.ExportedModelError(f'{self.path}: outputs {missing} missing for '
                                               f'tasks {self.card["tasks"]}')
        shape = tuple(self.engine.get_tensor_shape(artifacts.INPUT_NAME))
        if shape[0] == -1:
            self.max_batch = int(self.engine.get_tensor_profile_shape(
                artifacts.INPUT_NAME, 0)[2][0])
        else:
            self.max_batch = int(shape[0])
        full = (self.max_batch, 3, size, size)
        self.context.set_input_shape(artifacts.INPUT_NAME, full)
        self.buffers = {}
        for name in [artifacts.INPUT_NAME, *self.output_names]:
            dtype = torch.from_numpy(
                np.empty(0, trt.nptype(self.engine.get_tensor_dtype(name)))).dtype
            tensor_shape = full if name == artifacts.INPUT_NAME else tuple(
                self.context.get_tensor_shape(name))
            self.buffers[name] = torch.empty(tensor_shape, dtype=dtype, device=self.device)
            self.context.set_tensor_address(name, self.buffers[name].data_ptr())
        self._batch = self.max_batch

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run float32 ``[N, 3, S, S]`` (in chunks of the engine's largest batch)."""
        if self.context is None:
            raise RuntimeError('the backend is closed')
        self.check_batch(batch)
        parts = [self._run_chunk(batch[i:i + self.max_batch])
                 for i in range(0, len(batch), self.max_batch)]
        if len(parts) == 1:
            return parts[0]
        return {name: np.concatenate([p[name] for p in parts]) for name in self.output_names}

    def _run_chunk(self, chunk: np.ndarray) -> dict[str, np.ndarray]:
        torch = self._torch
        count = len(chunk)
        if count != self._batch:
            self.context.set_input_shape(artifacts.INPUT_NAME, (count, *chunk.shape[1:]))
            self._batch = count
        with torch.cuda.stream(self.stream):
            source = self.buffers[artifacts.INPUT_NAME]
            source[:count].copy_(torch.from_numpy(np.ascontiguousarray(chunk)))
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError(f'{self.path}: TensorRT execution failed')
            # Outputs of a smaller batch are the leading rows of the full-size buffers.
            results = {name: self.buffers[name][:count].float().cpu().numpy()
                       for name in self.output_names}
        return results

    def close(self) -> None:
        """Release the context, the engine and the device buffers."""
        if getattr(self, 'context', None) is not None:
            self.stream.synchronize()
            self.context = None
            self.engine = None
            self.buffers = {}
            self._torch.cuda.empty_cache()


def create(path, *, device: str = 'cuda', half: bool = False) -> TensorRTBackend:
    """Load the engine ``path`` (the ``.engine`` file or its checkpoint's name)."""
    import_tensorrt()  # say first that TensorRT is missing, before looking for files
    artifact = artifacts.resolve_artifact(path, 'tensorrt')
    card = artifacts.read_export_card(artifact, 'tensorrt')
    anchors = artifacts.read_anchors(artifact, card)
    return TensorRTBackend(artifact, card, anchors, device=device)
