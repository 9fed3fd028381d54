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
Project image pixels of an aerial camera onto a flat ground plane.

Numpy only, no ROS import: the node, the replay tools and offline scripts share it.

Conventions:
  - pixels are (u, v) = (column, row) in the raw (distorted) image, with the centre of the
    top-left pixel at (0, 0), the convention of ``sensor_msgs/CameraInfo``'s K;
  - the camera optical frame is the ROS one (REP 103 ``*_optical_frame``): z forward along the
    optical axis, x right, y down in the image;
  - the world frame has z up (ROS ENU ``map``/``odom``); the ground is the plane
    z = ``ground_z``;
  - a ``Pose`` is world_from_camera_optical: ``world = rotation @ optical + position``, which
    is the transform tf2 returns for ``lookup_transform(world_frame, optical_frame, ...)``.
    A pose of a body frame (x forward, y left, z up, e.g. ``camera_link``) becomes one of the
    optical frame with ``rotation_body @ BODY_FROM_OPTICAL``.

Pixels whose ray does not meet the ground in front of the camera (at or above the horizon,
camera at or below the plane, beyond ``max_range``, or outside the distortion model's valid
region) give NaN rows; a point is never made up for them.
"""

from dataclasses import dataclass
import math
from typing import Dict, Iterable, Optional, Sequence, Tuple

import numpy as np

__all__ = ['BODY_FROM_OPTICAL', 'PinholeCamera', 'Pose', 'contact_pixels', 'ground_footprint',
           'project_to_ground', 'quaternion_to_matrix']

# Columns: the optical frame's x (right), y (down) and z (forward) axes in a body frame
# (x forward, y left, z up). body = BODY_FROM_OPTICAL @ optical.
BODY_FROM_OPTICAL = np.array([[0.0, 0.0, 1.0],
                              [-1.0, 0.0, 0.0],
                              [0.0, -1.0, 0.0]])
PLUMB_BOB = 'plumb_bob'
CONTACT_MODES = ('auto', 'bottom', 'center')
_UNDISTORT_ITERATIONS = 20
# Largest residual (normalised image coordinates) of an accepted undistortion.
_UNDISTORT_TOLERANCE = 1e-9
# A ray must point down by at least this much (z of the unit direction) to reach the ground.
_MIN_DOWN = 1e-9


@dataclass(frozen=True)
class PinholeCamera:
    """
    A pinhole camera with optional plumb_bob distortion (the ROS/OpenCV 5-parameter model).

    ``fx``, ``fy``, ``cx``, ``cy`` are in pixels; ``width`` and ``height`` the image size.
    ``distortion`` holds k1, k2, p1, p2, k3 (a shorter sequence is padded with zeros); None or
    all zeros: no distortion. ``distortion_model`` must be 'plumb_bob' (or '' without
    coefficients): other models (equidistant, rational_polynomial, ...) raise ValueError.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    distortion: Optional[Tuple[float, ...]] = None
    distortion_model: str = PLUMB_BOB

    def __post_init__(self) -> None:
        """Check the parameters; normalise ``distortion`` to 5 floats or None."""
        for name in ('fx', 'fy', 'cx', 'cy'):
            value = float(getattr(self, name))
            if not math.isfinite(value):
                raise ValueError(f'camera {name} must be finite, got {value}')
            object.__setattr__(self, name, value)
        if self.fx <= 0.0 or self.fy <= 0.0:
            raise ValueError(f'camera focal lengths must be positive, got fx={self.fx}, '
                             f'fy={self.fy}')
        for name in ('width', 'height'):
            value = getattr(self, name)
            if int(value) != value or value <= 0:
                raise ValueError(f'camera {name} must be a positive integer, got {value}')
            object.__setattr__(self, name, int(value))
        coefficients = tuple(float(c) for c in (self.distortion or ()))
        if len(coefficients) > 5:
            raise ValueError(f'plumb_bob distortion has 5 coefficients (k1, k2, p1, p2, k3), '
                             f'got {len(coefficients)}')
        if not all(math.isfinite(c) for c in coefficients):
            raise ValueError(f'distortion coefficients must be finite, got {coefficients}')
        model = self.distortion_model
        if model != PLUMB_BOB and not (model == '' and not any(coefficients)):
            raise ValueError(
                f'distortion model {model!r} is not supported (only {PLUMB_BOB!r}); use the '
                f'rectified image and its projection matrix P instead '
                f'(PinholeCamera.from_camera_info(msg, rectified=True))')
        object.__setattr__(self, 'distortion_model', PLUMB_BOB)
        padded = coefficients + (0.0,) * (5 - len(coefficients))
        object.__setattr__(self, 'distortion', padded if any(padded) else None)

    @classmethod
    def from_camera_info(cls, msg, rectified: bool = False) -> 'PinholeCamera':
        """
        Return the camera described by a ``sensor_msgs/CameraInfo`` (or any object like it).

        Reads ``k`` (9 floats, row-major), ``d``, ``distortion_model``, ``width``, ``height``
        (ROS 2 field names) and, with ``rectified``, the projection matrix ``p`` (12 floats)
        instead of K and D: the camera of the rectified image (``image_rect``), undistorted.

        :raises ValueError: an all-zero K (or P) -- the camera is uncalibrated --, skew, a
            distortion model other than plumb_bob (unless ``rectified``), binning or a region
            of interest (not supported), or an invalid size.
        """
        matrix_name = 'p' if rectified else 'k'
        values = np.asarray(getattr(msg, matrix_name), dtype=np.float64).ravel()
        if values.size != (12 if rectified else 9):
            raise ValueError(f'CameraInfo {matrix_name} must have {12 if rectified else 9} '
                             f'values, got {values.size}')
        matrix = values.reshape(3, -1)
        if not np.any(matrix):
            raise ValueError(f'the camera is uncalibrated: CameraInfo {matrix_name} is all '
                             f'zeros (calibrate the camera or publish its calibration)')
        if matrix[0, 1] != 0.0:
            raise ValueError(f'camera matrix skew {matrix[0, 1]} is not supported')
        binning = (int(getattr(msg, 'binning_x', 0)), int(getattr(msg, 'binning_y', 0)))
        if max(binning) > 1:
            raise ValueError(f'CameraInfo binning {binning} is not supported')
        roi = getattr(msg, 'roi', None)
        if roi is not None and (roi.width or roi.height or roi.x_offset or roi.y_offset):
            raise ValueError('CameraInfo with a region of interest (roi) is not supported')
        if rectified:
            distortion, model = None, PLUMB_BOB
        else:
            distortion = tuple(float(c) for c in getattr(msg, 'd', ()))
            model = str(getattr(msg, 'distortion_model', '') or '')
        return cls(fx=matrix[0, 0], fy=matrix[1, 1], cx=matrix[0, 2], cy=matrix[1, 2],
                   width=msg.width, height=msg.height, distortion=distortion,
                   distortion_model=model)

    def normalized(self, pixels) -> np.ndarray:
        """
        Return undistorted normalised image coordinates [N, 2] (x/z, y/z in the optical frame).

        Rows that cannot be undistorted (non-finite input, outside the region where the
        distortion model is invertible, no convergence) are NaN.
        """
        pixels = _as_points(pixels, 2, 'pixels')
        distorted = np.stack([(pixels[:, 0] - self.cx) / self.fx,
                              (pixels[:, 1] - self.cy) / self.fy], axis=1)
        if self.distortion is None:
            return distorted
        return _undistort_normalized(distorted, self.distortion)

    def undistort(self, pixels) -> np.ndarray:
        """
        Return where pixels [N, 2] of the raw image lie in an ideal (undistorted) pinhole image.

        Same K; the inverse of plumb_bob by Newton iterations (residual below about 1e-9
        focal lengths); identity without distortion. NaN rows as in ``normalized``.
        """
        points = self.normalized(pixels)
        return np.stack([points[:, 0] * self.fx + self.cx,
                         points[:, 1] * self.fy + self.cy], axis=1)

    def rays(self, pixels) -> np.ndarray:
        """Return unit ray directions [N, 3] in the camera optical frame (NaN rows as above)."""
        points = self.normalized(pixels)
        rays = np.concatenate([points, np.ones((len(points), 1))], axis=1)
        return rays / np.linalg.norm(rays, axis=1, keepdims=True)


