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
What TensorRT engines depend on: the optional packages, the GPU, and its memory.

A serialized engine only runs with the TensorRT version that built it, on the GPU model
it was tuned for. ``mtl-perception export --format tensorrt`` records both in the
engine's card (``export.tensorrt.build``: TensorRT version, GPU name, compute
capability) together with the command that rebuilds it, and ``check_build`` compares
them with this machine before deserialising, so a stale engine fails with that command
instead of a TensorRT deserialisation error.

TensorRT and the CUDA runtime bindings are optional (``pip install .[tensorrt]``:
``tensorrt`` 10 and ``cuda-python``; JetPack ships TensorRT on Jetson). Device queries,
device and page-locked host memory, streams and copies go through the CUDA runtime API
of ``cuda-python`` (``cuda.bindings.runtime``, or ``cuda.cudart`` in releases before
12.6.1), never torch: the deployment runtime does not import torch. Every CUDA call's
error code is checked (``cuda_call``), so a failure names the call that failed.
"""

import ctypes
import importlib
import re
import shlex

import numpy as np

# Where the CUDA runtime bindings live: cuda-python >= 12.6.1 (cuda-bindings), then older.
CUDART_MODULES = ('cuda.bindings.runtime', 'cuda.cudart')
INSTALL_HINT = 'pip install .[tensorrt]'
_DEVICE = re.compile(r'^cuda(?::(\d+))?$')


class TensorRTUnavailableError(ValueError):
    """TensorRT, the CUDA bindings or a CUDA GPU is missing, or the engine was built elsewhere."""


class CudaError(RuntimeError):
    """A CUDA runtime call returned an error code."""


def import_tensorrt():
    """
    Return the ``tensorrt`` module.

    :raises TensorRTUnavailableError: one line saying that TensorRT is not installed.
    """
    try:
        import tensorrt
    except ImportError as error:
        raise TensorRTUnavailableError(
            f'TensorRT is not installed (no Python module tensorrt): install TensorRT 10 '
            f'({INSTALL_HINT}, or JetPack on Jetson) to build or run engines') from error
    return tensorrt


def import_cudart():
    """
    Return the CUDA runtime bindings of ``cuda-python`` (``cuda.bindings.runtime``).

    :raises TensorRTUnavailableError: one line saying that cuda-python is not installed.
    """
    for name in CUDART_MODULES:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise TensorRTUnavailableError(
        f'cuda-python is not installed (no Python module {" or ".join(CUDART_MODULES)}): '
        f'{INSTALL_HINT} installs it with TensorRT, for the GPU memory of engines')


def _error_text(cudart, error) -> str:
    name = getattr(error, 'name', None) or str(error)
    try:
        described = cudart.cudaGetErrorString(error)
        text = described[1] if isinstance(described, tuple) else described
        text = text.decode() if isinstance(text, bytes) else str(text)
    except Exception:  # noqa: B902 (the error name alone still says what failed)
        return name
    return f'{name} ({text})'


def cuda_call(cudart, call: str, *args):
    """
    Call ``cudart.<call>(*args)``; return what it returns after its error code.

    :return: None for a call that returns only its error code, the value for one value,
        else the tuple of values.
    :raises CudaError: naming the call and the error when the code is not cudaSuccess.
    """
    result = getattr(cudart, call)(*args)
    if not isinstance(result, tuple):
        result = (result,)
    error, values = result[0], result[1:]
    if error != cudart.cudaError_t.cudaSuccess:
        raise CudaError(f'{call} failed: {_error_text(cudart, error)}')
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def parse_cuda_device(device: str) -> int | None:
    """
    Return the index ``device`` names ('cuda' -> None, the current device; 'cuda:N' -> N).

    :raises TensorRTUnavailableError: ``device`` is not a CUDA device (e.g. 'cpu').
    :raises ValueError: a malformed device string.
    """
    text = str(device).strip()
    match = _DEVICE.match(text)
    if match:
        return None if match.group(1) is None else int(match.group(1))
    if re.match(r'^(cpu|mps|xpu)(:\d+)?$', text):
        raise TensorRTUnavailableError(f'TensorRT runs on a CUDA GPU: pass device=cuda (or '
                                       f'cuda:N), got {device!r}')
    raise ValueError(f'bad device {device!r}: use cuda or cuda:N')


def cuda_device_index(device: str) -> int:
    """
    Return the CUDA device index ``device`` names ('cuda' or 'cuda:N'), checking it exists.

    :raises TensorRTUnavailableError: not a CUDA device, cuda-python missing, no NVIDIA
        driver (or one too old for this cuda-python) or no such GPU.
    """
    index = parse_cuda_device(device)
    cudart = import_cudart()
    try:
        count = cuda_call(cudart, 'cudaGetDeviceCount')
    except CudaError as error:
        raise TensorRTUnavailableError(
            f'TensorRT needs a CUDA GPU, but the CUDA runtime finds none: {error}; check that '
            'the NVIDIA driver is installed and supports the CUDA version of cuda-python '
            "(pip install 'cuda-python<13' for a CUDA 12 driver)") from error
    if count < 1:
        raise TensorRTUnavailableError('TensorRT needs a CUDA GPU, and the CUDA runtime '
                                       'sees none (cudaGetDeviceCount returned 0)')
    if index is None:
        index = cuda_call(cudart, 'cudaGetDevice')
    if index >= count:
        raise TensorRTUnavailableError(f'device {device!r} does not exist: {count} CUDA '
                                       'device(s) visible')
    return int(index)


def device_properties(device_index: int, cudart=None) -> tuple[str, str]:
    """Return the GPU name and compute capability ('8.7') of ``device_index``."""
    cudart = cudart or import_cudart()
    properties = cuda_call(cudart, 'cudaGetDeviceProperties', device_index)
    name = properties.name
    if isinstance(name, (bytes, bytearray)):
        name = bytes(name).split(b'\0', 1)[0].decode(errors='replace')
    return str(name), f'{properties.major}.{properties.minor}'


def build_target(trt, device_index: int) -> dict:
    """Describe what an engine built now on ``device_index`` is tied to."""
    name, capability = device_properties(device_index)
    return {'tensorrt_version': str(trt.__version__), 'device_name': name,
            'compute_capability': capability}


class CudaMemory:
    """
    Device buffers, host buffers and one CUDA stream on one GPU, all released by ``close``.

    Host buffers are numpy arrays, page-locked (``cudaMallocHost``) unless ``pinned`` is
    False, so that copies on the stream are truly asynchronous. Arrays from
    ``host_array`` are views of that memory: they must not be used after ``close``.

    :param device_index: the GPU (made current with ``cudaSetDevice``).
    :param cudart: the CUDA runtime bindings (default: ``import_cudart()``).
    """

    def __init__(self, device_index: int, *, cudart=None) -> None:
        """Make the device current and create the stream."""
        self.cudart = cudart or import_cudart()
        self.device_index = int(device_index)
        self._device, self._host = [], []
        self.stream = None
        self.activate()
        self.stream = cuda_call(self.cudart, 'cudaStreamCreate')

    @property
    def stream_handle(self) -> int:
        """Return the stream as the integer handle TensorRT's ``execute_async_v3`` takes."""
        if self.stream is None:
            raise RuntimeError('the CUDA memory is closed')
        return int(self.stream)

    def activate(self) -> None:
        """Make this GPU current in the calling thread (CUDA's current device is per thread)."""
        cuda_call(self.cudart, 'cudaSetDevice', self.device_index)

    def device_buffer(self, nbytes: int) -> int:
        """Allocate ``nbytes`` of device memory; return its address."""
        pointer = int(cuda_call(self.cudart, 'cudaMalloc', int(nbytes)))
        self._device.append(pointer)
        return pointer

    def host_array(self, shape: tuple[int, ...], dtype, *, pinned: bool = True) -> np.ndarray:
        """Return a host array of ``shape`` and ``dtype`` (page-locked if ``pinned``)."""
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if not pinned:
            return np.empty(shape, dtype)
        pointer = int(cuda_call(self.cudart, 'cudaMallocHost', max(nbytes, 1)))
        self._host.append(pointer)
        raw = (ctypes.c_uint8 * nbytes).from_address(pointer)
        return np.frombuffer(raw, dtype=dtype).reshape(shape)

    def copy_to_device(self, pointer: int, array: np.ndarray) -> None:
        """Queue a copy of the C-contiguous ``array`` to device address ``pointer``."""
        self._check_contiguous(array)
        cuda_call(self.cudart, 'cudaMemcpyAsync', pointer, array.ctypes.data, array.nbytes,
                  self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, self.stream)

    def copy_to_host(self, array: np.ndarray, pointer: int) -> None:
        """Queue a copy of ``array.nbytes`` from device address ``pointer`` into ``array``."""
        self._check_contiguous(array)
        cuda_call(self.cudart, 'cudaMemcpyAsync', array.ctypes.data, pointer, array.nbytes,
                  self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.stream)

    def synchronize(self) -> None:
        """Wait until everything queued on the stream has finished."""
        cuda_call(self.cudart, 'cudaStreamSynchronize', self.stream)

    def close(self) -> None:
        """Wait for the stream, then free every buffer and the stream (idempotent)."""
        if self.stream is None:
            return
        calls = [('cudaStreamSynchronize', self.stream)]
        calls += [('cudaFree', pointer) for pointer in self._device]
        calls += [('cudaFreeHost', pointer) for pointer in self._host]
        calls.append(('cudaStreamDestroy', self.stream))
        self._device, self._host, self.stream = [], [], None
        errors = []
        for call, argument in calls:  # release everything even if one call fails
            try:
                cuda_call(self.cudart, call, argument)
            except CudaError as error:
                errors.append(str(error))
        if errors:
            raise CudaError('releasing CUDA memory: ' + '; '.join(errors))

    @staticmethod
    def _check_contiguous(array: np.ndarray) -> None:
        if not array.flags.c_contiguous:
            raise ValueError('CUDA copies need a C-contiguous array, got strides '
                             f'{array.strides} for shape {list(array.shape)}')

    def __enter__(self) -> 'CudaMemory':
        """Use the memory as a context manager that closes it on exit."""
        return self

    def __exit__(self, *exc_info) -> None:
        """Release the memory."""
        self.close()


