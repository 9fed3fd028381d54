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

"""Synthetic aerial scenes: determinism, exact boxes, class coverage, view continuity."""

from mtl_perception.data.synthetic import (CameraEffects, DETECTION_CLASSES, render_view,
                                           render_world, SEGMENTATION_CLASSES,
                                           SyntheticAerialDataset)
import numpy as np
import pytest


def extents(instances: np.ndarray, k: int) -> np.ndarray:
    ys, xs = np.nonzero(instances == k)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


def check_labels(boxes, labels, mask, instances, ids):
    assert boxes.dtype == np.float32 and labels.dtype == np.int64 and ids.shape == labels.shape
    # Objects are painted into the mask exactly where the instance map has them.
    np.testing.assert_array_equal(instances > 0, (mask >= 5) & (mask != 255))
    for box, label, k in zip(boxes, labels, ids):
        np.testing.assert_array_equal(box, extents(instances, k))
        assert (mask[instances == k] == label + 5).all()
        assert max(box[2] - box[0], box[3] - box[1]) >= 6


def test_class_lists():
    assert SEGMENTATION_CLASSES == ('ground', 'road', 'building', 'vegetation', 'water', 'car',
                                    'truck', 'bus', 'person', 'bicycle')
    assert DETECTION_CLASSES == ('car', 'truck', 'bus', 'person', 'bicycle')


def test_same_seed_same_arrays_and_index_isolation():
    a = SyntheticAerialDataset(5, seed=7, size=(160, 120))[3]
    b = SyntheticAerialDataset(5, seed=7, size=(160, 120))[3]
    for key in ('image', 'boxes', 'labels', 'mask'):
        np.testing.assert_array_equal(a[key], b[key])
    assert a['image_id'] == b['image_id']
    c = SyntheticAerialDataset(5, seed=8, size=(160, 120))[3]
    d = SyntheticAerialDataset(5, seed=7, size=(160, 120))[2]
    assert not np.array_equal(a['image'], c['image'])
    assert not np.array_equal(a['image'], d['image'])


def test_sample_contract_and_exact_boxes():
    ds = SyntheticAerialDataset(4, seed=2)
    for i in range(len(ds)):
        sample, instances, ids = ds.render(i)
        assert sample['image'].shape == (480, 640, 3) and sample['image'].dtype == np.uint8
        assert sample['mask'].shape == (480, 640) and sample['mask'].dtype == np.uint8
        assert sample['difficult'].shape == sample['labels'].shape
        assert sample['mask'].max() <= 9
        check_labels(sample['boxes'], sample['labels'], sample['mask'], instances, ids)
        np.testing.assert_array_equal(sample['boxes'], ds[i]['boxes'])


def test_class_coverage_and_object_sizes():
    ds = SyntheticAerialDataset(10, seed=0)
    labels, seg, sizes = [], set(), {c: [] for c in range(5)}
    for i in range(len(ds)):
        s = ds[i]
        labels += s['labels'].tolist()
        seg |= set(np.unique(s['mask']).tolist())
        for box, label in zip(s['boxes'], s['labels']):
            if label < 3:  # rotated vehicles: their length is about the longer box side
                sizes[label].append(max(box[2] - box[0], box[3] - box[1]))
    assert set(labels) == set(range(5))
    assert seg == set(range(10))
    assert 25 <= np.median(sizes[0]) <= 60  # car
    assert np.median(sizes[1]) > np.median(sizes[0])  # truck longer than car
    assert np.median(sizes[2]) > np.median(sizes[1])  # bus longest


@pytest.fixture(scope='module')
def world():
    return render_world(3, world_size=(1000, 800))


def test_world_labels_are_consistent(world):
    assert world.image.shape == (800, 1000, 3) and world.mask.shape == (800, 1000)
    assert len(world.objects) > 0
    np.testing.assert_array_equal(world.instances > 0, world.mask >= 5)
    for obj in world.objects:
        if obj['visible_pixels']:
            np.testing.assert_array_equal(obj['box'], extents(world.instances, obj['id']))
            assert obj['visible_pixels'] <= obj['area'] + 2


def test_close_views_overlap(world):
    a = render_view(world, (500, 400), 0.0, 1.0, out_size=(320, 240))
    b = render_view(world, (510, 405), 0.0, 1.0, out_size=(320, 240))
    assert (a[3][5:, 10:] == b[3][:-5, :-10]).mean() > 0.99
    assert np.abs(a[0][5:, 10:].astype(int) - b[0][:-5, :-10]).mean() < 2.0


def test_rotated_view_is_the_rotated_scene(world):
    a = render_view(world, (500, 400), 0.0, 1.0, out_size=(200, 200))
    b = render_view(world, (500, 400), np.pi / 2, 1.0, out_size=(200, 200))
    assert (np.rot90(a[3], 1) == b[3]).mean() > 0.99


@pytest.mark.parametrize('heading,altitude', [(0.3, 1.0), (2.0, 1.3), (-1.0, 0.7)])
def test_view_boxes_are_exact(world, heading, altitude):
    effects = CameraEffects(brightness=1.1, blur_sigma=0.8, noise_sigma=3.0)
    image, boxes, labels, mask, inst, ids = render_view(
        world, (480, 420), heading, altitude, out_size=(320, 240), effects=effects,
        rng=np.random.default_rng(0), return_instances=True)
    assert image.shape == (240, 320, 3) and mask.shape == (240, 320)
    check_labels(boxes, labels, mask, inst, ids)


def test_view_outside_world_is_void(world):
    image, boxes, labels, mask = render_view(world, (-5000, -5000), 0.0, 1.0,
                                             out_size=(64, 48))
    assert (mask == 255).all() and (image == 0).all() and boxes.shape == (0, 4)
