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
The Predictor: image -> preprocess -> backend -> decode/NMS and mask -> Prediction.

Everything except running the network is done here, once for all backends, with the
torch-free decoding of ``inference.decode``: a Predictor on ONNX Runtime or TensorRT runs
with numpy alone.

The mask is computed only for images that ask for it (``segmentation``), so a node can
publish masks at a lower rate than detections: when no image of a batch needs one, the
backend runs without the segmentation head (``skips_segmentation`` says whether it can
really leave the head out; an export made before the gate runs the whole network), and
masks are decoded and resized only for the images that asked.
"""

from dataclasses import dataclass, field
import threading
import time
from typing import Sequence

from mtl_perception.inference.backends import Backend, create_backend
from mtl_perception.inference.decode import decode_image_detections, decode_mask
from mtl_perception.inference.preprocess import preprocess, validate_image
from mtl_perception.model_card import ModelCard
import numpy as np


@dataclass
class Prediction:
    """
    What the network found in one image, in the image's own pixel coordinates.

    Fields:
        boxes: float32 ``[M, 4]`` ``(x1, y1, x2, y2)`` in pixels of the original image.
        scores: float32 ``[M]``, descending.
        labels: int64 ``[M]`` 0-based detection class indices (no background).
        mask: uint8 ``[H, W]`` segmentation class index per pixel at the original image
            size, or None when the model has no segmentation task or the image was
            predicted with ``segmentation=False``.
        timings: milliseconds spent in 'preprocess', 'inference' and 'postprocess'.

    Boxes, scores and labels are empty arrays (never None) when nothing is found or
    the model has no detection task.
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    mask: np.ndarray | None
    timings: dict[str, float] = field(default_factory=dict)


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def _segmentation_flags(segmentation: bool | Sequence[bool], count: int) -> list[bool]:
    """Return one bool per image from one flag or a list of ``count`` flags."""
    if isinstance(segmentation, (bool, np.bool_)):
        return [bool(segmentation)] * count
    sequence = isinstance(segmentation, (Sequence, np.ndarray))
    if isinstance(segmentation, (str, bytes)) or not sequence:
        raise ValueError('segmentation must be a bool or a sequence of bools, got '
                         f'{type(segmentation).__name__}')
    flags = list(segmentation)
    if len(flags) != count:
        raise ValueError(f'segmentation has {len(flags)} flags for {count} images')
    wrong = [f for f in flags if not isinstance(f, (bool, np.bool_))]
    if wrong:
        raise ValueError(f'segmentation flags must be bools, got {wrong[:3]!r}')
    return [bool(f) for f in flags]


