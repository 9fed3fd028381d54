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
Conversions between ROS messages and numpy arrays / predictions (no rclpy needed).

Images: sensor_msgs/Image (rgb8, bgr8, rgba8, bgra8, mono8, rows possibly padded by ``step``)
and sensor_msgs/CompressedImage (JPEG, PNG) become uint8 RGB arrays [H, W, 3]; arrays and masks
become Image messages. Detections become vision_msgs/Detection2DArray in input pixels, class
names become vision_msgs/LabelInfo, and detections located in 3D (e.g. on the ground, see
``mtl_perception.geometry``) become vision_msgs/Detection3DArray.

LabelInfo: one message per task, on the task's own latched topic (``LABEL_INFO_TOPICS``:
``detections/label_info``, ``segmentation/label_info``), so every label topic has exactly
one publisher: the multitask node publishes both, each baseline node its own, and under the
baseline's shared namespace a depth-1 subscriber still gets each task's classes. Class ids
(one scheme for every node, so the multitask node and the single-task baseline describe
their classes identically):
  - segmentation class k has id k, which is exactly its pixel value in ``segmentation/mask``;
    the void value 255 has id 255 and the name ``void``;
  - detection class c has id ``DETECTION_ID_OFFSET + c`` (256 + c), so the two tasks never
    collide even though both list e.g. ``car``. Detection2D results carry the class *name* in
    ``class_id``; the numeric ids are for consumers that key classes by number.
