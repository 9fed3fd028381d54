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
Build a serialized TensorRT engine from an exported ONNX file (TensorRT 10 Python API).

Precisions: 'fp32'; 'fp16' (FP16 kernels allowed); 'int8' (INT8 with FP16 fallback,
scales from an entropy calibrator, ``IInt8EntropyCalibrator2``, fed with images from a
folder). The calibration folder may be a COCO-format folder, a VOC root or a plain
folder of images: every .jpg/.jpeg/.png/.bmp below it is used, in sorted order, up to
``calibration_images``, through the same preprocessing the Predictor applies, in full
batches of ``calibration_batch_size`` images (a remainder is left out). The calibration
cache is written beside the engine (``<stem>.calibration.cache``) and reused by later
builds: delete it to recalibrate with other data.

A dynamic-batch ONNX file gets one optimisation profile, tuned for ``opt_batch`` images per
run (1 as a single-camera node runs it; the camera count for a node serving several) and
valid up to ``max_batch``; INT8 calibration runs on a
profile of its own whose MIN = OPT = MAX is the calibration batch, so the batches the
calibrator feeds always match the shape TensorRT calibrates with (``profile_shapes``).

A gated multitask export (``export.onnx.segmentation_gate`` in its card, see
``inference.onnx_gate``) is parsed from the bytes of a copy whose gate has no default:
TensorRT's parser would fold the default initializer as a build-time constant and keep
only the head. The engine then has a second input, the bool scalar ``run_segmentation``,
which the tensorrt backend sets per run (``export.tensorrt.segmentation_gate`` records
it). Untested on hardware so far (no GPU where it was written): how TensorRT builds the
``If`` node; the tests check the parsed model on a stand-in parser.

The engine goes to ``<stem>.engine``; its card (``<stem>.yaml``, shared with an ONNX
export of the same stem) gets an ``export.tensorrt`` entry that records the build
target (see ``tensorrt_support``), precision, batch range and source ONNX file.
The build runs on the GPU ``device`` names; the calibrator's device buffer comes from
the CUDA runtime of ``cuda-python`` (``tensorrt_support.CudaMemory``). This module
does not import torch.
"""

import os
from pathlib import Path
from typing import TextIO

from mtl_perception.inference import artifacts
from mtl_perception.inference.preprocess import preprocess
from mtl_perception.inference.tensorrt_support import (build_target, cuda_call,
                                                       cuda_device_index, CudaMemory,
                                                       import_cudart, import_tensorrt,
                                                       rebuild_command)
from mtl_perception.model_card import ModelCard, SEGMENTATION_GATE
import numpy as np
from PIL import Image

PRECISIONS = ('fp32', 'fp16', 'int8')
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp')
# Largest calibration batch: enough for stable activation histograms, small in memory.
MAX_CALIBRATION_BATCH = 8

Shape = tuple[int, int, int, int]


def calibration_batch_size(max_batch: int, images: int, *, dynamic: bool) -> int:
    """
    Return the INT8 calibration batch: min(max_batch, 8, images), or 1 for a fixed batch.

    :param max_batch: the largest batch of the engine's profile.
    :param images: how many calibration images there are.
    :param dynamic: whether the ONNX batch axis is dynamic (a fixed-batch export has N = 1).
    :raises ValueError: ``max_batch`` or ``images`` below 1.
    """
    if max_batch < 1:
        raise ValueError(f'max_batch must be >= 1, got {max_batch}')
    if images < 1:
        raise ValueError(f'INT8 calibration needs at least one image, got {images}')
    return min(max_batch, MAX_CALIBRATION_BATCH, images) if dynamic else 1


def profile_shapes(input_size: int, min_batch: int, opt_batch: int,
                   max_batch: int) -> tuple[Shape, Shape, Shape]:
    """
    Return the MIN, OPT and MAX input shapes ``[N, 3, S, S]`` of an optimisation profile.

    :raises ValueError: unless 1 <= min_batch <= opt_batch <= max_batch and S >= 1.
    """
    if not 1 <= min_batch <= opt_batch <= max_batch or input_size < 1:
        raise ValueError(f'bad profile: batches {min_batch} <= {opt_batch} <= {max_batch} '
                         f'(from 1) and input size {input_size} (from 1)')
    return tuple((batch, 3, input_size, input_size)
                 for batch in (min_batch, opt_batch, max_batch))


def calibration_files(folder: str | os.PathLike, limit: int) -> list[Path]:
    """
    Return up to ``limit`` image files below ``folder`` in sorted order.

    :raises FileNotFoundError: the folder does not exist or holds no image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f'calibration data folder not found: {folder}')
    files = sorted(p for p in folder.rglob('*') if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f'{folder}: no images ({", ".join(IMAGE_SUFFIXES)}) for '
                                'INT8 calibration')
    return files[:limit]


