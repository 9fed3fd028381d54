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
Build data sets from recipe sources, and recognise a data folder's layout.

The source formats are documented in :mod:`mtl_perception.cli.recipe`.
"""

import os
from pathlib import Path

from mtl_perception.data.coco_folder import CocoFolderDataset
from mtl_perception.data.combined import CombinedDataset
from mtl_perception.data.synthetic import SyntheticAerialDataset
from mtl_perception.data.voc import VOCDataset


def build_source(source: dict, tasks: tuple[str, ...]):
    """Build the data set a validated recipe source describes (yields contract samples)."""
    kind = source['type']
    if kind == 'synthetic':
        options = {k: tuple(v) if isinstance(v, list) else v for k, v in source.items()
                   if k in ('size', 'altitude_range', 'density')}
        return SyntheticAerialDataset(int(source['images']), seed=int(source.get('seed', 0)),
                                      **options)
    if kind == 'coco_folder':
        return CocoFolderDataset(source['root'], split=source.get('split', 'train'),
                                 annotation_file=source.get('annotation_file'),
                                 tasks=tuple(tasks))
    if kind == 'voc':
        wanted = tuple(t for t in source.get('tasks', tasks) if t in tasks)
        if not wanted:
            raise ValueError(f'VOC source {source["root"]} has none of the tasks {tasks}')
        year = source.get('year', '2007')
        return VOCDataset(source['root'], year=None if year is None else str(year),
                          split=source.get('split', 'trainval'), tasks=wanted,
                          keep_difficult=bool(source.get('keep_difficult', True)))
    if kind == 'combined':
        parts = [build_source(s, tasks) for s in source['sources']]

        def first(attribute: str):
            return next((getattr(p, attribute) for p in parts
                         if getattr(p, attribute, None)), None)
        det = source.get('detection_classes') or first('detection_classes')
        seg = source.get('segmentation_classes') or first('segmentation_classes')
        return CombinedDataset(parts, det if 'detection' in tasks else None,
                               seg if 'segmentation' in tasks else None,
                               mappings=source.get('mappings'),
                               unmapped_mask_value=int(source.get('unmapped_mask_value', 255)))
    if kind == 'flight_bag':  # evaluation only (detect_layout); recipes do not train on it
        from mtl_perception.replay.flight_dataset import FlightBagDataset
        return FlightBagDataset(source['root'])
    raise ValueError(f'unknown data source type {kind!r}')


def class_names(dataset, tasks: tuple[str, ...]) -> dict[str, list[str]]:
    """Return ``{task: class names}`` of ``dataset``; ValueError if it lacks a task's labels."""
    names = {}
    for task in tasks:
        found = getattr(dataset, f'{task}_classes', None)
        if not found:
            raise ValueError(f'the training data has no {task} labels (no {task} class list); '
                             f'drop {task!r} from tasks or use a labelled data set')
        names[task] = [str(n) for n in found]
    return names


def build_transforms(augment: str, size: int, mean: tuple, std: tuple):
    """
    Build the training transform for ``augment``.

    'ssd': photometric distortion, zoom out, SSD random crop, flip, resize (the SSD recipe);
    'light': photometric distortion and flip, then resize (for data already framed as
    deployed, e.g. the synthetic set); 'none': resize only. Returns a ``data.Compose``.
    """
    # The transforms need torch; evaluation, which only reads data sets, does not.
    from mtl_perception.data.transforms import (build_eval_transforms, build_train_transforms,
                                                Compose, PhotometricDistort,
                                                RandomHorizontalFlip, Resize, ToTensorNormalize)

    if augment == 'ssd':
        return build_train_transforms(size, mean, std)
    if augment == 'light':
        return Compose([PhotometricDistort(), RandomHorizontalFlip(), Resize(size),
                        ToTensorNormalize(mean, std)])
    if augment == 'none':
        return build_eval_transforms(size, mean, std)
    raise ValueError(f'unknown augmentation {augment!r}')


def detect_layout(root: str | os.PathLike, split: str | None = None) -> dict:
    """
    Recognise a data folder and return a recipe source for it.

    A COCO-format folder has ``annotations/instances_<split>.json`` (``split`` defaults to
    the only such file, else 'val', else 'test'); a VOC root has ``JPEGImages`` in it, in
    ``VOC2007``/``VOC2012`` or in ``VOCdevkit/VOC*`` (``split`` defaults to 'test' for 2007,
    'val' otherwise); a synthetic flight bag (``mtl-perception synth --bag``) is read with its
    ground truth (first camera of a rig; ``split`` does not apply).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f'data folder not found: {root}')
    if (root / 'metadata.yaml').is_file():
        from mtl_perception.replay.flight_dataset import is_flight_bag
        if is_flight_bag(root):
            if split is not None:
                raise ValueError(f'{root} is a flight bag: it has no splits (drop --split)')
            return {'type': 'flight_bag', 'root': str(root)}
    annotations = root / 'annotations'
    if annotations.is_dir():
        splits = sorted(p.name[len('instances_'):-len('.json')]
                        for p in annotations.glob('instances_*.json'))
        if split is None:
            if len(splits) == 1:
                split = splits[0]
            else:
                split = next((s for s in ('val', 'test') if s in splits), None)
        if split is None or split not in splits:
            raise FileNotFoundError(f'{annotations}: no instances_<split>.json for split '
                                    f'{split!r}; found splits {splits}')
        return {'type': 'coco_folder', 'root': str(root), 'split': split}
    for base in (root, root / 'VOCdevkit'):
        for year in ('2007', '2012'):
            if (base / f'VOC{year}' / 'JPEGImages').is_dir():
                return {'type': 'voc', 'root': str(base / f'VOC{year}'), 'year': None,
                        'split': split or ('test' if year == '2007' else 'val')}
    if (root / 'JPEGImages').is_dir():
        return {'type': 'voc', 'root': str(root), 'year': None, 'split': split or 'val'}
    raise FileNotFoundError(f'{root} is neither a COCO-format folder (annotations/'
                            'instances_<split>.json), a VOC root (JPEGImages) nor a synthetic '
                            'flight bag')
