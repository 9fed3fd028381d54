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
Combine several data sets into one training set with one class list per task.

A class mapping says, per source data set, which target class each source class becomes::

    # mapping.yaml (one per source data set; both sections optional)
    detection:                 # source detection class -> target class, or null to drop
      motorbike: bicycle
      aeroplane: null
    segmentation:              # source mask class -> target class, or null
      background: ground
      sofa: null

A flat mapping without the two sections applies to both tasks. A source class the mapping does
not mention maps to the target class of the same name if there is one, else it is dropped.
Dropped detection classes lose their boxes (they become background for the detector); dropped
or unmatched mask classes become ``unmapped_mask_value`` (default 255, void: ignored by the
loss; pass e.g. the index of a background class to train on them as background instead).
A data set without detection (or segmentation) classes, or a target list that is empty, yields
boxes (or mask) None.
"""

import bisect
import os
from pathlib import Path

from mtl_perception.model_card import TASKS
import numpy as np
import yaml


def load_class_mapping(path: str | os.PathLike) -> dict:
    """Read a class mapping YAML (see the module docstring) into a dict."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'class mapping not found: {path}')
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f'{path}: a class mapping must be a YAML mapping')
    return data


def _task_mapping(mapping: dict | None, task: str) -> dict:
    if not mapping:
        return {}
    if any(k in mapping for k in TASKS):
        return dict(mapping.get(task) or {})
    return dict(mapping)


def build_lookup(source: list, target: list, mapping: dict) -> np.ndarray:
    """Lookup table int64 [len(source)]: target index for each source class, -1 = dropped."""
    lut = np.full(len(source), -1, np.int64)
    for name in mapping:
        if name not in source:
            raise ValueError(f'mapping names source class {name!r} not in {list(source)}')
    for i, name in enumerate(source):
        tgt = mapping.get(name, name if name in target else None)
        if tgt is None:
            continue
        if tgt not in target:
            raise ValueError(f'mapping target {tgt!r} (from {name!r}) not in {list(target)}')
        lut[i] = target.index(tgt)
    return lut


class CombinedDataset:
    """
    Concatenation of data sets with labels and mask indices remapped to shared lists.

    Inputs:
        datasets: data sets yielding contract samples, each with ``detection_classes`` and
            ``segmentation_classes`` attributes (list of names or None).
        detection_classes: target detection class names (no background).
        segmentation_classes: target segmentation class names.
        mappings: per data set, a mapping dict, a YAML path, or None (match by name).
        unmapped_mask_value: mask value for dropped/unmatched source classes (255 = void).
    """

    def __init__(self, datasets: list, detection_classes: list | None,
                 segmentation_classes: list | None, mappings: list | None = None,
                 unmapped_mask_value: int = 255) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError('CombinedDataset needs at least one data set')
        mappings = list(mappings) if mappings is not None else [None] * len(self.datasets)
        if len(mappings) != len(self.datasets):
            raise ValueError(f'{len(mappings)} mappings for {len(self.datasets)} data sets')
        self.detection_classes = list(detection_classes or [])
        self.segmentation_classes = list(segmentation_classes or [])
        if not (0 <= unmapped_mask_value < len(self.segmentation_classes)
                or unmapped_mask_value == 255):
            raise ValueError(f'unmapped_mask_value must be 255 or a target class index, got '
                             f'{unmapped_mask_value}')
        self._det_luts, self._seg_luts = [], []
        for ds, m in zip(self.datasets, mappings):
            if isinstance(m, (str, os.PathLike)):
                m = load_class_mapping(m)
            src_det = getattr(ds, 'detection_classes', None)
            src_seg = getattr(ds, 'segmentation_classes', None)
            self._det_luts.append(
                build_lookup(list(src_det), self.detection_classes,
                             _task_mapping(m, 'detection'))
                if src_det and self.detection_classes else None)
            seg_lut = None
            if src_seg and self.segmentation_classes:
                lut = build_lookup(list(src_seg), self.segmentation_classes,
                                   _task_mapping(m, 'segmentation'))
                seg_lut = np.full(256, unmapped_mask_value, np.uint8)
                seg_lut[:len(lut)] = np.where(lut >= 0, lut, unmapped_mask_value)
                seg_lut[255] = 255
            self._seg_luts.append(seg_lut)
        self.cumulative = np.cumsum([len(d) for d in self.datasets]).tolist()

    def __len__(self) -> int:
        return self.cumulative[-1]

    def __getitem__(self, index: int) -> dict:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f'index {index} out of range for {len(self)} samples')
        k = bisect.bisect_right(self.cumulative, index)
        local = index - (self.cumulative[k - 1] if k else 0)
        sample = dict(self.datasets[k][local])
        det_lut, seg_lut = self._det_luts[k], self._seg_luts[k]
        if det_lut is None or sample.get('boxes') is None:
            sample.update(boxes=None, labels=None, difficult=None)
        else:
            new = det_lut[sample['labels']]
            keep = new >= 0
            difficult = sample.get('difficult')
            if difficult is None:
                difficult = np.zeros(len(new), np.bool_)
            sample.update(boxes=sample['boxes'][keep], labels=new[keep],
                          difficult=difficult[keep])
        if seg_lut is None or sample.get('mask') is None:
            sample['mask'] = None
        else:
            sample['mask'] = seg_lut[sample['mask']]
        return sample
