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

"""CombinedDataset remaps labels and mask indices; collate builds the training batch."""

from mtl_perception.data.collate import collate_samples
from mtl_perception.data.combined import CombinedDataset
from mtl_perception.data.transforms import build_eval_transforms
import numpy as np
import pytest
import torch

TARGET_DET = ['car', 'person', 'bicycle']
TARGET_SEG = ['ground', 'road', 'car', 'person', 'bicycle']


class ListDataset:
    """A list of samples with class-name attributes."""

    def __init__(self, samples, detection_classes, segmentation_classes):
        self.samples = samples
        self.detection_classes = detection_classes
        self.segmentation_classes = segmentation_classes

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        return self.samples[i]


def voc_like():
    det = ['aeroplane', 'bicycle', 'car', 'motorbike', 'person']
    seg = ['background'] + det
    mask = np.array([[0, 1, 2, 3, 4, 5, 255]], np.uint8).repeat(4, 0)
    sample = {'image': np.zeros((4, 7, 3), np.uint8),
              'boxes': np.arange(16, dtype=np.float32).reshape(4, 4),
              'labels': np.array([0, 3, 2, 4], np.int64),
              'difficult': np.array([False, True, False, False]), 'mask': mask,
              'image_id': 'voc'}
    return ListDataset([sample], det, seg)


def aerial_like(boxes=True):
    sample = {'image': np.zeros((4, 7, 3), np.uint8),
              'boxes': np.array([[1, 1, 3, 3]], np.float32) if boxes else None,
              'labels': np.array([1], np.int64) if boxes else None,
              'difficult': None, 'mask': np.full((4, 7), 2, np.uint8), 'image_id': 'uav'}
    return ListDataset([sample, sample], ['person', 'car'], ['ground', 'road', 'car'])


MAPPING = {'detection': {'motorbike': 'bicycle', 'aeroplane': None},
           'segmentation': {'background': 'ground', 'motorbike': 'bicycle'}}


def test_remaps_labels_boxes_and_masks():
    ds = CombinedDataset([voc_like(), aerial_like()], TARGET_DET, TARGET_SEG,
                         [MAPPING, None])
    assert len(ds) == 3
    s = ds[0]
    assert s['labels'].tolist() == [2, 0, 1]  # motorbike->bicycle, car, person
    np.testing.assert_array_equal(s['boxes'], np.arange(16, dtype=np.float32).reshape(4, 4)[1:])
    assert s['difficult'].tolist() == [True, False, False]
    # background->ground, aeroplane (no target) -> void, bicycle, car, motorbike->bicycle,
    # person; 255 stays void
    assert s['mask'][0].tolist() == [0, 255, 4, 2, 4, 3, 255]
    u = ds[2]
    assert u['labels'].tolist() == [0] and u['difficult'].tolist() == [False]
    assert (u['mask'] == 2).all()
    assert ds[-1]['image_id'] == 'uav'
    with pytest.raises(IndexError):
        ds[3]


def test_unmapped_mask_value_and_yaml_mapping(tmp_path):
    path = tmp_path / 'map.yaml'
    path.write_text('detection:\n  motorbike: bicycle\nsegmentation:\n  background: ground\n')
    ds = CombinedDataset([voc_like()], TARGET_DET, TARGET_SEG, [str(path)],
                         unmapped_mask_value=0)
    assert ds[0]['mask'][0].tolist() == [0, 0, 4, 2, 0, 3, 255]  # motorbike unmapped here
    assert ds[0]['labels'].tolist() == [2, 0, 1]  # aeroplane has no same-name target


def test_missing_task_yields_none_and_bad_mapping_raises():
    seg_only = CombinedDataset([aerial_like()], [], TARGET_SEG)
    assert seg_only[0]['boxes'] is None and seg_only[0]['mask'] is not None
    no_boxes = CombinedDataset([aerial_like(boxes=False)], TARGET_DET, TARGET_SEG)
    assert no_boxes[0]['boxes'] is None
    with pytest.raises(ValueError, match='boat'):
        CombinedDataset([voc_like()], TARGET_DET, TARGET_SEG, [{'car': 'boat'}])
    with pytest.raises(ValueError, match='unicorn'):
        CombinedDataset([voc_like()], TARGET_DET, TARGET_SEG, [{'unicorn': 'car'}])


def test_collate_training_batch():
    ds = CombinedDataset([voc_like(), aerial_like(boxes=False)], TARGET_DET, TARGET_SEG,
                         [MAPPING, None])
    tf = build_eval_transforms(14, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    samples = [tf(ds[0]), tf({**ds[1], 'mask': None})]
    images, targets = collate_samples(samples)
    assert images.shape == (2, 3, 14, 14) and images.dtype == torch.float32
    assert torch.allclose(images[0], torch.full((3, 14, 14), -2.0))
    assert targets['has_boxes'].tolist() == [True, False]
    assert targets['has_mask'].tolist() == [True, False]
    assert targets['mask'].shape == (2, 14, 14) and targets['mask'].dtype == torch.int64
    assert (targets['mask'][1] == 255).all()
    assert targets['boxes'][1].shape == (0, 4) and targets['labels'][1].shape == (0,)
    scale = torch.tensor([7 / 14 * 14, 4 / 14 * 14] * 2)  # original px -> [0, 1] of input
    expected = torch.arange(16, dtype=torch.float32).reshape(4, 4)[1:] / scale
    assert torch.allclose(targets['boxes'][0], expected, atol=1e-6)
    assert targets['labels'][0].dtype == torch.int64
    assert targets['labels'][0].tolist() == [2, 0, 1]
    assert targets['image_ids'] == ['voc', 'uav']
    with pytest.raises(ValueError, match='same shape'):
        collate_samples([samples[0], build_eval_transforms(10, (0.5,) * 3, (0.25,) * 3)(ds[0])])
