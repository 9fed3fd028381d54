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
A COCO-format folder of images with boxes and/or semantic masks.

Layout::

    <root>/
      annotations/instances_<split>.json   (or any JSON given as ``annotation_file``)
      images/<file_name>                   file_name as in the JSON 'images' entries
      masks/<file_name stem>.png           optional; mode L (or P), class index per pixel,
                                           255 = void; a missing PNG means mask None

The JSON holds the COCO keys ``images`` (``id``, ``file_name``, ``width``, ``height``),
``annotations`` (``image_id``, ``category_id``, ``bbox`` = [x, y, w, h] px, ``iscrowd``) and
``categories`` (``id``, ``name``), plus a top-level ``segmentation_categories`` list of
``{"id", "name"}`` whose ``id`` is the pixel value in the masks. Instead of that key a sidecar
``annotations/segmentation_categories.json`` holding the same list may be used.

Detection labels are indices into ``categories`` sorted by id; mask values are remapped to
indices into ``segmentation_categories`` sorted by id (values not listed become 255). Boxes
become x1, y1, x2, y2 = x, y, x + w, y + h; ``iscrowd`` objects are flagged ``difficult``;
boxes with w or h <= 0 are dropped. Without ``annotations``/``categories`` the folder is
masks-only (boxes None); an image without annotations in a boxes folder has an empty [0, 4]
box array ("labelled, no objects").