class Predictor:
    """
    Run one network on RGB images.

    Inputs:
        backend: a loaded ``Backend``.
        card: the model card (tasks, input size, mean, std, classes).
        anchors: float32 ``[A, 4]`` default boxes ``(cx, cy, w, h)`` in ``[0, 1]``;
            required when the model detects, ignored otherwise.
        score_threshold: minimum class probability of a returned box.
        nms_threshold: IoU above which a lower-scoring box of the same class is dropped.
        max_detections: most boxes returned per image.
    """

    def __init__(self, backend: Backend, card: ModelCard, *, anchors: np.ndarray | None,
                 score_threshold: float = 0.3, nms_threshold: float = 0.45,
                 max_detections: int = 100) -> None:
        """Check the thresholds and keep the backend."""
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f'score_threshold must be in [0, 1], got {score_threshold}')
        if not 0.0 <= nms_threshold <= 1.0:
            raise ValueError(f'nms_threshold must be in [0, 1], got {nms_threshold}')
        if int(max_detections) < 1:
            raise ValueError(f'max_detections must be >= 1, got {max_detections}')
        self.backend: Backend | None = backend
        self.card = card
        self.tasks: tuple[str, ...] = card.tasks
        self.class_names: dict[str, list[str]] = {
            task: list(card.classes[task]) for task in self.tasks}
        self.input_size = card.input_size
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.max_detections = int(max_detections)
        self._mean = card.mean
        self._std = card.std
        self._anchors = None
        if 'detection' in self.tasks:
            anchors = np.asarray(anchors, dtype=np.float32) if anchors is not None else None
            if anchors is None or anchors.ndim != 2 or anchors.shape[1] != 4:
                raise ValueError('a detection model needs anchors of shape [A, 4], got '
                                 f'{None if anchors is None else list(anchors.shape)}')
            self._anchors = np.ascontiguousarray(anchors)
        # Per-thread input buffers: a frame's input is built in place, and two threads
        # predicting at once (e.g. one per camera) never write into each other's.
        self._buffers = threading.local()

    @classmethod
    def from_checkpoint(cls, path, *, backend: str = 'torch', device: str = 'cpu',
                        half: bool = False, score_threshold: float = 0.3,
                        nms_threshold: float = 0.45, max_detections: int = 100,
                        **backend_options) -> 'Predictor':
        """
        Load ``path`` with the named backend and wrap it in a Predictor.

        ``path`` is what the backend loads: a checkpoint (``<stem>``, ``.safetensors`` or
        ``.yaml``) for 'torch'; the exported ``.onnx`` for 'onnxruntime' and ``.engine``
        for 'tensorrt' (or the checkpoint name when the export lies beside it with the
        same stem, see ``inference.artifacts``). Checkpoint problems raise
        ``CheckpointError``; problems with exported files ``ExportedModelError``.
        """
        loaded = create_backend(backend, path, device=device, half=half, **backend_options)
        try:
            return cls(loaded, loaded.card, anchors=loaded.anchors,
                       score_threshold=score_threshold, nms_threshold=nms_threshold,
                       max_detections=max_detections)
        except Exception:
            loaded.close()
            raise

    def _backend(self) -> Backend:
        if self.backend is None:
            raise RuntimeError('the predictor is closed')
        return self.backend

    @property
    def skips_segmentation(self) -> bool:
        """Whether predicting without segmentation really skips the segmentation head."""
        return bool(getattr(self._backend(), 'skips_segmentation', False))

    def predict(self, image: np.ndarray, segmentation: bool = True) -> Prediction:
        """
        Detect and/or segment one image.

        Inputs:
            image: uint8 ``[H, W, 3]`` RGB.
            segmentation: False: no mask (``mask`` None) and no segmentation head run
                where the backend can skip it.

        Errors:
            ValueError: naming the shape when the image is not a non-empty uint8
                ``[H, W, 3]`` array.
        """
        return self.predict_batch([image], segmentation=segmentation)[0]

    def predict_batch(self, images: Sequence[np.ndarray],
                      segmentation: bool | Sequence[bool] = True) -> list[Prediction]:
        """
        Predict several images (any sizes) in one network run.

        :param images: uint8 ``[H, W, 3]`` RGB images.
        :param segmentation: whether each image needs its mask: one flag for all, or one
            per image. Images without have ``mask`` None. When none needs it, the network
            runs without the segmentation head; otherwise the head runs for the whole
            batch and only the asked masks are decoded.
        :raises ValueError: a bad image, or a flag list of another length than ``images``.

        Each Prediction's 'inference' timing is the batch's run time divided evenly.
        """
        backend = self._backend()
        flags = _segmentation_flags(segmentation, len(images))
        if len(images) == 0:
            return []
        for image in images:
            validate_image(image)
        batch = self._input_buffer(len(images))
        pre_ms = []
        for index, image in enumerate(images):
            start = time.perf_counter()
            preprocess(image, self.input_size, self._mean, self._std,
                       out=batch[index:index + 1])
            pre_ms.append(_ms_since(start))
        start = time.perf_counter()
        # Backends run synchronously and return new arrays, so the buffer is free to be
        # overwritten by the next call once run() has returned.
        outputs = backend.run(batch, segmentation=any(flags))
        infer_ms = _ms_since(start) / len(images)
        predictions = []
        for index, image in enumerate(images):
            start = time.perf_counter()
            boxes, scores, labels = self._detections(outputs, index, image.shape[:2])
            mask = self._mask(outputs, index, image.shape[:2]) if flags[index] else None
            predictions.append(Prediction(
                boxes=boxes, scores=scores, labels=labels, mask=mask,
                timings={'preprocess': pre_ms[index], 'inference': infer_ms,
                         'postprocess': _ms_since(start)}))
        return predictions

    def _input_buffer(self, batch_size: int) -> np.ndarray:
        buffer = getattr(self._buffers, 'input', None)
        if buffer is None or buffer.shape[0] != batch_size:
            buffer = np.empty((batch_size, 3, self.input_size, self.input_size), np.float32)
            self._buffers.input = buffer
        return buffer

    def _detections(self, outputs: dict[str, np.ndarray], index: int,
                    image_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if 'detection' not in self.tasks:
            return (np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                    np.zeros(0, np.int64))
        boxes, scores, labels = decode_image_detections(
            outputs['loc'][index], outputs['scores'][index], self._anchors,
            score_threshold=self.score_threshold, nms_threshold=self.nms_threshold,
            max_detections=self.max_detections)
        height, width = image_hw
        # The network saw the whole image stretched to S x S, so normalised x scales by
        # the width and y by the height.
        scale = np.array([width, height, width, height], dtype=np.float32)
        return boxes * scale, scores, labels

    def _mask(self, outputs: dict[str, np.ndarray], index: int,
              image_hw: tuple[int, int]) -> np.ndarray | None:
        if 'segmentation' not in self.tasks:
            return None
        return decode_mask(outputs['seg_logits'][index], *image_hw)

    def close(self) -> None:
        """Release the backend and its model (idempotent)."""
        if self.backend is not None:
            self.backend.close()
            self.backend = None

    def __enter__(self) -> 'Predictor':
        """Use the predictor as a context manager that closes it on exit."""
        return self

    def __exit__(self, *exc_info) -> None:
        """Close the predictor."""
        self.close()