def rebuild_command(info: dict, engine_path) -> str:
    """Return the exact ``mtl-perception export`` command that rebuilds an engine."""
    words = ['mtl-perception', 'export', '--format', 'tensorrt', '--onnx',
             str(info.get('onnx', '<model>.onnx')), '--output', str(engine_path),
             '--precision', str(info.get('precision', 'fp32'))]
    if info.get('calibration_data'):
        words += ['--calibration-data', str(info['calibration_data'])]
        if info.get('calibration_images'):
            words += ['--calibration-images', str(info['calibration_images'])]
    if info.get('max_batch', 1) > 1:
        words += ['--max-batch', str(info['max_batch'])]
    if info.get('opt_batch', 1) > 1:
        words += ['--opt-batch', str(info['opt_batch'])]
    return ' '.join(shlex.quote(word) for word in words)


def check_build(info: dict, here: dict, engine_path) -> None:
    """
    Raise TensorRTUnavailableError, with the rebuild command, unless ``info`` was built here.

    :param info: the card's ``export.tensorrt`` entry (its 'build' from ``build_target``).
    :param here: ``build_target`` of this machine and device.
    """
    built = info.get('build') or {}
    differences = [f'{key} {built.get(key)!r} (engine) vs {here[key]!r} (here)'
                   for key in ('tensorrt_version', 'device_name', 'compute_capability')
                   if built.get(key) != here[key]]
    if differences:
        raise TensorRTUnavailableError(
            f'{engine_path} was built for another TensorRT or GPU ({"; ".join(differences)}); '
            f'engines only run where they were built: rebuild it here with: '
            f'{rebuild_command(info, engine_path)}')