def _as_points(values, width: int, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1 and array.size == width:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != width:
        raise ValueError(f'{name} must have shape [N, {width}], got {list(array.shape)}')
    return array


def _distort_with_jacobian(points: np.ndarray, coefficients: Tuple[float, ...]):
    """Return plumb_bob distorted points [N, 2] and the Jacobian terms (a, b, c, d)."""
    k1, k2, p1, p2, k3 = coefficients
    x, y = points[:, 0], points[:, 1]
    r2 = x * x + y * y
    radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
    radial_slope = k1 + r2 * (2.0 * k2 + 3.0 * k3 * r2)  # d radial / d r2
    xy = x * y
    distorted = np.stack([x * radial + 2.0 * p1 * xy + p2 * (r2 + 2.0 * x * x),
                          y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * xy], axis=1)
    cross = 2.0 * xy * radial_slope + 2.0 * p1 * x + 2.0 * p2 * y
    dx_dx = radial + 2.0 * x * x * radial_slope + 2.0 * p1 * y + 6.0 * p2 * x
    dy_dy = radial + 2.0 * y * y * radial_slope + 6.0 * p1 * y + 2.0 * p2 * x
    return distorted, (dx_dx, cross, cross, dy_dy)


def _undistort_normalized(distorted: np.ndarray,
                          coefficients: Tuple[float, ...]) -> np.ndarray:
    """
    Invert plumb_bob by Newton's method, starting from the distorted point.

    A solution is kept only when its residual is tiny and the distortion's Jacobian there has
    a positive determinant: beyond the radius where a barrel distortion folds back, the model
    has a second, wrong preimage, which would give a plausible but wrong ray.
    """
    points = distorted.copy()
    finite = np.all(np.isfinite(distorted), axis=1)
    points[~finite] = 0.0
    target = np.where(finite[:, None], distorted, 0.0)
    with np.errstate(all='ignore'):
        for _ in range(_UNDISTORT_ITERATIONS):
            mapped, (a, b, c, d) = _distort_with_jacobian(points, coefficients)
            residual = mapped - target
            if np.all(np.abs(residual) < _UNDISTORT_TOLERANCE * 1e-3):
                break
            det = a * d - b * c
            step_x = (d * residual[:, 0] - b * residual[:, 1]) / det
            step_y = (a * residual[:, 1] - c * residual[:, 0]) / det
            points = points - np.stack([step_x, step_y], axis=1)
            points[~np.all(np.isfinite(points), axis=1)] = np.nan
        mapped, (a, b, c, d) = _distort_with_jacobian(points, coefficients)
        error = np.max(np.abs(mapped - target), axis=1)
        good = finite & (error < _UNDISTORT_TOLERANCE) & (a * d - b * c > 0.0)
    points[~good] = np.nan
    return points


def quaternion_to_matrix(x: float, y: float, z: float, w: float) -> np.ndarray:
    """
    Return the 3x3 rotation matrix of a quaternion (x, y, z, w: ROS/tf2 order).

    The quaternion is normalised first. :raises ValueError: zero or non-finite quaternion.
    """
    q = np.array([x, y, z, w], dtype=np.float64)
    norm = float(np.linalg.norm(q))
    if not math.isfinite(norm) or norm < 1e-12:
        raise ValueError(f'quaternion ({x}, {y}, {z}, {w}) has no rotation: its norm is {norm}')
    x, y, z, w = q / norm
    return np.array([
        [1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y - z * w), 2.0 * (x * z + y * w)],
        [2.0 * (x * y + z * w), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z - x * w)],
        [2.0 * (x * z - y * w), 2.0 * (y * z + x * w), 1.0 - 2.0 * (x * x + y * y)],
    ])


