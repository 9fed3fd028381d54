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
Deterministic synthetic aerial (top-down UAV) scenes with exact boxes and masks.

Segmentation classes (index order fixed): 0 ground, 1 road, 2 building, 3 vegetation, 4 water,
5 car, 6 truck, 7 bus, 8 person, 9 bicycle. Detection classes: car, truck, bus, person,
bicycle (detection label = segmentation index - 5; objects are painted into the mask too).

Two APIs:

* :class:`SyntheticAerialDataset` yields samples per the data contract; image ``i`` is rendered
  from ``np.random.default_rng([seed, i])`` alone, so any index is reproducible in isolation.
  Each image is its own small world rendered at a random altitude, with the road layout at a
  random heading, plus random camera effects (lighting, colour cast, blur, noise).
* :func:`render_world` draws one large scene and :func:`render_view` cuts a rotated, scaled
  camera view out of it, for continuous camera paths over one scene.

:func:`write_coco_folder` (from :mod:`.coco_folder`) writes a data set to disk in the
COCO-format folder layout that :class:`~.coco_folder.CocoFolderDataset` reads back.

Boxes are always the pixel extents ``[xmin, ymin, xmax + 1, ymax + 1]`` of an object's visible
mask pixels. An object is not labelled with a box when under ``MIN_VISIBLE_FRACTION`` of it is
visible (canopy occlusion or frame edge) or its box is under ``MIN_BOX_SIDE`` px on both sides;
its pixels stay in the mask (the mask is always exact).
"""

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from .coco_folder import write_coco_folder  # re-exported: writes these data sets to disk
from .synthetic_shapes import DETECTION_CLASSES, SEGMENTATION_CLASSES
from .synthetic_world import instance_boxes, render_world, World

__all__ = ['CameraEffects', 'DETECTION_CLASSES', 'MIN_BOX_SIDE', 'MIN_VISIBLE_FRACTION',
           'SEGMENTATION_CLASSES', 'SyntheticAerialDataset', 'SyntheticFlightViews', 'World',
           'apply_camera_effects',
           'FLIGHT_PIXELS_PER_UNIT', 'motion_blur', 'render_view', 'render_world',
           'write_coco_folder']

MIN_VISIBLE_FRACTION = 0.3
MIN_BOX_SIDE = 6.0
# Altitude relative to the reference (world units = pixels): car length ~25-60 px.
# Low enough that a person (about 13 world units long) spans 8+ px of a 256-320 px network
# input after the 640x480 frame is resized to it.
DEFAULT_ALTITUDE_RANGE = (0.35, 0.7)
# Flights render their world at this ground resolution and sample views from it: a view at
# altitude scale a sees the ground as an image of this module at altitude a / 2.
FLIGHT_PIXELS_PER_UNIT = 2.0


@dataclass
class CameraEffects:
    """
    Per-frame photometric camera effects.

    Fields:
        brightness: multiplicative gain.
        contrast: contrast factor around the image mean.
        colour_cast: per-channel RGB gains.
        blur_sigma: Gaussian blur radius in pixels (0 = none).
        noise_sigma: std of additive Gaussian noise in 8-bit levels (0 = none).
        motion_blur_px: length in pixels of a motion blur along the image's vertical axis,
            the direction of travel of a flight's camera (under 2 = none).
    """

    brightness: float = 1.0
    contrast: float = 1.0
    colour_cast: tuple = (1.0, 1.0, 1.0)
    blur_sigma: float = 0.0
    noise_sigma: float = 0.0
    motion_blur_px: float = 0.0

    @classmethod
    def sample(cls, rng: np.random.Generator) -> 'CameraEffects':
        """Draw random effects (lighting, cast, blur in 40% of frames, noise)."""
        return cls(brightness=float(rng.uniform(0.7, 1.25)),
                   contrast=float(rng.uniform(0.8, 1.2)),
                   colour_cast=tuple(float(v) for v in 1.0 + rng.uniform(-0.08, 0.08, 3)),
                   blur_sigma=float(rng.uniform(0.3, 1.2)) if rng.random() < 0.4 else 0.0,
                   noise_sigma=float(rng.uniform(0.0, 6.0)))

    @classmethod
    def sample_flight(cls, rng: np.random.Generator) -> 'CameraEffects':
        """Draw effects of a camera in flight: wider exposure swings, motion blur in 40%."""
        return cls(brightness=float(rng.uniform(0.6, 1.4)),
                   contrast=float(rng.uniform(0.75, 1.25)),
                   colour_cast=tuple(float(v) for v in 1.0 + rng.uniform(-0.08, 0.08, 3)),
                   blur_sigma=float(rng.uniform(0.3, 1.0)) if rng.random() < 0.2 else 0.0,
                   noise_sigma=float(rng.uniform(0.0, 6.0)),
                   motion_blur_px=float(rng.uniform(2.0, 8.0)) if rng.random() < 0.4 else 0.0)


def motion_blur(image: np.ndarray, length: float) -> np.ndarray:
    """
    Blur a uint8 [H, W, C] image with a box of ``length`` pixels along its vertical axis.

    The box is centred (edges repeat); a length under 2 returns the image unchanged.
    """
    taps = int(round(length))
    if taps < 2:
        return image
    before = (taps - 1) // 2
    padded = np.pad(image.astype(np.float32), ((before, taps - 1 - before), (0, 0), (0, 0)),
                    mode='edge')
    sums = np.cumsum(padded, axis=0, dtype=np.float32)
    sums = np.concatenate([np.zeros_like(sums[:1]), sums])
    out = (sums[taps:] - sums[:-taps]) / np.float32(taps)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def apply_camera_effects(image: np.ndarray, effects: CameraEffects | None,
                         rng: np.random.Generator | None = None) -> np.ndarray:
    """
    Apply camera effects to a uint8 [H, W, 3] image; returns a new uint8 image.

    ``rng`` draws the noise; when None a fixed-seed generator is used (reproducible, but the
    noise pattern then repeats between calls).
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f'image must be uint8 [H, W, 3], got {image.dtype} {image.shape}')
    if effects is None:
        return image.copy()
    image = motion_blur(image, effects.motion_blur_px)
    if effects.blur_sigma > 0:
        image = np.asarray(Image.fromarray(image).filter(
            ImageFilter.GaussianBlur(effects.blur_sigma)))
    # contrast about the mean, brightness and cast folded into one gain and offset per channel
    cast = np.asarray(effects.colour_cast, np.float32) * effects.brightness
    gain = cast * effects.contrast
    offset = cast * (1.0 - effects.contrast) * float(image.mean())
    img = image.astype(np.float32)
    img *= gain
    img += offset
    if effects.noise_sigma > 0:
        rng = rng if rng is not None else np.random.default_rng(0)
        noise = rng.standard_normal(img.shape[:2], dtype=np.float32)
        noise *= effects.noise_sigma
        img += noise[..., None]
    np.clip(img, 0, 255, out=img)
    return img.astype(np.uint8)