"""

import array
import io
from typing import Optional, Sequence

from mtl_perception.inference.image_decoding import (decode_compressed, decode_image,
                                                     ImageDecodeError)
import numpy as np
from PIL import Image as PILImage
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from vision_msgs.msg import (BoundingBox2D, BoundingBox3D, Detection2D, Detection2DArray,
                             Detection3D, Detection3DArray, LabelInfo, ObjectHypothesisWithPose,
                             VisionClass)

VOID_LABEL = 255
DETECTION_ID_OFFSET = 256
# The latched LabelInfo topic of each task (relative to the node's namespace).
LABEL_INFO_TOPICS = {'detection': 'detections/label_info',
                     'segmentation': 'segmentation/label_info'}
# One error type for undecodable images, shared with the replay scorer (``reason`` keys).
ImageConversionError = ImageDecodeError


def _byte_array(pixels: np.ndarray) -> array.array:
    """
    Copy a C-contiguous uint8 array into the array.array a message's ``data`` stores.

    Assigning bytes to a message field validates every byte in Python; an array.array('B')
    is taken as is, so this single buffer copy is the whole cost.
    """
    data = array.array('B')
    data.frombytes(np.ascontiguousarray(pixels, dtype=np.uint8).data)
    return data


def image_to_rgb(msg: Image, max_pixels: Optional[int] = None) -> np.ndarray:
    """
    Return the pixels of an Image message as a uint8 RGB array [H, W, 3].

    See ``inference.image_decoding.decode_image`` for the accepted encodings; for rgb8
    without padding the result is a read-only view of the message buffer (no copy).

    :param msg: the image message.
    :param max_pixels: most pixels (width x height) accepted, checked on ``width`` and
        ``height`` before ``data`` is looked at; None: no limit.
    :raises ImageConversionError: unknown encoding, zero width or height, more than
        ``max_pixels`` pixels, ``step`` shorter than a row, or ``data`` length different from
        ``step * height``.
    """
    return decode_image(msg.encoding, msg.height, msg.width, msg.step, msg.data,
                        max_pixels=max_pixels)


def compressed_to_rgb(msg: CompressedImage, max_pixels: Optional[int] = None) -> np.ndarray:
    """
    Decode a CompressedImage (JPEG or PNG) into a uint8 RGB array [H, W, 3].

    :param msg: the compressed image message.
    :param max_pixels: most pixels (width x height) accepted, checked on the image header
        before any pixel is decoded; None: no limit.
    :raises ImageConversionError: the data is empty, not a decodable JPEG/PNG image, or
        larger than ``max_pixels``.
    """
    return decode_compressed(msg.data, msg.format, max_pixels=max_pixels)


def rgb_to_compressed(pixels: np.ndarray, header: Header, fmt: str = 'jpeg',
                      quality: int = 90) -> CompressedImage:
    """Encode a uint8 RGB array [H, W, 3] as a CompressedImage ('jpeg' or 'png')."""
    if fmt not in ('jpeg', 'png'):
        raise ValueError(f"format must be 'jpeg' or 'png', got {fmt!r}")
    _check_rgb(pixels)
    buffer = io.BytesIO()
    options = {'quality': quality} if fmt == 'jpeg' else {}
    PILImage.fromarray(pixels).save(buffer, format=fmt.upper(), **options)
    msg = CompressedImage(header=header, format=fmt)
    data = array.array('B')
    data.frombytes(buffer.getbuffer())
    msg.data = data
    return msg


def _check_rgb(pixels: np.ndarray) -> None:
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f'expected a uint8 RGB array [H, W, 3], got {pixels.dtype} '
                         f'{list(pixels.shape)}')


def rgb_to_image(pixels: np.ndarray, header: Header) -> Image:
    """Return an rgb8 Image (no row padding) holding a uint8 array [H, W, 3]."""
    _check_rgb(pixels)
    height, width = pixels.shape[:2]
    msg = Image(header=header, height=height, width=width, encoding='rgb8', step=width * 3)
    msg.data = _byte_array(pixels)
    return msg


def mono_to_image(pixels: np.ndarray, header: Header) -> Image:
    """Return a mono8 Image (no row padding) holding a uint8 array [H, W]."""
    if pixels.dtype != np.uint8 or pixels.ndim != 2:
        raise ValueError(f'expected a uint8 array [H, W], got {pixels.dtype} '
                         f'{list(pixels.shape)}')
    height, width = pixels.shape
    msg = Image(header=header, height=height, width=width, encoding='mono8', step=width)
    msg.data = _byte_array(pixels)
    return msg


def mask_to_image(mask: np.ndarray, header: Header) -> Image:
    """Return the segmentation mask [H, W] (class index per pixel, 255 void) as mono8 Image."""
    return mono_to_image(mask, header)


def detections_to_msg(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
                      class_names: Sequence[str], header: Header,
                      ids: Optional[Sequence[str]] = None) -> Detection2DArray:
    """
    Return a Detection2DArray for boxes in input pixels.

    :param boxes: float [M, 4] x1, y1, x2, y2 in pixels of the input image.
    :param scores: float [M].
    :param labels: int [M], 0-based indices into ``class_names``.
    :param class_names: detection class names.
    :param header: copied into the array and every Detection2D (stamp and frame of the input).
    :param ids: [M] identities (track ids; '' for a detection not tracked yet); None: each
        detection's index in this array.

    Each Detection2D has the box centre and size in pixels, one ObjectHypothesisWithPose with
    ``class_id`` = class name and ``score``, and ``id``.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(scores) != len(boxes) or len(labels) != len(boxes) or \
            (ids is not None and len(ids) != len(boxes)):
        raise ValueError(f'boxes {list(boxes.shape)}, scores [{len(scores)}], labels '
                         f'[{len(labels)}] and ids must have the same length')
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2.0
    sizes = boxes[:, 2:] - boxes[:, :2]
    msg = Detection2DArray(header=header)
    for index, label in enumerate(np.asarray(labels).tolist()):
        if not 0 <= label < len(class_names):
            raise ValueError(f'label {label} outside the {len(class_names)} detection classes')
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id = class_names[label]
        hypothesis.hypothesis.score = float(scores[index])
        bbox = BoundingBox2D(size_x=float(sizes[index, 0]), size_y=float(sizes[index, 1]))
        bbox.center.position.x = float(centres[index, 0])
        bbox.center.position.y = float(centres[index, 1])
        msg.detections.append(Detection2D(header=header, results=[hypothesis], bbox=bbox,
                                          id=str(index) if ids is None else str(ids[index])))
    return msg


