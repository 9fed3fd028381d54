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
frames overlap like a real flight's. Six topics share every stamp (and the bag receive time):

* ``/camera/image_raw``: sensor_msgs/Image rgb8, frame_id 'camera';
* ``/camera/camera_info``: sensor_msgs/CameraInfo of the pinhole camera below, frame_id
  'camera';
* ``/camera/pose``: geometry_msgs/PoseStamped in 'map': the pose of the camera's optical frame
  (z forward, x right and y down in the image);
* ``/ground_truth/detections``: vision_msgs/Detection2DArray, boxes in pixels of the image,
  ``class_id`` the detection class name, score 1.0, ``id`` the object's identity (the decimal
  index + 1 of the object in the world, the same in every frame and every camera);
* ``/ground_truth/mask``: sensor_msgs/Image mono8 of segmentation class indices (255 void);
* ``/ground_truth/objects``: vision_msgs/Detection3DArray in 'map': for every object of that
  frame's ``/ground_truth/detections``, its id, class name and centre on the ground
  (``bbox.center.position``, z = 0).

Camera model. The world is a flat ground (z = 0) in the frame 'map' (ENU: x east, y north, z
up): world pixel coordinates (x right, y down, ``WORLD_PIXELS_PER_UNIT`` px per world unit of
``METRES_PER_UNIT`` m) map to ``(x * M, -y * M, 0)`` with ``M = METRES_PER_WORLD_PIXEL`` (0.06 m).
The camera is an ideal pinhole (no distortion, square pixels) of focal length
``FOCAL_FRACTION`` x the image width (about 64 deg horizontal field of view), looking straight
down. A view at altitude scale ``a`` sees ``a * M`` m of ground per image pixel, so it flies at
``a * M * f`` m (24-40 m for 640 px images). Its optical frame's axes in 'map', for the view
heading ``h`` of :func:`render_view`, are x = (cos h, -sin h, 0), y = (-sin h, -cos h, 0),
z = (0, 0, -1) (:func:`camera_pose`).

