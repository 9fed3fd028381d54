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
The model card: the one definition of what a trained or exported network is.

A card travels with every model file: beside a checkpoint (``<stem>.yaml`` next to
``<stem>.safetensors``) and beside its exports (``<stem>.onnx``, ``<stem>.engine``), which
share it and add one ``export.<format>`` entry each. Checkpoints, exports, backends, the
Predictor and modeling all read it through ``ModelCard``; this module also holds the task
list and the raw output names every layer uses. It imports neither torch nor ROS, so the
deployment runtime reads cards without them.
"""

from dataclasses import dataclass, field, fields, replace
import datetime
import math
import os
from pathlib import Path
from typing import Mapping

import yaml

# The tasks a network can have, in the canonical order of its heads and outputs.
TASKS = ('detection', 'segmentation')
# Raw network outputs per task, in the order networks emit them: 'loc' [N, A, 4] encoded
# box offsets, 'scores' [N, A, C + 1] softmax probabilities (0 = background), 'seg_logits'
# [N, K, S, S] class scores at the input resolution.
TASK_OUTPUTS = {'detection': ('loc', 'scores'), 'segmentation': ('seg_logits',)}
OUTPUT_NAMES = tuple(name for task in TASKS for name in TASK_OUTPUTS[task])
# SSD box-coder variances (centre, size) the 'loc' offsets are scaled by.
BOX_VARIANCES = (0.1, 0.2)
# The single input of every exported network: float32 [N, 3, S, S], normalised.
INPUT_NAME = 'images'
# The optional second input of a gated multitask export: bool scalar, default True; False
# skips the segmentation head ('seg_logits' is then zeros). See ``inference.onnx_gate``.
SEGMENTATION_GATE = 'run_segmentation'
FORMAT_VERSION = 1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# A mask is published as mono8 with 255 = void, so at most 255 segmentation classes.
MAX_SEGMENTATION_CLASSES = 255
# Builder arguments that name a file the builder opens (``modeling.registry``:
# ``backbone_weights``, the ImageNet initialisation a training run may start from). A card's
# only weights are the safetensors file beside it, so a card may not carry these, nor any other
# path: loading a model must never open a file that its card names.
FILE_ARGUMENTS = ('backbone_weights',)
# Endings of weight and model files, refused in any arch_kwargs string.
_FILE_SUFFIXES = ('.pth', '.pt', '.pkl', '.ckpt', '.bin', '.safetensors', '.onnx', '.engine',
                  '.npy', '.npz', '.h5', '.tar', '.zip')


class ModelCardError(ValueError):
    """A model card is missing, not YAML, or holds a missing or malformed value."""


def validate_tasks(tasks) -> tuple[str, ...]:
    """
    Return ``tasks`` in canonical order.

    :raises ValueError: empty, unknown or repeated tasks.
    """
    if isinstance(tasks, str) or not isinstance(tasks, (list, tuple)):
        raise ValueError(f'tasks must be a non-empty list from {TASKS}, got {tasks!r}')
    tasks = tuple(tasks)
    if not tasks:
        raise ValueError(f'tasks must be a non-empty subset of {TASKS}, got ()')
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f'unknown tasks {unknown}; known: {TASKS}')
    if len(set(tasks)) != len(tasks):
        raise ValueError(f'repeated task in {list(tasks)}')
    return tuple(t for t in TASKS if t in tasks)


def output_names(tasks) -> tuple[str, ...]:
    """Return the raw output names of a network with ``tasks``, in emission order."""
    return tuple(name for task in validate_tasks(tasks) for name in TASK_OUTPUTS[task])


def _plain(value):
    """Convert tuples and numpy scalars to plain YAML types (lists, int, float, str)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if hasattr(value, 'item'):
        return value.item()
    raise ValueError(f'card value {value!r} of type {type(value).__name__} is not '
                     'representable in YAML')


