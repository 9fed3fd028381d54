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
Training recipes: a YAML file merged over defaults, plus ``key=value`` overrides.

A recipe has the sections below (every key optional except the data source)::

    name: my_model                  # checkpoint stem: <output>/<name>.safetensors + .yaml
    output: runs/my_model           # output folder (relative paths: to the working dir)
    tasks: [detection, segmentation]
    model: {arch, input_size, backbone_weights, kwargs: {...builder arguments...}}
    data:
      train: SOURCE                 # where training samples come from
      val: SOURCE or null           # held-out samples for periodic evaluation
      augment: ssd | light | none   # ssd: distort, expand, crop, flip; light: distort, flip
    training: {epochs, batch_size, optimizer, lr, momentum, weight_decay, nesterov, betas,
               schedule, milestones, gamma, warmup_iters, warmup_factor, min_lr_factor,
               weighting, weighting_kwargs, grad_clip, amp, eval_interval,
               eval_max_images, workers, seed, device, threads, channels_last,
               segmentation_class_weights}   # null | balanced | [w_0, ..., w_K-1]

A SOURCE is one of::

    {type: synthetic, images: N, seed: S, size: [W, H]}
    {type: coco_folder, root: DIR, split: train, annotation_file: null}
    {type: voc, root: DIR, year: '2007', split: trainval, tasks: [detection, segmentation]}
    {type: combined, sources: [SOURCE, ...], mappings: [mapping.yaml | {..} | null, ...],
     detection_classes: [...], segmentation_classes: [...]}