def _labelled_boxes(instances: np.ndarray, objects: list, area_scale: float) -> tuple:
    """Boxes/labels of objects visible enough in an instance map; area_scale = px ratio^2."""
    boxes, counts = instance_boxes(instances, len(objects))
    keep = []
    for k, obj in enumerate(objects):
        side = max(boxes[k, 2] - boxes[k, 0], boxes[k, 3] - boxes[k, 1])
        if counts[k] >= MIN_VISIBLE_FRACTION * obj['area'] * area_scale and \
                counts[k] > 0 and side >= MIN_BOX_SIDE:
            keep.append(k)
    labels = np.array([objects[k]['label'] for k in keep], np.int64)
    return boxes[keep].reshape(-1, 4), labels, np.array(keep, np.int64) + 1


def render_view(world: World, center_xy: tuple, heading_rad: float,
                altitude_scale: float = 1.0, out_size: tuple = (640, 480),
                effects: CameraEffects | None = None, rng: np.random.Generator | None = None,
                return_instances: bool = False) -> tuple:
    """
    Render a camera view of a world.

    Output pixel centre (u, v) sees the world point
    ``center + altitude_scale * R(heading) @ (u - W/2, v - H/2)`` with
    ``R(h) = [[cos h, -sin h], [sin h, cos h]]`` in world pixel coordinates (x right, y down),
    i.e. the view's +x axis points along world direction (cos h, sin h).
    ``altitude_scale`` is the altitude relative to the world's: 2 makes objects half as big.

    Image pixels are sampled bilinearly, mask and instances by nearest neighbour. Pixels
    outside the world are black with mask 255 (void). Boxes follow the module's visibility
    rule, with the object's unoccluded area scaled by ``1 / altitude_scale**2``.

    Output:
        (image uint8 [H, W, 3], boxes float32 [M, 4] x1, y1, x2, y2 px, labels int64 [M],
        mask uint8 [H, W]); with ``return_instances`` also the view's instance map int32
        [H, W] (``k`` is ``world.objects[k - 1]``, 0 none) and int64 [M] the id of each box.
    """
    w, h = (int(v) for v in out_size)
    if w <= 0 or h <= 0 or altitude_scale <= 0:
        raise ValueError(f'out_size and altitude_scale must be positive, got {out_size}, '
                         f'{altitude_scale}')
    cx, cy = (float(v) for v in center_xy)
    c, s = np.cos(heading_rad) * altitude_scale, np.sin(heading_rad) * altitude_scale
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], np.float64) - [w / 2, h / 2]
    wx = cx + c * corners[:, 0] - s * corners[:, 1]
    wy = cy + s * corners[:, 0] + c * corners[:, 1]
    wh, ww = world.mask.shape
    x0, y0 = max(int(np.floor(wx.min())) - 2, 0), max(int(np.floor(wy.min())) - 2, 0)
    x1, y1 = min(int(np.ceil(wx.max())) + 3, ww), min(int(np.ceil(wy.max())) + 3, wh)
    if x1 <= x0 or y1 <= y0:  # the view misses the world entirely
        image = np.zeros((h, w, 3), np.uint8)
        mask, inst = np.full((h, w), 255, np.uint8), np.zeros((h, w), np.int32)
    else:
        # PIL maps output (u, v) (pixel centres at +0.5) to input (a u + b v + c, ...).
        coeffs = (c, -s, cx - x0 - c * w / 2 + s * h / 2,
                  s, c, cy - y0 - s * w / 2 - c * h / 2)

        def warp(arr: np.ndarray, resample: int, fill) -> np.ndarray:
            src = Image.fromarray(np.ascontiguousarray(arr[y0:y1, x0:x1]))
            return np.array(src.transform((w, h), Image.AFFINE, coeffs, resample=resample,
                                          fillcolor=fill))

        image = warp(world.image, Image.BILINEAR, (0, 0, 0))
        mask = warp(world.mask, Image.NEAREST, 255)
        inst = warp(world.instances, Image.NEAREST, 0).astype(np.int32)
    boxes, labels, ids = _labelled_boxes(inst, world.objects, 1.0 / altitude_scale ** 2)
    image = apply_camera_effects(image, effects, rng)
    if return_instances:
        return image, boxes, labels, mask, inst, ids
    return image, boxes, labels, mask


