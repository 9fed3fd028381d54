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
