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
Exported models on disk: the network file and the two files written beside it.

An export ``<stem>.onnx`` (or ``<stem>.engine`` for TensorRT) has beside it:

* ``<stem>.yaml``: the model card of the checkpoint it came from (tasks, input size,
  mean/std, class names), with an ``export`` section holding one entry per format
  (``export: {onnx: {...}, tensorrt: {...}}``) that records how the file was made and
  how it was verified;
* ``<stem>.anchors.npy``: the default boxes, float32 ``[A, 4]`` ``(cx, cy, w, h)``
  normalised to ``[0, 1]`` (detection networks only), read with ``allow_pickle=False``.

An ONNX file and an engine with the same stem share the card and the default boxes.
Exporting beside a checkpoint with the same stem adds the ``export`` section to that
checkpoint's own card; a different network or input size is refused there, so an
export never breaks the checkpoint it sits beside.

Backends name what they load either by the exported file itself or by a checkpoint
name (``<stem>``, ``<stem>.safetensors``, ``<stem>.yaml``) whose export lies beside
it, so a node keeps its ``checkpoint`` parameter and switches only ``backend``.

This module needs numpy and PyYAML only: a deployment with ONNX Runtime or TensorRT
does not import torch.
"""

import os
from pathlib import Path

from mtl_perception.model_card import INPUT_NAME, ModelCard, ModelCardError, utc_now
import numpy as np

__all__ = ['ANCHORS_SUFFIX', 'CARD_SUFFIX', 'EXPORT_SUFFIXES', 'ExportedModelError', 'INPUT_NAME',
           'anchors_path', 'card_path', 'check_card_writable', 'export_path', 'read_anchors',
           'read_export_card', 'resolve_artifact', 'stem_of', 'utc_now', 'write_anchors',
           'write_export_card']

EXPORT_SUFFIXES = {'onnx': '.onnx', 'tensorrt': '.engine'}
CARD_SUFFIX = '.yaml'
ANCHORS_SUFFIX = '.anchors.npy'
WEIGHTS_SUFFIX = '.safetensors'


class ExportedModelError(ValueError):
    """An exported model or a file beside it is missing, malformed or inconsistent."""


def stem_of(path: str | os.PathLike) -> Path:
    """Return ``path`` without its export, card or weights suffix."""
    path = Path(path)
    for suffix in (*EXPORT_SUFFIXES.values(), CARD_SUFFIX, WEIGHTS_SUFFIX):
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            return path.with_name(path.name[:-len(suffix)])
    return path


def card_path(artifact: str | os.PathLike) -> Path:
    """Return the model card path ``<stem>.yaml`` of an exported file."""
    stem = stem_of(artifact)
    return stem.with_name(stem.name + CARD_SUFFIX)


def anchors_path(artifact: str | os.PathLike) -> Path:
    """Return the default-box file path ``<stem>.anchors.npy`` of an exported file."""
    stem = stem_of(artifact)
    return stem.with_name(stem.name + ANCHORS_SUFFIX)


def export_path(path: str | os.PathLike, fmt: str) -> Path:
    """Return where the ``fmt`` export of ``path`` (an export or a checkpoint name) lies."""
    if fmt not in EXPORT_SUFFIXES:
        raise ValueError(f'unknown export format {fmt!r}; known: {sorted(EXPORT_SUFFIXES)}')
    stem = stem_of(path)
    return stem.with_name(stem.name + EXPORT_SUFFIXES[fmt])


def resolve_artifact(path: str | os.PathLike, fmt: str) -> Path:
    """
    Return the existing ``fmt`` export that ``path`` names.

    :param path: the exported file, or a checkpoint name whose export lies beside it.
    :param fmt: 'onnx' or 'tensorrt'.
    :return: the path of the exported file.
    :raises FileNotFoundError: naming the file looked for and the command that makes it.
    """
    artifact = export_path(path, fmt)
    if not artifact.is_file():
        checkpoint = stem_of(path)
        raise FileNotFoundError(
            f'{artifact}: no {fmt} export found for {path}; make it with: mtl-perception '
            f'export --checkpoint {checkpoint} --format {fmt} --output {artifact}')
    return artifact


def read_export_card(artifact: str | os.PathLike, fmt: str) -> ModelCard:
    """
    Read and check the model card beside an exported file.

    :raises ExportedModelError: naming the card when it is missing, not YAML, invalid, or
        has no ``export.<fmt>`` section.
    """
    path = card_path(artifact)
    if not path.is_file():
        raise ExportedModelError(f'{path}: model card not found beside {artifact} (an export '
                                 'needs its <stem>.yaml for the classes and preprocessing)')
    try:
        card = ModelCard.load(path)
    except ModelCardError as error:
        raise ExportedModelError(str(error)) from error
    if fmt not in card.export:
        raise ExportedModelError(
            f'{path}: the model card has no export.{fmt} section, so it does not describe a '
            f'{fmt} export (was the file exported with mtl-perception export?)')
    return card


def read_anchors(artifact: str | os.PathLike, card: ModelCard) -> np.ndarray | None:
    """
    Return the default boxes float32 ``[A, 4]`` beside ``artifact`` (None without detection).

    :raises ExportedModelError: the file is missing, not a plain ``.npy`` array or not
        ``[A, 4]``.
    """
    if 'detection' not in card.tasks:
        return None
    path = anchors_path(artifact)
    if not path.is_file():
        raise ExportedModelError(f'{path}: default boxes not found beside {artifact} '
                                 '(a detection export needs its <stem>.anchors.npy)')
    try:
        anchors = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ExportedModelError(f'{path}: not a readable .npy array: {error}') from error
    if anchors.ndim != 2 or anchors.shape[1] != 4 or anchors.shape[0] < 1:
        raise ExportedModelError(f'{path}: default boxes must have shape [A, 4], '
                                 f'got {list(anchors.shape)}')
    return anchors.astype(np.float32)


def _card_to_update(artifact: str | os.PathLike, base_card: ModelCard) -> ModelCard | None:
    """Return the card already beside ``artifact`` for the same network, else None."""
    path = card_path(artifact)
    existing = None
    if path.is_file():
        try:
            existing = ModelCard.load(path)
        except ModelCardError:
            existing = None
    if existing is not None and existing.identity() == base_card.identity():
        return existing
    stem = stem_of(artifact)
    weights = stem.with_name(stem.name + WEIGHTS_SUFFIX)
    if weights.is_file():
        raise ValueError(
            f'{path} is the model card of the checkpoint {weights}, which differs from the '
            'exported network (input size or model); refusing to overwrite it: choose '
            'another --output')
    return None


def check_card_writable(artifact: str | os.PathLike, base_card: ModelCard) -> None:
    """Raise ValueError now if ``write_export_card`` would refuse to write this card."""
    _card_to_update(artifact, base_card)


def write_export_card(artifact: str | os.PathLike, base_card: ModelCard, fmt: str,
                      info: dict) -> Path:
    """
    Write the card beside ``artifact``: ``base_card`` plus ``export.<fmt>`` = ``info``.

    A card already there for the same network (same ``ModelCard.identity``) keeps its other
    keys and export entries. A card for another network is replaced, unless a checkpoint
    (``<stem>.safetensors``) lies beside it: that card belongs to the checkpoint.

    :raises ValueError: the card would overwrite a checkpoint's card for another network.
    """
    card = _card_to_update(artifact, base_card)
    if card is None:
        card = base_card.with_changes(export={})
    return card.with_export(fmt, info).save(card_path(artifact))


def write_anchors(artifact: str | os.PathLike, anchors: np.ndarray | None) -> Path | None:
    """Write ``<stem>.anchors.npy`` (or remove a stale one when ``anchors`` is None)."""
    path = anchors_path(artifact)
    if anchors is None:
        if path.is_file():
            path.unlink()
        return None
    tmp = path.with_name(path.name + '.tmp.npy')
    np.save(tmp, np.ascontiguousarray(anchors, dtype=np.float32), allow_pickle=False)
    os.replace(tmp, path)
    return path
