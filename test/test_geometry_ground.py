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

"""Pixels to the ground plane: camera model, undistortion, poses, contact points, messages."""

import math
import subprocess
import sys
from types import SimpleNamespace

from mtl_perception.geometry import (BODY_FROM_OPTICAL, contact_pixels, ground_footprint,
                                     PinholeCamera, Pose, project_to_ground,
                                     quaternion_to_matrix)
import numpy as np
import pytest

# 640 x 480, 90 deg horizontal field of view: fx = 320 / tan(45 deg).
CAMERA = PinholeCamera(fx=320.0, fy=320.0, cx=320.0, cy=240.0, width=640, height=480)
DISTORTION = (-0.28, 0.07, 1e-3, -5e-4, 0.01)


def _rz(angle):
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _ry(angle):
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _oblique(tilt_deg, position=(0.0, 0.0, 50.0), roll_deg=0.0):
    """Camera looking north (+y), tilted ``tilt_deg`` from nadir, rolled about its axis."""
    t = math.radians(tilt_deg)
    forward = np.array([0.0, math.sin(t), -math.cos(t)])
    right = np.array([1.0, 0.0, 0.0])
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward], axis=1) @ _rz(math.radians(roll_deg))
    return Pose(position=position, rotation=rotation)


def _project(points, camera, pose, distortion=None):
    """World points [N, 3] -> raw pixels [N, 2] and depth [N] (explicit pinhole model)."""
    optical = (np.asarray(points) - pose.position) @ pose.rotation
    x, y = optical[:, 0] / optical[:, 2], optical[:, 1] / optical[:, 2]
    if distortion is not None:
        x, y = _distort(x, y, distortion)
    return np.stack([camera.fx * x + camera.cx, camera.fy * y + camera.cy], axis=1), optical[:, 2]


def _distort(x, y, coefficients):
    k1, k2, p1, p2, k3 = coefficients
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3
    return (x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x),
            y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y)


def test_nadir_camera_with_yaw_maps_centre_and_corners_by_the_field_of_view():
    # 30 m above (5, -3), looking straight down, yawed 90 deg: image right = north (+y),
    # image down = east (+x). Quaternion of Rz(90) * Rx(180) = (cos 45, sin 45, 0, 0).
    half = math.sqrt(0.5)
    pose = Pose.from_quaternion((5.0, -3.0, 30.0), (half, half, 0.0, 0.0))
    # Half extents on the ground: 30 * tan(45 deg) = 30 across, 30 * 240 / 320 = 22.5 down.
    pixels = [[320, 240], [0, 0], [640, 0], [0, 480], [640, 480], [320, 0]]
    expected = [[5.0, -3.0, 0.0], [-17.5, -33.0, 0.0], [-17.5, 27.0, 0.0], [27.5, -33.0, 0.0],
                [27.5, 27.0, 0.0], [-17.5, -3.0, 0.0]]
    points = project_to_ground(pixels, CAMERA, pose)
    assert points.dtype == np.float64 and points.shape == (6, 3)
    np.testing.assert_allclose(points, expected, atol=1e-9)
    assert pose.tilt() == pytest.approx(0.0, abs=1e-9)
    # The same plane 2 m higher: everything shrinks by 28 / 30 around the nadir point.
    raised = project_to_ground(pixels, CAMERA, pose, ground_z=2.0)
    np.testing.assert_allclose(raised[:, :2] - [5.0, -3.0],
                               (np.array(expected)[:, :2] - [5.0, -3.0]) * 28 / 30, atol=1e-9)
    np.testing.assert_allclose(raised[:, 2], 2.0)


@pytest.mark.parametrize('tilt', [10.0, 30.0, 55.0])
def test_oblique_camera_principal_point_lies_at_height_times_tan_tilt(tilt):
    pose = _oblique(tilt, position=(1.0, 2.0, 40.0))
    point = project_to_ground([[320, 240]], CAMERA, pose)[0]
    np.testing.assert_allclose(point, [1.0, 2.0 + 40.0 * math.tan(math.radians(tilt)), 0.0],
                               atol=1e-9)
    assert pose.tilt() == pytest.approx(math.radians(tilt))
    # Lower rows look more steeply down: ever further south (behind the nadir for a small
    # tilt), along the same north-south line.
    column = project_to_ground([[320, v] for v in (250, 350, 450)], CAMERA, pose)
    assert np.all(np.diff(column[:, 1]) < 0)
    np.testing.assert_allclose(column[:, 0], 1.0, atol=1e-9)


