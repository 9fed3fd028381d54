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
ONNX exports of the replayed checkpoints, made once and cached by checkpoint content.

The CPU deployment path runs the nodes with ONNX Runtime. A replay with that backend exports
each checkpoint (weights + model card) into ``<cache>/onnx/<stem>-<digest>-r<revision>.onnx``,
where the digest hashes both files, so a retrained model gets a new export and an unchanged one
is never exported twice. The export is verified against PyTorch by ``inference.export``.

The exports have a dynamic batch axis (a node batches the frames of several cameras) and a
multitask export is gated (``inference.onnx_gate``: the node can skip the segmentation head on
frames that publish no mask). ``EXPORT_REVISION`` names how the cache exports are made: it
changes whenever that does, so exports cached by an older package are not reused.
"""

import hashlib
import os
from pathlib import Path
from typing import Optional

from mtl_perception.inference import artifacts

__all__ = ['cached_onnx', 'checkpoint_digest', 'default_cache', 'EXPORT_REVISION',
           'onnx_checkpoints']

# 1: fixed batch of 1, ungated; 2: dynamic batch, segmentation gate on multitask models.
EXPORT_REVISION = 2


def default_cache() -> Path:
    """Return the cache directory: $XDG_CACHE_HOME/mtl_perception or ~/.cache/..."""
    root = os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache'
    return Path(root) / 'mtl_perception'


def checkpoint_digest(checkpoint: Path) -> str:
    """Return a short SHA-256 of the checkpoint's weights and model card."""
    stem = artifacts.stem_of(checkpoint)
    digest = hashlib.sha256()
    for path in (stem.with_suffix('.safetensors'), stem.with_suffix('.yaml')):
        if not path.is_file():
            raise FileNotFoundError(f'checkpoint file missing: {path}')
        with open(path, 'rb') as handle:
            for block in iter(lambda: handle.read(1 << 20), b''):
                digest.update(block)
    return digest.hexdigest()[:16]


def _complete(target: Path) -> bool:
    """Whether ``target`` and the card and default boxes beside it read back, as made now."""
    if not target.is_file():
        return False
    try:
        card = artifacts.read_export_card(target, 'onnx')
        artifacts.read_anchors(target, card)
    except (OSError, ValueError):
        return False
    return bool(card.export['onnx'].get('dynamic_batch'))


def cached_onnx(checkpoint: Path, cache: Path, progress: bool = True) -> Path:
    """
    Return the ONNX export of ``checkpoint`` in ``cache``, exporting it if not there yet.

    ``checkpoint`` may already be an ``.onnx`` file: it is returned as it is.
    """
    checkpoint = Path(checkpoint)
    if checkpoint.suffix == '.onnx':
        return checkpoint
    stem = artifacts.stem_of(checkpoint)
    name = f'{stem.name}-{checkpoint_digest(checkpoint)}-r{EXPORT_REVISION}.onnx'
    target = Path(cache) / 'onnx' / name
    if _complete(target):
        if progress:
            print(f'    cached: {target}', flush=True)
        return target
    if progress:
        print(f'    exporting {checkpoint} -> {target}', flush=True)
    # Exporting loads torch: only now, when an export is really needed.
    from mtl_perception.inference.export import export_checkpoint_onnx
    target.parent.mkdir(parents=True, exist_ok=True)
    export_checkpoint_onnx(stem, target, dynamic_batch=True, segmentation_gate=True)
    return target


def onnx_checkpoints(checkpoints: dict, cache: Optional[Path] = None,
                     progress: bool = True) -> dict:
    """Return ``checkpoints`` ({key: path}) with every path replaced by its cached export."""
    cache = Path(cache) if cache is not None else default_cache()
    return {key: cached_onnx(path, cache, progress) for key, path in checkpoints.items()}
