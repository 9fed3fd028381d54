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

"""Conversion and validation helpers shared by the evaluators."""

from typing import Any

import numpy as np


def to_numpy(value: Any, name: str, dtype: Any = None) -> np.ndarray:
    """
    Return ``value`` (numpy array, torch tensor or sequence) as a numpy array.

    Torch tensors are detached and moved to the CPU first (recognised by their methods, so
    this module never imports torch). ``name`` is only used in error messages.
    """
    if hasattr(value, 'detach') and hasattr(value, 'cpu'):
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f'{name} could not be converted to an array: {error}') from error
    if dtype is not None:
        array = array.astype(dtype, copy=False)
    return array


def as_boxes(value: Any, name: str) -> np.ndarray:
    """Return boxes as float64 ``[M, 4]``; an empty input of any shape gives ``[0, 4]``."""
    array = to_numpy(value, name, np.float64)
    if array.size == 0:
        return np.zeros((0, 4), dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f'{name} must have shape [M, 4] (x1, y1, x2, y2), got {array.shape}')
    if not np.all(np.isfinite(array)):
        raise ValueError(f'{name} contains non-finite coordinates')
    return array


def as_vector(value: Any, name: str, length: int, dtype: Any) -> np.ndarray:
    """Return a 1-D array of ``length`` entries, raising ValueError on a shape mismatch."""
    array = to_numpy(value, name)
    if array.size == 0 and length == 0:
        return np.zeros((0,), dtype=dtype)
    if array.ndim != 1 or array.shape[0] != length:
        raise ValueError(f'{name} must have shape [{length}], got {array.shape}')
    if dtype is np.int64 and array.dtype.kind not in 'iub':
        if not np.all(np.equal(np.mod(array, 1), 0)):
            raise ValueError(f'{name} must hold integer class indices, got dtype {array.dtype}')
    return array.astype(dtype, copy=False)
