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
What TensorRT engines depend on: the optional ``tensorrt`` package and the GPU.

A serialized engine only runs with the TensorRT version that built it, on the GPU model
it was tuned for. ``mtl-perception export --format tensorrt`` records both in the
engine's card (``export.tensorrt.build``: TensorRT version, GPU name, compute
capability) together with the command that rebuilds it, and ``check_build`` compares
them with this machine before deserialising, so a stale engine fails with that command
instead of a TensorRT deserialisation error.

TensorRT is optional: ``pip install tensorrt`` (TensorRT 10) on desktops, JetPack on
Jetson. torch is used only for the CUDA device queries and buffers.
"""

import shlex


class TensorRTUnavailableError(ValueError):
    """The ``tensorrt`` package or a CUDA GPU is missing, or the engine was built elsewhere."""


def import_tensorrt():
    """
    Return the ``tensorrt`` module.

    :raises TensorRTUnavailableError: one line saying that TensorRT is not installed.
    """
    try:
        import tensorrt
    except ImportError as error:
        raise TensorRTUnavailableError(
            'TensorRT is not installed (no Python module tensorrt): install TensorRT 10 '
            '(pip install tensorrt, or JetPack on Jetson) to build or run engines') from error
    return tensorrt


def cuda_device_index(device: str) -> int:
    """
    Return the CUDA device index ``device`` names ('cuda' or 'cuda:N').

    :raises TensorRTUnavailableError: the device is not a CUDA device or no GPU is present.
    """
    import torch

    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f'bad device {device!r}: use cuda or cuda:N') from error
    if resolved.type != 'cuda':
        raise TensorRTUnavailableError(f'TensorRT runs on a CUDA GPU: pass device=cuda (or '
                                       f'cuda:N), got {device!r}')
    if not torch.cuda.is_available():
        raise TensorRTUnavailableError('TensorRT needs a CUDA GPU, and torch sees none')
    index = resolved.index if resolved.index is not None else torch.cuda.current_device()
    if index >= torch.cuda.device_count():
        raise TensorRTUnavailableError(f'device {device!r} does not exist: '
                                       f'{torch.cuda.device_count()} CUDA device(s) visible')
    return index


def build_target(trt, device_index: int) -> dict:
    """Describe what an engine built now on ``device_index`` is tied to."""
    import torch

    major, minor = torch.cuda.get_device_capability(device_index)
    return {'tensorrt_version': str(trt.__version__),
            'device_name': torch.cuda.get_device_name(device_index),
            'compute_capability': f'{major}.{minor}'}


def rebuild_command(info: dict, engine_path) -> str:
    """Return the exact ``mtl-perception export`` command that rebuilds an engine."""
    words = ['mtl-perception', 'export', '--format', 'tensorrt', '--onnx',
             str(info.get('onnx', '<model>.onnx')), '--output', str(engine_path),
             '--precision', str(info.get('precision', 'fp32'))]
    if info.get('calibration_data'):
        words += ['--calibration-data', str(info['calibration_data'])]
    if info.get('max_batch', 1) > 1:
        words += ['--max-batch', str(info['max_batch'])]
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
