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
The node variants: the multitask node and the two nodes of the single-task baseline.

One table, used by the nodes, launch-free node processes (replay, demo), the benchmark and
the tests: a variant's key, its node (and console script) name, its tasks and the demo
model it serves by default. The configurations compared everywhere are the multitask node
alone and the baseline pair. This module imports neither torch nor ROS.
"""

from dataclasses import dataclass

from mtl_perception.model_card import validate_tasks


@dataclass(frozen=True)
class NodeVariant:
    """
    One node of the package.

    :param key: 'multitask', 'detection' or 'segmentation' (command-line and JSON keys).
    :param node_name: the ROS node name, which is also its console script.
    :param tasks: the network's tasks, in canonical order.
    :param demo_model: the stem of the shipped model in ``models/`` it serves by default.
    """

    key: str
    node_name: str
    tasks: tuple[str, ...]
    demo_model: str

    def __post_init__(self) -> None:
        """Check the task list."""
        if validate_tasks(self.tasks) != self.tasks:
            raise ValueError(f'{self.key}: tasks must be in canonical order, got {self.tasks}')


VARIANTS = {variant.key: variant for variant in (
    NodeVariant('multitask', 'multitask_node', ('detection', 'segmentation'),
                'uav_synthetic_multitask'),
    NodeVariant('detection', 'detection_node', ('detection',), 'uav_synthetic_detection'),
    NodeVariant('segmentation', 'segmentation_node', ('segmentation',),
                'uav_synthetic_segmentation'),
)}
# The two deployments compared: one multitask node, or the single-task pair side by side.
CONFIGURATIONS = {
    'multitask': (VARIANTS['multitask'],),
    'baseline': (VARIANTS['detection'], VARIANTS['segmentation']),
}


def variant_for_tasks(tasks) -> NodeVariant:
    """Return the variant whose network has exactly ``tasks`` (any order)."""
    wanted = validate_tasks(tasks)
    for variant in VARIANTS.values():
        if variant.tasks == wanted:
            return variant
    raise ValueError(f'no node variant has the tasks {list(wanted)}')  # pragma: no cover


@dataclass(frozen=True)
class CameraDeployment:
    """
    How several cameras are served: one node for all of them, or nodes per camera.

    :param key: 'shared', 'multitask_per_camera' or 'baseline_per_camera' (command-line,
        run directory and JSON keys).
    :param variants: the nodes of one unit: one unit serves every camera (``per_camera``
        False, the node's ``cameras`` parameter lists them) or each camera has its own unit.
    :param per_camera: whether each camera gets its own unit of ``variants``.
    """

    key: str
    variants: tuple[NodeVariant, ...]
    per_camera: bool

    @property
    def tasks(self) -> tuple[str, ...]:
        """Return the tasks the deployment answers for every camera, in canonical order."""
        return validate_tasks(list(dict.fromkeys(
            task for variant in self.variants for task in variant.tasks)))


# Several cameras: one multitask node serving all of them (one loaded network, frames of
# different cameras batched), a multitask node per camera, or a baseline pair per camera.
CAMERA_DEPLOYMENTS = {deployment.key: deployment for deployment in (
    CameraDeployment('shared', (VARIANTS['multitask'],), per_camera=False),
    CameraDeployment('multitask_per_camera', (VARIANTS['multitask'],), per_camera=True),
    CameraDeployment('baseline_per_camera', (VARIANTS['detection'], VARIANTS['segmentation']),
                     per_camera=True),
)}
