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

"""Joint transforms keep image, boxes and mask consistent; None labels pass through."""

from mtl_perception.data.transforms import (as_generator, build_eval_transforms,
                                            build_train_transforms, Compose, Expand,
                                            PhotometricDistort, RandomHorizontalFlip,
                                            RandomSampleCrop, Resize, ToTensorNormalize,
                                            TransformedDataset, validate_sample)
import numpy as np
import pytest
import torch

OBJECT_RGB = (200, 30, 30)
BACKGROUND_RGB = (40, 90, 40)
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def painted_sample(w: int = 64, h: int = 48, box=(20, 10, 37, 29)) -> dict:
    """Image with one rectangle object painted into both the image and the mask (class 3)."""
    image = np.empty((h, w, 3), np.uint8)
    image[...] = BACKGROUND_RGB
    mask = np.ones((h, w), np.uint8)
    mask[:4] = 255  # a void band that must stay void
    x1, y1, x2, y2 = box
    image[y1:y2, x1:x2] = OBJECT_RGB
    mask[y1:y2, x1:x2] = 3
    return {'image': image, 'boxes': np.array([box], np.float32),
            'labels': np.array([2], np.int64), 'difficult': np.array([True]),
            'mask': mask, 'image_id': 'painted'}


def mask_extent(mask: np.ndarray, cls: int) -> np.ndarray:
    ys, xs = np.nonzero(mask == cls)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


def assert_consistent(sample: dict, tol: float = 0.0) -> None:
    assert sample['boxes'].shape == (1, 4)
    assert sample['labels'].tolist() == [2]
    assert sample['difficult'].tolist() == [True]
    np.testing.assert_allclose(sample['boxes'][0], mask_extent(sample['mask'], 3), atol=tol)
    x1, y1, x2, y2 = np.round(sample['boxes'][0]).astype(int)
    inner = sample['image'][y1 + int(tol):y2 - int(tol), x1 + int(tol):x2 - int(tol)]
    assert inner.size > 0
    assert (np.abs(inner.astype(int) - OBJECT_RGB).max(axis=-1) <= 2).all()


@pytest.mark.parametrize('seed', range(12))
@pytest.mark.parametrize('transform,tol', [
    (RandomHorizontalFlip(p=1.0), 0.0),
    (Expand(max_ratio=3.0, p=1.0), 0.0),
    (RandomSampleCrop(min_ious=(0.0, 0.1, 0.3, 0.5, 0.7, 0.9)), 0.0),
    (Resize(40), 1.0),
    (Resize((90, 33)), 1.0),
])
def test_geometry_keeps_box_on_object_pixels(transform, tol, seed):
    out = transform(painted_sample(), np.random.default_rng(seed))
    assert out['image'].shape[:2] == out['mask'].shape
    assert_consistent(out, tol)


@pytest.mark.parametrize('seed', range(6))
def test_crop_that_cuts_the_object_clips_box_to_visible_pixels(seed):
    sample = painted_sample(box=(4, 6, 60, 44))  # large object: crops usually cut it
    out = RandomSampleCrop(min_ious=(0.1,))(sample, np.random.default_rng(seed))
    assert_consistent(out)


def test_flip_moves_box_exactly():
    out = RandomHorizontalFlip(p=1.0)(painted_sample(), 0)
    np.testing.assert_array_equal(out['boxes'][0], [64 - 37, 10, 64 - 20, 29])


def test_expand_pads_mask_with_void_and_image_with_fill():
    sample = painted_sample()
    out = Expand(max_ratio=3.0, fill=(1, 2, 3), p=1.0)(sample, np.random.default_rng(5))
    h, w = out['mask'].shape
    assert (h, w) != (48, 64)
    added = h * w - 48 * 64
    assert (out['mask'] == 255).sum() == added + (sample['mask'] == 255).sum()
    assert ((out['image'] == (1, 2, 3)).all(-1)).sum() == added
    assert (out['mask'] == 1).sum() == (sample['mask'] == 1).sum()


def test_crop_and_resize_keep_void():
    sample = painted_sample()
    out = Compose([RandomSampleCrop(min_ious=(0.0,)), Resize(32)])(sample, 3)
    assert set(np.unique(out['mask'])) <= {1, 3, 255}


