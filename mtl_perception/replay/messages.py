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
Build and read bag messages (Image, CompressedImage, Detection2DArray) without ROS.

The objects are the ``rosbags`` typestore's classes (see :func:`bag_io.typestore`), which
serialise to the same CDR bytes as rclpy's. Images come in and go out as numpy arrays: colour
as uint8 [H, W, 3] RGB, masks and grey images as uint8 [H, W]. Boxes are [x1, y1, x2, y2] in
pixels.
"""

import io
from typing import Sequence

from mtl_perception.inference.image_decoding import decode_compressed, decode_image
from mtl_perception.replay.bag_io import typestore
import numpy as np
from PIL import Image as PILImage

__all__ = ['COMPRESSED_IMAGE', 'DETECTION2D_ARRAY', 'IMAGE', 'compressed_to_array',
           'detection_array_to_numpy', 'header', 'image_to_array', 'make_compressed_image',
           'make_detection_array', 'make_image', 'stamp_to_ns']

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE = 'sensor_msgs/msg/CompressedImage'
DETECTION2D_ARRAY = 'vision_msgs/msg/Detection2DArray'
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


def make_detection_array(boxes: np.ndarray, labels: Sequence, scores: Sequence,
                         stamp_ns: int, frame_id: str,
                         class_names: Sequence[str] | None = None):
    """
    Return a vision_msgs/msg/Detection2DArray.

    Inputs: ``boxes`` float [M, 4] x1, y1, x2, y2 in pixels; ``labels`` M class names (str) or
    0-based class indices (mapped through ``class_names`` when given, else written as the
    decimal index); ``scores`` [M]. Each Detection2D carries the array's header, the box as
    centre and size, and one hypothesis (``class_id``, ``score``) with a zero pose.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) if np.size(boxes) else \
        np.zeros((0, 4), np.float64)
    labels, scores = list(labels), np.asarray(scores, dtype=np.float64).reshape(-1)
    if not (len(boxes) == len(labels) == len(scores)):
        raise ValueError(f'boxes [M, 4], labels [M] and scores [M] differ in M: boxes '
                         f'{list(boxes.shape)}, {len(labels)} labels, {len(scores)} scores')
    names = [_class_id(label, class_names) for label in labels]
    types = typestore().types
    point = types['geometry_msgs/msg/Point']
    quaternion = types['geometry_msgs/msg/Quaternion']
    msg_header = header(stamp_ns, frame_id)
    detections = []
    for box, name, score in zip(boxes, names, scores):
        x1, y1, x2, y2 = (float(v) for v in box)
        pose = types['geometry_msgs/msg/PoseWithCovariance'](
            pose=types['geometry_msgs/msg/Pose'](
                position=point(x=0.0, y=0.0, z=0.0),
                orientation=quaternion(x=0.0, y=0.0, z=0.0, w=1.0)),
            covariance=np.zeros(36, dtype=np.float64))
        hypothesis = types['vision_msgs/msg/ObjectHypothesisWithPose'](
            hypothesis=types['vision_msgs/msg/ObjectHypothesis'](
                class_id=name, score=float(score)),
            pose=pose)
        bbox = types['vision_msgs/msg/BoundingBox2D'](
            center=types['vision_msgs/msg/Pose2D'](
                position=types['vision_msgs/msg/Point2D'](x=(x1 + x2) / 2, y=(y1 + y2) / 2),
                theta=0.0),
            size_x=x2 - x1, size_y=y2 - y1)
        detections.append(types['vision_msgs/msg/Detection2D'](
            header=msg_header, results=[hypothesis], bbox=bbox, id=''))
    return types[DETECTION2D_ARRAY](header=msg_header, detections=detections)


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