Unknown keys are errors (a typo must not silently train with a default). Overrides use dotted
keys, e.g. ``training.lr=0.01`` or ``data.train.root=/data/uav``; values are parsed as YAML.
"""

import copy
import os
from pathlib import Path

import yaml

DEFAULTS = {
    'name': 'model',
    'output': None,
    'tasks': ['detection', 'segmentation'],
    'model': {'arch': 'resnet50_ssd_fcn', 'input_size': 300, 'backbone_weights': None,
              'kwargs': {}},
    'data': {'train': None, 'val': None, 'augment': 'ssd'},
    'training': {
        'epochs': 10, 'batch_size': 32, 'optimizer': 'sgd', 'lr': 1e-3, 'momentum': 0.9,
        'weight_decay': 5e-4, 'nesterov': False, 'betas': [0.9, 0.999],
        'schedule': 'step', 'milestones': [0.67, 0.89], 'gamma': 0.1,
        'warmup_iters': 500, 'warmup_factor': 0.001, 'min_lr_factor': 0.0,
        'weighting': 'fixed', 'weighting_kwargs': {}, 'grad_clip': None, 'amp': True,
        'eval_interval': 1, 'eval_max_images': None, 'workers': 0, 'seed': 0,
        'device': 'auto', 'threads': None, 'channels_last': False,
        'segmentation_class_weights': None,
    },
}
# Sections whose contents are free-form (builder / strategy arguments).
_FREE = {('model', 'kwargs'), ('training', 'weighting_kwargs')}
SOURCE_KEYS = {
    'synthetic': {'type', 'images', 'seed', 'size', 'altitude_range', 'density'},
    'coco_folder': {'type', 'root', 'split', 'annotation_file'},
    'voc': {'type', 'root', 'year', 'split', 'tasks', 'keep_difficult'},
    'combined': {'type', 'sources', 'mappings', 'detection_classes', 'segmentation_classes',
                 'unmapped_mask_value'},
}
AUGMENTATIONS = ('ssd', 'light', 'none')


def _merge(base: dict, update: dict, path: tuple = ()) -> dict:
    merged = copy.deepcopy(base)
    for key, value in update.items():
        where = '.'.join(path + (str(key),))
        if key not in base and path not in _FREE:
            raise ValueError(f'unknown recipe key {where!r}; known here: {sorted(base)}')
        if isinstance(base.get(key), dict) and path + (key,) not in _FREE \
                and key not in ('train', 'val'):
            if not isinstance(value, dict):
                raise ValueError(f'recipe key {where!r} must be a mapping, got {value!r}')
            merged[key] = _merge(base[key], value, path + (key,))
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def apply_override(recipe: dict, assignment: str) -> dict:
    """
    Return ``recipe`` with one ``dotted.key=value`` override applied (value parsed as YAML).

    Missing intermediate mappings are created; list items are addressed by index
    (``data.train.sources.0.root=...``). Unknown keys are caught when the result is merged
    over the defaults again (see :func:`load_recipe`).
    """
    if '=' not in assignment:
        raise ValueError(f'override {assignment!r} must look like key=value')
    key, text = assignment.split('=', 1)
    parts = key.strip().split('.')
    if not all(parts):
        raise ValueError(f'override {assignment!r}: malformed key {key!r}')
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(f'override {assignment!r}: value is not valid YAML: {error}') from None
    result = copy.deepcopy(recipe)
    node = result
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ValueError(f'override {assignment!r}: {".".join(parts[:depth])} has no '
                                 f'item {part!r}')
            part = int(part)
        elif not isinstance(node, dict):
            raise ValueError(f'override {assignment!r}: {".".join(parts[:depth])} is not a '
                             'mapping')
        if last:
            node[part] = value
        else:
            if isinstance(node, dict) and not isinstance(node.get(part), (dict, list)):
                node[part] = {}
            node = node[part]
    return result


def _check_source(source, where: str, base_dir: Path) -> dict:
    if not isinstance(source, dict) or source.get('type') not in SOURCE_KEYS:
        raise ValueError(f'{where} must be a mapping with type one of {sorted(SOURCE_KEYS)}, '
                         f'got {source!r}')
    unknown = sorted(set(source) - SOURCE_KEYS[source['type']])
    if unknown:
        raise ValueError(f'{where}: unknown keys {unknown} for type {source["type"]!r}; '
                         f'known: {sorted(SOURCE_KEYS[source["type"]])}')
    source = dict(source)
    if source['type'] in ('coco_folder', 'voc'):
        if not source.get('root'):
            raise ValueError(f'{where}: a {source["type"]} source needs a root folder')
        root = Path(os.path.expanduser(str(source['root'])))
        source['root'] = str(root if root.is_absolute() else base_dir / root)
        if not Path(source['root']).is_dir():
            raise FileNotFoundError(f'{where}.root: data folder not found: {source["root"]}')
    if source['type'] == 'synthetic' and int(source.get('images', 0)) < 1:
        raise ValueError(f'{where}: a synthetic source needs images >= 1')
    if source['type'] == 'combined':
        subs = source.get('sources')
        if not isinstance(subs, list) or not subs:
            raise ValueError(f'{where}.sources must be a non-empty list')
        source['sources'] = [_check_source(s, f'{where}.sources[{i}]', base_dir)
                             for i, s in enumerate(subs)]
    return source


def validate(recipe: dict, base_dir: str | os.PathLike = '.') -> dict:
    """
    Check a merged recipe; return it with relative data paths made absolute.

    ``base_dir`` resolves relative data roots (the working directory for the CLI). Raises
    ValueError naming the key, FileNotFoundError naming a missing data folder.
    """
    from mtl_perception.model_card import TASKS
    from mtl_perception.modeling import list_models
    recipe = copy.deepcopy(recipe)
    base_dir = Path(base_dir)
    tasks = recipe['tasks']
    if not isinstance(tasks, list) or not tasks or any(t not in TASKS for t in tasks) \
            or len(set(tasks)) != len(tasks):
        raise ValueError(f'tasks must be a non-empty list from {list(TASKS)}, got {tasks!r}')
    if recipe['model']['arch'] not in list_models():
        raise ValueError(f'model.arch {recipe["model"]["arch"]!r} is not a registered '
                         f'architecture; known: {list_models()}')
    size = recipe['model']['input_size']
    if not isinstance(size, int) or size < 64:
        raise ValueError(f'model.input_size must be an int >= 64, got {size!r}')
    weights = recipe['model']['backbone_weights']
    if weights is not None:
        weights = Path(os.path.expanduser(str(weights)))
        weights = weights if weights.is_absolute() else base_dir / weights
        if not weights.is_file():
            raise FileNotFoundError(f'model.backbone_weights: file not found: {weights} (a '
                                    'local ImageNet state dict; nothing is downloaded)')
        recipe['model']['backbone_weights'] = str(weights)
    training = recipe['training']
    for key, low in (('epochs', 1), ('batch_size', 1), ('workers', 0), ('seed', 0),
                     ('warmup_iters', 0), ('eval_interval', 0)):
        if not isinstance(training[key], int) or training[key] < low:
            raise ValueError(f'training.{key} must be an int >= {low}, got {training[key]!r}')
    if not isinstance(training['lr'], (int, float)) or not training['lr'] > 0:
        raise ValueError(f'training.lr must be a number > 0, got {training["lr"]!r}')
    for key, choices in (('optimizer', ('sgd', 'adamw')),
                         ('schedule', ('step', 'cosine', 'constant')),
                         ('weighting', ('fixed', 'uncertainty', 'dwa', 'gradnorm'))):
        if training[key] not in choices:
            raise ValueError(f'training.{key} must be one of {list(choices)}, '
                             f'got {training[key]!r}')
    weights = training['segmentation_class_weights']
    if weights is not None and weights != 'balanced' and not (
            isinstance(weights, list) and weights
            and all(isinstance(v, (int, float)) and v > 0 for v in weights)):
        raise ValueError('training.segmentation_class_weights must be null, "balanced" or a '
                         f'list of positive numbers (one per class), got {weights!r}')
    if recipe['data']['augment'] not in AUGMENTATIONS:
        raise ValueError(f'data.augment must be one of {list(AUGMENTATIONS)}, '
                         f'got {recipe["data"]["augment"]!r}')
    if recipe['data']['train'] is None:
        raise ValueError('data.train is missing: give a data source (see the recipe docs)')
    recipe['data']['train'] = _check_source(recipe['data']['train'], 'data.train', base_dir)
    if recipe['data']['val'] is not None:
        recipe['data']['val'] = _check_source(recipe['data']['val'], 'data.val', base_dir)
    if not isinstance(recipe['name'], str) or not recipe['name'] \
            or '/' in recipe['name']:
        raise ValueError(f'name must be a plain file stem, got {recipe["name"]!r}')
    return recipe


def load_recipe(path: str | os.PathLike | None, overrides: list[str] = (),
                base_dir: str | os.PathLike = '.') -> dict:
    """Read a recipe YAML, merge it over :data:`DEFAULTS`, apply overrides and validate."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f'recipe not found: {path}')
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise ValueError(f'{path}: not valid YAML: {error}') from None
        if not isinstance(data, dict):
            raise ValueError(f'{path}: a recipe must be a YAML mapping')
    recipe = _merge(DEFAULTS, data)
    for assignment in overrides or ():
        recipe = _merge(DEFAULTS, apply_override(recipe, assignment))
    return validate(recipe, base_dir)
