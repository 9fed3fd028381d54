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

This module needs numpy and PyYAML only: a deployment with ONNX Runtime does not
import torch.
"""

import datetime
import os
from pathlib import Path

import numpy as np
import yaml

EXPORT_SUFFIXES = {'onnx': '.onnx', 'tensorrt': '.engine'}
CARD_SUFFIX = '.yaml'
ANCHORS_SUFFIX = '.anchors.npy'
WEIGHTS_SUFFIX = '.safetensors'
INPUT_NAME = 'images'
# Raw outputs per task, in the order networks emit them (see MultiTaskModel.forward_raw).
TASK_OUTPUTS = {'detection': ('loc', 'scores'), 'segmentation': ('seg_logits',)}
# What identifies the network an exported file holds; two cards that agree on these
# describe the same network and may share one card file.
IDENTITY_KEYS = ('architecture', 'arch_kwargs', 'tasks', 'input_size', 'mean', 'std',
                 'classes')
_RUNTIME_KEYS = ('tasks', 'input_size', 'mean', 'std', 'classes')


class ExportedModelError(ValueError):
    """An exported model or a file beside it is missing, malformed or inconsistent."""


def utc_now() -> str:
    """Return the current UTC time as an ISO 8601 string (seconds)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')


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


def _check_runtime_card(card, path: Path, fmt: str) -> dict:
    if not isinstance(card, dict):
        raise ExportedModelError(f'{path}: the model card is not a YAML mapping')
    missing = [key for key in _RUNTIME_KEYS if key not in card]
    if missing:
        raise ExportedModelError(f'{path}: the model card lacks the keys {missing}')
    tasks = card['tasks']
    if not isinstance(tasks, list) or not tasks or any(t not in TASK_OUTPUTS for t in tasks):
        raise ExportedModelError(f'{path}: tasks must be a non-empty list from '
                                 f'{tuple(TASK_OUTPUTS)}, got {tasks!r}')
    if not isinstance(card['input_size'], int) or card['input_size'] < 1:
        raise ExportedModelError(f'{path}: input_size must be a positive int, '
                                 f'got {card["input_size"]!r}')
    for key in ('mean', 'std'):
        value = card[key]
        if not isinstance(value, list) or len(value) != 3 \
                or not all(isinstance(v, (int, float)) for v in value):
            raise ExportedModelError(f'{path}: {key} must be 3 numbers, got {value!r}')
    classes = card['classes']
    for task in tasks:
        names = classes.get(task) if isinstance(classes, dict) else None
        if not isinstance(names, list) or not names:
            raise ExportedModelError(f'{path}: classes must list the {task} class names, '
                                     f'got {names!r}')
    export = card.get('export')
    if not isinstance(export, dict) or not isinstance(export.get(fmt), dict):
        raise ExportedModelError(
            f'{path}: the model card has no export.{fmt} section, so it does not describe a '
            f'{fmt} export (was the file exported with mtl-perception export?)')
    return card


def read_export_card(artifact: str | os.PathLike, fmt: str) -> dict:
    """
    Read and check the model card beside an exported file.

    :raises ExportedModelError: naming the card when it is missing, not YAML, lacks what
        the Predictor needs (tasks, input_size, mean, std, classes) or has no
        ``export.<fmt>`` section.
    """
    path = card_path(artifact)
    if not path.is_file():
        raise ExportedModelError(f'{path}: model card not found beside {artifact} (an export '
                                 'needs its <stem>.yaml for the classes and preprocessing)')
    try:
        card = yaml.safe_load(path.read_text(encoding='utf-8'))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ExportedModelError(f'{path}: the model card is not valid YAML: {error}') from error
    return _check_runtime_card(card, path, fmt)


def output_names(card: dict) -> tuple[str, ...]:
    """Return the raw output names of a network with the card's tasks, in order."""
    return tuple(name for task in ('detection', 'segmentation') if task in card['tasks']
                 for name in TASK_OUTPUTS[task])


def read_anchors(artifact: str | os.PathLike, card: dict) -> np.ndarray | None:
    """
    Return the default boxes float32 ``[A, 4]`` beside ``artifact`` (None without detection).

    :raises ExportedModelError: the file is missing, not a plain ``.npy`` array or not
        ``[A, 4]``.
    """
    if 'detection' not in card['tasks']:
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


def _identity(card: dict) -> dict:
    return {key: card.get(key) for key in IDENTITY_KEYS}


def _card_to_update(artifact: str | os.PathLike, base_card: dict) -> dict | None:
    """Return the card already beside ``artifact`` for the same network, else None."""
    path = card_path(artifact)
    existing = None
    if path.is_file():
        try:
            existing = yaml.safe_load(path.read_text(encoding='utf-8'))
        except (yaml.YAMLError, UnicodeDecodeError):
            existing = None
    if isinstance(existing, dict) and _identity(existing) == _identity(base_card):
        return existing
    stem = stem_of(artifact)
    weights = stem.with_name(stem.name + WEIGHTS_SUFFIX)
    if weights.is_file():
        raise ValueError(
            f'{path} is the model card of the checkpoint {weights}, which differs from the '
            'exported network (input size or model); refusing to overwrite it: choose '
            'another --output')
    return None


def check_card_writable(artifact: str | os.PathLike, base_card: dict) -> None:
    """Raise ValueError now if ``write_export_card`` would refuse to write this card."""
    _card_to_update(artifact, base_card)


def write_export_card(artifact: str | os.PathLike, base_card: dict, fmt: str,
                      info: dict) -> Path:
    """
    Write the card beside ``artifact``: ``base_card`` plus ``export.<fmt>`` = ``info``.

    A card already there for the same network (same ``IDENTITY_KEYS``) keeps its other
    keys and export entries. A card for another network is replaced, unless a checkpoint
    (``<stem>.safetensors``) lies beside it: that card belongs to the checkpoint.

    :raises ValueError: the card would overwrite a checkpoint's card for another network.
    """
    path = card_path(artifact)
    card = _card_to_update(artifact, base_card)
    if card is None:
        card = {key: value for key, value in base_card.items() if key != 'export'}
    exports = card.get('export') if isinstance(card.get('export'), dict) else {}
    exports[fmt] = info
    card['export'] = exports
    tmp = path.with_name(path.name + '.tmp')
    with open(tmp, 'w', encoding='utf-8') as stream:
        yaml.safe_dump(card, stream, sort_keys=False)
    os.replace(tmp, path)
    return path


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
