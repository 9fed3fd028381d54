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

"""The camera geometry a node keeps for ground positions, its counters and parameters (no DDS)."""

from types import SimpleNamespace

from mtl_perception.geometry import Pose
from mtl_perception.ros.parameters import PARAMETERS, tracker_settings, validate_settings
from mtl_perception.ros.world_state import (CameraGeometry, combine, GroundUnavailable,
                                            sibling_topic, WorldStats)
import numpy as np
import pytest


def _info(k=(500.0, 0.0, 319.5, 0.0, 500.0, 239.5, 0.0, 0.0, 1.0)):
    return SimpleNamespace(k=list(k), d=[0.0] * 5, p=[0.0] * 12, distortion_model='plumb_bob',
                           width=640, height=480, binning_x=0, binning_y=0,
                           roi=SimpleNamespace(x_offset=0, y_offset=0, width=0, height=0,
                                               do_rectify=False))


def _pose(stamp_ns: int, z: float = 30.0):
    sec, nanosec = divmod(stamp_ns, 1_000_000_000)
    return SimpleNamespace(
        header=SimpleNamespace(stamp=SimpleNamespace(sec=sec, nanosec=nanosec)),
        pose=SimpleNamespace(position=SimpleNamespace(x=1.0, y=2.0, z=z),
                             orientation=SimpleNamespace(x=1.0, y=0.0, z=0.0, w=0.0)))


def test_sibling_topics_follow_the_image_topic():
    assert sibling_topic('image', 'camera_info') == 'camera_info'
    assert sibling_topic('front/image', 'pose') == 'front/pose'
    assert sibling_topic('/uav/down/image_raw', 'camera_info') == '/uav/down/camera_info'


def test_lookup_names_what_is_missing_and_takes_the_nearest_pose():
    geometry = CameraGeometry('/cam/camera_info', '/cam/pose', max_pose_age_s=0.2)
    with pytest.raises(GroundUnavailable, match='no CameraInfo received on /cam/camera_info'):
        geometry.lookup(10, 'cam')
    geometry.set_camera_info(_info(k=[0.0] * 9))
    with pytest.raises(GroundUnavailable, match='CameraInfo on /cam/camera_info unusable'):
        geometry.lookup(10, 'cam')
    geometry.set_camera_info(_info())
    with pytest.raises(GroundUnavailable, match='no pose received on /cam/pose'):
        geometry.lookup(10, 'cam')
    for stamp, z in ((1_000_000_000, 10.0), (1_100_000_000, 11.0), (1_300_000_000, 13.0)):
        geometry.add_pose(_pose(stamp, z))
    camera, pose = geometry.lookup(1_140_000_000, 'cam')
    assert camera.fx == 500.0 and pose.position[2] == 11.0
    assert geometry.lookup(1_260_000_000, 'cam')[1].position[2] == 13.0
    with pytest.raises(GroundUnavailable, match=r'1\.500 s from it \(max_pose_age 0\.2 s\)'):
        geometry.lookup(2_800_000_000, 'cam')
    bad = _pose(1_400_000_000)
    bad.pose.orientation = SimpleNamespace(x=0.0, y=0.0, z=0.0, w=0.0)
    geometry.add_pose(bad)  # kept as a reason only while no good pose is known
    assert geometry.lookup(1_300_000_000, 'cam')[1].position[2] == 13.0


def test_tf_serves_while_no_pose_topic_publishes():
    calls = []

    def lookup(frame_id, stamp):
        calls.append((frame_id, stamp))
        if frame_id != 'cam':
            raise LookupError(f'"{frame_id}" passed to lookupTransform does not exist')
        return Pose(position=[0.0, 0.0, 5.0], rotation=np.diag([1.0, -1.0, -1.0]))

    geometry = CameraGeometry('/c/camera_info', 'TF', 0.2, tf_lookup=lookup)
    geometry.set_camera_info(_info())
    assert geometry.lookup(7, 'cam')[1].position[2] == 5.0
    with pytest.raises(GroundUnavailable, match="no TF transform for frame 'other'"):
        geometry.lookup(8, 'other')
    assert calls == [('cam', 7), ('other', 8)]


def test_counters_and_their_node_totals():
    front, down = WorldStats(), WorldStats()
    assert front.snapshot().ground_status == 'no frame yet'
    front.tracked(3, 5)
    front.tracked(2, 4)  # identities only grow
    front.projected(points=4, above_horizon=1)
    down.unavailable('no pose received on /down/pose')
    a, b = front.snapshot(), down.snapshot()
    assert (a.tracks_active, a.tracks_started, a.ground_frames, a.ground_points,
            a.above_horizon, a.ground_status) == (2, 5, 1, 4, 1, 'ok')
    total = combine([a, b])
    assert (total.tracks_active, total.ground_frames, total.ground_unavailable) == (2, 1, 1)
    assert total.ground_status == 'ok; no pose received on /down/pose'


def test_tracking_parameters_are_checked_by_name():
    values = {spec.name: spec.default for spec in PARAMETERS}
    assert tracker_settings(values).max_missed_s == 1.0
    values['tracking_new_track_threshold'] = 0.4
    with pytest.raises(ValueError, match='parameter tracking_new_track_threshold'):
        validate_settings(dict(values, checkpoint='m'), None, ('detection',))
    # Off, the tracker's parameters are not read.
    validate_settings(dict(values, checkpoint='m', tracking=False), None, ('detection',))
    with pytest.raises(ValueError, match='world_frame is empty'):
        validate_settings(dict(values, checkpoint='m', tracking=False, world_frame=''), None,
                          ('detection',))
