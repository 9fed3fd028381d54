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

"""The flight's camera model, camera topics, ground-truth ids and world positions."""

import json
import math

from mtl_perception.data.synthetic import render_world
from mtl_perception.replay.bag_io import open_bag
from mtl_perception.replay.flight import (ALTITUDE_RANGE, camera_pose, camera_rig,
                                          CUSTOM_DATA_KEY, flight_path, FOCAL_FRACTION,
                                          METRES_PER_WORLD_PIXEL, rotation_quaternion,
                                          SINGLE_CAMERA, WORLD_PIXELS_PER_UNIT, world_to_map,
                                          write_flight_bag)
from mtl_perception.replay.messages import detection3d_array_to_numpy, detection_array_to_numpy
from mtl_perception.replay.messages import detection_ids, stamp_to_ns
import numpy as np
import pytest

SIZE = (640, 480)
# Big enough for roads, so cars and trucks besides persons in view.
WORLD = (3000, 2400)
RATE, FRAMES, SEED, SPEED = 8.0, 4, 2, 60.0


def _quaternion_matrix(q) -> np.ndarray:
    x, y, z, w = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def _read(path) -> tuple:
    """Return (custom data, {stamp: {topic: message}})."""
    frames = {}
    with open_bag(path) as bag:
        custom = bag.custom_data
        for topic, timestamp, msg in bag.messages():
            frames.setdefault(timestamp, {})[topic] = msg
    return custom, frames


@pytest.fixture(scope='module')
def flights(tmp_path_factory) -> dict:
    """One single-camera and one two-camera flight of the same seed, read back."""
    root = tmp_path_factory.mktemp('flights')
    read = {}
    for cameras in (1, 2):
        info = write_flight_bag(root / f'flight{cameras}', frames=FRAMES, rate=RATE, seed=SEED,
                                size=SIZE, world_size=WORLD, speed=SPEED, cameras=cameras,
                                progress=False)
        read[cameras] = (info, *_read(root / f'flight{cameras}'))
    return read


@pytest.fixture(scope='module')
def world():
    """Render the flights' world."""
    return render_world(SEED, world_size=WORLD, pixels_per_unit=WORLD_PIXELS_PER_UNIT)


def _pinhole(info, pose, points: np.ndarray) -> np.ndarray:
    """Project 'map' points [N, 3] with CameraInfo K and the optical frame's pose: [N, 2]."""
    k = np.asarray(info.k, np.float64).reshape(3, 3)
    p = pose.pose
    position = np.array([p.position.x, p.position.y, p.position.z])
    rotation = _quaternion_matrix([p.orientation.x, p.orientation.y, p.orientation.z,
                                   p.orientation.w])
    in_camera = (points - position) @ rotation  # rotation.T @ (point - position), row-wise
    assert np.all(in_camera[:, 2] > 0)  # in front of the camera
    uvw = in_camera @ k.T
    return uvw[:, :2] / uvw[:, 2:]


def test_camera_pose_inverts_render_view_geometry():
    """A world point render_view shows at pixel (u, v) projects to (u, v) - 0.5 (ROS/OpenCV)."""
    rng = np.random.default_rng(0)
    width, height = 640, 480
    focal = FOCAL_FRACTION * width
    k = np.array([[focal, 0, width / 2 - 0.5], [0, focal, height / 2 - 0.5], [0, 0, 1]])
    for _ in range(20):
        centre = rng.uniform(500, 2500, 2)
        heading, altitude = rng.uniform(-2 * math.pi, 2 * math.pi), rng.uniform(0.5, 1.5)
        position, rotation = camera_pose(centre, heading, altitude, width)
        # Right-handed, orthonormal, looking down from a ground sampling distance a * 0.06 m.
        np.testing.assert_allclose(rotation.T @ rotation, np.eye(3), atol=1e-12)
        assert np.linalg.det(rotation) == pytest.approx(1.0)
        np.testing.assert_allclose(rotation[:, 2], [0, 0, -1])
        assert position[2] == pytest.approx(altitude * METRES_PER_WORLD_PIXEL * focal)
        # render_view: pixel point (u, v) sees centre + a R(h) (u - W/2, v - H/2).
        uv = rng.uniform(0, [width, height], (50, 2))
        c, s = math.cos(heading), math.sin(heading)
        seen = centre + altitude * (uv - [width / 2, height / 2]) @ np.array([[c, s], [-s, c]])
        in_camera = (world_to_map(seen) - position) @ rotation
        projected = in_camera @ k.T
        np.testing.assert_allclose(projected[:, :2] / projected[:, 2:], uv - 0.5, atol=1e-6)
    assert METRES_PER_WORLD_PIXEL == pytest.approx(0.12 / WORLD_PIXELS_PER_UNIT)


