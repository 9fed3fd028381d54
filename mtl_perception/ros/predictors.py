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
Load the Predictors a perception node's inference workers run.

ONNX Runtime sessions and torch modules in inference mode take concurrent runs from several
threads (the Predictor keeps its input buffer per thread), so the workers of a node on those
backends share ONE loaded model: a second worker overlaps one frame's Python work (decoding,
publishing) with another frame's inference without a second copy of the weights. A TensorRT
execution context serves one run at a time, so there each worker loads its own.
"""

from pathlib import Path

from mtl_perception.inference.predictor import Predictor
from mtl_perception.resources import model_file
from mtl_perception.ros.parameters import NodeSettings

__all__ = ['SHARED_MODEL_BACKENDS', 'close_predictors', 'demo_checkpoint', 'load_predictors']

# Backends whose loaded model takes concurrent runs from several worker threads.
SHARED_MODEL_BACKENDS = ('onnxruntime', 'torch')


def demo_checkpoint(name: str) -> Path | None:
    """Return the package's demo model ``name``, or None when its share directory is missing."""
    try:
        return model_file(name)
    except FileNotFoundError:
        return None


def load_predictors(settings: NodeSettings, score_threshold: float | None = None) -> list:
    """
    Return one Predictor per inference worker (closing those loaded if one fails).

    On ``SHARED_MODEL_BACKENDS`` every entry is the same Predictor, loaded once.
    ``score_threshold`` replaces the settings' (the tracker wants lower-scoring detections).
    """
    if score_threshold is None:
        score_threshold = settings.score_threshold
    options = {}
    if settings.inference_threads and settings.backend == 'onnxruntime':
        options['threads'] = settings.inference_threads
    elif settings.inference_threads and settings.backend == 'torch':
        import torch
        # Per process, not per worker: every worker's ops use this many threads.
        torch.set_num_threads(settings.inference_threads)
    predictors = []
    copies = 1 if settings.backend in SHARED_MODEL_BACKENDS else settings.inference_workers
    try:
        for _ in range(copies):
            predictors.append(Predictor.from_checkpoint(
                settings.checkpoint, backend=settings.backend, device=settings.device,
                half=settings.half, score_threshold=score_threshold,
                nms_threshold=settings.nms_threshold, max_detections=settings.max_detections,
                **options))
    except BaseException:
        close_predictors(predictors)
        raise
    return predictors * settings.inference_workers if copies == 1 else predictors


def close_predictors(predictors: list) -> None:
    """Close every distinct Predictor of ``predictors`` once (workers may share one)."""
    for predictor in {id(loaded): loaded for loaded in predictors}.values():
        predictor.close()
