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
rebuild command. The engine is deserialised once. Its memory comes from the CUDA runtime
of ``cuda-python`` (``tensorrt_support.CudaMemory``), not torch, which this module never
imports: device buffers and page-locked host arrays for the input and every output are
allocated once for the engine's largest batch and the device addresses bound once with
``set_tensor_address``. Each run copies the batch in, sets the input shape, calls
``execute_async_v3`` on the backend's own CUDA stream, copies the outputs back and waits
for the stream; outputs come back as float32 copies (an FP16 engine may emit float16).
The precision is fixed when the engine is built, so ``half`` is not used here.

An engine built from a gated multitask export (``inference.onnx_gate``) has a second
input, ``run_segmentation``: a bool scalar (shape ``()``) that the backend sets on every
run, so ``run(batch, segmentation=False)`` leaves the segmentation head out
(``skips_segmentation``); 'seg_logits' is then neither copied back nor returned. An
engine without the gate runs whole, and only the copy of 'seg_logits' is skipped.
Untested on hardware so far: the gate as an engine input, and whether TensorRT places
it in device memory (copied in each run) or, as a shape-inference input, in host memory
(``is_shape_inference_io``; its address is then the host array's); the tests run these
paths on stand-ins for TensorRT and the CUDA runtime.
"""

from pathlib import Path

from mtl_perception.inference import artifacts
from mtl_perception.inference.backends.base import Backend
from mtl_perception.inference.tensorrt_support import (build_target, check_build,
                                                       cuda_device_index, CudaError,
                                                       CudaMemory,
                                                       import_cudart, import_tensorrt,
                                                       rebuild_command)
from mtl_perception.model_card import ModelCard, SEGMENTATION_GATE, TASKS
import numpy as np


class TensorRTBackend(Backend):
    """
    Run a TensorRT engine with device buffers allocated once.

    :param path: the ``.engine`` file.
    :param card: the card beside it (with ``export['tensorrt']``).
    :param anchors: float32 ``[A, 4]`` default boxes, or None without detection.
    :param device: 'cuda' or 'cuda:N'.
    :param pinned: page-locked host buffers (asynchronous copies); False for pageable.
    """

    def __init__(self, path: Path, card: ModelCard, anchors: np.ndarray | None, *,
                 device: str = 'cuda', pinned: bool = True) -> None:
        """Check the build target, deserialise the engine and allocate the buffers."""
        trt = import_tensorrt()
        self.context = self.engine = self.memory = None
        index = cuda_device_index(device)
        info = card.export['tensorrt']
        check_build(info, build_target(trt, index), path)
        self.path, self.card, self.anchors = path, card, anchors
        self.output_names = card.output_names
        self.memory = CudaMemory(index)
        try:
            self._logger = trt.Logger(trt.Logger.WARNING)
            self._runtime = trt.Runtime(self._logger)
            self.engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
            if self.engine is None:
                raise artifacts.ExportedModelError(
                    f'{path}: TensorRT cannot deserialise the engine (corrupt or built '
                    f'elsewhere); rebuild it with: {rebuild_command(info, path)}')
            self.context = self.engine.create_execution_context()
            if self.context is None:
                raise RuntimeError(f'{path}: TensorRT cannot create an execution context '
                                   '(out of GPU memory?)')
            self._allocate(trt, pinned)
        except BaseException:
            try:
                self.close()
            except CudaError:
                pass  # the error that stopped loading says more
            raise

    def _allocate(self, trt, pinned: bool) -> None:
        engine, name_in = self.engine, artifacts.INPUT_NAME
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        size = self.card.input_size
        self.gate = SEGMENTATION_GATE if SEGMENTATION_GATE in inputs else None
        self.skips_segmentation = self.gate is not None and set(self.card.tasks) == set(TASKS)
        if [n for n in inputs if n != self.gate] != [name_in]:
            raise artifacts.ExportedModelError(f'{self.path}: expected the input {name_in!r} '
                                               f'(and {SEGMENTATION_GATE!r}), got {inputs}')
        missing = [n for n in self.output_names if n not in names]
        if missing:
            raise artifacts.ExportedModelError(f'{self.path}: outputs {missing} missing for '
                                               f'tasks {list(self.card.tasks)}')
        shape = tuple(engine.get_tensor_shape(name_in))
        if len(shape) != 4 or shape[1:] != (3, size, size):
            raise artifacts.ExportedModelError(
                f'{self.path}: input shape {list(shape)} does not match the card input size '
                f'{size} ([N, 3, {size}, {size}])')
        if shape[0] == -1:
            self.max_batch = int(engine.get_tensor_profile_shape(name_in, 0)[2][0])
        else:
            self.max_batch = int(shape[0])
        self._set_batch(self.max_batch)
        # Host and device buffers for the largest batch; a smaller batch uses their
        # leading rows, since tensors are contiguous with the batch axis first.
        self.host, self.device = {}, {}
        for name in [name_in, *self.output_names]:
            tensor_shape = tuple(self.context.get_tensor_shape(name))
            if any(d < 0 for d in tensor_shape) or tensor_shape[0] != self.max_batch:
                raise artifacts.ExportedModelError(
                    f'{self.path}: tensor {name!r} has shape {list(tensor_shape)} for a '
                    f'batch of {self.max_batch} (expected [{self.max_batch}, ...])')
            try:
                dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            except TypeError as error:
                raise artifacts.ExportedModelError(
                    f'{self.path}: tensor {name!r} has a type numpy cannot hold: '
                    f'{engine.get_tensor_dtype(name)}') from error
            self.host[name] = self.memory.host_array(tensor_shape, dtype, pinned=pinned)
            self.device[name] = self.memory.device_buffer(self.host[name].nbytes)
            if not self.context.set_tensor_address(name, self.device[name]):
                raise RuntimeError(f'{self.path}: TensorRT refused the address of {name!r}')
        if self.gate is not None:
            self._allocate_gate(trt, pinned)
        if self.anchors is not None and self.host['loc'].shape[1] != len(self.anchors):
            raise artifacts.ExportedModelError(
                f'{self.path}: the network predicts {self.host["loc"].shape[1]} boxes but '
                f'{artifacts.anchors_path(self.path)} holds {len(self.anchors)} default boxes '
                '(files from different exports?)')

    def _allocate_gate(self, trt, pinned: bool) -> None:
        """Give the gate input its buffers: device memory, or host memory if TensorRT says."""
        engine, gate = self.engine, self.gate
        shape = tuple(self.context.get_tensor_shape(gate))
        dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(gate)))
        if shape != () or dtype != np.bool_:
            raise artifacts.ExportedModelError(
                f'{self.path}: the input {gate!r} must be a bool scalar (shape ()), got '
                f'{dtype} {list(shape)}')
        self.host[gate] = self.memory.host_array((), np.bool_, pinned=pinned)
        self.host[gate][...] = True
        if engine.is_shape_inference_io(gate):
            address = self.host[gate].ctypes.data  # TensorRT reads it from the host
        else:
            address = self.device[gate] = self.memory.device_buffer(1)
        if not self.context.set_tensor_address(gate, address):
            raise RuntimeError(f'{self.path}: TensorRT refused the address of {gate!r}')

    def _set_batch(self, count: int) -> None:
        shape = (count, 3, self.card.input_size, self.card.input_size)
        if not self.context.set_input_shape(artifacts.INPUT_NAME, shape):
            raise RuntimeError(f'{self.path}: TensorRT refused the input shape {list(shape)}')
        self._batch = count

    def run(self, batch: np.ndarray, segmentation: bool = True) -> dict[str, np.ndarray]:
        """
        Run float32 ``[N, 3, S, S]`` (in chunks of the engine's largest batch).

        :param segmentation: False: no 'seg_logits', and the gate (if any) set False.
        """
        if self.context is None:
            raise RuntimeError('the backend is closed')
        self.check_batch(batch)
        names = self.wanted_outputs(segmentation)
        if not names:
            return {}
        # CUDA's current device is per thread: a node may run us from another thread.
        self.memory.activate()
        parts = [self._run_chunk(batch[i:i + self.max_batch], names, segmentation)
                 for i in range(0, len(batch), self.max_batch)]
        if len(parts) == 1:
            return parts[0]
        return {name: np.concatenate([p[name] for p in parts]) for name in names}

    def _run_chunk(self, chunk: np.ndarray, names: tuple[str, ...],
                   segmentation: bool) -> dict[str, np.ndarray]:
        count = len(chunk)
        if count != self._batch:
            self._set_batch(count)
        source = self.host[artifacts.INPUT_NAME][:count]
        source[...] = chunk
        self.memory.copy_to_device(self.device[artifacts.INPUT_NAME], source)
        if self.gate is not None:
            self.host[self.gate][...] = bool(segmentation)
            if self.gate in self.device:
                self.memory.copy_to_device(self.device[self.gate], self.host[self.gate])
        if not self.context.execute_async_v3(self.memory.stream_handle):
            raise RuntimeError(f'{self.path}: TensorRT execution failed')
        for name in names:
            self.memory.copy_to_host(self.host[name][:count], self.device[name])
        self.memory.synchronize()
        # Copies: the host buffers are overwritten by the next run.
        return {name: self.host[name][:count].astype(np.float32) for name in names}

    def close(self) -> None:
        """Release the context, the engine, the device and host buffers and the stream."""
        memory, self.memory = getattr(self, 'memory', None), None
        try:
            if memory is not None and memory.stream is not None:
                memory.synchronize()  # no queued work may still use the context
        finally:
            # The context before the engine before the runtime, then their memory.
            self.context = self.engine = self._runtime = None
            self.host, self.device = {}, {}
            if memory is not None:
                memory.close()


def create(path, *, device: str = 'cuda', half: bool = False,
           pinned: bool = True) -> TensorRTBackend:
    """Load the engine ``path`` (the ``.engine`` file or its checkpoint's name)."""
    # Say first that TensorRT or cuda-python is missing, before looking for files.
    import_tensorrt()
    import_cudart()
    artifact = artifacts.resolve_artifact(path, 'tensorrt')
    card = artifacts.read_export_card(artifact, 'tensorrt')
    anchors = artifacts.read_anchors(artifact, card)
    return TensorRTBackend(artifact, card, anchors, device=device, pinned=pinned)
