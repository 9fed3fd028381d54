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
Joint image/box/mask augmentations on contract samples.

Every transform is called as ``t(sample, rng)`` and returns a new sample dict (the input is not
modified). ``rng`` may be a ``np.random.Generator``, an int seed, a ``torch.Generator`` (one
64-bit seed is drawn from it) or None (fresh OS entropy: not reproducible). :class:`Compose`
passes one generator through all its transforms, so a pipeline is reproducible from one seed;
:class:`TransformedDataset` seeds each sample from (seed, epoch, index).

Boxes None / mask None ("not labelled") pass through every transform; geometry keeps boxes,
mask and image consistent: boxes are continuous pixel extents, flips and crops move them
exactly, resizes scale them (mask by nearest neighbour, so within 1 px). Padding added by
:class:`Expand` is 255 (void) in the mask so the loss ignores it, and a mean colour in the
image. :class:`ToTensorNormalize` produces the per-sample training format that
:func:`mtl_perception.data.collate.collate_samples` batches.
"""

import numpy as np
from PIL import Image
import torch
import torch.utils.data

VOID = 255


def as_generator(rng=None) -> np.random.Generator:
    """Turn None / int / np.random.Generator / torch.Generator into a numpy Generator."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, torch.Generator):
        return np.random.default_rng(int(torch.randint(0, 2 ** 62, (1,), generator=rng)))
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise ValueError(f'rng must be None, an int, np.random.Generator or torch.Generator, '
                     f'got {type(rng).__name__}')


def validate_sample(sample: dict) -> None:
    """Raise ValueError if a sample breaks the data contract (shapes and dtypes)."""
    image = sample.get('image')
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3:
        raise ValueError(f'image must be uint8 [H, W, 3], got '
                         f'{getattr(image, "dtype", type(image))} {getattr(image, "shape", "")}')
    boxes = sample.get('boxes')
    if boxes is not None:
        labels = sample.get('labels')
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f'boxes must be [M, 4], got shape {boxes.shape}')
        if labels is None or labels.shape != (boxes.shape[0],):
            raise ValueError(f'labels must be [M] with M = {boxes.shape[0]}, got '
                             f'{None if labels is None else labels.shape}')
    mask = sample.get('mask')
    if mask is not None and (mask.dtype != np.uint8 or mask.shape != image.shape[:2]):
        raise ValueError(f'mask must be uint8 {image.shape[:2]}, got {mask.dtype} {mask.shape}')


def _difficult(sample: dict) -> np.ndarray | None:
    if sample.get('boxes') is None:
        return None
    d = sample.get('difficult')
    return np.zeros(len(sample['boxes']), np.bool_) if d is None else d


class Compose:
    """Apply transforms in order, sharing one generator."""

    def __init__(self, transforms: list) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: dict, rng=None) -> dict:
        rng = as_generator(rng)
        for t in self.transforms:
            sample = t(sample, rng)
        return sample


class PhotometricDistort:
    """
    SSD photometric distortion (image only): brightness, contrast, saturation, hue, swap.

    Each of brightness/contrast/saturation/hue is applied with probability ``p``; contrast
    goes before or after the colour steps at random; channels are permuted with probability
    ``swap_p``. Hue is rotated in YIQ space by up to ``hue_delta`` degrees.
    """

    _YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322],
                     [0.211, -0.523, 0.312]], np.float32)

    def __init__(self, brightness_delta: float = 32.0, contrast: tuple = (0.5, 1.5),
                 saturation: tuple = (0.5, 1.5), hue_delta: float = 18.0, p: float = 0.5,
                 swap_p: float = 0.5) -> None:
        self.brightness_delta, self.contrast, self.saturation = brightness_delta, contrast, \
            saturation
        self.hue_delta, self.p, self.swap_p = hue_delta, p, swap_p

    def __call__(self, sample: dict, rng=None) -> dict:
        rng = as_generator(rng)
        img = sample['image'].astype(np.float32)
        if rng.random() < self.p:
            img += rng.uniform(-self.brightness_delta, self.brightness_delta)
        contrast_first = rng.random() < 0.5
        factor = rng.uniform(*self.contrast) if rng.random() < self.p else None
        if contrast_first and factor is not None:
            img *= factor
        if rng.random() < self.p:
            gray = (img @ self._YIQ[0])[..., None]
            img = gray + rng.uniform(*self.saturation) * (img - gray)
        if rng.random() < self.p:
            a = np.deg2rad(rng.uniform(-self.hue_delta, self.hue_delta))
            rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]],
                           np.float32)
            t = np.linalg.inv(self._YIQ) @ rot @ self._YIQ
            img = img @ t.T.astype(np.float32)
        if not contrast_first and factor is not None:
            img *= factor
        img = np.clip(img, 0, 255).astype(np.uint8)
        if rng.random() < self.swap_p:
            img = np.ascontiguousarray(img[..., rng.permutation(3)])
        return {**sample, 'image': img}