class _SyntheticImages:
    """What both synthetic data sets share: length, seed, image size, altitudes and effects."""

    detection_classes = list(DETECTION_CLASSES)
    segmentation_classes = list(SEGMENTATION_CLASSES)
    default_altitude_range = DEFAULT_ALTITUDE_RANGE

    def __init__(self, num_images: int, seed: int = 0, size: tuple = (640, 480),
                 altitude_range: tuple | None = None, camera_effects: bool = True,
                 density: float = 1.0) -> None:
        if altitude_range is None:
            altitude_range = self.default_altitude_range
        if num_images < 0 or seed < 0:
            raise ValueError(f'num_images and seed must be >= 0, got {num_images}, {seed}')
        if not 0 < altitude_range[0] <= altitude_range[1]:
            raise ValueError(f'altitude_range must be 0 < lo <= hi, got {altitude_range}')
        self.num_images, self.seed = int(num_images), int(seed)
        self.size = (int(size[0]), int(size[1]))
        self.altitude_range = (float(altitude_range[0]), float(altitude_range[1]))
        self.camera_effects, self.density = camera_effects, density

    def __len__(self) -> int:
        return self.num_images

    def _check_index(self, index: int) -> None:
        if not 0 <= index < self.num_images:
            raise IndexError(f'index {index} out of range for {self.num_images} images')


