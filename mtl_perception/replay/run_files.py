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
The files of a replay run, and reading them back for scoring (no rclpy).

A replay measures its configurations in rounds (multitask, baseline, multitask, baseline,
...). Round 1 of configuration ``C`` ('multitask' or 'baseline') lives in ``OUT/C/``, round
``k`` > 1 in ``OUT/rounds/<k>/C/`` (see :func:`round_dir`): ``OUT/C/`` is a complete run on
its own, the layout ``launch/replay.launch.py`` records and ``--score-only`` reads, and the
plots of a run are drawn from it. Each run directory holds:

* ``output_bag/``: rosbag2 of every message the nodes published (detections, masks, the
  detection node's ``detections_3d`` when it publishes them, label_info, /diagnostics), each
  with its receive time as the bag timestamp. A bag that
  ``ros2 bag record`` wrote there (``launch/replay.launch.py``) reads the same way.
* ``run.json``: what only the player knows (written by the runner; absent for outside
  recordings): the round, the input bag and topic, ``frames`` as ``[stamp_ns, publish_ns]``
  pairs, the stamps of the warm-up frames (left out of the scores), the output topics per
  task, the node processes' peak memory (RSS, USS, PSS: per process and the peak of their
  per-sample sum), CPU, memory samples per kind and the load average at start and end.
* ``logs/``: one log per node process.