def calibration_batches(files: list[Path], card: ModelCard, batch_size: int):
    """Yield float32 ``[batch_size, 3, S, S]`` preprocessed batches (full batches only)."""
    for start in range(0, len(files) - batch_size + 1, batch_size):
        images = [np.asarray(Image.open(path).convert('RGB'))
                  for path in files[start:start + batch_size]]
        yield np.concatenate([preprocess(image, card.input_size, card.mean, card.std)
                              for image in images])


def make_calibrator(trt, files: list[Path], card: ModelCard, batch_size: int, cache: Path,
                    memory: CudaMemory):
    """
    Return an ``IInt8EntropyCalibrator2`` over ``files`` that caches to ``cache``.

    :param memory: where its device buffers (and page-locked host buffers) are allocated;
        the caller closes it after the build.

    A gated network's second input, the segmentation gate, is fed True (one device byte),
    so the segmentation head is calibrated too.
    """
    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        """Feed preprocessed images to TensorRT through one reused device buffer."""

        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            shape = (batch_size, 3, card.input_size, card.input_size)
            self.host = memory.host_array(shape, np.float32)
            self.device = memory.device_buffer(self.host.nbytes)
            self.gate = memory.device_buffer(1)
            memory.copy_to_device(self.gate, np.ones((), np.bool_))
            memory.synchronize()
            self.batches = calibration_batches(files, card, batch_size)

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names, *args):
            batch = next(self.batches, None)
            if batch is None:
                return None
            self.host[...] = batch
            memory.copy_to_device(self.device, self.host)
            memory.synchronize()
            return [self.gate if name == SEGMENTATION_GATE else self.device for name in names]

        def read_calibration_cache(self, *args):
            return cache.read_bytes() if cache.is_file() else None

        def write_calibration_cache(self, data, *args) -> None:
            cache.write_bytes(bytes(data))

    return EntropyCalibrator()


def onnx_to_parse(onnx_path: Path, card: ModelCard) -> bytes | None:
    """
    Return the model bytes TensorRT should parse, or None to parse the file as it is.

    A gated export (its card says so) comes back with its gate made a required input.
    """
    if card.export.get('onnx', {}).get('segmentation_gate') != SEGMENTATION_GATE:
        return None
    import onnx

    from mtl_perception.inference.onnx_gate import runtime_gate_model

    # External data (none in our exports) would be looked up beside onnx_path.
    return runtime_gate_model(onnx.load(str(onnx_path))).SerializeToString()


def _profile(builder, shapes: tuple[Shape, Shape, Shape]):
    profile = builder.create_optimization_profile()
    profile.set_shape(artifacts.INPUT_NAME, *shapes)
    return profile


