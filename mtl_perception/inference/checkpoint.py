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
Checkpoints: ``<stem>.safetensors`` (weights) beside ``<stem>.yaml`` (the model card).

The card alone rebuilds the network through the registry (architecture, arch_kwargs,
tasks, input size and the class lists, whose lengths are the class counts); the weights
are then copied in from safetensors, never unpickled. Default boxes are not stored: they
are derived from the same arguments, and ``save_checkpoint`` checks that a network built
from the card reproduces the saved model's keys, shapes and default boxes.
"""

import os
from pathlib import Path

import mtl_perception
from mtl_perception.model_card import ModelCard, ModelCardError, utc_now
from mtl_perception.modeling import build_model, list_models, MultiTaskModel
from safetensors import safe_open
from safetensors.torch import save_file
import torch

WEIGHTS_SUFFIX = '.safetensors'
CARD_SUFFIX = '.yaml'

# How many offending keys an error message lists before eliding the rest.
_LISTED = 5


class CheckpointError(ValueError):
    """A checkpoint (weights file or model card) is missing, malformed or does not match."""


def checkpoint_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """
    Return ``(weights, card)`` paths for ``path`` given with or without a suffix.

    ``model``, ``model.safetensors`` and ``model.yaml`` all name the same checkpoint.
    """
    path = Path(path)
    if path.suffix in (WEIGHTS_SUFFIX, CARD_SUFFIX):
        path = path.with_suffix('')
    return (path.with_name(path.name + WEIGHTS_SUFFIX),
            path.with_name(path.name + CARD_SUFFIX))


def _check_architecture(card: ModelCard, source) -> None:
    if card.architecture not in list_models():
        raise CheckpointError(f'{source}: unknown architecture {card.architecture!r}; '
                              f'known: {list_models()}')


def complete_card(model: MultiTaskModel, card: dict | ModelCard) -> ModelCard:
    """
    Return the full ``ModelCard`` of ``model`` from a partial one, checked against the model.

    ``card`` needs 'name', 'architecture' (a registry name) and 'classes'
    ({task: [names]} for every task of the model); 'arch_kwargs', 'mean' and 'std'
    (default ImageNet), 'recipe' and 'metrics' are optional; 'tasks' and 'input_size'
    default to the model's and must match it if given. Further keys are kept.

    Errors:
        ValueError: a required key is missing, a value is malformed, or the card
            disagrees with the model.
    """
    if isinstance(card, ModelCard):
        card = card.to_dict()
    if not isinstance(card, dict):
        raise ValueError(f'card must be a dict, got {type(card).__name__}')
    tasks = list(card.get('tasks', model.tasks))
    if tuple(tasks) != tuple(model.tasks):
        raise ValueError(f'card tasks {tasks} differ from the model tasks {list(model.tasks)}')
    input_size = card.get('input_size', model.input_size)
    if input_size != model.input_size:
        raise ValueError(f'card input_size {input_size} differs from the model input size '
                         f'{model.input_size}')
    data = {**card, 'tasks': tasks, 'input_size': input_size,
            'created': utc_now(), 'package_version': mtl_perception.__version__}
    full = ModelCard.from_dict(data, source='card', required=('name', 'architecture',
                                                              'classes'))
    _check_architecture(full, 'card')
    for task, count in model_num_classes(model).items():
        if len(full.classes[task]) != count:
            raise ValueError(f'the model has {count} {task} classes but the card lists '
                             f'{list(full.classes[task])}')
    return full


def model_num_classes(model: MultiTaskModel) -> dict[str, int]:
    """Return task -> number of classes of ``model``'s heads."""
    return {task: int(model.heads[task].num_classes) for task in model.tasks}


def build_from_card(card: ModelCard, *, source: str | os.PathLike = '<card>'
                    ) -> MultiTaskModel:
    """
    Build the (randomly initialised) network a validated card describes.

    Errors:
        CheckpointError: naming ``source`` when the registry rejects the card's arguments.
    """
    try:
        return build_model(card.architecture, num_classes=card.num_classes,
                           input_size=card.input_size, tasks=card.tasks, **card.arch_kwargs)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f'{source}: cannot build {card.architecture!r} from the card: '
                              f'{error}') from error


def _listing(items: list) -> str:
    shown = ', '.join(str(item) for item in items[:_LISTED])
    return shown + (f' (+{len(items) - _LISTED} more)' if len(items) > _LISTED else '')


def _mismatches(expected: dict[str, tuple], found: dict[str, tuple]) -> list[str]:
    """Describe differences between two ``key -> shape`` maps (empty when they agree)."""
    problems = []
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    shapes = [f'{key}: file {list(found[key])} vs model {list(expected[key])}'
              for key in sorted(set(expected) & set(found)) if found[key] != expected[key]]
    if missing:
        problems.append(f'{len(missing)} missing keys: {_listing(missing)}')
    if unexpected:
        problems.append(f'{len(unexpected)} unexpected keys: {_listing(unexpected)}')
    if shapes:
        problems.append(f'{len(shapes)} shape mismatches: {_listing(shapes)}')
    return problems


