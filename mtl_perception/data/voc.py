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
Pascal VOC 2007/2012 detection and segmentation from the devkit layout.

Expected layout (``root`` may be the folder holding ``VOCdevkit``, ``VOCdevkit`` itself, or the
``VOC<year>`` folder directly)::

    VOC2007/
      Annotations/<id>.xml
      JPEGImages/<id>.jpg
      SegmentationClass/<id>.png        palette PNG; indices read as is, 255 = void border
      ImageSets/Main/<split>.txt        detection image ids
      ImageSets/Segmentation/<split>.txt

The image list is the union of the detection and segmentation split lists of the requested
tasks. Every image gets boxes from its XML when detection is requested (segmentation images
have XML too); only images listed in the segmentation split get a mask, others have mask None.
Boxes are converted from VOC's 1-based inclusive corners to continuous pixel coordinates
``[xmin - 1, ymin - 1, xmax, ymax]``. Objects marked ``difficult`` are kept and flagged (or
dropped with ``keep_difficult=False``).
"""

import os
from pathlib import Path
import xml.etree.ElementTree as ET

from mtl_perception.model_card import TASKS
import numpy as np
from PIL import Image

VOC_DETECTION_CLASSES = (
    'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
    'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa',
    'train', 'tvmonitor')
VOC_SEGMENTATION_CLASSES = ('background',) + VOC_DETECTION_CLASSES


def find_voc_dir(root: str | os.PathLike, year: str | None = '2007') -> Path:
    """Locate the ``VOC<year>`` folder under ``root``; raise FileNotFoundError naming paths."""
    root = Path(root)
    candidates = [root]
    if year is not None:
        candidates = [root / 'VOCdevkit' / f'VOC{year}', root / f'VOC{year}', root]
    for c in candidates:
        if (c / 'JPEGImages').is_dir():
            return c
    raise FileNotFoundError(
        f'no VOC layout (a JPEGImages folder) in any of: {", ".join(map(str, candidates))}')


def _read_ids(path: Path) -> list:
    if not path.is_file():
        raise FileNotFoundError(f'VOC split file not found: {path}')
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def parse_voc_xml(path: str | os.PathLike) -> tuple:
    """
    Parse one VOC annotation file.

    Output:
        (boxes float32 [M, 4] x1, y1, x2, y2 px, labels int64 [M] into
        VOC_DETECTION_CLASSES, difficult bool [M]).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'VOC annotation not found: {path}')
    boxes, labels, difficult = [], [], []
    for obj in ET.parse(path).getroot().iter('object'):
        name = obj.findtext('name', '').strip()
        if name not in VOC_DETECTION_CLASSES:
            raise ValueError(f'{path}: unknown VOC class {name!r}')
        bnd = obj.find('bndbox')
        if bnd is None:
            raise ValueError(f'{path}: object {name!r} has no bndbox')
        x1, y1, x2, y2 = (float(bnd.findtext(k)) for k in ('xmin', 'ymin', 'xmax', 'ymax'))
        boxes.append([x1 - 1.0, y1 - 1.0, x2, y2])
        labels.append(VOC_DETECTION_CLASSES.index(name))
        difficult.append(obj.findtext('difficult', '0').strip() == '1')
    return (np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(labels, np.int64),
            np.asarray(difficult, np.bool_))


def read_index_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a class-index mask PNG (palette 'P' or 'L') as uint8 [H, W], keeping 255."""
    with Image.open(path) as im:
        if im.mode not in ('P', 'L'):
            raise ValueError(f'{path}: mask must be a palette or L PNG, got mode {im.mode}')
        return np.array(im, dtype=np.uint8)


class VOCDataset:
    """
    Pascal VOC samples per the data contract.

    Inputs:
        root: see the module docstring.
        year: '2007' or '2012' (None: ``root`` is the VOC folder itself).
        split: split file name, e.g. 'train', 'val', 'trainval', 'test'.
        tasks: subset of ('detection', 'segmentation'); a task not requested yields None.
        keep_difficult: keep objects marked difficult (flagged in 'difficult').
    """

    detection_classes = list(VOC_DETECTION_CLASSES)
    segmentation_classes = list(VOC_SEGMENTATION_CLASSES)

    def __init__(self, root: str | os.PathLike, year: str | None = '2007',
                 split: str = 'trainval', tasks: tuple = TASKS,
                 keep_difficult: bool = True) -> None:
        tasks = tuple(tasks)
        if not tasks or any(t not in TASKS for t in tasks):
            raise ValueError(f'tasks must be a non-empty subset of {TASKS}, got {tasks}')
        self.base = find_voc_dir(root, year)
        self.tasks, self.keep_difficult = tasks, keep_difficult
        ids, self._seg_ids = [], set()
        if 'detection' in tasks:
            ids += _read_ids(self.base / 'ImageSets' / 'Main' / f'{split}.txt')
        if 'segmentation' in tasks:
            seg = _read_ids(self.base / 'ImageSets' / 'Segmentation' / f'{split}.txt')
            self._seg_ids = set(seg)
            ids += seg
        self.ids = list(dict.fromkeys(ids))  # union, first-seen order

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict:
        image_id = self.ids[index]
        path = self.base / 'JPEGImages' / f'{image_id}.jpg'
        if not path.is_file():
            raise FileNotFoundError(f'VOC image not found: {path}')
        with Image.open(path) as im:
            image = np.array(im.convert('RGB'))
        sample = {'image': image, 'boxes': None, 'labels': None, 'difficult': None,
                  'mask': None, 'image_id': image_id}
        if 'detection' in self.tasks:
            boxes, labels, difficult = parse_voc_xml(
                self.base / 'Annotations' / f'{image_id}.xml')
            if not self.keep_difficult:
                boxes, labels, difficult = (boxes[~difficult], labels[~difficult],
                                            difficult[~difficult])
            sample.update(boxes=boxes, labels=labels, difficult=difficult)
        if image_id in self._seg_ids:
            mpath = self.base / 'SegmentationClass' / f'{image_id}.png'
            if not mpath.is_file():
                raise FileNotFoundError(f'VOC segmentation mask not found: {mpath}')
            mask = read_index_mask(mpath)
            if mask.shape != image.shape[:2]:
                raise ValueError(f'{mpath}: mask shape {mask.shape} != image shape '
                                 f'{image.shape[:2]}')
            sample['mask'] = mask
        return sample
