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
Materials and top-down object shapes for the synthetic aerial scenes.

Everything here is in *world units*: one unit is one pixel of a world rendered at
``pixels_per_unit=1``. Shapes are lists of ``(polygon, material)`` in an object-local frame
(x forward along the object's length, y across it, origin at the object's centre);
:mod:`mtl_perception.data.synthetic` rotates, scales and rasterises them.
"""

import numpy as np

SEGMENTATION_CLASSES = ('ground', 'road', 'building', 'vegetation', 'water',
                        'car', 'truck', 'bus', 'person', 'bicycle')
DETECTION_CLASSES = ('car', 'truck', 'bus', 'person', 'bicycle')
# Detection label d is segmentation class d + DETECTION_OFFSET.
DETECTION_OFFSET = 5

GROUND, ROAD, BUILDING, VEGETATION, WATER, CAR, TRUCK, BUS, PERSON, BICYCLE = range(10)

# (name, segmentation class, base RGB, texture amplitude)
_MATERIALS = (
    ('soil', GROUND, (150, 124, 94), 16),
    ('grass', GROUND, (92, 128, 62), 18),
    ('dry_grass', GROUND, (146, 144, 92), 16),
    ('asphalt', ROAD, (84, 84, 90), 8),
    ('marking', ROAD, (222, 222, 212), 4),
    ('roof_gray', BUILDING, (142, 140, 146), 6),
    ('roof_gray_shade', BUILDING, (108, 106, 112), 6),
    ('roof_tile', BUILDING, (168, 86, 60), 7),
    ('roof_tile_shade', BUILDING, (132, 64, 44), 7),
    ('roof_light', BUILDING, (204, 198, 186), 5),
    ('roof_light_shade', BUILDING, (170, 164, 152), 5),
    ('roof_dark', BUILDING, (70, 72, 80), 5),
    ('roof_dark_shade', BUILDING, (52, 54, 62), 5),
    ('water', WATER, (46, 86, 108), 5),
    ('tree', VEGETATION, (40, 82, 38), 24),
    ('tree_dark', VEGETATION, (28, 60, 30), 20),
    ('bush', VEGETATION, (72, 112, 48), 18),
    ('paint_white', -1, (232, 232, 228), 3),
    ('paint_black', -1, (30, 30, 34), 3),
    ('paint_silver', -1, (170, 172, 178), 3),
    ('paint_red', -1, (176, 30, 32), 3),
    ('paint_blue', -1, (34, 60, 150), 3),
    ('paint_gray', -1, (96, 98, 104), 3),
    ('paint_green', -1, (40, 110, 70), 3),
    ('paint_yellow', -1, (226, 184, 36), 3),
    ('paint_orange', -1, (212, 112, 30), 3),
    ('glass', -1, (26, 32, 44), 2),
    ('rubber', -1, (16, 16, 18), 2),
    ('cargo_rib', -1, (70, 70, 74), 2),
    ('cloth_red', -1, (200, 40, 50), 4),
    ('cloth_blue', -1, (40, 70, 180), 4),
    ('cloth_green', -1, (50, 150, 70), 4),
    ('cloth_yellow', -1, (230, 200, 40), 4),
    ('cloth_white', -1, (236, 236, 236), 4),
    ('cloth_purple', -1, (130, 50, 150), 4),
    ('hair', -1, (40, 28, 22), 3),
)
MATERIAL_INDEX = {name: i for i, (name, _, _, _) in enumerate(_MATERIALS)}
MATERIAL_RGB = np.array([m[2] for m in _MATERIALS], dtype=np.float32)
MATERIAL_TEXTURE = np.array([m[3] for m in _MATERIALS], dtype=np.float32)

ROOF_STYLES = (('roof_gray', 'roof_gray_shade'), ('roof_tile', 'roof_tile_shade'),
               ('roof_light', 'roof_light_shade'), ('roof_dark', 'roof_dark_shade'))
CAR_PAINTS = ('paint_white', 'paint_black', 'paint_silver', 'paint_red', 'paint_blue',
              'paint_gray', 'paint_green')
CARGO_PAINTS = ('paint_white', 'paint_silver', 'paint_orange', 'paint_blue')
BUS_PAINTS = ('paint_yellow', 'paint_white', 'paint_red', 'paint_blue')
CLOTHES = ('cloth_red', 'cloth_blue', 'cloth_green', 'cloth_yellow', 'cloth_white',
           'cloth_purple', 'paint_black')
FRAME_PAINTS = ('paint_red', 'paint_blue', 'paint_silver', 'paint_black')


def rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Return the 4 corners [4, 2] of an axis-aligned rectangle in the local frame."""
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 16) -> np.ndarray:
    """Return an n-gon [n, 2] approximating an ellipse, so it rotates exactly."""
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _chamfered(length: float, width: float, c: float) -> np.ndarray:
    hl, hw = length / 2.0, width / 2.0
    return np.array([[-hl + c, -hw], [hl - c, -hw], [hl, -hw + c], [hl, hw - c],
                     [hl - c, hw], [-hl + c, hw], [-hl, hw - c], [-hl, -hw + c]])