def save_checkpoint(model: MultiTaskModel, path: str | os.PathLike, card: dict, *,
                    verify: bool = True) -> tuple[Path, Path]:
    """
    Write ``model`` as ``<stem>.safetensors`` plus its model card ``<stem>.yaml``.

    Inputs:
        model: the network to save (any device; tensors are copied to CPU).
        path: ``<stem>``, ``<stem>.safetensors`` or ``<stem>.yaml``; parent directories
            are created.
        card: see ``complete_card``; the written card is the completed one.
        verify: build the network from the card first and check that it has the same
            state-dict keys and shapes and the same default boxes, so a card that cannot
            reproduce the model is rejected now rather than at load time.

    Output:
        ``(weights_path, card_path)``.

    Errors:
        ValueError: the card is incomplete or disagrees with the model.
    """
    weights_path, card_path = checkpoint_paths(path)
    full_card = complete_card(model, card)
    state = {key: tensor.detach().to('cpu').contiguous()
             for key, tensor in model.state_dict().items()}
    if verify:
        rebuilt = build_from_card(full_card, source=card_path)
        problems = _mismatches({k: tuple(v.shape) for k, v in rebuilt.state_dict().items()},
                               {k: tuple(v.shape) for k, v in state.items()})
        if 'detection' in model.tasks and not problems and not torch.equal(
                rebuilt.anchors.cpu(), model.anchors.detach().cpu()):
            problems.append('default boxes differ (anchor scales not in arch_kwargs?)')
        if problems:
            raise ValueError(f'the card does not reproduce the model: {"; ".join(problems)}')
    metadata = {
        'format': 'pt',
        'mtl_perception_format_version': str(full_card.format_version),
        'architecture': full_card.architecture,
        'tasks': ','.join(full_card.tasks),
        'name': full_card.name,
    }
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    # Write under temporary names and rename, so a crash never leaves a half-written
    # checkpoint under the real names.
    tmp_weights = weights_path.with_name(weights_path.name + '.tmp')
    tmp_card = card_path.with_name(card_path.name + '.tmp')
    save_file(state, str(tmp_weights), metadata=metadata)
    full_card.save(tmp_card)
    os.replace(tmp_weights, weights_path)
    os.replace(tmp_card, card_path)
    return weights_path, card_path


def load_card(path: str | os.PathLike) -> ModelCard:
    """
    Read and validate the model card of the checkpoint ``path`` (any of its names).

    Errors:
        CheckpointError: naming the card file when it is missing, not YAML, lacks a
            required key, names an unknown architecture or holds malformed values.
    """
    _, card_path = checkpoint_paths(path)
    try:
        card = ModelCard.load(card_path)
    except ModelCardError as error:
        raise CheckpointError(str(error)) from error
    _check_architecture(card, card_path)
    return card


def load_checkpoint(path: str | os.PathLike,
                    device: str | torch.device = 'cpu') -> tuple[MultiTaskModel, ModelCard]:
    """
    Rebuild the network from its card and load its weights (strict, no pickle).

    Inputs:
        path: ``<stem>``, ``<stem>.safetensors`` or ``<stem>.yaml``.
        device: where the returned model lives.

    Output:
        ``(model, card)``; the model is in eval mode.

    Errors:
        CheckpointError: naming the file and the problem when a file is missing, the card
            is invalid, the weights file is truncated or corrupt, or its tensors do not
            match the network the card describes (missing/unexpected keys, shapes).
    """
    weights_path, _ = checkpoint_paths(path)
    card = load_card(path)
    if not weights_path.is_file():
        raise CheckpointError(f'{weights_path}: weights file not found')
    model = build_from_card(card, source=checkpoint_paths(path)[1])
    params = dict(model.state_dict())
    try:
        # safe_open maps the file and copies one tensor at a time into the network,
        # so loading never holds a second full copy of the weights.
        with safe_open(str(weights_path), framework='pt', device='cpu') as weights:
            stored_arch = (weights.metadata() or {}).get('architecture')
            if stored_arch is not None and stored_arch != card.architecture:
                raise CheckpointError(
                    f'{weights_path}: weights were saved for {stored_arch!r} but the card '
                    f'names {card.architecture!r}')
            found = {key: tuple(weights.get_slice(key).get_shape()) for key in weights.keys()}
            problems = _mismatches({k: tuple(v.shape) for k, v in params.items()}, found)
            if problems:
                raise CheckpointError(
                    f'{weights_path}: weights do not match the {card.architecture!r} '
                    f'network of the card: {"; ".join(problems)}')
            with torch.no_grad():
                for key, target in params.items():
                    target.copy_(weights.get_tensor(key))
    except CheckpointError:
        raise
    except Exception as error:  # safetensors raises its own error types for bad files
        raise CheckpointError(f'{weights_path}: cannot read the safetensors weights '
                              f'(truncated or corrupt file?): {error}') from error
    return model.to(device).eval(), card