class SyntheticAerialDataset(_SyntheticImages):
    """
    A fixed-length set of independent synthetic aerial images (samples per the contract).

    Inputs:
        num_images: dataset length.
        seed: non-negative int; image ``i`` depends only on ``(seed, i)``.
        size: (W, H) of the images.
        altitude_range: uniform range of altitude relative to the reference (objects scale
            with its inverse; the default gives cars about 50-115 px and persons about 19-37 px
            long).
        camera_effects: apply random :class:`CameraEffects` per image.
        density: multiplier on the expected number of objects.
    """

    def render(self, index: int) -> tuple:
        """
        Render image ``index`` with its instance labels.

        Output: (sample dict, instances int32 [H, W] with 0 = none, object_ids int64 [M]
        giving the instance id of each labelled box).
        """
        self._check_index(index)
        rng = np.random.default_rng([self.seed, int(index)])
        altitude = rng.uniform(*self.altitude_range)
        world = render_world(int(rng.integers(2 ** 62)), self.size,
                             pixels_per_unit=1.0 / altitude, density=self.density)
        effects = CameraEffects.sample(rng) if self.camera_effects else None
        boxes, labels, ids = _labelled_boxes(world.instances, world.objects, 1.0)
        sample = {'image': apply_camera_effects(world.image, effects, rng), 'boxes': boxes,
                  'labels': labels, 'difficult': np.zeros(len(labels), np.bool_),
                  'mask': world.mask, 'image_id': f'synthetic_{self.seed}_{index:06d}'}
        return sample, world.instances, ids

    def __getitem__(self, index: int) -> dict:
        return self.render(index)[0]


class SyntheticFlightViews(_SyntheticImages):
    """
    A fixed-length set of camera views cut from large worlds the way flights render them.

    Each view comes from its own world rendered at ``FLIGHT_PIXELS_PER_UNIT`` and is sampled
    by :func:`render_view` (bilinear resampling of a rotated, scaled view, as
    :mod:`mtl_perception.replay.flight` renders a flight's frames) at a random heading and
    altitude scale, with camera effects of a camera in flight
    (:meth:`CameraEffects.sample_flight`: exposure swings, motion blur along the direction of
    travel). Stills (:class:`SyntheticAerialDataset`) draw each world at the camera's own
    resolution, upright; these are what a flying camera sees. Samples follow the data
    contract; view ``i`` depends only on ``(seed, i)``.

    Inputs:
        num_images: dataset length.
        seed: non-negative int.
        size: (W, H) of the views.
        altitude_range: uniform range of the altitude scale (flights fly 0.8-1.3; the
            default reaches beyond on both sides).
        camera_effects: apply random in-flight camera effects.
        density: multiplier on the expected number of objects.
    """

    default_altitude_range = (0.7, 1.5)

    def __getitem__(self, index: int) -> dict:
        self._check_index(index)
        # A third seed word keeps these views apart from the stills of the same seed.
        rng = np.random.default_rng([self.seed, int(index), 0xF1])
        altitude = float(rng.uniform(*self.altitude_range))
        heading = float(rng.uniform(0.0, 2.0 * np.pi))
        # The smallest square world holding the rotated view, plus render_view's margin.
        side = int(np.ceil(altitude * np.hypot(*self.size))) + 8
        world = render_world(int(rng.integers(2 ** 62)), (side, side),
                             pixels_per_unit=FLIGHT_PIXELS_PER_UNIT, density=self.density)
        effects = CameraEffects.sample_flight(rng) if self.camera_effects else None
        image, boxes, labels, mask = render_view(world, (side / 2, side / 2), heading,
                                                 altitude, out_size=self.size,
                                                 effects=effects, rng=rng)
        return {'image': image, 'boxes': boxes, 'labels': labels,
                'difficult': np.zeros(len(labels), np.bool_), 'mask': mask,
                'image_id': f'synthetic_flight_{self.seed}_{index:06d}'}