def _named_files(value, field: str):
    """Yield ``(field, value)`` for every path-like string within ``value`` (nested data)."""
    if isinstance(value, str):
        if '/' in value or '\\' in value or value.startswith('~') \
                or value.lower().endswith(_FILE_SUFFIXES):
            yield field, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _named_files(item, f'{field}.{key}')
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _named_files(item, f'{field}[{index}]')


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def utc_now() -> str:
    """Return the current UTC time as an ISO 8601 string (seconds)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')


@dataclass(frozen=True)
class ModelCard:
    """
    What a network is: enough to rebuild it, feed it and name its outputs.

    Fields:
        name: the model's name.
        architecture: the builder registry name (``modeling.registry``).
        tasks: non-empty subset of ``TASKS``, in canonical order.
        input_size: the square input side S in pixels.
        classes: task -> class names (strings; the list lengths are the class counts).
        mean, std: per-channel RGB statistics on the ``[0, 1]`` scale (std > 0).
        arch_kwargs: further keyword arguments of the builder.
        recipe: the resolved training recipe (free-form, for the record).
        metrics: measured metrics (free-form, for the record).
        export: format -> how an export beside the card was made (``{'onnx': {...}}``).
        format_version: card format, 1..``FORMAT_VERSION``.
        created, package_version: provenance.
        extra: any further keys a card holds (kept when the card is rewritten).
    """

    name: str
    architecture: str
    tasks: tuple[str, ...]
    input_size: int
    classes: dict[str, tuple[str, ...]]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    arch_kwargs: dict = field(default_factory=dict)
    recipe: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    export: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    created: str | None = None
    package_version: str | None = None
    extra: dict = field(default_factory=dict)

    # Keys a card file must hold; the others have defaults.
    REQUIRED = ('name', 'architecture', 'arch_kwargs', 'tasks', 'input_size', 'mean', 'std',
                'classes', 'format_version')
    # What identifies the network; two cards equal on these describe the same network.
    IDENTITY = ('architecture', 'arch_kwargs', 'tasks', 'input_size', 'mean', 'std',
                'classes')

    def validate(self) -> 'ModelCard':
        """
        Check every field; return the card.

        :raises ModelCardError: naming the first field that is missing or malformed.
        """
        def fail(message: str):
            raise ModelCardError(message)

        if not isinstance(self.name, str) or not self.name:
            fail(f'name must be a non-empty string, got {self.name!r}')
        if not isinstance(self.architecture, str) or not self.architecture:
            fail(f'architecture must be a non-empty string, got {self.architecture!r}')
        try:
            tasks = validate_tasks(self.tasks)
        except ValueError as error:
            fail(str(error) if str(error).startswith('tasks') else f'tasks: {error}')
        if tasks != tuple(self.tasks):
            fail(f'tasks must be in the order {TASKS}, got {list(self.tasks)}')
        if not isinstance(self.input_size, int) or isinstance(self.input_size, bool) \
                or self.input_size < 1:
            fail(f'input_size must be a positive integer, got {self.input_size!r}')
        for key in ('mean', 'std'):
            value = getattr(self, key)
            if not isinstance(value, (list, tuple)) or len(value) != 3 \
                    or not all(_is_number(v) for v in value) \
                    or (key == 'std' and min(value) <= 0):
                fail(f'{key} must be 3 finite numbers{" > 0" if key == "std" else ""}, '
                     f'got {value!r}')
        if not isinstance(self.classes, Mapping):
            fail(f'classes must map task -> list of class names, got {self.classes!r}')
        for task in tasks:
            names = self.classes.get(task)
            if not isinstance(names, (list, tuple)) or not names:
                fail(f'classes.{task} must list the {task} class names, got {names!r}')
            wrong = [n for n in names if not isinstance(n, str) or not n]
            if wrong:
                fail(f'classes.{task}: class names must be non-empty strings (quote names '
                     f'such as "no" or "on" in YAML), got {wrong[:5]!r}')
            if len(set(names)) != len(names):
                fail(f'classes.{task}: class names repeat: {list(names)}')
        if 'segmentation' in tasks and len(self.classes['segmentation']) > \
                MAX_SEGMENTATION_CLASSES:
            fail(f'classes.segmentation: at most {MAX_SEGMENTATION_CLASSES} segmentation '
                 f'classes fit a mono8 mask, got {len(self.classes["segmentation"])}')
        for key in ('arch_kwargs', 'recipe', 'metrics', 'export', 'extra'):
            if not isinstance(getattr(self, key), Mapping):
                fail(f'{key} must be a mapping, got {getattr(self, key)!r}')
        for key in FILE_ARGUMENTS:
            if key in self.arch_kwargs:
                fail(f'arch_kwargs.{key}: a model card cannot name a file to load (got '
                     f'{self.arch_kwargs[key]!r}); its weights are the .safetensors file '
                     'beside it')
        for name, value in _named_files(self.arch_kwargs, 'arch_kwargs'):
            fail(f'{name}: a model card cannot name a file, got the path-like {value!r}; its '
                 'weights are the .safetensors file beside it')
        for fmt, info in self.export.items():
            if not isinstance(info, Mapping):
                fail(f'export.{fmt} must be a mapping, got {info!r}')
        if not isinstance(self.format_version, int) or isinstance(self.format_version, bool) \
                or not 1 <= self.format_version <= FORMAT_VERSION:
            fail(f'unsupported format_version {self.format_version!r} (this package reads '
                 f'1..{FORMAT_VERSION})')
        return self

    @property
    def output_names(self) -> tuple[str, ...]:
        """Return the raw output names of the network, in emission order."""
        return output_names(self.tasks)

    @property
    def num_classes(self) -> dict[str, int]:
        """Return task -> number of classes."""
        return {task: len(self.classes[task]) for task in self.tasks}

    def identity(self) -> dict:
        """Return the fields that identify the network (see ``IDENTITY``), as plain data."""
        return _plain({key: getattr(self, key) for key in self.IDENTITY})

    def with_changes(self, **changes) -> 'ModelCard':
        """Return a validated copy with ``changes`` applied."""
        return replace(self, **changes).validate()

    def with_export(self, fmt: str, info: Mapping) -> 'ModelCard':
        """Return a copy whose ``export.<fmt>`` entry is ``info`` (other entries kept)."""
        return self.with_changes(export={**self.export, fmt: dict(info)})

    @classmethod
    def from_dict(cls, data, *, source: str | os.PathLike = '<card>',
                  required: tuple[str, ...] | None = None) -> 'ModelCard':
        """
        Build and validate a card from a plain mapping (as read from YAML).

        :param source: what the error messages name (usually the card file).
        :param required: keys that must be present (default ``REQUIRED``); others default.
        :raises ModelCardError: naming ``source`` and the problem.
        """
        if not isinstance(data, Mapping):
            raise ModelCardError(f'{source}: the model card is not a YAML mapping '
                                 f'(got {type(data).__name__})')
        required = cls.REQUIRED if required is None else required
        missing = [key for key in required if key not in data]
        if missing:
            raise ModelCardError(f'{source}: the model card lacks the keys {missing}')
        known = {f.name for f in fields(cls)} - {'extra'}
        values = {key: data[key] for key in known if key in data and data[key] is not None}
        for key in ('tasks', 'mean', 'std'):
            if isinstance(values.get(key), list):
                values[key] = tuple(values[key])
        classes = values.get('classes')
        if isinstance(classes, Mapping):
            values['classes'] = {task: tuple(names) if isinstance(names, list) else names
                                 for task, names in classes.items()}
        values['extra'] = {key: value for key, value in data.items() if key not in known}
        try:
            card = cls(**values)
            return card.validate()
        except ModelCardError as error:
            raise ModelCardError(f'{source}: {error}') from None

    def to_dict(self) -> dict:
        """Return the card as plain YAML data (standard keys first, then ``extra``)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != 'extra'}
        data.update({key: value for key, value in self.extra.items() if key not in data})
        return _plain(data)

    @classmethod
    def load(cls, path: str | os.PathLike, *,
             required: tuple[str, ...] | None = None) -> 'ModelCard':
        """
        Read and validate the card file ``path`` (a ``.yaml``).

        :raises ModelCardError: naming the file when it is missing, not YAML or invalid.
        """
        path = Path(path)
        if not path.is_file():
            raise ModelCardError(f'{path}: model card not found')
        try:
            data = yaml.safe_load(path.read_text(encoding='utf-8'))
        except (OSError, yaml.YAMLError, UnicodeDecodeError) as error:
            raise ModelCardError(f'{path}: the model card is not valid YAML: {error}') from error
        return cls.from_dict(data, source=path, required=required)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the card to ``path`` atomically (temporary file, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + '.tmp')
        with open(tmp, 'w', encoding='utf-8') as stream:
            yaml.safe_dump(self.to_dict(), stream, sort_keys=False)
        os.replace(tmp, path)
        return path