Without ``run.json`` the input publish times are unknown; when the recording holds the input
image topic, its receive times stand in for them (latency then runs from the recorder seeing
the input to the recorder seeing the outputs, i.e. it leaves out the input's transport time).
"""

from dataclasses import dataclass, field
import json
from pathlib import Path

from mtl_perception.replay.bag_io import open_bag
from mtl_perception.replay.flight import CUSTOM_DATA_KEY, DETECTIONS_TOPIC, MASK_TOPIC
from mtl_perception.replay.flight import OBJECTS_TOPIC
from mtl_perception.replay.messages import COMPRESSED_IMAGE, DETECTION2D_ARRAY, DETECTION3D_ARRAY
from mtl_perception.replay.messages import detection3d_array_to_numpy, detection_array_to_numpy
from mtl_perception.replay.messages import detection_ids, IMAGE, image_to_array, stamp_to_ns
from mtl_perception.replay.scoring import GroundTruth
from mtl_perception.variants import CONFIGURATIONS

__all__ = ['GROUND_OUTPUT', 'LABEL_INFO', 'OUTPUT_BAG', 'ROUNDS_DIR', 'RUN_FILE', 'RecordedRun',
           'TrackTruth', 'bag_class_names', 'config_tasks', 'find_ground_topic',
           'find_image_topic', 'find_output_topics', 'find_rounds', 'load_run',
           'read_ground_truth', 'read_run_info', 'read_track_truth', 'round_dir',
           'write_run_info']

RUN_FILE = 'run.json'
OUTPUT_BAG = 'output_bag'
LOG_DIR = 'logs'
LABEL_INFO = 'vision_msgs/msg/LabelInfo'
DIAGNOSTICS = 'diagnostic_msgs/msg/DiagnosticArray'
ROUNDS_DIR = 'rounds'
# Output topic (relative to the nodes' namespace) and message type per task.
TASK_TOPICS = {'detection': ('detections', DETECTION2D_ARRAY),
               'segmentation': ('segmentation/mask', IMAGE)}
# The detection nodes' ground positions: recorded beside ``detections`` but not part of a
# frame's outputs (a node publishes them only with camera intrinsics and a pose).
GROUND_OUTPUT = ('detections_3d', DETECTION3D_ARRAY)
# LabelInfo ids: segmentation class k is id k, detection class c is id 256 + c.
_DETECTION_ID_OFFSET = 256


def config_tasks(config: str) -> tuple:
    """Return the tasks configuration ``config`` answers: those of its nodes together."""
    if config not in CONFIGURATIONS:
        raise ValueError(f'unknown configuration {config!r}; expected {sorted(CONFIGURATIONS)}')
    return tuple(task for task in TASK_TOPICS
                 if any(task in variant.tasks for variant in CONFIGURATIONS[config]))


def round_dir(out_dir: Path, config: str, round_index: int = 1) -> Path:
    """Return the run directory of ``config`` in round ``round_index`` (from 1) of ``out_dir``."""
    if round_index < 1:
        raise ValueError(f'rounds count from 1, got {round_index}')
    out_dir = Path(out_dir)
    return out_dir / config if round_index == 1 else \
        out_dir / ROUNDS_DIR / str(round_index) / config


def find_rounds(out_dir: Path, config: str) -> list:
    """
    Return ``[(round, run directory)]`` of ``config``'s runs under ``out_dir``, by round.

    Round 1 is ``out_dir/config``; later rounds are counted up from 2 and stop at the first
    missing one, so a gap (a failed round) ends the series rather than pairing mismatched runs.
    """
    found = []
    while (round_dir(out_dir, config, len(found) + 1) / OUTPUT_BAG).exists():
        found.append((len(found) + 1, round_dir(out_dir, config, len(found) + 1)))
    return found


def write_run_info(run_dir: Path, info: dict) -> Path:
    """Write ``run.json`` into ``run_dir``; return its path."""
    path = Path(run_dir) / RUN_FILE
    path.write_text(json.dumps(info, indent=1) + '\n', encoding='utf-8')
    return path


def read_run_info(run_dir: Path) -> dict | None:
    """Return the parsed ``run.json`` of ``run_dir``, or None when there is none."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding='utf-8'))
    except json.JSONDecodeError as error:
        raise ValueError(f'{path} is not valid JSON: {error}') from error


def find_output_topics(topics: dict) -> dict:
    """
    Return ``{task: topic}`` of the node outputs among a bag's ``{name: TopicInfo}``.

    A task's topic ends with its relative name (``detections``, ``segmentation/mask``) and has
    its type; ``/ground_truth/...`` topics are not outputs. Raises ValueError when a task has
    several candidates (name them with run.json instead).
    """
    found = {}
    for task, (suffix, msgtype) in TASK_TOPICS.items():
        candidates = sorted(name for name, info in topics.items()
                            if info.msgtype == msgtype and name.endswith('/' + suffix)
                            and not name.startswith('/ground_truth/'))
        if len(candidates) > 1:
            raise ValueError(f'several {task} output topics in the recording: {candidates}')
        if candidates:
            found[task] = candidates[0]
    return found


def find_ground_topic(topics: dict, detections_topic: str | None = None) -> str | None:
    """
    Return the detection node's ``detections_3d`` topic among ``{name: TopicInfo}``, or None.

    The one beside ``detections_topic`` when given and recorded; else the only
    Detection3DArray topic ending with ``/detections_3d`` (ground truth excluded).
    """
    suffix, msgtype = GROUND_OUTPUT
    if detections_topic:
        beside = f'{detections_topic}_3d' if detections_topic.endswith('detections') else None
        if beside in topics and topics[beside].msgtype == msgtype:
            return beside
    candidates = sorted(name for name, info in topics.items()
                        if info.msgtype == msgtype and name.endswith('/' + suffix)
                        and '/ground_truth/' not in name)
    return candidates[0] if len(candidates) == 1 else None


def find_image_topic(topics: dict, exclude: tuple = ()) -> str | None:
    """
    Return the one camera image topic among ``{name: TopicInfo}``, or None if there is none.

    Candidates are Image / CompressedImage topics other than ground truth, ``exclude`` and the
    nodes' own image outputs; several candidates raise ValueError naming them.
    """
    outputs = ('/segmentation/mask', '/segmentation/color', '/detections/overlay')
    candidates = sorted(
        name for name, info in topics.items()
        if info.msgtype in (IMAGE, COMPRESSED_IMAGE) and name not in exclude
        and '/ground_truth/' not in name and not name.endswith(outputs))
    if len(candidates) > 1:
        raise ValueError(f'several image topics: {candidates}; choose one with --image-topic')
    return candidates[0] if candidates else None


def bag_class_names(bag_path: Path) -> dict:
    """Return ``{'detection': [...], 'segmentation': [...]}`` a synthetic flight bag names."""
    with open_bag(bag_path) as bag:
        custom = bag.custom_data.get(CUSTOM_DATA_KEY)
    if not custom:
        return {}
    try:
        description = json.loads(custom)
    except json.JSONDecodeError:
        return {}
    return {'detection': list(description.get('detection_classes', [])),
            'segmentation': list(description.get('segmentation_classes', []))}


def _label_info_names(messages: list) -> dict:
    detection, segmentation = {}, {}
    for msg in messages:
        for vision_class in msg.class_map:
            class_id, name = int(vision_class.class_id), str(vision_class.class_name)
            if class_id >= _DETECTION_ID_OFFSET:
                detection[class_id - _DETECTION_ID_OFFSET] = name
            elif class_id != 255:
                segmentation[class_id] = name
    names = {}
    for task, by_id in (('detection', detection), ('segmentation', segmentation)):
        if by_id:
            names[task] = [by_id.get(i, f'class_{i}') for i in range(max(by_id) + 1)]
    return names


@dataclass
class RecordedRun:
    """
    A run read back from its directory.

    ``frames``: ``(stamp_ns, publish_ns or None)`` in play order; ``receipts``: task ->
    {stamp: first receive ns}; ``detections``: stamp -> (boxes [M, 4] px, names, scores);
    ``track_ids``: stamp -> the detections' ids (str, '' untracked); ``detections_3d``:
    stamp -> (positions [M, 3] m, names, ids) from ``ground_topic`` (None when the recording
    has none); ``masks``: stamp -> uint8 [H, W]; ``class_names`` from the nodes' label_info;
    ``diagnostics``: node name -> its last /diagnostics values; ``publish_source``: 'player'
    (run.json), 'recorded input' (receive times of the recorded image topic) or 'unknown'.
    """

    config: str
    run_dir: Path
    info: dict
    frames: list
    receipts: dict
    detections: dict = field(default_factory=dict)
    track_ids: dict = field(default_factory=dict)
    detections_3d: dict = field(default_factory=dict)
    ground_topic: str | None = None
    masks: dict = field(default_factory=dict)
    class_names: dict = field(default_factory=dict)
    diagnostics: dict = field(default_factory=dict)
    publish_source: str = 'player'


def load_run(run_dir: Path, config: str, image_topic: str | None = None) -> RecordedRun:
    """
    Read the run in ``run_dir`` (its ``output_bag`` and, when present, ``run.json``).

    Raises FileNotFoundError when there is no output bag, ValueError when its output topics
    cannot be told apart.
    """
    run_dir = Path(run_dir)
    bag_path = run_dir / OUTPUT_BAG
    if not bag_path.exists():
        raise FileNotFoundError(f'no output bag in {run_dir} (expected {bag_path})')
    info = read_run_info(run_dir) or {}
    with open_bag(bag_path) as bag:
        topics = bag.topics()
        outputs = info.get('outputs') or find_output_topics(topics)
        if not outputs:
            raise ValueError(f'{bag_path} holds no detections or segmentation/mask topic; '
                             f'it has {sorted(topics)}')
        input_topic = None
        if not info.get('frames'):
            input_topic = image_topic or info.get('image_topic') or find_image_topic(
                topics, exclude=tuple(outputs.values()))
            if input_topic is not None and input_topic not in topics:
                input_topic = None
        run = RecordedRun(config=config, run_dir=run_dir, info=info, frames=[],
                          receipts={task: {} for task in outputs})
        by_topic = {topic: task for task, topic in outputs.items()}
        run.ground_topic = find_ground_topic(topics, outputs.get('detection'))
        label_infos, inputs = [], []
        warmups = {int(s) for s in info.get('warmup_stamps', ())}
        wanted = [t for t in topics if t in by_topic or t in (input_topic, run.ground_topic)
                  or topics[t].msgtype in (LABEL_INFO, DIAGNOSTICS)]
        for topic, received, msg in bag.messages(wanted):
            msgtype = topics[topic].msgtype
            if topic == run.ground_topic:
                stamp = stamp_to_ns(msg.header.stamp)
                if stamp not in warmups:
                    run.detections_3d.setdefault(stamp, detection3d_array_to_numpy(msg))
            elif msgtype == LABEL_INFO:
                label_infos.append(msg)
            elif msgtype == DIAGNOSTICS:
                for status in msg.status:
                    run.diagnostics[status.name] = {v.key: v.value for v in status.values}
            elif topic == input_topic:
                inputs.append((stamp_to_ns(msg.header.stamp), received))
            else:
                task, stamp = by_topic[topic], stamp_to_ns(msg.header.stamp)
                if stamp in run.receipts[task] or stamp in warmups:
                    continue
                run.receipts[task][stamp] = received
                if task == 'detection':
                    run.detections[stamp] = detection_array_to_numpy(msg)
                    run.track_ids[stamp] = detection_ids(msg)
                else:
                    run.masks[stamp] = image_to_array(msg)
    run.class_names = _label_info_names(label_infos)
    if info.get('frames'):
        run.frames = [(int(s), None if p is None else int(p)) for s, p in info['frames']]
    elif inputs:
        first = {}
        for stamp, received in inputs:
            if stamp not in warmups:
                first.setdefault(stamp, received)
        run.frames = sorted(first.items(), key=lambda item: item[1])
        run.publish_source = 'recorded input'
    else:
        # Nothing tells what was played: take the stamps answered by any output.
        stamps = sorted(set().union(*(set(r) for r in run.receipts.values())))
        run.frames, run.publish_source = [(s, None) for s in stamps], 'unknown'
    return run


def read_ground_truth(bag_path: Path, stamps, detections_topic: str = DETECTIONS_TOPIC,
                      mask_topic: str = MASK_TOPIC) -> GroundTruth:
    """
    Return the bag's ground-truth detections and masks at ``stamps`` (empty if none).

    The topics default to the single-camera flight's ``/ground_truth/...``; a camera of a
    multi-camera flight has its own (``/<cam>/ground_truth/...``).
    """
    truth = GroundTruth()
    for topic, stamp, msg in _messages_at(bag_path, stamps, (detections_topic, mask_topic)):
        if topic == detections_topic:
            boxes, names, _ = detection_array_to_numpy(msg)
            truth.detections[stamp] = (boxes, names)
        else:
            truth.masks[stamp] = image_to_array(msg)
    return truth


def _messages_at(bag_path: Path, stamps, topics: tuple):
    """Yield ``(topic, stamp_ns, message)`` of the bag's ``topics`` it has, at ``stamps``."""
    wanted_stamps = {int(s) for s in stamps}
    with open_bag(bag_path) as bag:
        present = bag.topics()
        wanted = [t for t in topics if t in present]
        if not wanted:
            return
        for topic, _, msg in bag.messages(wanted):
            stamp = stamp_to_ns(msg.header.stamp)
            if stamp in wanted_stamps:
                yield topic, stamp, msg


@dataclass
class TrackTruth:
    """
    A flight's ground truth for tracks and ground positions, by stamp.

    ``detections``: stamp -> (boxes float32 [G, 4] px, class names, track ids (str)), only
    when the bag's ground truth carries ids; ``objects``: stamp -> (positions float64 [G, 3] m
    in the world frame, class names, track ids); either empty when the bag has none
    (a flight of ``ground_truth_version`` 1, or a recording that is no synthetic flight).
    """

    detections: dict = field(default_factory=dict)
    objects: dict = field(default_factory=dict)


def read_track_truth(bag_path: Path, stamps, detections_topic: str = DETECTIONS_TOPIC,
                     objects_topic: str = OBJECTS_TOPIC) -> TrackTruth:
    """
    Return the bag's ground-truth track ids and world positions at ``stamps``.

    The topics default to the single-camera flight's; a frame whose ground-truth detections
    lack ids is left out of ``detections`` (an empty frame counts: it has no object).
    """
    truth = TrackTruth()
    for topic, stamp, msg in _messages_at(bag_path, stamps, (detections_topic, objects_topic)):
        if topic == objects_topic:
            truth.objects[stamp] = detection3d_array_to_numpy(msg)
            continue
        ids = detection_ids(msg)
        if all(ids):
            boxes, names, _ = detection_array_to_numpy(msg)
            truth.detections[stamp] = (boxes, names, ids)
    return truth