def test_body_from_optical_turns_a_pitched_body_pose_into_the_optical_pose():
    # Body frame (x forward, y left, z up) yawed to face north and pitched 60 deg nose down
    # looks 30 deg from nadir, like _oblique(30).
    body = _rz(math.radians(90.0)) @ _ry(math.radians(60.0))
    np.testing.assert_allclose(body @ BODY_FROM_OPTICAL, _oblique(30.0).rotation, atol=1e-12)


def test_rays_at_or_above_the_horizon_give_nan_never_a_point():
    pose = _oblique(80.0, position=(0.0, 0.0, 20.0))  # 10 deg below the horizontal
    rows = np.arange(0, 481, 4)
    points = project_to_ground(np.stack([np.full_like(rows, 100), rows], axis=1), CAMERA, pose)
    # A row is above the horizon when it looks more than 10 deg above the optical axis.
    above = (240 - rows) / 320.0 >= math.tan(math.radians(10.0)) - 1e-12
    assert above.any() and (~above).any()
    assert np.all(np.isnan(points[above]))
    assert np.all(np.isfinite(points[~above]))
    assert np.all(points[~above, 1] > 0.0)  # in front of the camera (north), never behind
    # Exactly at the horizon, and just above and below it.
    horizon_v = 240 - 320 * math.tan(math.radians(10.0))
    edge = project_to_ground([[320, horizon_v], [320, horizon_v - 1e-3],
                              [320, horizon_v + 1.0]], CAMERA, pose)
    assert np.all(np.isnan(edge[:2]))
    assert edge[2, 1] > 1000.0  # far away, but on the ground in front
    # A camera looking straight up (optical z = world z) sees no ground at all.
    up = Pose(position=(0, 0, 10), rotation=np.eye(3))
    assert np.all(np.isnan(project_to_ground([[320, 240], [0, 0]], CAMERA, up)))


def test_camera_at_or_below_the_plane_gives_nan():
    pixels = [[320, 240], [10, 470]]
    below = Pose(position=(0, 0, -1.0), rotation=_oblique(0.0).rotation)
    assert np.all(np.isnan(project_to_ground(pixels, CAMERA, below)))
    assert np.all(np.isnan(project_to_ground(pixels, CAMERA, _oblique(20.0), ground_z=60.0)))
    assert np.all(np.isnan(project_to_ground(pixels, CAMERA, _oblique(20.0), ground_z=50.0)))


def test_max_range_is_the_distance_along_the_ray():
    pose = _oblique(0.0, position=(0.0, 0.0, 30.0))
    corner = math.sqrt(30.0 ** 2 + 30.0 ** 2 + 22.5 ** 2)  # to the ground under pixel (0, 0)
    pixels = [[320, 240], [0, 0]]
    far = project_to_ground(pixels, CAMERA, pose, max_range=corner + 1e-6)
    assert np.all(np.isfinite(far))
    near = project_to_ground(pixels, CAMERA, pose, max_range=corner - 1e-6)
    assert np.isfinite(near[0]).all() and np.isnan(near[1]).all()
    assert np.isnan(project_to_ground(pixels, CAMERA, pose, max_range=29.9)).all()


@pytest.mark.parametrize('distortion', [None, DISTORTION])
def test_round_trip_world_to_pixel_to_world(distortion):
    camera = PinholeCamera(fx=610.0, fy=605.0, cx=331.0, cy=247.5, width=640, height=480,
                           distortion=distortion)
    pose = _oblique(40.0, position=(12.0, -7.0, 60.0), roll_deg=8.0)
    pose = Pose(position=pose.position, rotation=_rz(0.7) @ pose.rotation)  # any heading
    rng = np.random.default_rng(3)
    world = np.concatenate([rng.uniform(-150, 150, (4000, 2)), np.full((4000, 1), 2.5)], axis=1)
    pixels, depth = _project(world, camera, pose, distortion)
    inside = ((depth > 0) & (pixels[:, 0] >= 0) & (pixels[:, 0] < 640) & (pixels[:, 1] >= 0)
              & (pixels[:, 1] < 480))
    assert inside.sum() > 100
    back = project_to_ground(pixels[inside], camera, pose, ground_z=2.5)
    assert np.max(np.abs(back - world[inside])) < 1e-6


