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
The perception node's parameters: names, defaults, descriptors and validation (no rclpy).

A node declares only the parameters its tasks use (``parameters_for``): the detection
parameters (score_threshold, nms_threshold, max_detections) belong to the multitask node and
detection_node, not to segmentation_node, so ``ros2 param list`` shows each node what it
reads. Values come from config/mtl_perception.yaml and are checked by ``validate_settings``
when the node configures; the default checkpoint (empty: the node's own demo model) is the
only default that differs between the nodes.
"""

from dataclasses import dataclass
from functools import partial
from pathlib import Path
import re
from typing import Any, Mapping, Optional, Sequence

from mtl_perception.model_card import TASKS
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

BACKENDS = ('torch', 'onnxruntime', 'tensorrt')
RELIABILITIES = ('best_effort', 'reliable')
_DEVICE_PATTERN = re.compile(r'^(cpu|cuda|cuda:\d+)$')
# A camera name is a relative ROS name (its topics live under the node's namespace).
_CAMERA_PATTERN = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$')
_TOPIC_PATTERN = re.compile(r'^(/|~/)?[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$')
MAX_CAMERAS = 16
POSE_SOURCES = ('auto', 'topic', 'tf')
CONTACT_MODES = ('auto', 'center', 'bottom')
# Upper end of max_image_pixels: sensor_msgs/Image holds width and height as uint32, but
# beyond 2^32 pixels (12 GiB of rgb8) no camera frame is meant.
MAX_IMAGE_PIXELS_LIMIT = 1 << 32


@dataclass(frozen=True)
class ParameterSpec:
    """
    One declared parameter: default value (fixes the type), description and constraints.

    ``tasks``: the tasks that use it; a node declares it when it runs one of them. Empty:
    every node uses it.
    """

    name: str
    default: Any
    description: str
    choices: tuple = ()
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    tasks: tuple = ()
    dynamic_typing: bool = False

    def used_by(self, tasks: Sequence[str]) -> bool:
        """Return whether a node running ``tasks`` declares this parameter."""
        return not self.tasks or any(task in self.tasks for task in tasks)

    def descriptor(self) -> ParameterDescriptor:
        """Return the ROS ParameterDescriptor (description, choices text, numeric range)."""
        descriptor = ParameterDescriptor(description=self.description,
                                         dynamic_typing=self.dynamic_typing)
        if self.choices:
            descriptor.additional_constraints = 'one of: ' + ', '.join(self.choices)
        if self.minimum is not None and isinstance(self.default, float):
            descriptor.floating_point_range = [FloatingPointRange(
                from_value=float(self.minimum), to_value=float(self.maximum), step=0.0)]
        elif self.minimum is not None:
            descriptor.integer_range = [IntegerRange(
                from_value=int(self.minimum), to_value=int(self.maximum), step=1)]
        return descriptor


PARAMETERS = (
    ParameterSpec('checkpoint', '', 'Model weights (<stem>.safetensors with <stem>.yaml beside '
                  'it; for backend onnxruntime/tensorrt the exported <stem>.onnx/.engine, or '
                  "the checkpoint with its export beside it); empty: the package's demo model "
                  "for this node's tasks."),
    ParameterSpec('backend', 'torch', 'Inference backend.', choices=BACKENDS),
    ParameterSpec('device', 'cpu', "Inference device: 'cpu', 'cuda' or 'cuda:N'."),
    ParameterSpec('half', False, 'Run the network in float16 (GPU backends only).'),
    ParameterSpec('inference_workers', 1, 'Inference threads working on successive frames '
                  'in parallel (results are published in arrival order; still at most one '
                  'frame waits per camera). On onnxruntime and torch they share one loaded '
                  'model; on tensorrt each loads its own.', minimum=1, maximum=8),
    ParameterSpec('inference_threads', 0, 'Intra-op threads of a loaded model (onnxruntime '
                  'session threads; torch: torch.set_num_threads, per process); 0: the '
                  "backend's default.", minimum=0, maximum=256),
    ParameterSpec('cameras', '', 'Camera names: one node serves them all, subscribing '
                  '<camera>/image and publishing <camera>/detections, <camera>/segmentation/mask '
                  '(and the debug images) per camera. A string array, or a string such as '
                  "'front,down' or '[front, down]'; empty: one camera on image.",
                  dynamic_typing=True),
    ParameterSpec('camera_topics', '', 'Input image topic of each camera, in the order of '
                  'cameras (string array or string as for cameras); empty: <camera>/image.',
                  dynamic_typing=True),
    ParameterSpec('max_batch', 1, 'Most frames, one per camera, run together as one batch '
                  'when several cameras have a frame waiting (a GPU gains from batches; on a '
                  'CPU whose cores the inference workers already fill, 1 keeps fewer frames in '
                  'memory at the same speed).', minimum=1, maximum=64),
    ParameterSpec('segmentation_every', 1, 'Compute and publish the segmentation mask on '
                  'every Nth frame of each camera (detection still runs on every frame; the '
                  'segmentation head is skipped on the others).', minimum=1, maximum=10000,
                  tasks=('segmentation',)),
    ParameterSpec('score_threshold', 0.3, 'Minimum detection score reported (also the '
                  'threshold in detections/label_info).', minimum=0.0, maximum=1.0,
                  tasks=('detection',)),
    ParameterSpec('nms_threshold', 0.45, 'IoU above which same-class boxes are suppressed.',
                  minimum=0.0, maximum=1.0, tasks=('detection',)),
    ParameterSpec('max_detections', 100, 'Most detections reported per image.',
                  minimum=1, maximum=10000, tasks=('detection',)),
    ParameterSpec('tracking', True, 'Give each detection a persistent identity per camera in '
                  'Detection2D.id (ByteTrack-style two-stage association with a '
                  'constant-velocity Kalman filter; empty until a track is confirmed).',
                  tasks=('detection',)),
    ParameterSpec('tracking_high_threshold', 0.5, 'Detections scoring at least this are '
                  'associated first; those between tracking_low_threshold and this only '
                  'extend tracks (the network keeps detections down to the low threshold for '
                  'it; only those scoring score_threshold or more are published).',
                  minimum=0.0, maximum=1.0, tasks=('detection',)),
    ParameterSpec('tracking_low_threshold', 0.1, 'Lowest score that may extend a track.',
                  minimum=0.0, maximum=1.0, tasks=('detection',)),
    ParameterSpec('tracking_new_track_threshold', 0.6, 'Lowest score that starts a track.',
                  minimum=0.0, maximum=1.0, tasks=('detection',)),
    ParameterSpec('tracking_match_iou', 0.2, 'Lowest IoU between the predicted box of a track '
                  'and a detection for them to match.', minimum=0.01, maximum=1.0,
                  tasks=('detection',)),
    ParameterSpec('tracking_max_missed', 1.0, 'Seconds a track lives without a matching '
                  'detection (it keeps its identity through shorter occlusions).',
                  minimum=0.0, maximum=3600.0, tasks=('detection',)),
    ParameterSpec('tracking_min_hits', 2, 'Frames a new track must be matched in before its '
                  'identity is published.', minimum=1, maximum=100, tasks=('detection',)),
    ParameterSpec('ground_projection', True, 'Publish <camera>/detections_3d '
                  '(vision_msgs/Detection3DArray): where each published detection touches a '
                  'flat ground, in world_frame, from the CameraInfo of the camera (camera_info '
                  'beside the image topic) and pose (pose beside it, or TF); nothing while '
                  'either is missing (diagnostics say which).', tasks=('detection',)),
    ParameterSpec('world_frame', 'map', 'Frame of the ground positions (z up) and of the '
                  'pose messages.', tasks=('detection',)),
    ParameterSpec('ground_height', 0.0, 'Height of the ground plane in world_frame (m).',
                  minimum=-100000.0, maximum=100000.0, tasks=('detection',)),
    ParameterSpec('pose_source', 'auto', "Camera pose: 'topic' (geometry_msgs/PoseStamped of "
                  "the camera's optical frame in world_frame, on pose beside the image topic), "
                  "'tf' (world_frame <- the image's frame_id) or 'auto' (the topic once it "
                  'publishes, else TF where tf2_ros is installed).', choices=POSE_SOURCES,
                  tasks=('detection',)),
    ParameterSpec('max_pose_age', 0.2, 'Largest gap (s) between a frame and the pose used '
                  'for it.', minimum=0.0, maximum=60.0, tasks=('detection',)),
    ParameterSpec('ground_contact', 'auto', 'Image point where an object touches the ground: '
                  "'center' of the box (a camera looking straight down), 'bottom' (an oblique "
                  "one) or 'auto' (between them by the camera's tilt).",
                  choices=CONTACT_MODES, tasks=('detection',)),
    ParameterSpec('qos_reliability', 'best_effort', 'Reliability of the image subscriptions '
                  '(REP-2003: sensor data is subscribed best effort).', choices=RELIABILITIES),
    ParameterSpec('qos_depth', 1, 'History depth of the image subscriptions; 1 keeps only the '
                  'newest frame.', minimum=1, maximum=100),
    ParameterSpec('use_compressed', False, 'Also subscribe <image>/compressed '
                  '(sensor_msgs/CompressedImage, JPEG or PNG).'),
    ParameterSpec('max_image_pixels', 4096 * 4096, 'Largest input image accepted, in pixels '
                  '(width x height), checked on the message fields or the compressed header '
                  'before decoding; larger images are rejected (counted in inputs_rejected).',
                  minimum=1, maximum=MAX_IMAGE_PIXELS_LIMIT),
    ParameterSpec('publish_debug_images', False, 'Always compute detections/overlay and '
                  'segmentation/color (otherwise only while something subscribes).'),
    ParameterSpec('autostart', True, 'Configure and activate at startup; false leaves the '
                  'transitions to a lifecycle manager.'),
    ParameterSpec('diagnostics_period', 1.0, 'Seconds between /diagnostics messages.',
                  minimum=0.05, maximum=60.0),
)


def parameters_for(tasks: Sequence[str]) -> tuple:
    """Return the ParameterSpecs a node running ``tasks`` declares, in PARAMETERS order."""
    return tuple(spec for spec in PARAMETERS if spec.used_by(tasks))


@dataclass(frozen=True)
class NodeSettings:
    """
    Validated parameter values of one node.

    Parameters the node does not declare (another task's) hold their defaults, which the node
    never reads.
    """

    checkpoint: Path
    backend: str
    device: str
    half: bool
    inference_workers: int
    inference_threads: int
    cameras: tuple
    camera_topics: tuple
    max_batch: int
    segmentation_every: int
    score_threshold: float
    nms_threshold: float
    max_detections: int
    tracking: bool
    tracking_high_threshold: float
    tracking_low_threshold: float
    tracking_new_track_threshold: float
    tracking_match_iou: float
    tracking_max_missed: float
    tracking_min_hits: int
    ground_projection: bool
    world_frame: str
    ground_height: float
    pose_source: str
    max_pose_age: float
    ground_contact: str
    qos_reliability: str
    qos_depth: int
    use_compressed: bool
    max_image_pixels: int
    publish_debug_images: bool
    autostart: bool
    diagnostics_period: float


def validate_settings(values: Mapping[str, Any], default_checkpoint: Optional[Path],
                      tasks: Sequence[str] = TASKS) -> NodeSettings:
    """
    Check raw parameter values and return NodeSettings.

    ``default_checkpoint`` replaces an empty ``checkpoint``. Whether the checkpoint file exists
    is checked when the model loads (activate), not here.

    :param values: parameter name -> value; every parameter of ``parameters_for(tasks)``.
    :param default_checkpoint: the node's demo model, or None when there is none.
    :param tasks: the node's tasks; parameters no task of them uses take their defaults.
    :raises ValueError: naming the parameter, its value and what is allowed.
    """
    declared = parameters_for(tasks)
    missing = [spec.name for spec in declared if spec.name not in values]
    if missing:
        raise ValueError(f'missing parameters: {missing}')
    values = {spec.name: values[spec.name] if spec in declared else spec.default
              for spec in PARAMETERS}
    for spec in declared:
        value = values[spec.name]
        if spec.dynamic_typing:
            continue
        if spec.choices and value not in spec.choices:
            raise ValueError(f'parameter {spec.name}={value!r} is not one of {list(spec.choices)}')
        if spec.minimum is not None and not spec.minimum <= value <= spec.maximum:
            raise ValueError(f'parameter {spec.name}={value!r} is outside '
                             f'[{spec.minimum}, {spec.maximum}]')
    if not _DEVICE_PATTERN.match(values['device']):
        raise ValueError(f"parameter device={values['device']!r} must be 'cpu', 'cuda' or "
                         "'cuda:N'")
    if values['half'] and values['device'] == 'cpu':
        raise ValueError('parameter half=true needs a GPU device, got device=cpu')
    checkpoint = values['checkpoint']
    if not checkpoint:
        if default_checkpoint is None:
            raise ValueError('parameter checkpoint is empty and the package has no demo model '
                             'location (share directory not found)')
        checkpoint = default_checkpoint
    settings = {spec.name: values[spec.name] for spec in PARAMETERS}
    if 'detection' in tasks and values['tracking']:
        tracker_settings(values)  # raises naming the parameter
    if 'detection' in tasks and values['ground_projection'] and not values['world_frame']:
        raise ValueError('parameter world_frame is empty: name the frame of the ground positions')
    settings['checkpoint'] = Path(checkpoint).expanduser()
    settings['cameras'], settings['camera_topics'] = _cameras(values['cameras'],
                                                              values['camera_topics'])
    return NodeSettings(**settings)


def tracker_settings(values: Any):
    """Return the TrackerSettings of parameter values (a mapping or NodeSettings)."""
    from mtl_perception.tracking import TrackerSettings
    get = values.get if isinstance(values, Mapping) else partial(getattr, values)
    fields = {'high_threshold': 'tracking_high_threshold',
              'low_threshold': 'tracking_low_threshold',
              'new_track_threshold': 'tracking_new_track_threshold',
              'match_iou': 'tracking_match_iou', 'max_missed_s': 'tracking_max_missed',
              'min_hits': 'tracking_min_hits'}
    try:
        return TrackerSettings(**{field: get(name) for field, name in fields.items()})
    except ValueError as error:
        pattern = r'\b(?:TrackerSettings\.)?(' + '|'.join(fields) + r')\b'
        raise ValueError(re.sub(pattern, lambda m: f'parameter {fields[m.group(1)]}',
                                str(error))) from None


def parse_names(name: str, value: Any) -> tuple:
    """
    Return a list parameter's items from a string array or a string.

    A string may list the items separated by commas, optionally in brackets (``'a,b'``,
    ``'[a, b]'``, as a launch argument passes them); empty (or ``[]``) is no item.

    :raises ValueError: naming the parameter, for another type or an empty item.
    """
    if isinstance(value, str):
        text = value.strip()
        if text.startswith('[') and text.endswith(']'):
            text = text[1:-1].strip()
        if not text:
            return ()
        items = [item.strip().strip('\'"').strip() for item in text.split(',')]
    elif isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        items = [item.strip() for item in value]
    else:
        raise ValueError(f'parameter {name}={value!r} must be a string array or a string')
    if any(not item for item in items):
        raise ValueError(f'parameter {name}={value!r} has an empty item')
    return tuple(items)


def _cameras(cameras: Any, camera_topics: Any) -> tuple:
    """Return validated ``(cameras, camera_topics)`` (see the parameters' descriptions)."""
    names, topics = parse_names('cameras', cameras), parse_names('camera_topics', camera_topics)
    if len(names) > MAX_CAMERAS:
        raise ValueError(f'parameter cameras lists {len(names)} cameras; at most '
                         f'{MAX_CAMERAS} are served by one node')
    for camera in names:
        if not _CAMERA_PATTERN.match(camera):
            raise ValueError(f'parameter cameras: {camera!r} is not a relative ROS name '
                             '(letters, digits, _ and /, not starting with / or a digit)')
    if len(set(names)) != len(names):
        raise ValueError(f'parameter cameras={list(names)} names a camera twice')
    if topics and len(topics) != len(names):
        raise ValueError(f'parameter camera_topics lists {len(topics)} topics for '
                         f'{len(names)} cameras {list(names)}; give one per camera or none')
    for topic in topics:
        if not _TOPIC_PATTERN.match(topic):
            raise ValueError(f'parameter camera_topics: {topic!r} is not a valid topic name')
    return names, topics
