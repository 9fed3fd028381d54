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
Seeded generator of one top-down (UAV) synthetic world with exact labels.

A world is drawn into three label layers at once with PIL ImageDraw (a material index map, the
segmentation class map and an instance-id map), then textured in one vectorised numpy pass, so
the image, the mask and the boxes can never disagree. Drawing order gives occlusion: ground,
water, roads, buildings, objects (car, truck, bus, person, bicycle), then tree canopy, which
overwrites objects it covers (the instance map loses those pixels, so boxes cover only what is
visible). Layout sizes are in world units (see :mod:`.synthetic_shapes`); ``pixels_per_unit``
sets the rendered ground resolution, i.e. the altitude.
"""

from dataclasses import dataclass, field
import math

import numpy as np
from PIL import Image, ImageDraw

from . import synthetic_shapes as shp

_SHADOW_FACTOR = 0.62


@dataclass
class World:
    """
    A rendered world.

    Fields:
        image: uint8 [H, W, 3] RGB without camera effects.
        mask: uint8 [H, W] segmentation class index (see ``SEGMENTATION_CLASSES``).
        instances: int32 [H, W]; 0 = no object, k = ``objects[k - 1]`` (visible pixels only).
        objects: one dict per placed object: ``id`` (int, instance value), ``label`` (0-based
            detection label), ``class_name``, ``box`` (float32 [4] x1, y1, x2, y2 pixel extents
            of the visible pixels, i.e. ``[xmin, ymin, xmax + 1, ymax + 1]``; all zero if fully
            hidden), ``area`` (unoccluded pixel count), ``visible_pixels``, ``center`` (x, y px)
            and ``angle`` (rad).
        pixels_per_unit: ground resolution the world was rendered at.
        seed: the seed it was rendered from.
    """

    image: np.ndarray
    mask: np.ndarray
    instances: np.ndarray
    objects: list = field(default_factory=list)
    pixels_per_unit: float = 1.0
    seed: object = 0


def instance_boxes(instances: np.ndarray, num: int) -> tuple:
    """
    Pixel-extent boxes of instance ids 1..num in an int map.

    Inputs:
        instances: int [H, W] instance map, 0 = background.
        num: largest id of interest.

    Output:
        (boxes float32 [num, 4] as ``[xmin, ymin, xmax + 1, ymax + 1]`` (zeros when absent),
        counts int64 [num] visible pixel counts).
    """
    boxes = np.zeros((num, 4), np.float32)
    ys, xs = np.nonzero((instances > 0) & (instances <= num))
    if ys.size == 0:
        return boxes, np.zeros(num, np.int64)
    ids = instances[ys, xs].astype(np.int64)
    counts = np.bincount(ids, minlength=num + 1)[1:]
    order = np.argsort(ids, kind='stable')
    ids, ys, xs = ids[order], ys[order], xs[order]
    present, starts = np.unique(ids, return_index=True)
    idx = present - 1
    boxes[idx, 0] = np.minimum.reduceat(xs, starts)
    boxes[idx, 1] = np.minimum.reduceat(ys, starts)
    boxes[idx, 2] = np.maximum.reduceat(xs, starts) + 1
    boxes[idx, 3] = np.maximum.reduceat(ys, starts) + 1
    return boxes, counts


def _value_noise(rng: np.random.Generator, w: int, h: int, cell_px: float) -> np.ndarray:
    """Smooth noise in [0, 1], float32 [h, w], with features about cell_px wide."""
    gw, gh = max(2, int(w / cell_px) + 2), max(2, int(h / cell_px) + 2)
    grid = Image.fromarray(rng.random((gh, gw), dtype=np.float32), mode='F')
    return np.asarray(grid.resize((w, h), Image.BICUBIC), dtype=np.float32)


class _Canvas:
    """The label layers being drawn, plus a shadow layer; coordinates in pixels."""

    def __init__(self, w: int, h: int, ppu: float, ground: np.ndarray) -> None:
        self.w, self.h, self.ppu = w, h, ppu
        self.mat = Image.fromarray(ground)
        self.cls = Image.new('L', (w, h), shp.GROUND)
        self.inst = Image.new('I', (w, h), 0)
        self.shade = Image.new('L', (w, h), 0)
        self._draws = (ImageDraw.Draw(self.mat), ImageDraw.Draw(self.cls),
                       ImageDraw.Draw(self.inst))
        self._dshade = ImageDraw.Draw(self.shade)

    def polygon(self, pts_units: np.ndarray, material: str, cls: int, inst: int = 0,
                shadow: np.ndarray | None = None) -> None:
        flat = (np.asarray(pts_units) * self.ppu).ravel().tolist()
        dmat, dcls, dinst = self._draws
        dmat.polygon(flat, fill=shp.MATERIAL_INDEX[material])
        dcls.polygon(flat, fill=cls)
        dinst.polygon(flat, fill=inst)
        if shadow is not None:
            moved = ((np.asarray(pts_units) + shadow) * self.ppu).ravel().tolist()
            self._dshade.polygon(moved, fill=1)

    def footprint(self, polys_units: list) -> tuple:
        """Rasterise polygons alone; return ((x0, y0, x1, y1) px, bool mask, inside mask)."""
        polys = [np.asarray(p) * self.ppu for p in polys_units]
        pts = np.concatenate(polys)
        x0, y0 = (np.floor(pts.min(0)) - 1).astype(int)
        x1, y1 = (np.ceil(pts.max(0)) + 2).astype(int)
        local = Image.new('L', (int(x1 - x0), int(y1 - y0)), 0)
        draw = ImageDraw.Draw(local)
        for p in polys:
            draw.polygon((p - [x0, y0]).ravel().tolist(), fill=1)
        m = np.asarray(local).astype(bool)
        xs, ys = np.arange(x0, x1), np.arange(y0, y1)
        inside = ((ys >= 0) & (ys < self.h))[:, None] & ((xs >= 0) & (xs < self.w))[None, :]
        return (int(x0), int(y0), int(x1), int(y1)), m, inside

    def class_at(self, x_units: float, y_units: float) -> int:
        x, y = int(x_units * self.ppu), int(y_units * self.ppu)
        if 0 <= x < self.w and 0 <= y < self.h:
            return self.cls.getpixel((x, y))
        return -1


def _rot(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, s], [-s, c]])  # row-vector form: p @ R rotates by +angle


def _place(parts: list, center: np.ndarray, angle: float) -> list:
    r = _rot(angle)
    return [(np.asarray(p) @ r + center, m) for p, m in parts]


def _clip_line(p: np.ndarray, d: np.ndarray, wu: float, hu: float) -> tuple | None:
    """Parameter range [t0, t1] of the line p + t d inside [0, wu] x [0, hu] (or None)."""
    t0, t1 = -1e9, 1e9
    for pi, di, hi in ((p[0], d[0], wu), (p[1], d[1], hu)):
        if abs(di) < 1e-9:
            if not 0 <= pi <= hi:
                return None
            continue
        a, b = (0 - pi) / di, (hi - pi) / di
        t0, t1 = max(t0, min(a, b)), min(t1, max(a, b))
    return (t0, t1) if t1 - t0 > 1.0 else None


def _draw_roads(cv: _Canvas, rng: np.random.Generator, theta: float, wu: float,
                hu: float) -> list:
    roads = []
    centre = np.array([wu / 2.0, hu / 2.0])
    for family, angle in enumerate((theta, theta + math.pi / 2.0)):
        d = np.array([math.cos(angle), math.sin(angle)])
        n = np.array([-d[1], d[0]])
        spacing = rng.uniform(300.0, 650.0) if family == 0 else rng.uniform(350.0, 900.0)
        # Family 0 always has a road near the centre so every frame shows some traffic.
        first = rng.uniform(-0.25, 0.25) * min(wu, hu) if family == 0 else rng.uniform(0, spacing)
        reach = math.hypot(wu, hu) / 2.0 + spacing
        for k in range(-int(reach / spacing) - 1, int(reach / spacing) + 2):
            off = first + k * spacing
            if not (family == 0 and k == 0) and rng.random() > (0.8 if family == 0 else 0.55):
                continue
            p = centre + n * off
            span = _clip_line(p, d, wu, hu)
            if span is None:
                continue
            width = rng.uniform(30.0, 56.0)
            roads.append({'p': p, 'd': d, 'n': n, 'width': width, 'span': span,
                          'angle': angle})
    for r in roads:
        (t0, t1), hw = r['span'], r['width'] / 2.0
        a, b = r['p'] + r['d'] * (t0 - hw), r['p'] + r['d'] * (t1 + hw)
        cv.polygon(np.array([a - r['n'] * hw, b - r['n'] * hw, b + r['n'] * hw,
                             a + r['n'] * hw]), 'asphalt', shp.ROAD)
    for r in roads:
        if r['width'] < 36.0:
            continue
        t0, t1 = r['span']
        for t in np.arange(t0 + rng.uniform(0, 24.0), t1, 24.0):
            dash = np.array([[t, -0.8], [t + 12.0, -0.8], [t + 12.0, 0.8], [t, 0.8]])
            cv.polygon(r['p'] + dash[:, :1] * r['d'] + dash[:, 1:] * r['n'], 'marking',
                       shp.ROAD)
    return roads


def _draw_water(cv: _Canvas, rng: np.random.Generator, wu: float, hu: float) -> None:
    for _ in range(rng.poisson(min(0.35 * wu * hu / 3e5, 3.0))):
        c = rng.uniform([0, 0], [wu, hu])
        radius = rng.uniform(50.0, 200.0)
        t = np.linspace(0, 2 * math.pi, 28, endpoint=False)
        wobble = np.convolve(np.tile(rng.uniform(-0.3, 0.3, 28), 3), np.ones(5) / 5,
                             'same')[28:56]
        rx, ry = radius * (1 + wobble), radius * rng.uniform(0.5, 1.0) * (1 + wobble)
        pts = np.stack([rx * np.cos(t), ry * np.sin(t)], 1) @ _rot(rng.uniform(0, math.pi))
        cv.polygon(pts + c, 'water', shp.WATER)


def _draw_buildings(cv: _Canvas, rng: np.random.Generator, theta: float, wu: float,
                    hu: float, shadow: np.ndarray) -> None:
    for _ in range(int(wu * hu / 25000.0 * rng.uniform(0.2, 1.2))):
        c = rng.uniform([0, 0], [wu, hu])
        lx, ly = rng.uniform(40.0, 140.0), rng.uniform(40.0, 110.0)
        angle = theta + rng.integers(2) * math.pi / 2.0 + rng.normal(0, 0.03)
        r = _rot(angle)
        box, m, inside = cv.footprint([shp.rect(-lx / 2 - 6, -ly / 2 - 6, lx / 2 + 6,
                                                ly / 2 + 6) @ r + c])
        if np.asarray(cv.cls.crop(box))[m & inside].any():
            continue  # touches a road, water or another building
        base, shade = shp.ROOF_STYLES[rng.integers(len(shp.ROOF_STYLES))]
        outer = shp.rect(-lx / 2, -ly / 2, lx / 2, ly / 2) @ r + c
        cv.polygon(outer, shade, shp.BUILDING, shadow=shadow)
        if rng.random() < 0.5:  # gable roof: two tones split along the ridge
            cv.polygon(shp.rect(-lx / 2, -ly / 2, lx / 2, 0.0) @ r + c, base, shp.BUILDING)
        else:  # flat roof with a rim and a roof unit
            cv.polygon(shp.rect(-lx / 2 + 3, -ly / 2 + 3, lx / 2 - 3, ly / 2 - 3) @ r + c,
                       base, shp.BUILDING)
            ux, uy = rng.uniform(-lx / 4, lx / 4), rng.uniform(-ly / 4, ly / 4)
            cv.polygon(shp.rect(ux - 5, uy - 4, ux + 5, uy + 4) @ r + c, shade, shp.BUILDING)


def _candidate(rng: np.random.Generator, cls: int, roads: list, wu: float,
               hu: float) -> tuple:
    """Propose (center, angle, allowed classes, minimum road fraction) for one object."""
    if not roads:  # only reachable for objects allowed off-road
        return rng.uniform([0, 0], [wu, hu]), rng.uniform(0, 2 * math.pi), (shp.GROUND,), 0.0
    r = roads[rng.integers(len(roads))]
    t = rng.uniform(*r['span'])
    side = 1.0 if rng.random() < 0.5 else -1.0
    along = r['angle'] + (0.0 if side > 0 else math.pi)
    if cls in (shp.CAR, shp.TRUCK, shp.BUS):
        lane = rng.uniform(0.2, 0.3) if cls != shp.CAR or rng.random() < 0.8 else 0.36
        return (r['p'] + r['d'] * t + r['n'] * side * lane * r['width'],
                along + rng.normal(0, 0.03), (shp.ROAD,), 0.85)
    if cls == shp.BICYCLE and rng.random() < 0.5:
        off = r['width'] / 2.0 - rng.uniform(4.0, 8.0)
        return (r['p'] + r['d'] * t + r['n'] * side * off, along + rng.normal(0, 0.05),
                (shp.ROAD,), 0.6)
    if rng.random() < 0.65:  # on the verge next to a road
        c = r['p'] + r['d'] * t + r['n'] * side * (r['width'] / 2.0 + rng.uniform(3.0, 20.0))
    else:
        c = rng.uniform([0, 0], [wu, hu])
    return c, rng.uniform(0, 2 * math.pi), (shp.GROUND, shp.ROAD), 0.0


def _place_objects(cv: _Canvas, rng: np.random.Generator, roads: list, wu: float,
                   hu: float, density: float) -> list:
    road_len = sum(r['span'][1] - r['span'][0] for r in roads) / 1000.0
    area = wu * hu / 3e5
    means = {shp.CAR: 8.0 * road_len, shp.TRUCK: 2.0 * road_len, shp.BUS: 1.3 * road_len,
             shp.PERSON: 3.0 * road_len + 2.0 * area, shp.BICYCLE: 2.5 * road_len}
    wanted = [c for c, m in means.items() for _ in range(rng.poisson(m * density))
              if roads or c == shp.PERSON]
    rng.shuffle(wanted)
    objects = []
    for cls in wanted:
        parts = shp.SHAPE_BUILDERS[cls](rng)
        for _ in range(15):
            center, angle, allowed, min_road = _candidate(rng, cls, roads, wu, hu)
            placed = _place(parts, center, angle)
            box, m, inside = cv.footprint([p for p, _ in placed])
            seen = m & inside
            if seen.sum() < 0.5 * m.sum():
                continue
            under = np.asarray(cv.cls.crop(box))[seen]
            if (np.asarray(cv.inst.crop(box))[seen] != 0).any():
                continue
            if not np.isin(under, allowed).all() and min_road == 0.0:
                continue
            if min_road > 0.0 and (under == shp.ROAD).mean() < min_road:
                continue
            inst = len(objects) + 1
            for poly, material in placed:
                cv.polygon(poly, material, cls, inst)
            objects.append({'id': inst, 'label': cls - shp.DETECTION_OFFSET,
                            'class_name': shp.SEGMENTATION_CLASSES[cls],
                            'area': int(m.sum()), 'center': tuple(center * cv.ppu),
                            'angle': float(angle)})
            break
    return objects


def _draw_trees(cv: _Canvas, rng: np.random.Generator, roads: list, wu: float, hu: float,
                shadow: np.ndarray) -> None:
    centres = []
    for r in roads:
        if rng.random() < 0.45:
            side = 1.0 if rng.random() < 0.5 else -1.0
            t0, t1 = r['span']
            for t in np.arange(t0 + rng.uniform(0, 40.0), t1, rng.uniform(25.0, 60.0)):
                off = r['width'] / 2.0 + rng.uniform(-2.0, 10.0)
                centres.append((r['p'] + r['d'] * t + r['n'] * side * off, True))
    veg = rng.uniform(0.2, 1.5)
    for _ in range(int(wu * hu / 8000.0 * veg)):
        centres.append((rng.uniform([0, 0], [wu, hu]), False))
    for _ in range(rng.poisson(wu * hu / 4e5 * veg)):
        c0, spread = rng.uniform([0, 0], [wu, hu]), rng.uniform(60.0, 150.0)
        centres += [(c0 + rng.normal(0, spread / 2, 2), False)
                    for _ in range(rng.integers(15, 60))]
    for c, roadside in centres:
        if not roadside and cv.class_at(*c) != shp.GROUND:
            continue
        big = rng.random() < 0.7
        radius = rng.uniform(9.0, 20.0) if big else rng.uniform(4.0, 8.0)
        t = np.linspace(0, 2 * math.pi, 14, endpoint=False)
        rr = radius * (1 + rng.uniform(-0.15, 0.15, 14))
        pts = np.stack([rr * np.cos(t), rr * np.sin(t)], 1) + c
        if big:
            cv.polygon(pts, 'tree' if rng.random() < 0.6 else 'tree_dark', shp.VEGETATION,
                       shadow=shadow * radius / 15.0)
            hl = c - radius * 0.25
            cv.polygon(shp.ellipse(hl[0], hl[1], radius * 0.35, radius * 0.35, n=10), 'bush',
                       shp.VEGETATION)
        else:
            cv.polygon(pts, 'bush', shp.VEGETATION)


def _texture(cv: _Canvas, rng: np.random.Generator) -> np.ndarray:
    mat = np.asarray(cv.mat)
    cls = np.asarray(cv.cls)
    shade = np.asarray(cv.shade)
    palette = shp.MATERIAL_RGB * (1.0 + rng.normal(0.0, 0.05, shp.MATERIAL_RGB.shape))
    palette = palette.astype(np.float32)
    medium = _value_noise(rng, cv.w, cv.h, 5.0 * cv.ppu) * 2.0 - 1.0
    out = np.empty((cv.h, cv.w, 3), np.uint8)
    for y in range(0, cv.h, 512):  # row chunks bound the float memory on large worlds
        sl = slice(y, y + 512)
        m = mat[sl]
        noise = 0.6 * medium[sl] + 0.4 * (rng.random(m.shape, dtype=np.float32) * 2 - 1)
        img = palette[m] + (shp.MATERIAL_TEXTURE[m] * noise)[..., None]
        lit = (shade[sl] == 0) | (cls[sl] == shp.BUILDING) | (cls[sl] == shp.VEGETATION)
        img *= np.where(lit, np.float32(1.0), np.float32(_SHADOW_FACTOR))[..., None]
        np.clip(img, 0, 255, out=img)
        out[sl] = img.astype(np.uint8)
    return out


def render_world(seed, world_size: tuple = (4000, 3000), pixels_per_unit: float = 1.0,
                 density: float = 1.0) -> World:
    """
    Render one large synthetic aerial world.

    Inputs:
        seed: int or sequence of non-negative ints (as for ``np.random.default_rng``).
        world_size: (W, H) in pixels.
        pixels_per_unit: ground resolution; 1.0 makes a car about 34-40 px long.
        density: multiplier on the expected number of objects.

    Output:
        a :class:`World` (image uint8 [H, W, 3], mask uint8 [H, W], instances int32 [H, W],
        objects).
    """
    w, h = (int(v) for v in world_size)
    if w < 16 or h < 16 or pixels_per_unit <= 0:
        raise ValueError(f'world_size must be >= 16 px and pixels_per_unit > 0, got '
                         f'{world_size} and {pixels_per_unit}')
    rng = np.random.default_rng(seed)
    wu, hu = w / pixels_per_unit, h / pixels_per_unit
    theta = rng.uniform(0, math.pi)
    shadow = rng.normal(0, 1, 2)
    shadow = shadow / np.linalg.norm(shadow) * rng.uniform(6.0, 14.0)
    ground_noise = _value_noise(rng, w, h, 150.0 * pixels_per_unit)
    grass = rng.uniform(0.2, 0.7)
    ground = np.where(ground_noise < grass, shp.MATERIAL_INDEX['grass'],
                      np.where(ground_noise < grass + 0.15, shp.MATERIAL_INDEX['dry_grass'],
                               shp.MATERIAL_INDEX['soil'])).astype(np.uint8)
    cv = _Canvas(w, h, pixels_per_unit, ground)
    _draw_water(cv, rng, wu, hu)
    roads = _draw_roads(cv, rng, theta, wu, hu)
    _draw_buildings(cv, rng, theta, wu, hu, shadow)
    objects = _place_objects(cv, rng, roads, wu, hu, density)
    _draw_trees(cv, rng, roads, wu, hu, shadow)
    image = _texture(cv, rng)
    instances = np.asarray(cv.inst, dtype=np.int32)
    boxes, counts = instance_boxes(instances, len(objects))
    for obj, box, count in zip(objects, boxes, counts):
        obj['box'] = box
        obj['visible_pixels'] = int(count)
    return World(image=image, mask=np.asarray(cv.cls, dtype=np.uint8).copy(),
                 instances=instances.copy(), objects=objects,
                 pixels_per_unit=float(pixels_per_unit), seed=seed)
