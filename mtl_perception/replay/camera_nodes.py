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
The runs of a multi-camera replay: deployments, their node processes and topics (no rclpy).

A multi-camera flight (``mtl-perception synth --cameras K``) is replayed through one of the
deployments of :data:`mtl_perception.variants.CAMERA_DEPLOYMENTS`, each under its own
namespace ``/<deployment>``:

* ``shared``: ONE ``multitask_node`` with ``cameras: cam0,...``; it subscribes
  ``/shared/<cam>/image`` (remapped to the bag's ``/<cam>/image_raw``) and publishes
  ``/shared/<cam>/detections`` and ``/shared/<cam>/segmentation/mask`` per camera, and one
  ``/shared/<task>/label_info`` per task;
* ``multitask_per_camera``: a ``multitask_node`` per camera, in ``/multitask_per_camera/<cam>``
  (so its ``detections`` is ``/multitask_per_camera/<cam>/detections``, the same layout);
* ``baseline_per_camera``: a ``detection_node`` and a ``segmentation_node`` per camera, in
  ``/baseline_per_camera/<cam>``.

So every deployment answers camera ``c`` on ``/<deployment>/<c>/<task output>``. A run is a
:class:`CameraRun`: a deployment plus node parameters of its own (``segmentation_every``);
:func:`camera_runs` names the runs of a replay's ``--config``.
"""

from dataclasses import dataclass, field
from pathlib import Path

from mtl_perception.replay.node_processes import find_script, variant_checkpoints
from mtl_perception.replay.run_files import TASK_TOPICS
from mtl_perception.ros.conversions import LABEL_INFO_TOPICS
from mtl_perception.variants import CAMERA_DEPLOYMENTS

__all__ = ['CAMERA_CONFIGS', 'CameraRun', 'DEFAULT_SEGMENTATION_EVERY', 'RUN_FORMAT',
           'camera_node_commands', 'camera_runs', 'label_topics', 'output_topics',
           'resolve_camera_checkpoints', 'subscribers_per_camera']

# The comparison of the deployments, and the shared node at several segmentation_every.
CAMERA_CONFIGS = {
    'cameras': 'shared, multitask_per_camera, baseline_per_camera (alternating rounds)',
    'segmentation_every': 'the shared node at each --segmentation-every value (alternating '
                          'rounds)',
    **{key: f'only the {key} deployment' for key in CAMERA_DEPLOYMENTS},
}
# run.json 'format' of a multi-camera run (the single-camera runner writes 2).
RUN_FORMAT = 'cameras-1'
# 10000 stands for "never" (the first frame of each camera still gets a mask).
DEFAULT_SEGMENTATION_EVERY = (1, 3, 10000)


@dataclass(frozen=True)
class CameraRun:
    """
    One configuration of a multi-camera replay.

    :param name: the run's directory and report key ('shared', 'segmentation_every_3', ...).
    :param deployment: a key of CAMERA_DEPLOYMENTS.
    :param parameters: ``-p`` overrides of this run's nodes only (e.g. segmentation_every).
    :param segmentation_every: the nodes' segmentation_every (1: a mask for every frame);
        above 1 a frame counts as answered once its detections are out.
    """

    name: str
    deployment: str
    parameters: dict = field(default_factory=dict)
    segmentation_every: int = 1

    @property
    def tasks(self) -> tuple:
        """Return the tasks of the deployment."""
        return CAMERA_DEPLOYMENTS[self.deployment].tasks

    @property
    def required_tasks(self) -> tuple:
        """Return the tasks every answered frame has (detection alone when masks are sparse)."""
        if self.segmentation_every > 1 and 'detection' in self.tasks:
            return ('detection',)
        return self.tasks


def camera_runs(config: str, segmentation_every=DEFAULT_SEGMENTATION_EVERY) -> tuple:
    """Return the :class:`CameraRun` list of ``--config`` ``config`` (see CAMERA_CONFIGS)."""
    if config == 'cameras':
        return tuple(CameraRun(key, key) for key in CAMERA_DEPLOYMENTS)
    if config == 'segmentation_every':
        values = [int(v) for v in segmentation_every]
        if len(values) < 2 or len(set(values)) != len(values) or min(values) < 1:
            raise ValueError(f'--segmentation-every needs at least two different values >= 1, '
                             f'got {values}')
        return tuple(CameraRun(f'segmentation_every_{n}', 'shared',
                               {'segmentation_every': n}, n) for n in values)
    if config in CAMERA_DEPLOYMENTS:
        return (CameraRun(config, config),)
    raise ValueError(f'unknown multi-camera configuration {config!r}; expected one of '
                     f'{sorted(CAMERA_CONFIGS)}')


def resolve_camera_checkpoints(deployment: str, checkpoints: dict) -> dict:
    """Return ``{variant key: checkpoint path}`` of the deployment's nodes (demo models else)."""
    return variant_checkpoints(CAMERA_DEPLOYMENTS[deployment].variants, checkpoints)


def _namespace(deployment: str) -> str:
    return f'/{deployment}'


def _unit_namespace(deployment: str, camera: str) -> str:
    """Return the namespace of the node unit serving ``camera``."""
    if CAMERA_DEPLOYMENTS[deployment].per_camera:
        return f'{_namespace(deployment)}/{camera}'
    return _namespace(deployment)


def output_topics(deployment: str, cameras) -> dict:
    """Return ``{camera: {task: topic}}``: ``/<deployment>/<camera>/<task output>``."""
    tasks = CAMERA_DEPLOYMENTS[deployment].tasks
    return {camera: {task: f'{_namespace(deployment)}/{camera}/{TASK_TOPICS[task][0]}'
                     for task in tasks} for camera in cameras}


def label_topics(deployment: str, cameras) -> list:
    """Return the latched label_info topics: one per task and node unit (one publisher each)."""
    spec = CAMERA_DEPLOYMENTS[deployment]
    units = cameras if spec.per_camera else cameras[:1]
    return [f'{_unit_namespace(deployment, camera)}/{LABEL_INFO_TOPICS[task]}'
            for camera in units for variant in spec.variants for task in variant.tasks]


def subscribers_per_camera(deployment: str) -> int:
    """Return how many node subscriptions each camera's image topic gets."""
    return len(CAMERA_DEPLOYMENTS[deployment].variants)


def _text(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def camera_node_commands(run: CameraRun, *, cameras: dict, params_file: Path,
                         checkpoints: dict, compressed: bool,
                         parameters: dict | None = None) -> dict:
    """
    Return ``{process name: command line}`` of ``run``'s nodes.

    :param cameras: ``{camera name: topic its image input is remapped to}`` in camera order
        (the nodes add ``/compressed`` themselves when ``compressed``).
    :param checkpoints: variant key -> path (see :func:`resolve_camera_checkpoints`).
    :param parameters: ``-p`` overrides the same for every node of every run; ``run``'s own
        parameters come after them.
    """
    spec = CAMERA_DEPLOYMENTS[run.deployment]
    overrides = []
    for name, value in {**(parameters or {}), **run.parameters}.items():
        overrides += ['-p', f'{name}:={_text(value)}']

    def command(variant, namespace: str, remaps: list, extra: list) -> list:
        return [find_script(variant.node_name), '--ros-args', '--params-file',
                str(params_file), '-r', f'__ns:={namespace}', *remaps, *extra,
                '-p', f'checkpoint:={checkpoints[variant.key]}', '-p', 'autostart:=true',
                '-p', f'use_compressed:={str(compressed).lower()}'] + overrides

    commands = {}
    if not spec.per_camera:
        remaps = [arg for camera, topic in cameras.items()
                  for arg in ('-r', f'{camera}/image:={topic}')]
        for variant in spec.variants:
            commands[variant.node_name] = command(
                variant, _namespace(run.deployment), remaps,
                ['-p', f'cameras:={",".join(cameras)}'])
        return commands
    for camera, topic in cameras.items():
        for variant in spec.variants:
            commands[f'{variant.node_name}_{camera}'] = command(
                variant, _unit_namespace(run.deployment, camera), ['-r', f'image:={topic}'], [])
    return commands
