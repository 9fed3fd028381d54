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

"""VOC loader on a tiny hand-written VOC tree."""

from pathlib import Path

from mtl_perception.data.voc import (VOC_DETECTION_CLASSES, VOC_SEGMENTATION_CLASSES,
                                     VOCDataset)
import numpy as np
from PIL import Image
import pytest

XML = """<annotation>
  <filename>{id}.jpg</filename>
  <size><width>40</width><height>30</height><depth>3</depth></size>
{objects}</annotation>
"""
OBJECT = """  <object>
    <name>{name}</name><pose>Left</pose><truncated>0</truncated>
    <difficult>{difficult}</difficult>
    <bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox>
  </object>
"""


def write_voc(tmp: Path, objects: dict) -> Path:
    base = tmp / 'VOCdevkit' / 'VOC2007'
    for sub in ('Annotations', 'JPEGImages', 'SegmentationClass', 'ImageSets/Main',
                'ImageSets/Segmentation'):
        (base / sub).mkdir(parents=True)
    palette = np.zeros((256, 3), np.uint8)
    palette[1:21] = np.random.default_rng(0).integers(0, 255, (20, 3))
    palette[255] = (224, 224, 192)
    for image_id, objs in objects.items():
        Image.new('RGB', (40, 30), (90, 120, 150)).save(base / 'JPEGImages' / f'{image_id}.jpg')
        text = ''.join(OBJECT.format(name=n, difficult=int(d), b=b) for n, b, d in objs)
        xml = XML.format(id=image_id, objects=text)
        (base / 'Annotations' / f'{image_id}.xml').write_text(xml)
    (base / 'ImageSets/Main/train.txt').write_text('000001\n000002\n')
    (base / 'ImageSets/Segmentation/train.txt').write_text('000001\n000003\n')
    for image_id in ('000001', '000003'):
        mask = np.zeros((30, 40), np.uint8)
        mask[5:15, 10:20] = 15  # person
        mask[4, 9:21] = 255  # void border
        im = Image.fromarray(mask).convert('P')
        im.putpalette(palette.ravel().tolist())
        im.save(base / 'SegmentationClass' / f'{image_id}.png')
    return base


@pytest.fixture
def voc_root(tmp_path):
    write_voc(tmp_path, {
        '000001': [('person', (11, 6, 20, 15), False), ('car', (1, 1, 40, 30), True)],
        '000002': [('dog', (5, 5, 10, 12), False)],
        '000003': [('bicycle', (2, 3, 30, 20), False)],
    })
    return tmp_path


def test_class_lists():
    assert len(VOC_DETECTION_CLASSES) == 20 and VOC_DETECTION_CLASSES[14] == 'person'
    assert VOC_SEGMENTATION_CLASSES[0] == 'background'
    assert VOC_SEGMENTATION_CLASSES[1:] == VOC_DETECTION_CLASSES


def test_union_boxes_difficult_and_masks(voc_root):
    ds = VOCDataset(voc_root, year='2007', split='train')
    assert ds.ids == ['000001', '000002', '000003']
    s1, s2, s3 = ds[0], ds[1], ds[2]
    assert s1['image'].shape == (30, 40, 3) and s1['image'].dtype == np.uint8
    np.testing.assert_array_equal(s1['boxes'], [[10, 5, 20, 15], [0, 0, 40, 30]])
    assert s1['labels'].tolist() == [14, 6]
    assert s1['difficult'].tolist() == [False, True]
    assert s1['mask'].dtype == np.uint8 and s1['mask'][10, 15] == 15
    assert s1['mask'][4, 9] == 255 and s1['mask'][0, 0] == 0
    assert s2['mask'] is None and s2['labels'].tolist() == [11]
    assert s3['mask'] is not None and s3['labels'].tolist() == [1]
    assert s1['image_id'] == '000001'


def test_drop_difficult_and_single_task(voc_root):
    ds = VOCDataset(voc_root / 'VOCdevkit', split='train', keep_difficult=False)
    assert ds[0]['labels'].tolist() == [14]
    seg = VOCDataset(voc_root, split='train', tasks=('segmentation',))
    assert seg.ids == ['000001', '000003'] and seg[0]['boxes'] is None
    det = VOCDataset(voc_root / 'VOCdevkit' / 'VOC2007', year=None, split='train',
                     tasks=('detection',))
    assert det.ids == ['000001', '000002'] and det[0]['mask'] is None


def test_clear_errors(voc_root, tmp_path):
    with pytest.raises(FileNotFoundError, match='ImageSets.Main.val.txt'):
        VOCDataset(voc_root, split='val')
    with pytest.raises(FileNotFoundError, match='nowhere'):
        VOCDataset(tmp_path / 'nowhere')
    xml = voc_root / 'VOCdevkit/VOC2007/Annotations/000002.xml'
    xml.write_text(xml.read_text().replace('dog', 'unicorn'))
    with pytest.raises(ValueError, match='unicorn'):
        VOCDataset(voc_root, split='train')[1]
