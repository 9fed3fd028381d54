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
Build and read bag messages (images, 2D and 3D detections, camera info, poses) without ROS.

The objects are the ``rosbags`` typestore's classes (see :func:`bag_io.typestore`), which
serialise to the same CDR bytes as rclpy's. Images come in and go out as numpy arrays: colour
as uint8 [H, W, 3] RGB, masks and grey images as uint8 [H, W]. Boxes are [x1, y1, x2, y2] in
pixels; 3D positions are [x, y, z] in metres of the message's frame. Detection ids
(``Detection2D.id``, ``Detection3D.id``) are track identities as decimal strings, '' for none.
"""

import io
from typing import Sequence

from mtl_perception.inference.image_decoding import decode_compressed, decode_image
from mtl_perception.replay.bag_io import typestore
import numpy as np
from PIL import Image as PILImage

__all__ = ['CAMERA_INFO', 'COMPRESSED_IMAGE', 'DETECTION2D_ARRAY', 'DETECTION3D_ARRAY', 'IMAGE',
           'POSE_STAMPED', 'compressed_to_array', 'detection3d_array_to_numpy',
           'detection_array_to_numpy', 'detection_ids', 'header', 'image_to_array',
           'make_camera_info', 'make_compressed_image', 'make_detection3d_array',
           'make_detection_array', 'make_image', 'make_pose_stamped', 'stamp_to_ns']

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE = 'sensor_msgs/msg/CompressedImage'
CAMERA_INFO = 'sensor_msgs/msg/CameraInfo'
POSE_STAMPED = 'geometry_msgs/msg/PoseStamped'
DETECTION2D_ARRAY = 'vision_msgs/msg/Detection2DArray'
DETECTION3D_ARRAY = 'vision_msgs/msg/Detection3DArray'
_COMPRESSED_FORMATS = {'jpeg': 'JPEG', 'png': 'PNG'}


def _cls(name: str):
    return typestore().types[name]


def stamp_to_ns(stamp) -> int:
    """Return a builtin_interfaces/Time (``sec``, ``nanosec``) as integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def header(stamp_ns: int, frame_id: str):
    """Return a std_msgs/msg/Header with the stamp ``stamp_ns`` (ns since the epoch)."""
    stamp_ns = int(stamp_ns)
    if stamp_ns < 0:
        raise ValueError(f'stamp_ns must be >= 0, got {stamp_ns}')
    sec, nanosec = divmod(stamp_ns, 1_000_000_000)
    time = _cls('builtin_interfaces/msg/Time')(sec=sec, nanosec=nanosec)
    return _cls('std_msgs/msg/Header')(stamp=time, frame_id=str(frame_id))


def make_image(array: np.ndarray, stamp_ns: int, frame_id: str):
    """Return a sensor_msgs/msg/Image: rgb8 from uint8 [H, W, 3] RGB, mono8 from [H, W]."""
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or \
            (array.ndim == 3 and array.shape[2] != 3):
        raise ValueError(f'make_image expects uint8 [H, W, 3] RGB or [H, W] mono, got '
                         f'{array.dtype} {list(array.shape)}')
    height, width = array.shape[:2]
    channels = 1 if array.ndim == 2 else 3
    return _cls(IMAGE)(
        header=header(stamp_ns, frame_id), height=height, width=width,
        encoding='mono8' if channels == 1 else 'rgb8', is_bigendian=0,
        step=width * channels, data=np.ascontiguousarray(array).reshape(-1).copy())


def image_to_array(msg) -> np.ndarray:
    """
    Return an Image's pixels: uint8 [H, W, 3] RGB for colour, [H, W] for mono8.

    The nodes' decoder (``inference.image_decoding.decode_image``): the same encodings, and
    the same ``ImageDecodeError`` (a ValueError) for anything the nodes would reject.
    """
    return decode_image(msg.encoding, msg.height, msg.width, msg.step, msg.data,
                        keep_mono=True)