def test_undistort_inverts_plumb_bob_over_the_image():
    camera = PinholeCamera(fx=500.0, fy=498.0, cx=318.0, cy=242.0, width=640, height=480,
                           distortion=DISTORTION)
    u, v = np.meshgrid(np.linspace(-40, 680, 37), np.linspace(-30, 510, 28))
    ideal = np.stack([u.ravel(), v.ravel()], axis=1)
    x, y = _distort((ideal[:, 0] - 318.0) / 500.0, (ideal[:, 1] - 242.0) / 498.0, DISTORTION)
    raw = np.stack([x * 500.0 + 318.0, y * 498.0 + 242.0], axis=1)
    assert np.max(np.abs(raw - ideal)) > 20.0  # the distortion is not negligible
    assert np.max(np.abs(camera.undistort(raw) - ideal)) < 1e-3
    np.testing.assert_allclose(CAMERA.undistort(raw), raw, atol=1e-9)  # no distortion
    rays = camera.rays(raw)
    np.testing.assert_allclose(np.linalg.norm(rays, axis=1), 1.0)
    assert np.all(rays[:, 2] > 0)


def test_undistort_refuses_pixels_beyond_the_fold_of_a_barrel_distortion():
    # r_d = r (1 - 0.5 r^2) rises to 0.544 at r = 0.816 and falls again: r_d = 0.5 has the
    # preimages r = (sqrt(5) - 1) / 2 = 0.618 (right) and r = 1 (folded); r_d = 0.6 has none.
    camera = PinholeCamera(fx=100.0, fy=100.0, cx=0.0, cy=0.0, width=200, height=200,
                           distortion=(-0.5,))
    result = camera.undistort([[50.0, 0.0], [60.0, 0.0], [np.nan, 3.0], [0.0, 54.3]])
    np.testing.assert_allclose(result[0], [50.0 * (math.sqrt(5.0) - 1.0), 0.0], atol=1e-6)
    assert np.all(np.isnan(result[1:3]))
    # Just inside the fold (r_d = 0.543, preimages r = 0.78 and 0.85), the right one.
    y = result[3, 1] / 100.0
    assert result[3, 0] == 0.0 and y - 0.5 * y ** 3 == pytest.approx(0.543)
    assert y < math.sqrt(2.0 / 3.0)