@dataclass(frozen=True, eq=False)
class Pose:
    """
    The camera optical frame's pose in the world: ``world = rotation @ optical + position``.

    ``position`` [3] in metres (world frame, z up); ``rotation`` [3, 3] world_from_optical,
    checked to be a proper rotation (orthonormal, determinant +1, within 1e-6).
    """

    position: np.ndarray
    rotation: np.ndarray

    def __post_init__(self) -> None:
        """Check and copy the arrays (float64, read-only)."""
        position = np.array(self.position, dtype=np.float64).reshape(-1)
        rotation = np.array(self.rotation, dtype=np.float64)
        if position.shape != (3,) or not np.all(np.isfinite(position)):
            raise ValueError(f'pose position must be 3 finite numbers, got {self.position!r}')
        if rotation.shape != (3, 3) or not np.all(np.isfinite(rotation)):
            raise ValueError(f'pose rotation must be a finite 3x3 matrix, got shape '
                             f'{list(rotation.shape)}')
        if (not np.allclose(rotation.T @ rotation, np.eye(3), atol=1e-6)
                or np.linalg.det(rotation) < 0.0):
            raise ValueError('pose rotation must be a rotation matrix (orthonormal, '
                             'determinant +1)')
        position.setflags(write=False)
        rotation.setflags(write=False)
        object.__setattr__(self, 'position', position)
        object.__setattr__(self, 'rotation', rotation)

    @classmethod
    def from_quaternion(cls, position: Sequence[float], quaternion: Sequence[float]) -> 'Pose':
        """Return the pose with a position and a quaternion (x, y, z, w)."""
        return cls(position=position, rotation=quaternion_to_matrix(*quaternion))

    @classmethod
    def from_transform(cls, transform) -> 'Pose':
        """
        Return the pose of a ``geometry_msgs/Transform`` or ``TransformStamped`` (duck-typed).

        Use the transform tf2 returns for ``lookup_transform(world_frame, optical_frame, t)``:
        it maps optical-frame points into the world frame.
        """
        transform = getattr(transform, 'transform', transform)
        t, q = transform.translation, transform.rotation
        return cls.from_quaternion((t.x, t.y, t.z), (q.x, q.y, q.z, q.w))

    def tilt(self) -> float:
        """Return the optical axis' angle from the nadir (straight down), in radians."""
        return float(_angle_from_down(self.rotation[:, 2]))