def label_info(task: str, class_names: Sequence[str], threshold: float = 0.0,
               header: Optional[Header] = None) -> LabelInfo:
    """
    Return the LabelInfo of one task using the id scheme in this module's docstring.

    :param task: 'detection' or 'segmentation'.
    :param class_names: the task's class names, in label order.
    :param threshold: the detection score threshold the node applies (0 for segmentation).
    :param header: optional header (stamp and frame) for the message.
    :raises ValueError: an unknown task, or more segmentation classes than a mono8 mask holds.
    """
    if task not in LABEL_INFO_TOPICS:
        raise ValueError(f'unknown task {task!r}; expected one of {sorted(LABEL_INFO_TOPICS)}')
    msg = LabelInfo(threshold=float(threshold))
    if header is not None:
        msg.header = header
    if task == 'segmentation':
        if len(class_names) > VOID_LABEL:
            raise ValueError(f'{len(class_names)} segmentation classes do not fit a mono8 '
                             f'mask (at most {VOID_LABEL})')
        ids = [*range(len(class_names)), VOID_LABEL]
        class_names = [*class_names, 'void']
    else:
        ids = [DETECTION_ID_OFFSET + index for index in range(len(class_names))]
    msg.class_map = [VisionClass(class_id=class_id, class_name=name)
                     for class_id, name in zip(ids, class_names)]
    return msg


def detections3d_to_msg(header: Header, positions: np.ndarray, ids: Sequence[str],
                        class_ids: Sequence[str], scores: np.ndarray,
                        sizes: Optional[np.ndarray] = None) -> Detection3DArray:
    """
    Return a Detection3DArray of objects at 3D positions (metres, in ``header.frame_id``).

    :param header: copied into the array and every Detection3D; its frame is the one the
        positions are expressed in (e.g. ``map``).
    :param positions: float [N, 3]; rows with a NaN (or infinite) coordinate -- e.g. a
        detection whose ray missed the ground -- are skipped.
    :param ids: N strings, each detection's ``id`` (e.g. a track id; may be empty).
    :param class_ids: N strings, each hypothesis' ``class_id`` (the class name, as in
        Detection2D).
    :param scores: float [N].
    :param sizes: float [N, 3] box extents in metres, or None (sizes 0: unknown). A
        non-finite size component is written as 0.

    Each Detection3D has ``bbox.center.position`` = position with the identity orientation,
    ``bbox.size`` and one ObjectHypothesisWithPose with ``class_id``, ``score`` and
    ``pose.pose.position`` = position (identity orientation, covariance all zeros: unknown).
    """
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    count = len(positions)
    sizes = (np.zeros((count, 3)) if sizes is None
             else np.asarray(sizes, dtype=np.float64).reshape(-1, 3))
    lengths = {'ids': len(ids), 'class_ids': len(class_ids), 'scores': len(scores),
               'sizes': len(sizes)}
    if any(length != count for length in lengths.values()):
        raise ValueError(f'positions [{count}, 3] and {lengths} must have the same length')
    sizes = np.where(np.isfinite(sizes), sizes, 0.0)
    msg = Detection3DArray(header=header)
    for index in np.flatnonzero(np.all(np.isfinite(positions), axis=1)).tolist():
        x, y, z = (float(value) for value in positions[index])
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id = str(class_ids[index])
        hypothesis.hypothesis.score = float(scores[index])
        hypothesis.pose.pose.position.x = x
        hypothesis.pose.pose.position.y = y
        hypothesis.pose.pose.position.z = z
        bbox = BoundingBox3D()
        bbox.center.position.x = x
        bbox.center.position.y = y
        bbox.center.position.z = z
        bbox.size.x, bbox.size.y, bbox.size.z = (float(value) for value in sizes[index])
        msg.detections.append(Detection3D(header=header, results=[hypothesis], bbox=bbox,
                                          id=str(ids[index])))
    return msg