def test_quaternion_to_matrix():
    np.testing.assert_allclose(quaternion_to_matrix(0, 0, 0, 1), np.eye(3))
    yaw = quaternion_to_matrix(0, 0, math.sin(math.pi / 4), math.cos(math.pi / 4))
    np.testing.assert_allclose(yaw @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(yaw @ [0, 1, 0], [-1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(quaternion_to_matrix(0, 0, 2, 2), yaw, atol=1e-12)
    np.testing.assert_allclose(quaternion_to_matrix(0, 0, -2, -2), yaw, atol=1e-12)
    with pytest.raises(ValueError, match='norm'):
        quaternion_to_matrix(0, 0, 0, 0)
    with pytest.raises(ValueError, match='rotation matrix'):
        Pose(position=(0, 0, 1), rotation=np.diag([1.0, 1.0, -1.0]))


def test_pose_from_transform_stamped():
    t = SimpleNamespace(translation=SimpleNamespace(x=1.0, y=2.0, z=3.0),
                        rotation=SimpleNamespace(x=0.0, y=0.0, z=0.0, w=1.0))
    pose = Pose.from_transform(SimpleNamespace(transform=t))
    np.testing.assert_array_equal(pose.position, [1, 2, 3])
    np.testing.assert_array_equal(pose.rotation, np.eye(3))


def _info(**fields):
    values = {'k': [400.0, 0, 300.0, 0, 410.0, 200.0, 0, 0, 1],
              'd': [0.1, -0.02, 0, 0, 0.003], 'distortion_model': 'plumb_bob',
              'width': 600, 'height': 400,
              'p': [380.0, 0, 290.0, 0, 0, 390.0, 195.0, 0, 0, 0, 1, 0]}
    values.update(fields)
    return SimpleNamespace(**values)


def test_from_camera_info_duck_typed():
    camera = PinholeCamera.from_camera_info(_info())
    assert (camera.fx, camera.fy, camera.cx, camera.cy) == (400.0, 410.0, 300.0, 200.0)
    assert (camera.width, camera.height) == (600, 400)
    assert camera.distortion == (0.1, -0.02, 0.0, 0.0, 0.003)
    rectified = PinholeCamera.from_camera_info(_info(distortion_model='equidistant'),
                                               rectified=True)
    assert (rectified.fx, rectified.fy, rectified.cx, rectified.cy) == (380, 390, 290, 195)
    assert rectified.distortion is None
    assert PinholeCamera.from_camera_info(_info(d=[], distortion_model='')).distortion is None
    with pytest.raises(ValueError, match='uncalibrated'):
        PinholeCamera.from_camera_info(_info(k=[0.0] * 9))
    with pytest.raises(ValueError, match="'equidistant' is not supported"):
        PinholeCamera.from_camera_info(_info(distortion_model='equidistant', d=[0.1] * 4))
    with pytest.raises(ValueError, match='5 coefficients'):
        PinholeCamera.from_camera_info(_info(d=[0.1] * 8))
    with pytest.raises(ValueError, match='binning'):
        PinholeCamera.from_camera_info(_info(binning_x=2))


def test_from_camera_info_with_a_real_message():
    sensor_msgs = pytest.importorskip('sensor_msgs.msg')
    msg = sensor_msgs.CameraInfo(width=640, height=480, distortion_model='plumb_bob')
    with pytest.raises(ValueError, match='uncalibrated'):
        PinholeCamera.from_camera_info(msg)  # a default CameraInfo has K all zeros
    msg.k = [320.0, 0.0, 320.0, 0.0, 320.0, 240.0, 0.0, 0.0, 1.0]
    msg.d = list(DISTORTION)
    camera = PinholeCamera.from_camera_info(msg)
    assert camera.distortion == pytest.approx(DISTORTION)
    assert (camera.fx, camera.cx, camera.cy, camera.width) == (320.0, 320.0, 240.0, 640)
    msg.distortion_model = 'equidistant'
    with pytest.raises(ValueError, match='equidistant'):
        PinholeCamera.from_camera_info(msg)


def test_contact_point_of_a_nadir_camera_is_the_box_centre():
    pose = _oblique(0.0, position=(0.0, 0.0, 30.0))
    box = [[300.0, 220.0, 340.0, 260.0]]  # centred on the principal point
    for mode in ('auto', 'center'):
        np.testing.assert_allclose(contact_pixels(box, CAMERA, pose, mode), [[320, 240]])
    np.testing.assert_allclose(contact_pixels(box, CAMERA, pose, 'bottom'), [[320, 260]],
                               atol=1e-9)
    # Away from the principal point too: 'auto' follows the camera's tilt (none here), not
    # the box's own ray angle ('bottom' still points toward the nadir point).
    side = [[580.0, 220.0, 620.0, 260.0]]
    np.testing.assert_allclose(contact_pixels(side, CAMERA, pose), [[600.0, 240.0]])
    np.testing.assert_allclose(contact_pixels(side, CAMERA, pose, 'bottom'), [[580.0, 240.0]],
                               atol=1e-9)


def test_contact_point_of_a_strongly_tilted_camera_is_near_the_bottom_centre():
    pose = _oblique(80.0, position=(0.0, 0.0, 10.0))
    boxes = np.array([[300.0, 200.0, 340.0, 280.0], [100.0, 300.0, 180.0, 460.0]])
    contact = contact_pixels(boxes, CAMERA, pose)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    heights = boxes[:, 3] - boxes[:, 1]
    # The first box sits on the principal point: v = cy_box + sin(80 deg) * h / 2 exactly.
    np.testing.assert_allclose(contact[0], [320.0, 240.0 + math.sin(math.radians(80)) * 40.0])
    assert np.all(boxes[:, 3] - contact[:, 1] < 0.1 * heights)
    assert np.all(np.abs(contact[:, 0] - centres[:, 0]) < 0.15 * (boxes[:, 2] - boxes[:, 0]))
    np.testing.assert_allclose(contact_pixels(boxes[:1], CAMERA, pose, 'bottom'), [[320, 280]])
    with pytest.raises(ValueError, match='contact mode'):
        contact_pixels(boxes, CAMERA, pose, 'top')


def test_contact_point_follows_the_image_of_down_for_a_rolled_camera():
    # Rolled 90 deg about the optical axis: the ground near the camera is toward image +u.
    pose = _oblique(60.0, position=(0.0, 0.0, 10.0), roll_deg=90.0)
    box = [[280.0, 220.0, 360.0, 260.0]]
    np.testing.assert_allclose(contact_pixels(box, CAMERA, pose, 'bottom'), [[360.0, 240.0]],
                               atol=1e-9)
    np.testing.assert_allclose(contact_pixels(box, CAMERA, pose, 'auto'),
                               [[320.0 + math.sin(math.radians(60)) * 40.0, 240.0]], atol=1e-9)


def test_ground_footprint_per_class():
    pose = _oblique(0.0, position=(0.0, 0.0, 30.0))  # image right = east, image down = south
    mask = np.zeros((240, 320), np.uint8)  # half the camera's resolution
    mask[:, :160] = 3  # the left (west) half
    mask[0:9, 0:9] = 255  # the first sample (8, 8) is void
    result = ground_footprint(mask, CAMERA, pose, classes=(0, 3, 7), stride=16)
    assert result[7] is None
    assert result[0].shape == (15 * 10, 3) and result[3].shape == (15 * 10 - 1, 3)
    assert np.all(result[3][:, 0] < 0) and np.all(result[0][:, 0] > 0)
    np.testing.assert_array_equal(result[3][:, 2], 0.0)
    # Mask pixel (8, 8) is camera pixel 16.5 -> x = (16.5 - 320) / 320 * 30.
    first = result[3][0]
    np.testing.assert_allclose(first, [(16.5 + 32 - 320) / 320 * 30, (240 - 16.5) / 320 * 30, 0])


def test_geometry_imports_neither_torch_nor_rclpy():
    code = ('import sys, mtl_perception.geometry\n'
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'torchvision', 'rclpy', 'sensor_msgs')))")
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == '[]'


def test_detections3d_to_msg():
    conversions = pytest.importorskip('mtl_perception.ros.conversions')
    header = conversions.Header(frame_id='map')
    header.stamp.sec = 12
    positions = np.array([[1.0, 2.0, 0.0], [np.nan, np.nan, np.nan], [-4.5, 3.0, 0.25]])
    msg = conversions.detections3d_to_msg(header, positions, ['7', '8', ''],
                                          ['car', 'person', 'truck'], np.array([0.9, 0.5, 0.3]),
                                          np.array([[4.0, 2.0, 1.5], [1, 1, 1], [8, 3, np.nan]]))
    assert msg.header.frame_id == 'map' and msg.header.stamp.sec == 12
    assert [d.id for d in msg.detections] == ['7', '']
    first, last = msg.detections
    assert first.header.frame_id == 'map'
    centre = first.bbox.center
    assert (centre.position.x, centre.position.y, centre.position.z) == (1.0, 2.0, 0.0)
    assert (centre.orientation.x, centre.orientation.y, centre.orientation.z,
            centre.orientation.w) == (0.0, 0.0, 0.0, 1.0)
    assert (first.bbox.size.x, first.bbox.size.y, first.bbox.size.z) == (4.0, 2.0, 1.5)
    assert (last.bbox.size.x, last.bbox.size.y, last.bbox.size.z) == (8.0, 3.0, 0.0)
    (result,) = last.results
    assert result.hypothesis.class_id == 'truck'
    assert result.hypothesis.score == pytest.approx(0.3)
    pose = result.pose.pose
    assert (pose.position.x, pose.position.y, pose.position.z) == (-4.5, 3.0, 0.25)
    assert pose.orientation.w == 1.0
    unsized = conversions.detections3d_to_msg(header, positions[:1], ['a'], ['car'], [1.0])
    assert unsized.detections[0].bbox.size.x == 0.0
    with pytest.raises(ValueError, match='same length'):
        conversions.detections3d_to_msg(header, positions, ['a'], ['car'] * 3, [1.0] * 3)