def _angle_from_down(directions: np.ndarray) -> np.ndarray:
    """Angle (radians) between world directions [..., 3] and the world's down vector."""
    norm = np.linalg.norm(directions, axis=-1)
    return np.arccos(np.clip(-directions[..., 2] / norm, -1.0, 1.0))


def project_to_ground(pixels, camera: PinholeCamera, pose: Pose, ground_z: float = 0.0,
                      max_range: Optional[float] = None) -> np.ndarray:
    """
    Return the world points [N, 3] (float64) where the rays of pixels [N, 2] meet the ground.

    The ground is the plane z = ``ground_z`` of the world frame. A row is NaN when its ray
    does not hit the plane in front of the camera: the pixel looks at or above the horizon,
    the camera is at or below the plane, the pixel cannot be undistorted, or the hit lies
    more than ``max_range`` metres from the camera (distance along the ray; None: no limit).
    """
    rays = pose.rotation @ camera.rays(pixels).T  # [3, N] world directions
    height = pose.position[2] - float(ground_z)
    points = np.full((rays.shape[1], 3), np.nan)
    with np.errstate(invalid='ignore'):
        hits = np.isfinite(rays[2]) & (rays[2] < -_MIN_DOWN)
    if not height > 0.0:
        return points
    distance = height / -rays[2, hits]  # unit rays: the distance from the camera
    points[hits] = pose.position + (distance * rays[:, hits]).T
    points[hits, 2] = float(ground_z)
    if max_range is not None:
        points[np.flatnonzero(hits)[distance > float(max_range)]] = np.nan
    return points