:func:`write_coco_folder` writes any contract dataset in this layout (PNG images by default,
lossless so a round trip is exact; ``image_format='jpg'`` writes JPEG quality 95).
"""

from collections import defaultdict
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

_SIDECAR = 'segmentation_categories.json'


class CocoFolderDataset:
    """
    Samples (per the data contract) from a COCO-format folder.

    Inputs:
        root: the folder (see the module docstring).
        split: selects ``annotations/instances_<split>.json``.
        annotation_file: explicit JSON path (overrides ``split``).
        tasks: subset of ('detection', 'segmentation') to load; others yield None.
    """

    def __init__(self, root: str | os.PathLike, split: str = 'train',
                 annotation_file: str | os.PathLike | None = None,
                 tasks: tuple = ('detection', 'segmentation')) -> None:
        self.root = Path(root)
        path = Path(annotation_file) if annotation_file else \
            self.root / 'annotations' / f'instances_{split}.json'
        if not path.is_file():
            raise FileNotFoundError(f'COCO annotation file not found: {path}')
        if not (self.root / 'images').is_dir():
            raise FileNotFoundError(f'image folder not found: {self.root / "images"}')
        data = json.loads(path.read_text())
        if 'images' not in data:
            raise ValueError(f'{path}: no "images" list')
        self.images = sorted(data['images'], key=lambda im: im['id'])
        cats = sorted(data.get('categories') or [], key=lambda c: c['id'])
        has_boxes = 'detection' in tasks and 'annotations' in data and bool(cats)
        self.detection_classes = [c['name'] for c in cats] if has_boxes else None
        self._cat_index = {c['id']: i for i, c in enumerate(cats)}
        self._anns = defaultdict(list)
        for ann in data.get('annotations') or []:
            self._anns[ann['image_id']].append(ann)
        seg = data.get('segmentation_categories')
        sidecar = path.parent / _SIDECAR
        if seg is None and sidecar.is_file():
            seg = json.loads(sidecar.read_text())
        self.masks_dir = self.root / 'masks'
        has_masks = 'segmentation' in tasks and bool(seg) and self.masks_dir.is_dir()
        seg = sorted(seg or [], key=lambda c: c['id'])
        self.segmentation_classes = [c['name'] for c in seg] if has_masks else None
        self._lut = np.full(256, 255, np.uint8)
        for i, c in enumerate(seg):
            if not 0 <= c['id'] < 255:
                raise ValueError(f'segmentation category id must be in [0, 254], got {c}')
            self._lut[c['id']] = i

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        info = self.images[index]
        path = self.root / 'images' / info['file_name']
        if not path.is_file():
            raise FileNotFoundError(f'image not found: {path}')
        with Image.open(path) as im:
            image = np.array(im.convert('RGB'))
        sample = {'image': image, 'boxes': None, 'labels': None, 'difficult': None,
                  'mask': None, 'image_id': Path(info['file_name']).stem}
        if self.detection_classes is not None:
            boxes, labels, crowd = [], [], []
            for ann in self._anns.get(info['id'], []):
                x, y, w, h = (float(v) for v in ann['bbox'])
                if w <= 0 or h <= 0:
                    continue
                if ann['category_id'] not in self._cat_index:
                    raise ValueError(f'annotation {ann.get("id")} has unknown category_id '
                                     f'{ann["category_id"]}')
                boxes.append([x, y, x + w, y + h])
                labels.append(self._cat_index[ann['category_id']])
                crowd.append(bool(ann.get('iscrowd', 0)))
            sample.update(boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
                          labels=np.asarray(labels, np.int64),
                          difficult=np.asarray(crowd, np.bool_))
        if self.segmentation_classes is not None:
            mpath = self.masks_dir / Path(info['file_name']).with_suffix('.png')
            if mpath.is_file():
                with Image.open(mpath) as im:
                    if im.mode not in ('L', 'P'):
                        raise ValueError(f'{mpath}: mask must be mode L or P, got {im.mode}')
                    mask = self._lut[np.array(im, dtype=np.uint8)]
                if mask.shape != image.shape[:2]:
                    raise ValueError(f'{mpath}: mask shape {mask.shape} != image shape '
                                     f'{image.shape[:2]}')
                sample['mask'] = mask
        return sample


def write_coco_folder(out_dir: str | os.PathLike, dataset, split: str = 'train',
                      detection_classes: list | None = None,
                      segmentation_classes: list | None = None,
                      image_format: str = 'png', progress: bool = True) -> Path:
    """
    Write a contract dataset as a COCO-format folder readable by CocoFolderDataset.

    Inputs:
        out_dir: output root (created).
        dataset: indexable of samples per the data contract.
        split: names ``annotations/instances_<split>.json``.
        detection_classes / segmentation_classes: class names; default to the dataset's
            ``detection_classes`` / ``segmentation_classes`` attributes.
        image_format: 'png' (lossless) or 'jpg' (quality 95).
        progress: show a tqdm progress bar.

    Output:
        the annotation JSON path. Category ids are 1-based for detection (COCO habit) and
        0-based (equal to mask values) for segmentation.
    """
    if image_format not in ('png', 'jpg'):
        raise ValueError(f'image_format must be "png" or "jpg", got {image_format!r}')
    from tqdm import tqdm  # only the writer needs it
    out = Path(out_dir)
    for sub in ('annotations', 'images', 'masks'):
        (out / sub).mkdir(parents=True, exist_ok=True)
    det = detection_classes or getattr(dataset, 'detection_classes', None) or []
    seg = segmentation_classes or getattr(dataset, 'segmentation_classes', None) or []
    images, annotations = [], []
    for i in tqdm(range(len(dataset)), desc=f'writing {out}', disable=not progress):
        s = dataset[i]
        stem = str(s.get('image_id', f'{i:06d}'))
        h, w = s['image'].shape[:2]
        name = f'{stem}.{image_format}'
        im = Image.fromarray(s['image'])
        im.save(out / 'images' / name, **({'quality': 95} if image_format == 'jpg' else {}))
        images.append({'id': i + 1, 'file_name': name, 'width': w, 'height': h})
        if s.get('mask') is not None:
            mask = np.ascontiguousarray(s['mask'], np.uint8)
            Image.fromarray(mask).save(out / 'masks' / f'{stem}.png')
        if s.get('boxes') is None:
            continue
        difficult = s.get('difficult')
        for k, (box, label) in enumerate(zip(s['boxes'], s['labels'])):
            x1, y1, x2, y2 = (float(v) for v in box)
            annotations.append({
                'id': len(annotations) + 1, 'image_id': i + 1, 'category_id': int(label) + 1,
                'bbox': [x1, y1, x2 - x1, y2 - y1], 'area': (x2 - x1) * (y2 - y1),
                'iscrowd': int(bool(difficult[k])) if difficult is not None else 0})
    data = {'images': images,
            'categories': [{'id': i + 1, 'name': n} for i, n in enumerate(det)],
            'segmentation_categories': [{'id': i, 'name': n} for i, n in enumerate(seg)]}
    if det:
        data['annotations'] = annotations
    path = out / 'annotations' / f'instances_{split}.json'
    path.write_text(json.dumps(data))
    return path
