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
Each node declares only its tasks' parameters, and the params file's values reach it.

The node processes run with ``autostart:=false`` (parameters are declared at construction,
no model is needed) and are asked over their parameter services, as ``ros2 param list`` and
``ros2 param get`` do.
"""

from pathlib import Path

from mtl_perception.ros.parameters import PARAMETERS, parameters_for, validate_settings
from mtl_perception.variants import VARIANTS
import pytest
from ros_fixtures import NodeProcess, PARAMS_FILE, Probe
import yaml

NAMESPACE = '/params_test'
DETECTION_ONLY = {'score_threshold', 'nms_threshold', 'max_detections', 'tracking',
                  'tracking_high_threshold', 'tracking_low_threshold',
                  'tracking_new_track_threshold', 'tracking_match_iou', 'tracking_max_missed',
                  'tracking_min_hits', 'ground_projection', 'world_frame', 'ground_height',
                  'pose_source', 'max_pose_age', 'ground_contact'}
SEGMENTATION_ONLY = {'segmentation_every'}


def test_each_tasks_parameters_belong_to_the_nodes_running_it():
    everything = {spec.name for spec in PARAMETERS}
    for kind, variant in VARIANTS.items():
        names = {spec.name for spec in parameters_for(variant.tasks)}
        expected = set(everything)
        if 'detection' not in variant.tasks:
            expected -= DETECTION_ONLY
        if 'segmentation' not in variant.tasks:
            expected -= SEGMENTATION_ONLY
        assert names == expected, kind


def test_settings_of_a_node_without_detection_use_the_defaults():
    tasks = VARIANTS['segmentation'].tasks
    values = {spec.name: spec.default for spec in parameters_for(tasks)}
    settings = validate_settings(dict(values, checkpoint='/m/seg.safetensors'), None, tasks)
    assert (settings.score_threshold, settings.max_detections) == (0.3, 100)
    assert str(settings.checkpoint) == '/m/seg.safetensors'
    # What the node does not declare is not checked (it never reads it) ...
    assert validate_settings(dict(values, checkpoint='m', score_threshold=7.0), None,
                             tasks).score_threshold == 0.3
    # ... and what it declares must be there.
    del values['qos_depth']
    with pytest.raises(ValueError, match=r"missing parameters: \['qos_depth'\]"):
        validate_settings(values, Path('/m'), tasks)


@pytest.fixture
def probe():
    """Return a probe node for parameter service calls."""
    probe = Probe('params_probe')
    yield probe
    probe.close()


def _start(tmp_path: Path, kind: str, *ros_args: str) -> NodeProcess:
    return NodeProcess(f'{kind}_node', tmp_path / f'{kind}.log', '-r', f'__ns:={NAMESPACE}',
                       '-p', 'autostart:=false', *ros_args)


def test_each_node_lists_only_its_tasks_parameters(probe, tmp_path):
    nodes = {kind: _start(tmp_path, kind) for kind in VARIANTS}
    try:
        for kind, node in nodes.items():
            name = f'{NAMESPACE}/{VARIANTS[kind].node_name}'
            listed = probe.list_parameters(name)
            declared = {spec.name for spec in parameters_for(VARIANTS[kind].tasks)}
            # Besides ours, rclpy's own (use_sim_time, ...).
            assert declared <= listed, node.log()
            if kind == 'segmentation':
                assert not DETECTION_ONLY & listed
            else:
                assert DETECTION_ONLY <= listed
            assert bool(SEGMENTATION_ONLY & listed) == (kind != 'detection')
            # The shared section's values, but autostart from the command line; the list
            # parameters, which the file leaves out, hold their declared defaults.
            shared = yaml.safe_load(PARAMS_FILE.read_text())['/**']['ros__parameters']
            defaults = {spec.name: spec.default for spec in PARAMETERS}
            assert probe.get_parameters(name, sorted(declared)) == \
                {key: False if key == 'autostart' else shared.get(key, defaults[key])
                 for key in declared}
    finally:
        codes = {kind: node.stop() for kind, node in nodes.items()}
    assert codes == dict.fromkeys(VARIANTS, 0), {k: n.log() for k, n in nodes.items()}


def test_command_line_and_layered_node_sections_beat_the_shared_values(probe, tmp_path):
    layered = tmp_path / 'mine.yaml'
    layered.write_text(yaml.safe_dump({'/**/multitask_node': {'ros__parameters': {
        'backend': 'onnxruntime', 'score_threshold': 0.6}}}))
    node = _start(tmp_path, 'multitask', '-p', 'checkpoint:=/models/x.safetensors',
                  '-p', 'qos_depth:=3', '--params-file', str(layered))
    try:
        values = probe.get_parameters(f'{NAMESPACE}/multitask_node', [
            'checkpoint', 'qos_depth', 'backend', 'score_threshold', 'nms_threshold'])
    finally:
        assert node.stop() == 0, node.log()
    assert values == {'checkpoint': '/models/x.safetensors', 'qos_depth': 3,
                      'backend': 'onnxruntime', 'score_threshold': 0.6, 'nms_threshold': 0.45}