With ``cameras`` K >= 2 the same world is seen by a rig of K cameras carried along the path
(:func:`camera_rig`): ``cam0`` sits on the path as the single camera does; each other camera is
offset ahead/behind and beside it (in the path's own frame, scaled with the altitude), turned
by a heading offset and flown at its own altitude scale, so the views overlap in part but
differ. Every camera has its own topics, with frame_id its name::

    /<cam>/image_raw, /<cam>/camera_info, /<cam>/pose, /<cam>/ground_truth/detections,
    /<cam>/ground_truth/mask, /<cam>/ground_truth/objects

and every camera's messages of a tick carry the same stamp (and bag time). The bag's custom
metadata lists the cameras, their topics and their mounts under ``cameras``
(:func:`read_flight_cameras`). K = 1 writes exactly the single-camera bag above. The
metadata also records the camera model (``camera_model``) and ``ground_truth_version``
(:data:`GROUND_TRUTH_VERSION`: 2 since the camera topics, ids and world positions).
"""

from dataclasses import asdict, dataclass
import json
import math
from pathlib import Path

from mtl_perception.data.synthetic import (DETECTION_CLASSES, FLIGHT_PIXELS_PER_UNIT,
                                           render_view, render_world, SEGMENTATION_CLASSES)
from mtl_perception.replay.bag_io import BagWriter
from mtl_perception.replay.messages import (CAMERA_INFO, DETECTION2D_ARRAY, DETECTION3D_ARRAY,
                                            IMAGE, make_camera_info, make_detection3d_array,
                                            make_detection_array, make_image,
                                            make_pose_stamped, POSE_STAMPED)
import numpy as np
from tqdm import tqdm

__all__ = ['CAMERA_INFO_TOPIC', 'CUSTOM_DATA_KEY', 'DETECTIONS_TOPIC', 'FOCAL_FRACTION',
           'FRAME_ID', 'GROUND_TRUTH_VERSION', 'CameraMount', 'FlightBag', 'FlightCamera',
           'IMAGE_TOPIC', 'MASK_TOPIC', 'METRES_PER_UNIT', 'METRES_PER_WORLD_PIXEL',
           'OBJECTS_TOPIC', 'POSE_TOPIC', 'START_NS', 'WORLD_FRAME', 'camera_model',
           'camera_pose', 'camera_rig', 'camera_topics', 'flight_path', 'focal_length_px',
           'read_flight_cameras', 'rotation_quaternion', 'world_to_map', 'write_flight_bag']

IMAGE_TOPIC = '/camera/image_raw'
CAMERA_INFO_TOPIC = '/camera/camera_info'
POSE_TOPIC = '/camera/pose'
DETECTIONS_TOPIC = '/ground_truth/detections'
MASK_TOPIC = '/ground_truth/mask'
OBJECTS_TOPIC = '/ground_truth/objects'
FRAME_ID = 'camera'
WORLD_FRAME = 'map'
# 2: camera_info and pose topics, ground-truth ids and world positions (version 1 had none).
GROUND_TRUTH_VERSION = 2
# 2026-01-01T00:00:00Z: a fixed epoch, so the same seed gives byte-identical bags.
START_NS = 1_767_225_600 * 1_000_000_000
CUSTOM_DATA_KEY = 'mtl_perception.synthetic_flight'
DEFAULT_WORLD_SIZE = (4000, 3000)
# The world is rendered at WORLD_PIXELS_PER_UNIT, so a view altitude scale a sees the ground
# as SyntheticAerialDataset's altitude a / WORLD_PIXELS_PER_UNIT does (here 0.4-0.65, inside
# its default range), with the world sampled near its own resolution (sharp, not upsampled).
WORLD_PIXELS_PER_UNIT = FLIGHT_PIXELS_PER_UNIT
# A world unit is 0.12 m (a car, 34-40 units long, is 4.1-4.8 m), so a world pixel is 0.06 m.
METRES_PER_UNIT = 0.12
METRES_PER_WORLD_PIXEL = METRES_PER_UNIT / WORLD_PIXELS_PER_UNIT
# Focal length over image width: about 64 deg of horizontal field of view.
FOCAL_FRACTION = 0.8
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
    """
    One camera of a flight bag: its name, frame_id and topics.

    The camera_info, pose and objects topics are '' for a bag written before them
    (``ground_truth_version`` 1).
    """

    name: str
    frame_id: str
    image_topic: str
    detections_topic: str
    mask_topic: str
    camera_info_topic: str = ''
    pose_topic: str = ''
    objects_topic: str = ''


def camera_topics(name: str) -> FlightCamera:
    """Return the topics of rig camera ``name``: ``/<name>/image_raw``, ground truth beside."""
    return FlightCamera(name, name, f'/{name}/image_raw', f'/{name}/ground_truth/detections',
                        f'/{name}/ground_truth/mask', f'/{name}/camera_info', f'/{name}/pose',
                        f'/{name}/ground_truth/objects')


SINGLE_CAMERA = FlightCamera(FRAME_ID, FRAME_ID, IMAGE_TOPIC, DETECTIONS_TOPIC, MASK_TOPIC,
                             CAMERA_INFO_TOPIC, POSE_TOPIC, OBJECTS_TOPIC)


def focal_length_px(width: int) -> float:
    """Return the focal length in pixels of a flight camera ``width`` px wide."""
    return FOCAL_FRACTION * float(width)


def camera_model(width: int) -> dict:
    """Return the camera model a flight bag's metadata records (``camera_model``)."""
    return {'focal_px': focal_length_px(width), 'focal_fraction': FOCAL_FRACTION,
            'metres_per_unit': METRES_PER_UNIT,
            'metres_per_world_pixel': METRES_PER_WORLD_PIXEL, 'world_frame': WORLD_FRAME,
            'ground_z': 0.0, 'optical_frame': 'z forward, x right, y down in the image'}


def world_to_map(points) -> np.ndarray:
    """Return world pixel points [N, 2] (x right, y down) as 'map' points [N, 3] m, z = 0."""
    points = np.asarray(points, np.float64).reshape(-1, 2)
    out = np.zeros((len(points), 3), np.float64)
    out[:, 0] = points[:, 0] * METRES_PER_WORLD_PIXEL
    out[:, 1] = -points[:, 1] * METRES_PER_WORLD_PIXEL
    return out


def camera_pose(centre, heading: float, altitude: float, width: int) -> tuple:
    """
    Return the optical frame's pose in 'map' of the view :func:`render_view` renders.

    :param centre: the view centre (world px), as given to render_view.
    :param heading: the view heading (rad), as given to render_view.
    :param altitude: the view's altitude scale.
    :param width: the image width (px).
    :return: ``(position float64 [3] m, rotation float64 [3, 3])``: the camera sits
        ``altitude * METRES_PER_WORLD_PIXEL * f`` m above the view centre, and the rotation's
        columns are the optical x (image right), y (image down) and z (viewing) axes.
    """
    position = world_to_map(centre)[0]
    position[2] = altitude * METRES_PER_WORLD_PIXEL * focal_length_px(width)
    c, s = math.cos(heading), math.sin(heading)
    rotation = np.array([[c, -s, 0.0], [-s, -c, 0.0], [0.0, 0.0, -1.0]])
    return position, rotation


def rotation_quaternion(rotation) -> np.ndarray:
    """Return the unit quaternion [x, y, z, w] of a rotation matrix (w >= 0)."""
    m = np.asarray(rotation, np.float64)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * math.sqrt(1.0 + trace)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, s / 4]
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * math.sqrt(max(1.0 + m[i, i] - m[j, j] - m[k, k], 0.0))
        q = [0.0, 0.0, 0.0, (m[k, j] - m[j, k]) / s]
        q[i], q[j], q[k] = s / 4, (m[j, i] + m[i, j]) / s, (m[k, i] + m[i, k]) / s
    q = np.asarray(q, np.float64)
    q /= np.linalg.norm(q)
    return -q if q[3] < 0 else q


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
                              str(c['detections_topic']), str(c['mask_topic']),
                              str(c.get('camera_info_topic', '')), str(c.get('pose_topic', '')),
                              str(c.get('objects_topic', '')))
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
                   'segmentation_classes': list(SEGMENTATION_CLASSES),
                   'ground_truth_version': GROUND_TRUTH_VERSION,
                   'camera_model': camera_model(width)}
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
            bag.add_topic(camera.camera_info_topic, CAMERA_INFO)
            bag.add_topic(camera.pose_topic, POSE_STAMPED)
            bag.add_topic(camera.detections_topic, DETECTION2D_ARRAY)
            bag.add_topic(camera.mask_topic, IMAGE)
            bag.add_topic(camera.objects_topic, DETECTION3D_ARRAY)
        focal = focal_length_px(width)
        for i in tqdm(range(frames), desc='synthetic flight', unit='frame',
                      disable=not progress):
            stamp = stamps[i]
            for mount, camera in views:
                centre, heading, altitude = _mount_view(
                    mount, centres[i], float(headings[i]), float(altitudes[i]), width)
                image, boxes, labels, mask, _, ids = render_view(
                    world, centre, heading, altitude, out_size=(width, height),
                    return_instances=True)
                position, rotation = camera_pose(centre, heading, altitude, width)
                # The camera's info and pose go first: a consumer has them with the image.
                bag.write(camera.camera_info_topic, stamp,
                          make_camera_info(width, height, focal, stamp, camera.frame_id))
                bag.write(camera.pose_topic, stamp, make_pose_stamped(
                    position, rotation_quaternion(rotation), stamp, WORLD_FRAME))
                bag.write(camera.image_topic, stamp, make_image(image, stamp, camera.frame_id))
                bag.write(camera.detections_topic, stamp, make_detection_array(
                    boxes, labels, np.ones(len(labels)), stamp, camera.frame_id,
                    class_names=DETECTION_CLASSES, ids=[int(k) for k in ids]))
                bag.write(camera.mask_topic, stamp, make_image(mask, stamp, camera.frame_id))
                bag.write(camera.objects_topic, stamp, make_detection3d_array(
                    world_to_map([world.objects[k - 1]['center'] for k in ids]),
                    [DETECTION_CLASSES[int(label)] for label in labels],
                    [int(k) for k in ids], stamp, WORLD_FRAME))
    return FlightBag(Path(path), int(frames), float(rate), stamps, tuple(DETECTION_CLASSES),
                     tuple(SEGMENTATION_CLASSES), tuple(camera for _, camera in views))