def make_compressed_image(array: np.ndarray, fmt: str, stamp_ns: int, frame_id: str,
                          quality: int = 90):
    """
    Return a sensor_msgs/msg/CompressedImage of uint8 [H, W, 3] RGB or [H, W] mono.

    ``fmt`` is 'jpeg' or 'png'. The format string follows compressed_image_transport
    (e.g. ``'rgb8; jpeg compressed bgr8'``) so its decoders read the colours right.
    """
    if fmt not in _COMPRESSED_FORMATS:
        raise ValueError(f'compressed format must be one of {sorted(_COMPRESSED_FORMATS)}, '
                         f'got {fmt!r}')
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or \
            (array.ndim == 3 and array.shape[2] != 3):
        raise ValueError(f'make_compressed_image expects uint8 [H, W, 3] RGB or [H, W] mono, '
                         f'got {array.dtype} {list(array.shape)}')
    buffer = io.BytesIO()
    options = {'quality': int(quality)} if fmt == 'jpeg' else {}
    PILImage.fromarray(np.ascontiguousarray(array)).save(
        buffer, format=_COMPRESSED_FORMATS[fmt], **options)
    # compressed_image_transport names the original encoding, then the codec's channel order
    # (OpenCV's bgr8 for colour; a standard JPEG/PNG either way).
    format_string = f'mono8; {fmt} compressed mono8' if array.ndim == 2 else \
        f'rgb8; {fmt} compressed bgr8'
    return _cls(COMPRESSED_IMAGE)(
        header=header(stamp_ns, frame_id), format=format_string,
        data=np.frombuffer(buffer.getvalue(), dtype=np.uint8).copy())


def compressed_to_array(msg, encoding: str | None = None) -> np.ndarray:
    """
    Decode a CompressedImage (JPEG or PNG) to uint8 [H, W, 3] RGB or [H, W] grey.

    ``encoding`` None keeps grey images grey and makes everything else RGB; 'rgb8' or 'mono8'
    forces one. Raises ``ImageDecodeError`` (a ValueError) for undecodable bytes.
    """
    modes = {None: None, 'rgb8': 'RGB', 'mono8': 'L'}
    if encoding not in modes:
        raise ValueError(f"encoding must be None, 'rgb8' or 'mono8', got {encoding!r}")
    return decode_compressed(msg.data, msg.format, mode=modes[encoding])


def _ids(ids: Sequence | None, count: int) -> list:
    """Return ``count`` detection ids as strings ('' each when ``ids`` is None)."""
    if ids is None:
        return [''] * count
    ids = [str(i) for i in ids]
    if len(ids) != count:
        raise ValueError(f'{len(ids)} ids for {count} detections')
    return ids


def _hypothesis(name: str, score: float, position=(0.0, 0.0, 0.0)):
    """Return one ObjectHypothesisWithPose: ``class_id``, ``score``, a pose at ``position``."""
    types = typestore().types
    x, y, z = (float(v) for v in position)
    pose = types['geometry_msgs/msg/PoseWithCovariance'](
        pose=types['geometry_msgs/msg/Pose'](
            position=types['geometry_msgs/msg/Point'](x=x, y=y, z=z),
            orientation=types['geometry_msgs/msg/Quaternion'](x=0.0, y=0.0, z=0.0, w=1.0)),
        covariance=np.zeros(36, dtype=np.float64))
    return types['vision_msgs/msg/ObjectHypothesisWithPose'](
        hypothesis=types['vision_msgs/msg/ObjectHypothesis'](class_id=name, score=float(score)),
        pose=pose)