class Expand:
    """
    Zoom out: place the image at a random spot on a canvas up to ``max_ratio`` times larger.

    The image padding is ``fill`` (RGB uint8, usually the data mean); the mask padding is
    ``mask_fill`` (default 255 void, so padding is ignored by the segmentation loss).
    """

    def __init__(self, max_ratio: float = 4.0, fill: tuple = (124, 116, 104),
                 mask_fill: int = VOID, p: float = 0.5) -> None:
        if max_ratio < 1:
            raise ValueError(f'max_ratio must be >= 1, got {max_ratio}')
        self.max_ratio, self.fill, self.mask_fill, self.p = max_ratio, fill, mask_fill, p

    def __call__(self, sample: dict, rng=None) -> dict:
        rng = as_generator(rng)
        if rng.random() >= self.p:
            return sample
        h, w = sample['image'].shape[:2]
        ratio = rng.uniform(1.0, self.max_ratio)
        nh, nw = int(h * ratio), int(w * ratio)
        top, left = int(rng.uniform(0, nh - h)), int(rng.uniform(0, nw - w))
        image = np.empty((nh, nw, 3), np.uint8)
        image[...] = np.asarray(self.fill, np.uint8)
        image[top:top + h, left:left + w] = sample['image']
        out = {**sample, 'image': image}
        if sample.get('mask') is not None:
            mask = np.full((nh, nw), self.mask_fill, np.uint8)
            mask[top:top + h, left:left + w] = sample['mask']
            out['mask'] = mask
        if sample.get('boxes') is not None:
            out['boxes'] = sample['boxes'] + np.array([left, top, left, top], np.float32)
        return out


