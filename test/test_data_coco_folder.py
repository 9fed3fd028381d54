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

"""COCO-format folder: round trip through write_coco_folder, boxes-only and masks-only."""

import json

from mtl_perception.data.coco_folder import CocoFolderDataset, write_coco_folder
from mtl_perception.data.synthetic import SyntheticAerialDataset
import numpy as np
from PIL import Image
import pytest


class ListDataset:
    """A list of samples with class-name attributes."""

    def __init__(self, samples, detection_classes=None, segmentation_classes=None):
        self.samples = samples
        self.detection_classes = detection_classes
        self.segmentation_classes = segmentation_classes

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        return self.samples[i]


def small_sample(image_id: str, boxes=True, mask=True, crowd=False) -> dict:
    rng = np.random.default_rng(len(image_id) + int(boxes) + 2 * int(mask))
    return {
        'image': rng.integers(0, 255, (20, 30, 3), dtype=np.uint8),
        'boxes': np.array([[1.5, 2.0, 10.0, 12.25]], np.float32) if boxes else None,
        'labels': np.array([1], np.int64) if boxes else None,
        'difficult': np.array([crowd]) if boxes else None,
        'mask': rng.integers(0, 3, (20, 30), dtype=np.uint8) if mask else None,
        'image_id': image_id}


def test_round_trip_synthetic_png(tmp_path):
    ds = SyntheticAerialDataset(3, seed=4, size=(160, 120), density=3.0)
    path = write_coco_folder(tmp_path, ds, split='val', progress=False)
    assert path == tmp_path / 'annotations' / 'instances_val.json'
    back = CocoFolderDataset(tmp_path, split='val')
    assert back.detection_classes == ds.detection_classes
    assert back.segmentation_classes == ds.segmentation_classes
    assert len(back) == 3
    total = 0
    for i in range(3):
        a, b = ds[i], back[i]
        np.testing.assert_array_equal(a['image'], b['image'])
        np.testing.assert_array_equal(a['mask'], b['mask'])
        np.testing.assert_allclose(a['boxes'], b['boxes'], atol=1e-4)
        np.testing.assert_array_equal(a['labels'], b['labels'])
        assert b['difficult'].dtype == np.bool_ and not b['difficult'].any()
        assert b['image_id'] == a['image_id']
        total += len(b['boxes'])
    assert total > 0


def test_jpeg_round_trip_is_close(tmp_path):
    ds = ListDataset([small_sample('a')], ['x', 'y'], ['p', 'q', 'r'])
    write_coco_folder(tmp_path, ds, image_format='jpg', progress=False)
    back = CocoFolderDataset(tmp_path)
    assert (tmp_path / 'images' / 'a.jpg').is_file()
    assert back[0]['image'].shape == (20, 30, 3)
    np.testing.assert_array_equal(back[0]['mask'], ds[0]['mask'])


def test_boxes_only_masks_only_and_crowd(tmp_path):
    boxes_only = ListDataset([small_sample('b', mask=False, crowd=True),
                              {**small_sample('e', mask=False),
                               'boxes': np.zeros((0, 4), np.float32),
                               'labels': np.zeros(0, np.int64)}], ['x', 'y'], None)
    write_coco_folder(tmp_path / 'b', boxes_only, progress=False)
    back = CocoFolderDataset(tmp_path / 'b')
    assert back.segmentation_classes is None
    assert back[0]['mask'] is None and back[0]['difficult'].tolist() == [True]
    assert back[1]['boxes'].shape == (0, 4)  # labelled, no objects
    masks_only = ListDataset([small_sample('m', boxes=False)], None, ['p', 'q', 'r'])
    write_coco_folder(tmp_path / 'm', masks_only, progress=False)
    back = CocoFolderDataset(tmp_path / 'm')
    assert back.detection_classes is None and back[0]['boxes'] is None
    np.testing.assert_array_equal(back[0]['mask'], masks_only[0]['mask'])


def test_hand_written_json_with_sidecar_and_sparse_ids(tmp_path):
    (tmp_path / 'images').mkdir()
    (tmp_path / 'masks').mkdir()
    (tmp_path / 'annotations').mkdir()
    Image.new('RGB', (8, 6)).save(tmp_path / 'images' / 'f.jpg')
    Image.new('RGB', (8, 6)).save(tmp_path / 'images' / 'g.jpg')
    mask = np.array([[0, 7, 9, 255, 3, 0, 0, 0]] * 6, np.uint8)
    Image.fromarray(mask).save(tmp_path / 'masks' / 'f.png')
    data = {'images': [{'id': 5, 'file_name': 'f.jpg', 'width': 8, 'height': 6},
                       {'id': 6, 'file_name': 'g.jpg', 'width': 8, 'height': 6}],
            'annotations': [{'id': 1, 'image_id': 5, 'category_id': 30, 'bbox': [1, 1, 2, 3],
                             'iscrowd': 0},
                            {'id': 2, 'image_id': 5, 'category_id': 30, 'bbox': [1, 1, 0, 3],
                             'iscrowd': 0}],
            'categories': [{'id': 30, 'name': 'car'}, {'id': 10, 'name': 'person'}]}
    (tmp_path / 'annotations' / 'instances_train.json').write_text(json.dumps(data))
    (tmp_path / 'annotations' / 'segmentation_categories.json').write_text(json.dumps(
        [{'id': 0, 'name': 'ground'}, {'id': 9, 'name': 'car'}, {'id': 7, 'name': 'road'}]))
    ds = CocoFolderDataset(tmp_path)
    assert ds.detection_classes == ['person', 'car']
    assert ds.segmentation_classes == ['ground', 'road', 'car']
    s = ds[0]
    np.testing.assert_array_equal(s['boxes'], [[1, 1, 3, 4]])  # zero-width box dropped
    assert s['labels'].tolist() == [1]
    assert s['mask'][0].tolist() == [0, 1, 2, 255, 255, 0, 0, 0]
    assert ds[1]['mask'] is None


def test_missing_files_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match='instances_train.json'):
        CocoFolderDataset(tmp_path)
    with pytest.raises(ValueError, match='image_format'):
        write_coco_folder(tmp_path, ListDataset([]), image_format='bmp')
