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
What a camera needs for tracks and ground positions: its tracker, intrinsics and poses (no rclpy).

:class:`CameraGeometry` keeps a camera's latest ``sensor_msgs/CameraInfo`` and its recent poses
(``geometry_msgs/PoseStamped`` of the camera's optical frame in the world frame, or a TF lookup
when no pose topic publishes) and answers, for a frame's stamp, with the intrinsics and the pose
nearest in time, or with the reason there are none (:class:`GroundUnavailable`).
:class:`WorldStats` counts what the node did with them, for /diagnostics.
"""

from collections import deque
from dataclasses import dataclass
import threading
from typing import Callable, Optional

from mtl_perception.geometry import PinholeCamera, Pose

# Poses kept per camera: a few seconds of a pose stream at 30-100 Hz.
POSE_HISTORY = 256


class GroundUnavailable(Exception):
    """No ground position for a frame; the message says why (for /diagnostics)."""


def sibling_topic(image_topic: str, name: str) -> str:
    """Return topic ``name`` in the image topic's namespace (as image_transport pairs them)."""
    head, slash, _ = image_topic.rpartition('/')
    return f'{head}/{name}' if slash else name


def stamp_ns(stamp) -> int:
    """Return a builtin_interfaces/Time as integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class CameraGeometry:
    """
    A camera's intrinsics and recent poses, fed by subscriptions and read by the workers.

    :param camera_info_topic: where intrinsics come from (named in the reasons).
    :param pose_topic: where poses come from (named in the reasons).
    :param max_pose_age_s: largest gap between a frame's stamp and the pose used for it.
    :param tf_lookup: optional ``(frame_id, stamp_ns) -> Pose`` (TF), used while the pose
        topic has published nothing; it raises with a reason when there is no transform.
    """

    def __init__(self, camera_info_topic: str, pose_topic: str, max_pose_age_s: float,
                 tf_lookup: Optional[Callable[[str, int], Pose]] = None) -> None:
        self.camera_info_topic, self.pose_topic = camera_info_topic, pose_topic
        self.max_pose_age_ns = int(round(max_pose_age_s * 1e9))
        self._tf_lookup = tf_lookup
        self._lock = threading.Lock()
        self._camera: Optional[PinholeCamera] = None
        self._camera_error: Optional[str] = None
        self._poses: deque = deque(maxlen=POSE_HISTORY)  # (stamp_ns, Pose), in arrival order
        self._pose_error: Optional[str] = None

    def set_camera_info(self, msg) -> None:
        """Take a sensor_msgs/CameraInfo; a bad one is kept as the reason (and clears K)."""
        try:
            camera = PinholeCamera.from_camera_info(msg)
        except ValueError as error:
            with self._lock:
                self._camera, self._camera_error = None, f'CameraInfo on ' \
                    f'{self.camera_info_topic} unusable: {error}'
            return
        with self._lock:
            self._camera, self._camera_error = camera, None

    def add_pose(self, msg) -> None:
        """Take a geometry_msgs/PoseStamped of the optical frame; a bad one is the reason."""
        p, q = msg.pose.position, msg.pose.orientation
        try:
            pose = Pose.from_quaternion((p.x, p.y, p.z), (q.x, q.y, q.z, q.w))
        except ValueError as error:
            with self._lock:
                self._pose_error = f'pose on {self.pose_topic} unusable: {error}'
            return
        with self._lock:
            self._poses.append((stamp_ns(msg.header.stamp), pose))
            self._pose_error = None

    def lookup(self, frame_stamp_ns: int, frame_id: str) -> tuple:
        """
        Return ``(PinholeCamera, Pose)`` for a frame, or raise GroundUnavailable saying why.

        The pose is the one nearest the frame's stamp, within ``max_pose_age_s``.
        """
        with self._lock:
            camera, camera_error = self._camera, self._camera_error
            poses, pose_error = list(self._poses), self._pose_error
        if camera is None:
            raise GroundUnavailable(camera_error or
                                    f'no CameraInfo received on {self.camera_info_topic}')
        if poses:
            stamp, pose = min(poses, key=lambda entry: abs(entry[0] - frame_stamp_ns))
            gap = abs(stamp - frame_stamp_ns)
            if gap > self.max_pose_age_ns:
                raise GroundUnavailable(
                    f'the pose on {self.pose_topic} nearest the frame is {gap / 1e9:.3f} s '
                    f'from it (max_pose_age {self.max_pose_age_ns / 1e9:g} s)')
            return camera, pose
        if pose_error:
            raise GroundUnavailable(pose_error)
        if self._tf_lookup is not None:
            try:
                return camera, self._tf_lookup(frame_id, frame_stamp_ns)
            except Exception as error:  # noqa: B902 (tf2 raises several unrelated types)
                raise GroundUnavailable(f'no pose on {self.pose_topic} and no TF transform '
                                        f'for frame {frame_id!r}: {error}') from None
        raise GroundUnavailable(f'no pose received on {self.pose_topic}')


@dataclass
class WorldSnapshot:
    """Track and ground counters at one moment (see :class:`WorldStats`)."""

    tracks_active: int = 0
    tracks_started: int = 0
    ground_frames: int = 0
    ground_points: int = 0
    above_horizon: int = 0
    ground_unavailable: int = 0
    ground_status: str = ''


class WorldStats:
    """
    Thread-safe counters of one camera's tracks and ground positions.

    ``tracks_active``: live tracks after the latest frame; ``tracks_started``: identities
    handed out; ``ground_frames``: frames whose Detection3DArray was published;
    ``ground_points``: positions published; ``above_horizon``: detections whose contact ray
    does not meet the ground (not published); ``ground_unavailable``: frames with no
    Detection3DArray because intrinsics or pose were missing, ``ground_status`` saying why
    ('ok' once positions flow).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot = WorldSnapshot(ground_status='no frame yet')

    def tracked(self, active: int, newest_id: int) -> None:
        """Record the tracker's confirmed tracks after a frame and the newest identity."""
        with self._lock:
            self._snapshot.tracks_active = active
            self._snapshot.tracks_started = max(self._snapshot.tracks_started, newest_id)

    def projected(self, points: int, above_horizon: int) -> None:
        """Count one frame whose positions were published."""
        with self._lock:
            s = self._snapshot
            s.ground_frames += 1
            s.ground_points += points
            s.above_horizon += above_horizon
            s.ground_status = 'ok'

    def unavailable(self, reason: str) -> None:
        """Count one frame without positions, and why."""
        with self._lock:
            self._snapshot.ground_unavailable += 1
            self._snapshot.ground_status = reason

    def snapshot(self) -> WorldSnapshot:
        """Return a copy of the counters."""
        with self._lock:
            return WorldSnapshot(**vars(self._snapshot))


def combine(snapshots: list) -> WorldSnapshot:
    """Return the node's totals over its cameras' snapshots (statuses joined when they differ)."""
    total = WorldSnapshot()
    statuses = []
    for s in snapshots:
        total.tracks_active += s.tracks_active
        total.tracks_started += s.tracks_started
        total.ground_frames += s.ground_frames
        total.ground_points += s.ground_points
        total.above_horizon += s.above_horizon
        total.ground_unavailable += s.ground_unavailable
        if s.ground_status not in statuses:
            statuses.append(s.ground_status)
    total.ground_status = '; '.join(statuses)
    return total