def test_rotation_quaternion_round_trip():
    rng = np.random.default_rng(1)
    for _ in range(50):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        got = rotation_quaternion(_quaternion_matrix(q))
        np.testing.assert_allclose(got, q if q[3] >= 0 else -q, atol=1e-9)
    # The flight's (trace -1) rotations: a half turn about a horizontal axis.
    _, rotation = camera_pose((0, 0), 0.3, 1.0, 640)
    np.testing.assert_allclose(_quaternion_matrix(rotation_quaternion(rotation)), rotation,
                               atol=1e-12)


def test_camera_info_and_pose_topics(flights):
    info, custom, frames = flights[1]
    camera = SINGLE_CAMERA
    centres, headings, altitudes = flight_path(FRAMES, RATE, SEED, WORLD, SIZE, SPEED)
    focal = FOCAL_FRACTION * SIZE[0]
    model = json.loads(custom[CUSTOM_DATA_KEY])['camera_model']
    assert model['focal_px'] == focal and model['world_frame'] == 'map'
    assert model['metres_per_world_pixel'] == pytest.approx(0.06)
    for i, stamp in enumerate(info.stamps_ns):
        msgs = frames[stamp]
        camera_info, pose = msgs[camera.camera_info_topic], msgs[camera.pose_topic]
        assert camera_info.header.frame_id == 'camera' and pose.header.frame_id == 'map'
        assert stamp_to_ns(camera_info.header.stamp) == stamp_to_ns(pose.header.stamp) == stamp
        assert (camera_info.width, camera_info.height) == SIZE
        assert camera_info.distortion_model == 'plumb_bob'
        assert not np.any(camera_info.d)
        cx, cy = SIZE[0] / 2 - 0.5, SIZE[1] / 2 - 0.5
        np.testing.assert_array_equal(camera_info.k, [focal, 0, cx, 0, focal, cy, 0, 0, 1])
        np.testing.assert_array_equal(camera_info.p,
                                      [focal, 0, cx, 0, 0, focal, cy, 0, 0, 0, 1, 0])
        np.testing.assert_array_equal(camera_info.r, np.eye(3).reshape(-1))
        p = pose.pose.position
        np.testing.assert_allclose([p.x, p.y], [centres[i][0] * 0.06, -centres[i][1] * 0.06])
        assert p.z == pytest.approx(altitudes[i] * 0.06 * focal)
        o = pose.pose.orientation
        rotation = _quaternion_matrix([o.x, o.y, o.z, o.w])
        h = headings[i]
        np.testing.assert_allclose(rotation, [[math.cos(h), -math.sin(h), 0],
                                              [-math.sin(h), -math.cos(h), 0], [0, 0, -1]],
                                   atol=1e-9)
    # At 640 px the single camera flies 24-40 m up.
    low, high = (a * METRES_PER_WORLD_PIXEL * FOCAL_FRACTION * 640 for a in ALTITUDE_RANGE)
    assert 24 < low < high < 40