def _iou(boxes: np.ndarray, rect: np.ndarray) -> np.ndarray:
    lt = np.maximum(boxes[:, :2], rect[:2])
    rb = np.minimum(boxes[:, 2:], rect[2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    return inter / (area + np.prod(rect[2:] - rect[:2]) - inter)


class RandomSampleCrop:
    """
    SSD random crop.

    Each call picks one option from ``min_ious``: None keeps the whole image; a float asks
    for a crop (side 0.3-1 of the image, aspect 0.5-2) whose IoU with at least one box is at
    least that value (0.0 = any crop, as the original SSD's unconstrained option). Boxes whose
    centre lies in the crop are kept and clipped to it (at least one must remain); the mask is
    cropped identically. Samples without boxes (None or empty) are cropped freely.
    """

    def __init__(self, min_ious: tuple = (None, 0.1, 0.3, 0.5, 0.7, 0.9, 0.0),
                 min_scale: float = 0.3, max_trials: int = 50) -> None:
        self.min_ious, self.min_scale, self.max_trials = tuple(min_ious), min_scale, max_trials

    def __call__(self, sample: dict, rng=None) -> dict:
        rng = as_generator(rng)
        h, w = sample['image'].shape[:2]
        boxes = sample.get('boxes')
        has_boxes = boxes is not None and len(boxes) > 0
        for _ in range(self.max_trials):
            mode = self.min_ious[rng.integers(len(self.min_ious))]
            if mode is None:
                return sample
            for _ in range(self.max_trials):
                cw, ch = rng.uniform(self.min_scale * w, w), rng.uniform(self.min_scale * h, h)
                if not 0.5 <= ch / cw <= 2.0:
                    continue
                left, top = int(rng.uniform(0, w - cw)), int(rng.uniform(0, h - ch))
                rect = np.array([left, top, left + int(cw), top + int(ch)], np.float32)
                if rect[2] <= rect[0] or rect[3] <= rect[1]:
                    continue
                if not has_boxes:
                    return self._crop(sample, rect, None)
                if _iou(boxes, rect).max() < mode:
                    continue
                centres = (boxes[:, :2] + boxes[:, 2:]) / 2.0
                keep = np.all((centres > rect[:2]) & (centres < rect[2:]), axis=1)
                if keep.any():
                    return self._crop(sample, rect, keep)
        return sample

    @staticmethod
    def _crop(sample: dict, rect: np.ndarray, keep: np.ndarray | None) -> dict:
        x0, y0, x1, y1 = (int(v) for v in rect)
        out = {**sample, 'image': np.ascontiguousarray(sample['image'][y0:y1, x0:x1])}
        if sample.get('mask') is not None:
            out['mask'] = np.ascontiguousarray(sample['mask'][y0:y1, x0:x1])
        if keep is not None:
            b = sample['boxes'][keep].copy()
            b[:, :2] = np.maximum(b[:, :2], rect[:2])
            b[:, 2:] = np.minimum(b[:, 2:], rect[2:])
            out['boxes'] = b - np.array([x0, y0, x0, y0], np.float32)
            out['labels'] = sample['labels'][keep]
            out['difficult'] = _difficult(sample)[keep]
        return out


class RandomHorizontalFlip:
    """Mirror image, mask and boxes left-right with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, sample: dict, rng=None) -> dict:
        rng = as_generator(rng)
        if rng.random() >= self.p:
            return sample
        w = sample['image'].shape[1]
        out = {**sample, 'image': np.ascontiguousarray(sample['image'][:, ::-1])}
        if sample.get('mask') is not None:
            out['mask'] = np.ascontiguousarray(sample['mask'][:, ::-1])
        if sample.get('boxes') is not None:
            b = sample['boxes']
            out['boxes'] = np.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], axis=1)
        return out


class Resize:
    """Resize to ``size`` (int S -> S x S, or (W, H)): image bilinear, mask nearest."""

    def __init__(self, size) -> None:
        self.size = (int(size), int(size)) if np.isscalar(size) else (int(size[0]),
                                                                      int(size[1]))

    def __call__(self, sample: dict, rng=None) -> dict:
        h, w = sample['image'].shape[:2]
        nw, nh = self.size
        out = {**sample, 'image': np.asarray(
            Image.fromarray(sample['image']).resize((nw, nh), Image.BILINEAR))}
        if sample.get('mask') is not None:
            out['mask'] = np.asarray(Image.fromarray(sample['mask']).resize((nw, nh),
                                                                            Image.NEAREST))
        if sample.get('boxes') is not None:
            scale = np.array([nw / w, nh / h, nw / w, nh / h], np.float32)
            out['boxes'] = (sample['boxes'] * scale).astype(np.float32)
        return out


class ToTensorNormalize:
    """
    Convert to the per-sample training format.

    Output dict: 'image' float32 tensor [3, H, W] = (image / 255 - mean) / std (mean/std on
    the 0-1 scale); 'boxes' float32 [M, 4] x1, y1, x2, y2 in pixels ([0, 4] when unlabelled);
    'labels' int64 [M]; 'difficult' bool [M]; 'has_boxes' bool; 'mask' int64 [H, W] (all 255
    when unlabelled); 'has_mask' bool; 'image_id' str.
    """

    def __init__(self, mean: tuple = (0.485, 0.456, 0.406),
                 std: tuple = (0.229, 0.224, 0.225)) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)

    def __call__(self, sample: dict, rng=None) -> dict:
        validate_sample(sample)
        image = torch.from_numpy(np.array(sample['image'], copy=True)).permute(2, 0, 1)
        image = (image.float() / 255.0 - self.mean) / self.std
        h, w = sample['image'].shape[:2]
        has_boxes = sample.get('boxes') is not None
        boxes = sample['boxes'] if has_boxes else np.zeros((0, 4), np.float32)
        labels = sample['labels'] if has_boxes else np.zeros(0, np.int64)
        difficult = _difficult(sample) if has_boxes else np.zeros(0, np.bool_)
        has_mask = sample.get('mask') is not None
        mask = torch.from_numpy(sample['mask'].astype(np.int64)) if has_mask else \
            torch.full((h, w), VOID, dtype=torch.int64)
        return {'image': image, 'boxes': torch.as_tensor(boxes, dtype=torch.float32),
                'labels': torch.as_tensor(labels, dtype=torch.int64),
                'difficult': torch.as_tensor(difficult, dtype=torch.bool),
                'has_boxes': has_boxes, 'mask': mask, 'has_mask': has_mask,
                'image_id': sample.get('image_id', '')}


def _fill(mean: tuple) -> tuple:
    return tuple(int(round(255 * m)) for m in mean)


def build_train_transforms(size: int, mean: tuple, std: tuple) -> Compose:
    """Build the SSD training pipeline: distort, expand, crop, flip, resize, tensor."""
    return Compose([PhotometricDistort(), Expand(fill=_fill(mean)), RandomSampleCrop(),
                    RandomHorizontalFlip(), Resize(size), ToTensorNormalize(mean, std)])


def build_eval_transforms(size: int, mean: tuple, std: tuple) -> Compose:
    """Build the evaluation pipeline: resize to S x S, tensor."""
    return Compose([Resize(size), ToTensorNormalize(mean, std)])


class TransformedDataset(torch.utils.data.Dataset):
    """
    Apply a transform to a data set, seeding sample ``i`` from (seed, epoch, i).

    Results then do not depend on worker count or order; call :meth:`set_epoch` each epoch
    for fresh augmentations.
    """

    def __init__(self, dataset, transform, seed: int = 0) -> None:
        self.dataset, self.transform, self.seed, self.epoch = dataset, transform, int(seed), 0
        self.detection_classes = getattr(dataset, 'detection_classes', None)
        self.segmentation_classes = getattr(dataset, 'segmentation_classes', None)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of ``epoch``."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        sample = self.dataset[index]
        validate_sample(sample)
        return self.transform(sample, np.random.default_rng([self.seed, self.epoch, index]))
