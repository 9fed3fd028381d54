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
The interface every inference backend implements (torch, ONNX Runtime, TensorRT).

A backend owns one loaded network and runs it on preprocessed batches; everything
around it (preprocessing, box decoding and NMS, mask argmax and resize) is shared in
the Predictor so that every backend gives the same answers from the same raw outputs.

A frame may not need the segmentation mask (a node computing it every Nth frame): then
``run(batch, segmentation=False)`` returns no 'seg_logits' and, where the backend can
(``skips_segmentation``), does not compute the segmentation head at all.
"""

import abc

from mtl_perception.model_card import ModelCard, OUTPUT_NAMES, TASK_OUTPUTS
import numpy as np

__all__ = ['Backend', 'OUTPUT_NAMES']


class Backend(abc.ABC):
    """
    One loaded network.

    Subclasses set, in their constructor:
        card: the model card (``model_card.ModelCard``).
        output_names: the outputs ``run`` returns, a subset of ``OUTPUT_NAMES`` in that
            order: 'loc' ``[N, A, 4]`` encoded offsets, 'scores' ``[N, A, C + 1]``
            softmax probabilities (0 = background), 'seg_logits' ``[N, K, S, S]``.
        anchors: float32 ``[A, 4]`` default boxes ``(cx, cy, w, h)`` normalised to
            ``[0, 1]``, or None for a network without detection.
        skips_segmentation: True when ``run(..., segmentation=False)`` really leaves the
            segmentation head out (a multitask network whose backend can run the
            detection outputs alone); False when the whole network still runs then.
    """

    card: ModelCard
    output_names: tuple[str, ...]
    anchors: np.ndarray | None
    skips_segmentation: bool = False

    @abc.abstractmethod
    def run(self, batch: np.ndarray, segmentation: bool = True) -> dict[str, np.ndarray]:
        """
        Run the network on float32 ``[N, 3, S, S]``; return float32 arrays by output name.

        :param segmentation: False: return no 'seg_logits' and skip the segmentation head
            where the backend can (``skips_segmentation``); a network with no other
            output then returns ``{}`` without running.
        """

    def wanted_outputs(self, segmentation: bool) -> tuple[str, ...]:
        """Return the outputs ``run`` returns for ``segmentation``, in ``output_names`` order."""
        if segmentation:
            return tuple(self.output_names)
        return tuple(n for n in self.output_names if n not in TASK_OUTPUTS['segmentation'])

    def close(self) -> None:
        """Release the network and any device memory it holds (idempotent)."""

    def check_batch(self, batch: np.ndarray) -> None:
        """Raise ValueError naming the shape unless ``batch`` is float32 ``[N, 3, S, S]``."""
        size = self.card.input_size
        if not isinstance(batch, np.ndarray) or batch.dtype != np.float32 \
                or batch.ndim != 4 or batch.shape[0] < 1 or batch.shape[1:] != (3, size, size):
            shape = list(batch.shape) if isinstance(batch, np.ndarray) else type(batch).__name__
            dtype = batch.dtype if isinstance(batch, np.ndarray) else None
            raise ValueError(f'backend input must be float32 [N, 3, {size}, {size}], '
                             f'got {dtype} {shape}')

    def __enter__(self) -> 'Backend':
        """Use the backend as a context manager that closes it on exit."""
        return self

    def __exit__(self, *exc_info) -> None:
        """Close the backend."""
        self.close()