def build_engine(onnx_path: str | os.PathLike, engine_path: str | os.PathLike, *,
                 precision: str = 'fp16', calibration_data: str | os.PathLike | None = None,
                 calibration_images: int = 256, max_batch: int = 8, opt_batch: int = 1,
                 device: str = 'cuda',
                 workspace_gb: float = 2.0, progress: TextIO | None = None) -> dict:
    """
    Build ``engine_path`` from ``onnx_path`` (with its card beside it); see the module doc.

    :param max_batch: largest batch of the engine's profile when the ONNX batch axis is
        dynamic (ignored for a fixed batch of 1).
    :param opt_batch: the batch the profile is tuned for: 1 for a node serving one camera, the
        number of cameras for a node serving several (``cameras``), whose frames run together.
    :return: the ``export.tensorrt`` card entry written.
    :raises TensorRTUnavailableError: no tensorrt or cuda-python package, or no CUDA GPU.
    :raises ValueError: bad options, or TensorRT cannot parse the file or build it.
    """
    if precision not in PRECISIONS:
        raise ValueError(f'unknown precision {precision!r}; known: {PRECISIONS}')
    if precision == 'int8' and calibration_data is None:
        raise ValueError('INT8 needs --calibration-data DIR (images like those deployed on)')
    trt = import_tensorrt()
    index = cuda_device_index(device)
    onnx_path, engine_path = Path(onnx_path).resolve(), Path(engine_path)
    if engine_path.suffix != artifacts.EXPORT_SUFFIXES['tensorrt']:
        raise ValueError(f'the engine file must end in .engine, got {engine_path}')
    card = artifacts.read_export_card(onnx_path, 'onnx')
    anchors = artifacts.read_anchors(onnx_path, card)
    artifacts.check_card_writable(engine_path, card)
    size = card.input_size
    files = []
    if precision == 'int8':
        files = calibration_files(calibration_data, calibration_images)
    # The builder works on the current device of this thread.
    cuda_call(import_cudart(), 'cudaSetDevice', index)
    target = build_target(trt, index)

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    model_bytes = onnx_to_parse(onnx_path, card)
    parsed = (parser.parse_from_file(str(onnx_path)) if model_bytes is None
              else parser.parse(model_bytes, str(onnx_path)))
    if not parsed:
        errors = '; '.join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ValueError(f'{onnx_path}: TensorRT cannot parse the ONNX file: {errors}')
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    # Input 0 is images (the gate, when there is one, comes second).
    dynamic = network.get_input(0).shape[0] == -1
    max_batch = int(max_batch) if dynamic else 1
    opt_batch = int(opt_batch) if dynamic else 1
    if max_batch < 1:
        raise ValueError(f'max_batch must be >= 1, got {max_batch}')
    if not 1 <= opt_batch <= max_batch:
        raise ValueError(f'opt_batch must be between 1 and max_batch={max_batch}, got '
                         f'{opt_batch}')
    if dynamic:
        # Tuned for the batch a node runs: one image per camera it serves.
        config.add_optimization_profile(_profile(
            builder, profile_shapes(size, 1, opt_batch, max_batch)))
    if precision in ('fp16', 'int8'):
        config.set_flag(trt.BuilderFlag.FP16)
    cache = engine_path.with_name(artifacts.stem_of(engine_path).name + '.calibration.cache')
    calibration_batch = 0
    memory = None
    try:
        if precision == 'int8':
            calibration_batch = calibration_batch_size(max_batch, len(files), dynamic=dynamic)
            memory = CudaMemory(index)
            config.set_flag(trt.BuilderFlag.INT8)
            config.int8_calibrator = make_calibrator(trt, files, card, calibration_batch,
                                                     cache, memory)
            if dynamic:
                # Calibration runs at the profile's OPT shape: exactly the batch fed.
                config.set_calibration_profile(_profile(builder, profile_shapes(
                    size, calibration_batch, calibration_batch, calibration_batch)))
        if progress is not None:
            print(f'building a {precision} TensorRT {trt.__version__} engine for '
                  f'{target["device_name"]} from {onnx_path} (minutes)...',
                  file=progress, flush=True)
        serialized = builder.build_serialized_network(network, config)
    finally:
        if memory is not None:
            memory.close()
    if serialized is None:
        raise ValueError(f'TensorRT could not build an engine from {onnx_path}; its log '
                         'above says why')
    used = len(files) - len(files) % calibration_batch if files else 0
    info = {
        'file': engine_path.name,
        'format': 'tensorrt',
        'precision': precision,
        'input_size': size,
        'max_batch': max_batch,
        'opt_batch': opt_batch,
        'onnx': str(onnx_path),
        'segmentation_gate': SEGMENTATION_GATE if model_bytes is not None else None,
        'calibration_data': str(Path(calibration_data).resolve()) if files else None,
        'calibration_images': used,
        'calibration_batch': calibration_batch or None,
        'build': target,
        'created': artifacts.utc_now(),
    }
    info['rebuild_command'] = rebuild_command(info, engine_path.resolve())
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = engine_path.with_name(engine_path.name + '.tmp')
    with open(tmp, 'wb') as stream:
        stream.write(serialized)
    artifacts.write_export_card(engine_path, card, 'tensorrt', info)
    artifacts.write_anchors(engine_path, anchors)
    os.replace(tmp, engine_path)
    return info