def make_detection_array(boxes: np.ndarray, labels: Sequence, scores: Sequence,
                         stamp_ns: int, frame_id: str,
                         class_names: Sequence[str] | None = None,
                         ids: Sequence | None = None):
    """
    Return a vision_msgs/msg/Detection2DArray.

    Inputs: ``boxes`` float [M, 4] x1, y1, x2, y2 in pixels; ``labels`` M class names (str) or
    0-based class indices (mapped through ``class_names`` when given, else written as the
    decimal index); ``scores`` [M]; ``ids`` M track ids (written as decimal strings; default
    '' each: untracked). Each Detection2D carries the array's header, the box as centre and
    size, its id and one hypothesis (``class_id``, ``score``) with a zero pose.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) if np.size(boxes) else \
        np.zeros((0, 4), np.float64)
    labels, scores = list(labels), np.asarray(scores, dtype=np.float64).reshape(-1)
    if not (len(boxes) == len(labels) == len(scores)):
        raise ValueError(f'boxes [M, 4], labels [M] and scores [M] differ in M: boxes '
                         f'{list(boxes.shape)}, {len(labels)} labels, {len(scores)} scores')
    names = [_class_id(label, class_names) for label in labels]
    types = typestore().types
    msg_header = header(stamp_ns, frame_id)
    detections = []
    for box, name, score, track in zip(boxes, names, scores, _ids(ids, len(names))):
        x1, y1, x2, y2 = (float(v) for v in box)
        bbox = types['vision_msgs/msg/BoundingBox2D'](
            center=types['vision_msgs/msg/Pose2D'](
                position=types['vision_msgs/msg/Point2D'](x=(x1 + x2) / 2, y=(y1 + y2) / 2),
                theta=0.0),
            size_x=x2 - x1, size_y=y2 - y1)
        detections.append(types['vision_msgs/msg/Detection2D'](
            header=msg_header, results=[_hypothesis(name, score)], bbox=bbox, id=track))
    return types[DETECTION2D_ARRAY](header=msg_header, detections=detections)


def make_detection3d_array(positions: np.ndarray, names: Sequence[str], ids: Sequence | None,
                           stamp_ns: int, frame_id: str, scores: Sequence | None = None):
    """
    Return a vision_msgs/msg/Detection3DArray of points (boxes of zero size).

    Inputs: ``positions`` float [M, 3] x, y, z in metres of ``frame_id``; ``names`` M class
    names; ``ids`` M track ids (default ''); ``scores`` [M] (default 1.0). Each Detection3D
    carries the array's header, its id, ``bbox.center.position`` = its position (identity
    orientation, zero size) and one hypothesis (``class_id``, ``score``) posed there too.
    """
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    names = [str(n) for n in names]
    scores = np.ones(len(names)) if scores is None else \
        np.asarray(scores, dtype=np.float64).reshape(-1)
    if not len(positions) == len(names) == len(scores):
        raise ValueError(f'positions [M, 3], names [M] and scores [M] differ in M: positions '
                         f'{list(positions.shape)}, {len(names)} names, {len(scores)} scores')
    types = typestore().types
    msg_header = header(stamp_ns, frame_id)
    detections = []
    for position, name, score, track in zip(positions, names, scores, _ids(ids, len(names))):
        x, y, z = (float(v) for v in position)
        bbox = types['vision_msgs/msg/BoundingBox3D'](
            center=types['geometry_msgs/msg/Pose'](
                position=types['geometry_msgs/msg/Point'](x=x, y=y, z=z),
                orientation=types['geometry_msgs/msg/Quaternion'](x=0.0, y=0.0, z=0.0, w=1.0)),
            size=types['geometry_msgs/msg/Vector3'](x=0.0, y=0.0, z=0.0))
        detections.append(types['vision_msgs/msg/Detection3D'](
            header=msg_header, results=[_hypothesis(name, score, position)], bbox=bbox,
            id=track))
    return types[DETECTION3D_ARRAY](header=msg_header, detections=detections)


def make_camera_info(width: int, height: int, focal_px: float, stamp_ns: int, frame_id: str):
    """
    Return a sensor_msgs/msg/CameraInfo of an ideal pinhole camera (no distortion).

    ROS/OpenCV convention: pixel i's centre is at coordinate i, so the principal point of an
    image centred on the optical axis is ``(W/2 - 0.5, H/2 - 0.5)``. Square pixels of focal
    length ``focal_px``; 'plumb_bob' with zero coefficients, R identity, P = [K | 0].
    """
    width, height, focal = int(width), int(height), float(focal_px)
    cx, cy = width / 2 - 0.5, height / 2 - 0.5
    types = typestore().types
    return types[CAMERA_INFO](
        header=header(stamp_ns, frame_id), height=height, width=width,
        distortion_model='plumb_bob', d=np.zeros(5, np.float64),
        k=np.array([focal, 0.0, cx, 0.0, focal, cy, 0.0, 0.0, 1.0]),
        r=np.eye(3).reshape(-1),
        p=np.array([focal, 0.0, cx, 0.0, 0.0, focal, cy, 0.0, 0.0, 0.0, 1.0, 0.0]),
        binning_x=0, binning_y=0,
        roi=types['sensor_msgs/msg/RegionOfInterest'](x_offset=0, y_offset=0, height=0, width=0,
                                                      do_rectify=False))


def make_pose_stamped(position, quaternion, stamp_ns: int, frame_id: str):
    """Return a geometry_msgs/msg/PoseStamped (``quaternion`` [x, y, z, w])."""
    types = typestore().types
    x, y, z = (float(v) for v in position)
    qx, qy, qz, qw = (float(v) for v in quaternion)
    return types[POSE_STAMPED](
        header=header(stamp_ns, frame_id),
        pose=types['geometry_msgs/msg/Pose'](
            position=types['geometry_msgs/msg/Point'](x=x, y=y, z=z),
            orientation=types['geometry_msgs/msg/Quaternion'](x=qx, y=qy, z=qz, w=qw)))


def _class_id(label, class_names: Sequence[str] | None) -> str:
    if isinstance(label, str):
        return label
    index = int(label)
    if class_names is None:
        return str(index)
    if not 0 <= index < len(class_names):
        raise ValueError(f'label {index} is outside the {len(class_names)} class names')
    return str(class_names[index])


def detection_array_to_numpy(msg) -> tuple:
    """
    Return ``(boxes float32 [M, 4] x1, y1, x2, y2 px, class ids list[str], scores [M])``.

    Each detection contributes its best-scoring hypothesis ('' and 0.0 when it has none).
    """
    boxes = np.zeros((len(msg.detections), 4), np.float32)
    names, scores = [], np.zeros(len(msg.detections), np.float32)
    for i, detection in enumerate(msg.detections):
        bbox = detection.bbox
        cx, cy = bbox.center.position.x, bbox.center.position.y
        half_w, half_h = bbox.size_x / 2, bbox.size_y / 2
        boxes[i] = (cx - half_w, cy - half_h, cx + half_w, cy + half_h)
        if detection.results:
            best = max(detection.results, key=lambda r: r.hypothesis.score)
            names.append(str(best.hypothesis.class_id))
            scores[i] = best.hypothesis.score
        else:
            names.append('')
    return boxes, names, scores


def detection_ids(msg) -> list:
    """Return the ``id`` of each detection of a Detection2DArray or Detection3DArray ('' none)."""
    return [str(detection.id) for detection in msg.detections]


def detection3d_array_to_numpy(msg) -> tuple:
    """
    Return ``(positions float64 [M, 3] m, class ids list[str], track ids list[str])``.

    A position is the detection's ``bbox.center.position``; the class is its best-scoring
    hypothesis ('' when it has none).
    """
    positions = np.zeros((len(msg.detections), 3), np.float64)
    names = []
    for i, detection in enumerate(msg.detections):
        point = detection.bbox.center.position
        positions[i] = (point.x, point.y, point.z)
        best = max(detection.results, key=lambda r: r.hypothesis.score, default=None)
        names.append('' if best is None else str(best.hypothesis.class_id))
    return positions, names, detection_ids(msg)
