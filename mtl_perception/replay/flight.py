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

With ``cameras`` K >= 2 the same world is seen by a rig of K cameras carried along the path
(:func:`camera_rig`): ``cam0`` sits on the path as the single camera does; each other camera is
offset ahead/behind and beside it (in the path's own frame, scaled with the altitude), turned
by a heading offset and flown at its own altitude scale, so the views overlap in part but
differ. Every camera has its own topics, with frame_id its name::

    /<cam>/image_raw, /<cam>/ground_truth/detections, /<cam>/ground_truth/mask

and every camera's messages of a tick carry the same stamp (and bag time). The bag's custom
metadata lists the cameras, their topics and their mounts under ``cameras``
(:func:`read_flight_cameras`). K = 1 writes exactly the single-camera bag above.
"""

from dataclasses import asdict, dataclass
import json
import math
from pathlib import Path

from mtl_perception.data.synthetic import (DETECTION_CLASSES, FLIGHT_PIXELS_PER_UNIT,
                                           render_view, render_world, SEGMENTATION_CLASSES)
from mtl_perception.replay.bag_io import BagWriter
from mtl_perception.replay.messages import DETECTION2D_ARRAY, IMAGE, make_detection_array
from mtl_perception.replay.messages import make_image
import numpy as np
from tqdm import tqdm

__all__ = ['CUSTOM_DATA_KEY', 'DETECTIONS_TOPIC', 'FRAME_ID', 'CameraMount', 'FlightBag',
           'FlightCamera', 'IMAGE_TOPIC', 'MASK_TOPIC', 'START_NS', 'camera_rig', 'camera_topics',
           'flight_path', 'read_flight_cameras', 'write_flight_bag']

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
WORLD_PIXELS_PER_UNIT = FLIGHT_PIXELS_PER_UNIT
ALTITUDE_RANGE = (0.8, 1.3)
ALTITUDE_PERIOD_S = 45.0
# The rig's cameras other than cam0 sit on a ring this many view widths from the path point
# (at altitude 1), turned by up to RIG_HEADING_DEG, at these altitude scales in turn.
RIG_RADIUS = 0.6
RIG_HEADING_DEG = 35.0
RIG_ALTITUDE_SCALES = (0.9, 1.1)
MAX_CAMERAS = 16


@dataclass(frozen=True)
class CameraMount:
    """
    Where a camera of the rig sits relative to the path point (the single camera's view).

    :param name: camera name ('cam0', ...): topic prefix and frame_id.
    :param forward: offset along the direction of travel, in view widths at altitude 1.
    :param right: offset to the right of the direction of travel, in view widths.
    :param heading_deg: heading offset (the view turned clockwise on the ground).
    :param altitude_scale: altitude relative to the path's.
    """

    name: str
    forward: float = 0.0
    right: float = 0.0
    heading_deg: float = 0.0
    altitude_scale: float = 1.0


@dataclass(frozen=True)
class FlightCamera:
    """One camera of a flight bag: its name, frame_id and topics."""

    name: str
    frame_id: str
    image_topic: str
    detections_topic: str
    mask_topic: str


def camera_topics(name: str) -> FlightCamera:
    """Return the topics of rig camera ``name``: ``/<name>/image_raw``, ground truth beside."""
    return FlightCamera(name, name, f'/{name}/image_raw', f'/{name}/ground_truth/detections',
                        f'/{name}/ground_truth/mask')


SINGLE_CAMERA = FlightCamera(FRAME_ID, FRAME_ID, IMAGE_TOPIC, DETECTIONS_TOPIC, MASK_TOPIC)


def camera_rig(count: int) -> tuple:
    """
    Return the :class:`CameraMount` of each of ``count`` cameras (``cam0`` on the path).

    Cameras 1..K-1 sit on a ring of RIG_RADIUS view widths around the path point, the first
    to the right of it, then in turn round the ring; their heading offsets alternate in sign
    and grow to RIG_HEADING_DEG, and their altitude scales cycle through RIG_ALTITUDE_SCALES.
    """
    if not 1 <= count <= MAX_CAMERAS:
        raise ValueError(f'cameras must be 1 to {MAX_CAMERAS}, got {count}')
    mounts = [CameraMount('cam0')]
    others = count - 1
    for j in range(others):
        angle = 2 * math.pi * j / others
        sign = 1.0 if j % 2 == 0 else -1.0
        mounts.append(CameraMount(
            f'cam{j + 1}', forward=round(RIG_RADIUS * math.sin(angle), 6),
            right=round(RIG_RADIUS * math.cos(angle), 6),
            heading_deg=sign * RIG_HEADING_DEG * (1 + j // 2) / (1 + (others - 1) // 2),
            altitude_scale=RIG_ALTITUDE_SCALES[j % len(RIG_ALTITUDE_SCALES)]))
    return tuple(mounts)


def _rig_reach(mounts, size: tuple) -> float:
    """Return the farthest any rig view's corner lies from the path point (world px)."""
    width, height = size
    return ALTITUDE_RANGE[1] * max(width * math.hypot(m.forward, m.right) +
                                   m.altitude_scale * math.hypot(width, height) / 2
                                   for m in mounts)


def _mount_view(mount: CameraMount, centre, heading: float, altitude: float,
                width: int) -> tuple:
    """Return (centre, heading, altitude) of ``mount``'s view from the path point's."""
    if (mount.forward, mount.right, mount.heading_deg, mount.altitude_scale) == (0, 0, 0, 1):
        return tuple(centre), heading, altitude
    forward = np.array([math.sin(heading), -math.cos(heading)])
    right = np.array([math.cos(heading), math.sin(heading)])
    offset = altitude * width * (mount.forward * forward + mount.right * right)
    return (tuple(np.asarray(centre, np.float64) + offset),
            heading + math.radians(mount.heading_deg), altitude * mount.altitude_scale)


def read_flight_cameras(custom_data: dict) -> tuple:
    """
    Return the :class:`FlightCamera` list a flight bag's custom metadata names.

    A multi-camera flight lists its cameras; a single-camera flight (or a bag that is no
    synthetic flight) gives ``()``.
    """
    try:
        description = json.loads(custom_data.get(CUSTOM_DATA_KEY) or '{}')
    except json.JSONDecodeError:
        return ()
    cameras = description.get('cameras') if isinstance(description, dict) else None
    if not isinstance(cameras, list):
        return ()
    return tuple(FlightCamera(str(c['name']), str(c['frame_id']), str(c['image_topic']),
                              str(c['detections_topic']), str(c['mask_topic']))
                 for c in cameras)


@dataclass(frozen=True)
class FlightBag:
    """What :func:`write_flight_bag` wrote."""

    path: Path
    frames: int
    rate: float
    stamps_ns: tuple
    detection_classes: tuple
    segmentation_classes: tuple
    cameras: tuple = (SINGLE_CAMERA,)


def flight_path(frames: int, rate: float, seed: int, world_size: tuple = DEFAULT_WORLD_SIZE,
                size: tuple = (640, 480), speed: float = 120.0, *,
                reach: float | None = None) -> tuple:
    """
    Return the camera path sampled at ``rate`` Hz.

    A figure-eight (x = A sin p, y = B sin 2p / 2) around the world's centre, traversed at a mean
    ground speed of ``speed`` world px/s from a seed-chosen phase; the heading follows the
    direction of travel and the altitude scale drifts within ``ALTITUDE_RANGE``. The
    amplitudes keep the whole rotated view inside the world; ``reach`` (world px) is how far
    the farthest view corner may lie from the path point (default: one ``size`` view on the
    path, at the highest altitude).

    Output: (centres float64 [N, 2] world px x, y; headings float64 [N] rad as
    :func:`render_view` takes them; altitude scales float64 [N]).
    """
    if frames < 1 or rate <= 0 or speed <= 0:
        raise ValueError(f'frames must be >= 1 and rate, speed > 0, got {frames}, {rate}, '
                         f'{speed}')
    world_w, world_h = (float(v) for v in world_size)
    # A view's corner lies half its diagonal (times the altitude scale) from its centre.
    margin = (math.hypot(*size) / 2 * ALTITUDE_RANGE[1] if reach is None else reach) + 4
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
                     cameras: int = 1, overwrite: bool = False,
                     progress: bool = True) -> FlightBag:
    """
    Render a synthetic flight of ``frames`` frames at ``rate`` Hz into a bag at ``path``.

    ``size`` is (width, height) of the images; ``speed`` the mean ground speed in world px/s;
    ``cameras`` the number of cameras of the rig (1: the single-camera bag, see the module
    docstring). Stamps start at ``START_NS`` and are ``1 / rate`` apart, one stamp per tick
    for every camera; the same arguments give the same bag. An existing ``path`` raises
    FileExistsError unless ``overwrite``; an interrupted run leaves no bag behind.
    """
    width, height = (int(v) for v in size)
    if width < 8 or height < 8:
        raise ValueError(f'size must be (width, height) >= 8 px, got {size}')
    mounts = camera_rig(int(cameras))
    rig = len(mounts) > 1
    centres, headings, altitudes = flight_path(
        frames, rate, seed, world_size, (width, height), speed,
        reach=_rig_reach(mounts, (width, height)) if rig else None)
    stamps = tuple(START_NS + round(i * 1e9 / rate) for i in range(frames))
    description = {'seed': int(seed), 'frames': int(frames), 'rate': float(rate),
                   'size': [width, height], 'world_size': [int(v) for v in world_size],
                   'speed': float(speed), 'pixels_per_unit': WORLD_PIXELS_PER_UNIT,
                   'detection_classes': list(DETECTION_CLASSES),
                   'segmentation_classes': list(SEGMENTATION_CLASSES)}
    views = [(mount, camera_topics(mount.name)) for mount in mounts] if rig else \
        [(mounts[0], SINGLE_CAMERA)]
    if rig:
        description['cameras'] = [{**asdict(camera), 'mount': asdict(mount)}
                                  for mount, camera in views]
    world = render_world(int(seed), world_size=tuple(int(v) for v in world_size),
                         pixels_per_unit=WORLD_PIXELS_PER_UNIT)
    with BagWriter(path, storage, overwrite=overwrite,
                   custom_data={CUSTOM_DATA_KEY: json.dumps(description)}) as bag:
        for _, camera in views:
            bag.add_topic(camera.image_topic, IMAGE)
            bag.add_topic(camera.detections_topic, DETECTION2D_ARRAY)
            bag.add_topic(camera.mask_topic, IMAGE)
        for i in tqdm(range(frames), desc='synthetic flight', unit='frame',
                      disable=not progress):
            stamp = stamps[i]
            for mount, camera in views:
                centre, heading, altitude = _mount_view(
                    mount, centres[i], float(headings[i]), float(altitudes[i]), width)
                image, boxes, labels, mask = render_view(world, centre, heading, altitude,
                                                         out_size=(width, height))
                bag.write(camera.image_topic, stamp, make_image(image, stamp, camera.frame_id))
                bag.write(camera.detections_topic, stamp, make_detection_array(
                    boxes, labels, np.ones(len(labels)), stamp, camera.frame_id,
                    class_names=DETECTION_CLASSES))
                bag.write(camera.mask_topic, stamp, make_image(mask, stamp, camera.frame_id))
    return FlightBag(Path(path), int(frames), float(rate), stamps, tuple(DETECTION_CLASSES),
                     tuple(SEGMENTATION_CLASSES), tuple(camera for _, camera in views))