@pytest.mark.parametrize('cameras', [1, 2])
def test_object_centres_project_into_their_boxes(flights, world, cameras):
    """The whole camera model: world positions through CameraInfo and pose land in the boxes."""
    info, _, frames = flights[cameras]
    checked, classes = 0, set()
    for stamp in info.stamps_ns:
        for camera in info.cameras:
            msgs = frames[stamp]
            boxes, names, _ = detection_array_to_numpy(msgs[camera.detections_topic])
            positions, names3d, ids3d = detection3d_array_to_numpy(msgs[camera.objects_topic])
            assert names3d == names and ids3d == detection_ids(msgs[camera.detections_topic])
            if not len(boxes):
                continue
            # OpenCV pixel centres are at integers; the boxes' pixel i spans [i, i + 1].
            projected = _pinhole(msgs[camera.camera_info_topic], msgs[camera.pose_topic],
                                 positions) + 0.5
            clipped = (boxes[:, 0] <= 0) | (boxes[:, 1] <= 0) | (boxes[:, 2] >= SIZE[0]) | \
                (boxes[:, 3] >= SIZE[1])
            for box, point, name, track, edge in zip(boxes, projected, names, ids3d, clipped):
                obj = world.objects[int(track) - 1]
                # A box cut by the frame edge or a tree's canopy need not hold the centre.
                if edge or obj['visible_pixels'] < 0.95 * obj['area']:
                    continue
                assert box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3], \
                    (name, box, point)
                if name in ('car', 'person'):  # symmetric shapes: centre in the box middle
                    np.testing.assert_allclose(point, (box[:2] + box[2:]) / 2, atol=1.0)
                checked += 1
                classes.add(name)
    assert checked >= 12 and {'car', 'person'} <= classes


def test_ground_truth_ids_are_world_objects_and_stable(flights, world):
    positions, seen_by = {}, {}
    for cameras in (1, 2):
        info, _, frames = flights[cameras]
        for stamp in info.stamps_ns:
            for camera in info.cameras:
                msgs = frames[stamp]
                _, names, _ = detection_array_to_numpy(msgs[camera.detections_topic])
                ids = detection_ids(msgs[camera.detections_topic])
                assert len(set(ids)) == len(ids) and all(i.isdigit() for i in ids)
                points, _, ids3d = detection3d_array_to_numpy(msgs[camera.objects_topic])
                assert ids3d == ids and np.all(points[:, 2] == 0)
                for track, name, point in zip(ids, names, points):
                    # The id is the object's index + 1 in the world, whatever camera or frame.
                    obj = world.objects[int(track) - 1]
                    assert obj['class_name'] == name
                    np.testing.assert_allclose(point[:2], [obj['center'][0] * 0.06,
                                                           -obj['center'][1] * 0.06])
                    positions.setdefault(track, set()).add(tuple(point))
                    seen_by.setdefault(track, set()).add((cameras, camera.name, stamp))
    # One position per id; most objects are seen in several frames (and cameras).
    assert all(len(p) == 1 for p in positions.values())
    assert sum(len(s) > 1 for s in seen_by.values()) >= 0.5 * len(seen_by) > 0


def test_rig_cameras_have_their_own_camera_topics(flights):
    info, custom, frames = flights[2]
    assert [c.camera_info_topic for c in info.cameras] == ['/cam0/camera_info',
                                                           '/cam1/camera_info']
    assert [c.pose_topic for c in info.cameras] == ['/cam0/pose', '/cam1/pose']
    assert [c.objects_topic for c in info.cameras] == ['/cam0/ground_truth/objects',
                                                       '/cam1/ground_truth/objects']
    mounts = camera_rig(2)
    stamp = info.stamps_ns[0]
    heights = {}
    for camera, mount in zip(info.cameras, mounts):
        camera_info = frames[stamp][camera.camera_info_topic]
        assert camera_info.header.frame_id == camera.name
        heights[camera.name] = frames[stamp][camera.pose_topic].pose.position.z
    # cam1 flies at its own altitude scale relative to cam0's.
    assert heights['cam1'] / heights['cam0'] == pytest.approx(mounts[1].altitude_scale)
