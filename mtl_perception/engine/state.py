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
Resumable training state saved without pickle.

The state is two files beside the model checkpoint: ``<stem>.state.safetensors`` holds every
tensor (optimizer buffers, the loss weighting's parameters and buffers, the torch RNG state)
and ``<stem>.state.json`` everything else (epoch, step, optimizer hyper-parameters, the
scheduler and AMP scaler counters, the numpy and Python RNG states). A nested state dict is
flattened by replacing each tensor with ``{"__tensor__": key}``; loading reverses that. The
model weights themselves are the ordinary checkpoint (``inference.checkpoint``).
"""

import json
import os
from pathlib import Path
import random

import numpy as np
from safetensors.torch import load_file, save_file
import torch

STATE_VERSION = 1
_TENSOR = '__tensor__'
_TUPLE = '__tuple__'
_NDARRAY = '__ndarray__'


def state_paths(stem: str | os.PathLike) -> tuple[Path, Path]:
    """Return ``(tensors, json)`` paths of the training state of checkpoint ``stem``."""
    stem = Path(stem)
    return (stem.with_name(stem.name + '.state.safetensors'),
            stem.with_name(stem.name + '.state.json'))


def _flatten(value, prefix: str, tensors: dict):
    """Return ``value`` as JSON data, moving tensors into ``tensors`` under dotted keys."""
    if isinstance(value, torch.Tensor):
        tensors[prefix] = value.detach().to('cpu').contiguous()
        return {_TENSOR: prefix}
    if isinstance(value, np.ndarray):
        # int64/float64 hold every numpy RNG state exactly (uint32 keys, uint64 words).
        wide = value.astype(np.float64 if value.dtype.kind == 'f' else np.int64)
        tensors[prefix] = torch.from_numpy(np.ascontiguousarray(wide))
        return {_NDARRAY: prefix, 'dtype': value.dtype.str}
    if isinstance(value, dict):
        return {'__keys__': [[_flatten(k, f'{prefix}.k{i}', tensors),
                              _flatten(v, f'{prefix}.{i}', tensors)]
                             for i, (k, v) in enumerate(value.items())]}
    if isinstance(value, tuple):
        return {_TUPLE: [_flatten(v, f'{prefix}.{i}', tensors) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_flatten(v, f'{prefix}.{i}', tensors) for i, v in enumerate(value)]
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f'cannot save {prefix}: {type(value).__name__} is not a tensor or '
                     'plain data')


def _unflatten(data, tensors: dict):
    if isinstance(data, list):
        return [_unflatten(v, tensors) for v in data]
    if isinstance(data, dict):
        if _TENSOR in data:
            return tensors[data[_TENSOR]]
        if _NDARRAY in data:
            return tensors[data[_NDARRAY]].numpy().astype(np.dtype(data['dtype']))
        if _TUPLE in data:
            return tuple(_unflatten(v, tensors) for v in data[_TUPLE])
        return {_unflatten(k, tensors): _unflatten(v, tensors) for k, v in data['__keys__']}
    return data


def rng_state() -> dict:
    """Capture the torch (CPU and CUDA), numpy and Python global RNG states."""
    state = {'torch': torch.get_rng_state(), 'numpy': np.random.get_state(legacy=False),
             'python': random.getstate()}
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state['torch'])
    np.random.set_state(state['numpy'])
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state['cuda']))


def save_training_state(stem: str | os.PathLike, state: dict) -> tuple[Path, Path]:
    """
    Write ``state`` (nested dicts/lists of tensors and plain values) beside ``stem``.

    Files are written under temporary names and renamed, so an interrupted save leaves the
    previous state intact.
    """
    tensors_path, json_path = state_paths(stem)
    tensors: dict[str, torch.Tensor] = {}
    data = {'version': STATE_VERSION, 'state': _flatten(state, 'state', tensors)}
    json_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_tensors = tensors_path.with_name(tensors_path.name + '.tmp')
    tmp_json = json_path.with_name(json_path.name + '.tmp')
    save_file(tensors, str(tmp_tensors))
    tmp_json.write_text(json.dumps(data))
    os.replace(tmp_tensors, tensors_path)
    os.replace(tmp_json, json_path)
    return tensors_path, json_path


def load_training_state(stem: str | os.PathLike) -> dict:
    """Read the state saved by :func:`save_training_state`; FileNotFoundError names a file."""
    tensors_path, json_path = state_paths(stem)
    for path in (tensors_path, json_path):
        if not path.is_file():
            raise FileNotFoundError(f'training state not found: {path} (nothing to resume)')
    data = json.loads(json_path.read_text())
    if data.get('version') != STATE_VERSION:
        raise ValueError(f'{json_path}: unsupported training state version '
                         f'{data.get("version")!r}')
    return _unflatten(data['state'], load_file(str(tensors_path)))
