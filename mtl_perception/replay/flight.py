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
A synthetic UAV flight written as a rosbag2 bag with ground truth.

The camera flies a figure-eight over ONE generated world (:func:`render_world`), looking
straight down with the image's top pointing along the direction of travel, while its altitude
drifts slowly; each frame is :func:`render_view` at the next point of the path, so consecutive
frames overlap like a real flight's. Three topics share every stamp (and the bag receive time):

* ``/camera/image_raw``: sensor_msgs/Image rgb8, frame_id 'camera';
* ``/ground_truth/detections``: vision_msgs/Detection2DArray, boxes in pixels of the image,
  ``class_id`` the detection class name, score 1.0;
* ``/ground_truth/mask``: sensor_msgs/Image mono8 of segmentation class indices (255 void).
"""

from dataclasses import dataclass
import json
import math
from pathlib import Path

from mtl_perception.data.synthetic import (DETECTION_CLASSES, render_view, render_world,
                                           SEGMENTATION_CLASSES)
from mtl_perception.replay.bag_io import BagWriter
from mtl_perception.replay.messages import DETECTION2D_ARRAY, IMAGE, make_detection_array
from mtl_perception.replay.messages import make_image
import numpy as np
from tqdm import tqdm

__all__ = ['CUSTOM_DATA_KEY', 'DETECTIONS_TOPIC', 'FRAME_ID', 'FlightBag', 'IMAGE_TOPIC',
           'MASK_TOPIC', 'START_NS', 'flight_path', 'write_flight_bag']

IMAGE_TOPIC = '/camera/image_raw'
DETECTIONS_TOPIC = '/ground_truth/detections'
MASK_TOPIC = '/ground_truth/mask'
FRAME_ID = 'camera'
# 2026-01-01T00:00:00Z: a fixed epoch, so the same seed gives byte-identical bags.
START_NS = 1_767_225_600 * 1_000_000_000
CUSTOM_DATA_KEY = 'mtl_perception.synthetic_flight'
DEFAULT_WORLD_SIZE = (4000, 3000)
# The world is rendered at WORLD_PIXELS_PER_UNIT, so a view altitude scale a sees the ground
# as SyntheticAerialDataset's altitude a / WORLD_PIXELS_PER_UNIT does (here 0.4-0.65, inside
# its default range), with the world sampled near its own resolution (sharp, not upsampled).
WORLD_PIXELS_PER_UNIT = 2.0
ALTITUDE_RANGE = (0.8, 1.3)
ALTITUDE_PERIOD_S = 45.0


@dataclass(frozen=True)
class FlightBag:
    """What :func:`write_flight_bag` wrote."""

    path: Path
    frames: int
    rate: float
    stamps_ns: tuple
    detection_classes: tuple
    segmentation_classes: tuple


def flight_path(frames: int, rate: float, seed: int, world_size: tuple = DEFAULT_WORLD_SIZE,
                size: tuple = (640, 480), speed: float = 120.0) -> tuple:
    """
    Return the camera path sampled at ``rate`` Hz.

    A figure-eight (x = A sin p, y = B sin 2p / 2) around the world's centre, traversed at a mean
    ground speed of ``speed`` world px/s from a seed-chosen phase; the heading follows the
    direction of travel and the altitude scale drifts within ``ALTITUDE_RANGE``. The
    amplitudes keep the whole rotated view inside the world.

    Output: (centres float64 [N, 2] world px x, y; headings float64 [N] rad as
    :func:`render_view` takes them; altitude scales float64 [N]).
    """
    if frames < 1 or rate <= 0 or speed <= 0:
        raise ValueError(f'frames must be >= 1 and rate, speed > 0, got {frames}, {rate}, '
                         f'{speed}')
    world_w, world_h = (float(v) for v in world_size)
    # A view's corner lies half its diagonal (times the altitude scale) from its centre.
    margin = math.hypot(*size) / 2 * ALTITUDE_RANGE[1] + 4
    amp_x, amp_y = world_w / 2 - margin, (world_h / 2 - margin) * 2
    if amp_x <= 0 or amp_y <= 0:
        raise ValueError(f'world {world_size} is too small for {size} views: it needs at least '
                         f'{2 * margin:.0f} px on each side')
    rng = np.random.default_rng([int(seed), 0x0F11])
    phase0, alt_phase = rng.uniform(0, 2 * math.pi, 2)
    # Mean |d position / d phase| over a loop turns the ground speed into a phase rate.
    grid = np.linspace(0, 2 * math.pi, 721)[:-1]
    mean_norm = np.mean(np.hypot(amp_x * np.cos(grid), amp_y * np.cos(2 * grid)))
    t = np.arange(frames, dtype=np.float64) / rate
    phase = phase0 + speed / mean_norm * t
    centres = np.stack([world_w / 2 + amp_x * np.sin(phase),
                        world_h / 2 + amp_y / 2 * np.sin(2 * phase)], axis=1)
    travel = np.arctan2(amp_y * np.cos(2 * phase), amp_x * np.cos(phase))
    # render_view's image -y axis points along world (sin h, -cos h): make that the travel.
    headings = np.unwrap(travel + math.pi / 2)
    low, high = ALTITUDE_RANGE
    altitudes = (low + high) / 2 + (high - low) / 2 * np.sin(
        2 * math.pi * t / ALTITUDE_PERIOD_S + alt_phase)
    return centres, headings, altitudes


def write_flight_bag(path: str | Path, frames: int = 300, rate: float = 10.0, seed: int = 0,
                     size: tuple = (640, 480), storage: str = 'mcap', *,
                     world_size: tuple = DEFAULT_WORLD_SIZE, speed: float = 120.0,
                     overwrite: bool = False, progress: bool = True) -> FlightBag:
    """
    Render a synthetic flight of ``frames`` frames at ``rate`` Hz into a bag at ``path``.

    ``size`` is (width, height) of the images; ``speed`` the mean ground speed in world px/s.
    Stamps start at ``START_NS`` and are ``1 / rate`` apart; the same arguments give the same
    bag. An existing ``path`` raises FileExistsError unless ``overwrite``; an interrupted run
    leaves no bag behind.
    """
    width, height = (int(v) for v in size)
    if width < 8 or height < 8:
        raise ValueError(f'size must be (width, height) >= 8 px, got {size}')
    centres, headings, altitudes = flight_path(frames, rate, seed, world_size, (width, height),
                                               speed)
    stamps = tuple(START_NS + round(i * 1e9 / rate) for i in range(frames))
    description = {'seed': int(seed), 'frames': int(frames), 'rate': float(rate),
                   'size': [width, height], 'world_size': [int(v) for v in world_size],
                   'speed': float(speed), 'pixels_per_unit': WORLD_PIXELS_PER_UNIT,
                   'detection_classes': list(DETECTION_CLASSES),
                   'segmentation_classes': list(SEGMENTATION_CLASSES)}
    world = render_world(int(seed), world_size=tuple(int(v) for v in world_size),
                         pixels_per_unit=WORLD_PIXELS_PER_UNIT)
    with BagWriter(path, storage, overwrite=overwrite,
                   custom_data={CUSTOM_DATA_KEY: json.dumps(description)}) as bag:
        bag.add_topic(IMAGE_TOPIC, IMAGE)
        bag.add_topic(DETECTIONS_TOPIC, DETECTION2D_ARRAY)
        bag.add_topic(MASK_TOPIC, IMAGE)
        for i in tqdm(range(frames), desc='synthetic flight', unit='frame',
                      disable=not progress):
            image, boxes, labels, mask = render_view(
                world, tuple(centres[i]), float(headings[i]), float(altitudes[i]),
                out_size=(width, height))
            stamp = stamps[i]
            bag.write(IMAGE_TOPIC, stamp, make_image(image, stamp, FRAME_ID))
            bag.write(DETECTIONS_TOPIC, stamp, make_detection_array(
                boxes, labels, np.ones(len(labels)), stamp, FRAME_ID,
                class_names=DETECTION_CLASSES))
            bag.write(MASK_TOPIC, stamp, make_image(mask, stamp, FRAME_ID))
    return FlightBag(Path(path), int(frames), float(rate), stamps, tuple(DETECTION_CLASSES),
                     tuple(SEGMENTATION_CLASSES))
