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
Inference backends and a small name -> factory registry.

A factory is called as ``factory(path, *, device='cpu', half=False, **options)`` and
returns a ``Backend``. ``path`` names what that backend loads: a checkpoint for
'torch', an exported file for the others. Each backend lives in its own module,
imported only when it is first used, so torch-free deployments do not pay for torch
and a new backend is one new module plus one line in ``_BUILTIN``.
"""

import importlib
from typing import Callable

from mtl_perception.inference.backends.base import Backend, OUTPUT_NAMES

BackendFactory = Callable[..., Backend]

# name -> module defining ``create(path, *, device, half, **options)``.
_BUILTIN = {
    'torch': 'mtl_perception.inference.backends.torch_backend',
    'onnxruntime': 'mtl_perception.inference.backends.onnxruntime_backend',
    'tensorrt': 'mtl_perception.inference.backends.tensorrt_backend',
}
_FACTORIES: dict[str, BackendFactory] = {}


def register_backend(name: str, factory: BackendFactory) -> None:
    """Register ``factory`` under ``name`` (e.g. from a plugin or a test)."""
    if name in _FACTORIES or name in _BUILTIN:
        raise ValueError(f'backend {name!r} is already registered')
    _FACTORIES[name] = factory


def list_backends() -> list[str]:
    """Names of the known backends, sorted."""
    return sorted(set(_BUILTIN) | set(_FACTORIES))


def get_backend_factory(name: str) -> BackendFactory:
    """Return the factory of backend ``name``, importing its module on first use."""
    if name not in _FACTORIES:
        if name not in _BUILTIN:
            raise ValueError(f'unknown backend {name!r}; known: {list_backends()}')
        _FACTORIES[name] = importlib.import_module(_BUILTIN[name]).create
    return _FACTORIES[name]


def create_backend(name: str, path, *, device: str = 'cpu', half: bool = False,
                   **options) -> Backend:
    """Load ``path`` with backend ``name`` on ``device`` (half precision if ``half``)."""
    return get_backend_factory(name)(path, device=device, half=half, **options)


__all__ = ['Backend', 'create_backend', 'get_backend_factory', 'list_backends',
           'OUTPUT_NAMES', 'register_backend']
