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
ONNX Runtime backend: runs an exported ``.onnx`` file (see ``inference.export``).

``path`` is the ``.onnx`` file, or a checkpoint name (``<stem>``, ``<stem>.safetensors``,
``<stem>.yaml``) with ``<stem>.onnx`` exported beside it. The card and the default boxes
come from the files beside the export. This module does not import torch.

Execution providers follow ``device``: 'cpu' uses the CPU provider; 'cuda' or 'cuda:N'
uses the TensorRT provider (engines cached beside the file) and the CUDA provider where
this onnxruntime build has them, with the CPU provider last for unsupported nodes.
``half`` needs the TensorRT provider (its FP16 mode); the CUDA provider runs the float32
graph as exported.

A gated multitask export (``inference.onnx_gate``) has the optional bool input
``run_segmentation``: ``run(batch, segmentation=False)`` feeds it False and asks for
'loc' and 'scores' only, so the segmentation head is not computed
(``skips_segmentation``). An export made before the gate still loads and runs: asking
ONNX Runtime for fewer outputs does not prune the graph, so there the whole network runs
and only 'seg_logits' is left out. ONNX Runtime logs a warning, when it loads a gated
file, that the initializer ``run_segmentation`` is also a graph input and is not folded
as a constant: that is what the gate needs.
"""

from pathlib import Path
import re

from mtl_perception.inference import artifacts
from mtl_perception.inference.backends.base import Backend
from mtl_perception.model_card import INPUT_NAME, ModelCard, SEGMENTATION_GATE, TASKS
import numpy as np

_DEVICE = re.compile(r'^(cpu|cuda)(?::(\d+))?$')


def select_providers(device: str, half: bool, available: list[str]) -> tuple[list, int]:
    """
    Return ``(providers, device_index)`` for ``device`` given the available providers.

    :raises ValueError: malformed device, no GPU provider for a CUDA device, or ``half``
        without the TensorRT provider.
    """
    match = _DEVICE.match(str(device))
    if not match or (match.group(1) == 'cpu' and match.group(2) is not None):
        raise ValueError(f'bad device {device!r}: use cpu, cuda or cuda:N')
    if match.group(1) == 'cpu':
        if half:
            raise ValueError('half precision needs a GPU: pass device=cuda (or cuda:N) or '
                             'half=False')
        return ['CPUExecutionProvider'], 0
    index = int(match.group(2) or 0)
    gpu = [p for p in ('TensorrtExecutionProvider', 'CUDAExecutionProvider') if p in available]
    if not gpu:
        raise ValueError(f'device {device!r} needs the CUDA or TensorRT execution provider, '
                         f'but this onnxruntime offers {available} (install onnxruntime-gpu)')
    if half and 'TensorrtExecutionProvider' not in gpu:
        raise ValueError('half precision with onnxruntime needs the TensorRT execution '
                         'provider; use half=False or the tensorrt backend')
    return gpu + ['CPUExecutionProvider'], index


def session_gate(session) -> str | None:
    """Return the segmentation gate an ONNX Runtime session accepts (None when ungated)."""
    names = {i.name for i in session.get_overridable_initializers()}
    names |= {i.name for i in session.get_inputs()}
    return SEGMENTATION_GATE if SEGMENTATION_GATE in names else None


class OnnxRuntimeBackend(Backend):
    """
    Run an exported network in an ONNX Runtime session.

    :param path: the ``.onnx`` file (its card and default boxes beside it).
    :param card: the model card read from beside the file.
    :param anchors: float32 ``[A, 4]`` default boxes, or None without detection.
    :param device: 'cpu', 'cuda' or 'cuda:N'.
    :param half: FP16 through the TensorRT execution provider (GPU only).
    :param threads: intra-op threads (None: ONNX Runtime's default, one per core).
    """

    def __init__(self, path: Path, card: ModelCard, anchors: np.ndarray | None, *,
                 device: str = 'cpu', half: bool = False, threads: int | None = None) -> None:
        """Create the session and check the file against its card."""
        import onnxruntime

        if threads is not None and int(threads) < 1:
            raise ValueError(f'threads must be >= 1, got {threads}')
        providers, index = select_providers(device, half,
                                            onnxruntime.get_available_providers())
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = int(threads or 0)
        # Errors only: a gated export's overridable gate makes ONNX Runtime warn on every load
        # that the initializer "appears in graph inputs", which is the design, not a problem
        # (provider availability, the warning that matters, is checked above).
        options.log_severity_level = 3
        configured = []
        for provider in providers:
            if provider == 'TensorrtExecutionProvider':
                cache = path.with_name(path.stem + '.ort_trt_cache')
                configured.append((provider, {
                    'device_id': index, 'trt_fp16_enable': bool(half),
                    'trt_engine_cache_enable': True, 'trt_engine_cache_path': str(cache)}))
            elif provider == 'CUDAExecutionProvider':
                configured.append((provider, {'device_id': index}))
            else:
                configured.append(provider)
        try:
            self.session = onnxruntime.InferenceSession(str(path), options,
                                                        providers=configured)
        except Exception as error:  # noqa: B902 (onnxruntime raises its own error types)
            raise artifacts.ExportedModelError(
                f'{path}: ONNX Runtime cannot load the file: {error}') from error
        self.path = path
        self.card = card
        self.anchors = anchors
        self.providers = tuple(self.session.get_providers())
        self.output_names = card.output_names
        self._check_io()

    def _check_io(self) -> None:
        # The gate is an overridable initializer, or an input where its default was removed.
        self.gate = session_gate(self.session)
        self.skips_segmentation = self.gate is not None and set(self.card.tasks) == set(TASKS)
        inputs = [i for i in self.session.get_inputs() if i.name != self.gate]
        size = self.card.input_size
        if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
            raise artifacts.ExportedModelError(
                f'{self.path}: expected one input named {INPUT_NAME!r}, got '
                f'{[i.name for i in inputs]}')
        shape = inputs[0].shape
        if len(shape) != 4 or list(shape[1:]) != [3, size, size]:
            raise artifacts.ExportedModelError(
                f'{self.path}: input shape {shape} does not match the card input size {size} '
                f'([N, 3, {size}, {size}])')
        self.batch_size = shape[0] if isinstance(shape[0], int) else None
        found = {o.name: o.shape for o in self.session.get_outputs()}
        missing = [name for name in self.output_names if name not in found]
        if missing:
            raise artifacts.ExportedModelError(
                f'{self.path}: outputs {missing} missing for tasks {list(self.card.tasks)} '
                f'(the file has {sorted(found)})')
        if self.anchors is not None:
            count = found['loc'][1]
            if isinstance(count, int) and count != len(self.anchors):
                raise artifacts.ExportedModelError(
                    f'{self.path}: the network predicts {count} boxes but '
                    f'{artifacts.anchors_path(self.path)} holds {len(self.anchors)} default '
                    'boxes (files from different exports?)')

    def run(self, batch: np.ndarray, segmentation: bool = True) -> dict[str, np.ndarray]:
        """
        Run float32 ``[N, 3, S, S]``; return float32 arrays by output name.

        :param segmentation: False: no 'seg_logits', and the gate (if any) set False.
        """
        if self.session is None:
            raise RuntimeError('the backend is closed')
        self.check_batch(batch)
        names = list(self.wanted_outputs(segmentation))
        if not names:
            return {}
        feed = {}
        if self.gate is not None:
            feed[self.gate] = np.array(bool(segmentation))
        # A fixed-batch export takes one image per run.
        step = self.batch_size or len(batch)
        parts = [self.session.run(names, {**feed, INPUT_NAME: batch[i:i + step]})
                 for i in range(0, len(batch), step)]
        outputs = {name: np.concatenate([p[k] for p in parts]) if len(parts) > 1
                   else parts[0][k] for k, name in enumerate(names)}
        if self.anchors is not None and 'loc' in outputs \
                and outputs['loc'].shape[1] != len(self.anchors):
            # A dynamic-batch export may leave the box count symbolic until run time.
            raise artifacts.ExportedModelError(
                f'{self.path}: the network predicts {outputs["loc"].shape[1]} boxes but '
                f'{artifacts.anchors_path(self.path)} holds {len(self.anchors)} default boxes')
        return outputs

    def close(self) -> None:
        """Drop the session."""
        self.session = None


def create(path, *, device: str = 'cpu', half: bool = False,
           threads: int | None = None) -> OnnxRuntimeBackend:
    """Load the ONNX export ``path`` (the ``.onnx`` file or its checkpoint's name)."""
    artifact = artifacts.resolve_artifact(path, 'onnx')
    card = artifacts.read_export_card(artifact, 'onnx')
    anchors = artifacts.read_anchors(artifact, card)
    return OnnxRuntimeBackend(artifact, card, anchors, device=device, half=half,
                              threads=threads)