def car_shape(rng: np.random.Generator) -> list:
    """Car: a short chamfered body with a windshield and a rear window (about 34-40 long)."""
    length = rng.uniform(34.0, 40.0)
    width = length * rng.uniform(0.44, 0.5)
    paint = CAR_PAINTS[rng.integers(len(CAR_PAINTS))]
    hw = width / 2.0
    return [
        (_chamfered(length, width, 0.2 * width), paint),
        (np.array([[0.08 * length, -0.4 * width], [0.24 * length, -0.44 * width],
                   [0.24 * length, 0.44 * width], [0.08 * length, 0.4 * width]]), 'glass'),
        (rect(-0.4 * length, -hw * 0.78, -0.3 * length, hw * 0.78), 'glass'),
    ]


def truck_shape(rng: np.random.Generator) -> list:
    """Truck: a cab with a windshield in front of a longer ribbed cargo box (about 60-68)."""
    length = rng.uniform(60.0, 68.0)
    width = rng.uniform(21.0, 24.0)
    hl, hw = length / 2.0, width / 2.0
    cab = CAR_PAINTS[rng.integers(len(CAR_PAINTS))]
    cargo = CARGO_PAINTS[rng.integers(len(CARGO_PAINTS))]
    cab_len = 0.2 * length
    box_front = hl - cab_len - 0.04 * length
    parts = [
        (rect(box_front - 1.0, -hw * 0.5, hl - cab_len + 1.0, hw * 0.5), 'rubber'),
        (_chamfered(cab_len, width * 0.92, 2.0) + [hl - cab_len / 2.0, 0.0], cab),
        (rect(hl - 0.3 * cab_len, -hw * 0.8, hl - 0.1 * cab_len, hw * 0.8), 'glass'),
        (rect(-hl, -hw, box_front, hw), cargo),
    ]
    for x in np.linspace(-hl, box_front, 6)[1:-1]:
        parts.append((rect(x - 0.7, -hw, x + 0.7, hw), 'cargo_rib'))
    return parts


def bus_shape(rng: np.random.Generator) -> list:
    """Bus: a long body with a row of side windows, a windshield and a roof unit (80-86)."""
    length = rng.uniform(80.0, 86.0)
    width = rng.uniform(23.0, 26.0)
    hl, hw = length / 2.0, width / 2.0
    paint = BUS_PAINTS[rng.integers(len(BUS_PAINTS))]
    parts = [(_chamfered(length, width, 2.5), paint),
             (rect(hl - 0.06 * length, -hw * 0.85, hl - 0.015 * length, hw * 0.85), 'glass')]
    x0, x1 = -0.44 * length, 0.38 * length
    for side in (-1.0, 1.0):
        ys = sorted((side * hw * 0.55, side * hw * 0.9))
        parts.append((rect(x0, ys[0], x1, ys[1]), 'glass'))
        for x in np.arange(x0 + 8.0, x1, 8.0):
            parts.append((rect(x - 0.8, ys[0], x + 0.8, ys[1]), paint))
    parts.append((rect(-0.1 * length, -hw * 0.3, 0.1 * length, hw * 0.3), 'paint_silver'))
    return parts


def person_shape(rng: np.random.Generator) -> list:
    """Person seen from above: shoulders ellipse in clothing colour with a dark head (13-16)."""
    span = rng.uniform(13.0, 16.0)
    cloth = CLOTHES[rng.integers(len(CLOTHES))]
    return [(ellipse(0.0, 0.0, 0.24 * span, 0.5 * span), cloth),
            (ellipse(0.04 * span, 0.0, 0.2 * span, 0.19 * span, n=12), 'hair')]


def bicycle_shape(rng: np.random.Generator) -> list:
    """Bicycle: two thin dark wheels joined by a coloured frame, with a handlebar (20-23)."""
    length = rng.uniform(20.0, 23.0)
    frame = FRAME_PAINTS[rng.integers(len(FRAME_PAINTS))]
    wr, wt = 0.21 * length, max(1.4, 0.075 * length)
    ft = max(1.2, 0.06 * length)
    return [
        (ellipse(-0.28 * length, 0.0, wr, wt), 'rubber'),
        (ellipse(0.28 * length, 0.0, wr, wt), 'rubber'),
        (rect(-0.28 * length, -ft / 2, 0.26 * length, ft / 2), frame),
        (rect(0.2 * length, -0.17 * length, 0.2 * length + ft, 0.17 * length), frame),
        (ellipse(-0.1 * length, 0.0, 0.07 * length, 0.05 * length, n=8), 'paint_black'),
    ]


SHAPE_BUILDERS = {CAR: car_shape, TRUCK: truck_shape, BUS: bus_shape,
                  PERSON: person_shape, BICYCLE: bicycle_shape}