def test_photometric_distort_changes_only_the_image():
    sample = painted_sample()
    changed = False
    for seed in range(5):
        out = PhotometricDistort(p=1.0)(sample, seed)
        assert out['image'].dtype == np.uint8 and out['image'].shape == (48, 64, 3)
        np.testing.assert_array_equal(out['boxes'], sample['boxes'])
        np.testing.assert_array_equal(out['mask'], sample['mask'])
        changed |= not np.array_equal(out['image'], sample['image'])
    assert changed
    np.testing.assert_array_equal(sample['image'][0, 0], BACKGROUND_RGB)  # input untouched


@pytest.mark.parametrize('missing', ['boxes', 'mask', 'both'])
def test_unlabelled_tasks_pass_through(missing):
    sample = painted_sample()
    if missing in ('boxes', 'both'):
        sample.update(boxes=None, labels=None, difficult=None)
    if missing in ('mask', 'both'):
        sample['mask'] = None
    pipeline = build_train_transforms(32, MEAN, STD)
    for seed in range(8):
        out = pipeline(sample, seed)
        assert out['image'].shape == (3, 32, 32)
        assert out['has_boxes'] == (missing == 'mask')
        assert out['has_mask'] == (missing == 'boxes')
        if not out['has_boxes']:
            assert out['boxes'].shape == (0, 4) and out['labels'].shape == (0,)
        if not out['has_mask']:
            assert (out['mask'] == 255).all()


def test_empty_boxes_are_cropped_freely_and_stay_empty():
    sample = painted_sample()
    sample.update(boxes=np.zeros((0, 4), np.float32), labels=np.zeros(0, np.int64),
                  difficult=np.zeros(0, np.bool_))
    sizes = set()
    for seed in range(10):
        out = RandomSampleCrop(min_ious=(0.9,))(sample, seed)
        assert out['boxes'].shape == (0, 4)
        assert out['mask'].shape == out['image'].shape[:2]
        sizes.add(out['image'].shape)
    assert len(sizes) > 1


def test_train_pipeline_is_reproducible_and_accepts_torch_generator():
    sample = painted_sample()
    pipeline = build_train_transforms(32, MEAN, STD)
    a, b = pipeline(sample, 11), pipeline(sample, 11)
    assert torch.equal(a['image'], b['image']) and torch.equal(a['mask'], b['mask'])
    assert torch.equal(a['boxes'], b['boxes'])
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    assert torch.equal(pipeline(sample, g1)['image'], pipeline(sample, g2)['image'])
    different = [not torch.equal(pipeline(sample, s)['image'], a['image']) for s in range(5)]
    assert any(different)


def test_to_tensor_normalize_format():
    out = build_eval_transforms(24, MEAN, STD)(painted_sample())
    assert out['image'].dtype == torch.float32 and out['image'].shape == (3, 24, 24)
    expected = (OBJECT_RGB[0] / 255 - MEAN[0]) / STD[0]
    x1, y1, x2, y2 = out['boxes'][0].round().int().tolist()
    assert torch.allclose(out['image'][0, y1 + 1, x1 + 1], torch.tensor(expected), atol=0.05)
    assert out['boxes'].dtype == torch.float32 and out['labels'].dtype == torch.int64
    assert out['mask'].dtype == torch.int64 and out['mask'].shape == (24, 24)
    assert out['has_boxes'] and out['has_mask'] and out['image_id'] == 'painted'


def test_transformed_dataset_seeds_per_index_and_epoch():
    data = [painted_sample(), painted_sample()]
    ds = TransformedDataset(data, build_train_transforms(32, MEAN, STD), seed=1)
    first = ds[0]['image']
    assert torch.equal(first, ds[0]['image'])
    changed = []
    for epoch in range(1, 5):
        ds.set_epoch(epoch)
        changed.append(not torch.equal(first, ds[0]['image']))
    assert any(changed)


def test_bad_inputs_raise():
    sample = painted_sample()
    sample['mask'] = sample['mask'][:10]
    with pytest.raises(ValueError, match='mask'):
        validate_sample(sample)
    sample = painted_sample()
    sample['image'] = sample['image'][..., 0]
    with pytest.raises(ValueError, match='image'):
        ToTensorNormalize()(sample)
    with pytest.raises(ValueError, match='rng'):
        as_generator('seed')