def contact_pixels(boxes, camera: PinholeCamera, pose: Pose, mode: str = 'auto') -> np.ndarray:
    """
    Return the pixels [N, 2] where boxes [N, 4] (x1, y1, x2, y2) most likely touch the ground.

    An object standing on the ground touches it on the image line through the box centre
    along the image of the world's down vector ("image down", derived from the pose: for a
    rolled or rotated camera it is not image +y). Let ``c`` be the box centre, ``g`` the unit
    image-down direction at ``c`` and ``e`` the point where the ray from ``c`` along ``g``
    leaves the box (the bottom-centre ``(cx, y2)`` when ``g`` is image +y). Then:

      - 'center': ``c`` (right for an object seen from straight above);
      - 'bottom': ``e`` (right for an object seen from the side);
      - 'auto': ``c + sin(theta) * (e - c)`` with ``theta`` the camera's tilt (its optical
        axis' angle from the nadir), capped at 90 deg: the centre under a camera looking
        straight down, moving toward the bottom as the camera tilts toward the horizon. For an
        upright camera: ``v = cy_box + sin(theta) * h / 2``. The camera's tilt, not the angle
        of each box's own ray: under a nadir UAV camera most objects (vehicles) are far wider
        than tall, and moving the contact of a box near the image's edge by its ray angle put
        cars' positions 0.6 m further off (median, synthetic flight) than their centres.

    ``g`` comes from the undistorted geometry and is applied to the raw box (the distortion's
    local rotation of directions is neglected). Where ``g`` is undefined (the box centre at
    the nadir point, where 'auto' gives ``c`` anyway) image +y is used. Non-finite boxes give
    NaN rows.
    """
    if mode not in CONTACT_MODES:
        raise ValueError(f'unknown contact mode {mode!r}; expected one of {CONTACT_MODES}')
    boxes = _as_points(boxes, 4, 'boxes')
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2.0
    if mode == 'center' or len(boxes) == 0:
        return centres
    half = np.abs(boxes[:, 2:] - boxes[:, :2]) / 2.0
    down = pose.rotation.T @ np.array([0.0, 0.0, -1.0])  # world down in the optical frame
    normalized = camera.normalized(centres)
    # Moving a point seen at normalised (x, y) by a small step along `down` moves its image
    # along (down_x - x * down_z, down_y - y * down_z) (normalised units; times fx, fy in px).
    image_down = np.stack([camera.fx * (down[0] - normalized[:, 0] * down[2]),
                           camera.fy * (down[1] - normalized[:, 1] * down[2])], axis=1)
    length = np.linalg.norm(image_down, axis=1)
    with np.errstate(divide='ignore', invalid='ignore'):
        direction = image_down / length[:, None]
        steps = np.abs(direction)
        to_edge = np.min(np.where(steps > 0.0, half / steps, np.inf), axis=1)  # to the border
    defined = np.isfinite(to_edge) & (length > 1e-9 * max(camera.fx, camera.fy))
    offsets = np.zeros_like(centres)
    offsets[defined] = direction[defined] * to_edge[defined, None]
    offsets[~defined, 1] = half[~defined, 1]  # no image of down: image +y
    if mode == 'auto':
        offsets *= np.sin(min(pose.tilt(), np.pi / 2.0))
    return centres + offsets


def ground_footprint(mask, camera: PinholeCamera, pose: Pose, classes: Iterable[int],
                     stride: int = 8, ground_z: float = 0.0,
                     max_range: Optional[float] = None) -> Dict[int, Optional[np.ndarray]]:
    """
    Return the ground points [M, 3] of each class's pixels in a mask [H, W] of class indices.

    Samples the pixel centres of a grid every ``stride`` pixels (starting at ``stride // 2``),
    projects them with ``project_to_ground`` and returns ``{class: points or None}`` (None:
    no sampled pixel of that class reaches the ground). A mask of another size than the camera
    image (e.g. a network output) is scaled to it, pixel centres to pixel centres. Each point
    stands for about ``stride`` x ``stride`` image pixels.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.size == 0:
        raise ValueError(f'mask must be a non-empty [H, W] array, got {list(mask.shape)}')
    if int(stride) != stride or stride < 1:
        raise ValueError(f'stride must be a positive integer, got {stride}')
    stride = int(stride)
    classes = [int(label) for label in classes]
    rows = np.arange(stride // 2, mask.shape[0], stride)
    cols = np.arange(stride // 2, mask.shape[1], stride)
    grid_v, grid_u = np.meshgrid(rows, cols, indexing='ij')
    labels = mask[grid_v, grid_u].ravel()
    scale_u = camera.width / mask.shape[1]
    scale_v = camera.height / mask.shape[0]
    pixels = np.stack([(grid_u.ravel() + 0.5) * scale_u - 0.5,
                       (grid_v.ravel() + 0.5) * scale_v - 0.5], axis=1)
    wanted = np.isin(labels, classes)
    points = np.full((len(labels), 3), np.nan)
    points[wanted] = project_to_ground(pixels[wanted], camera, pose, ground_z, max_range)
    reached = np.all(np.isfinite(points), axis=1)
    result = {}
    for label in classes:
        selected = points[reached & (labels == label)]
        result[label] = selected if len(selected) else None
    return result
