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
The launch files and the params file, checked without `launch` (not installable here).

Every Node in launch/*.launch.py must name a console script setup.py declares, every file a
launch file points to must exist and be installed by setup.py's data_files, and the params
file must set only parameters the nodes declare.
"""

import ast
import fnmatch
import importlib
from pathlib import Path

from mtl_perception.ros.parameters import PARAMETERS
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent

LAUNCH_FILES = sorted((REPO_ROOT / 'launch').glob('*.launch.py'))
LAUNCH_ARGUMENTS = {
    'uav.launch.py': {'params_file', 'namespace', 'image_topic', 'use_sim_time', 'log_level',
                      'baseline'},
    'baseline.launch.py': {'params_file', 'namespace', 'image_topic', 'use_sim_time',
                           'log_level'},
    'replay.launch.py': {'params_file', 'bag', 'image_topic', 'baseline', 'rate', 'out_dir',
                         'play_delay', 'log_level'},
}
NODE_NAMES = ('multitask_node', 'detection_node', 'segmentation_node')


def _calls(tree: ast.AST, name: str) -> list:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)
            and getattr(node.func, 'id', getattr(node.func, 'attr', None)) == name]


def _keyword(call: ast.Call, name: str):
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value
    return None


def _setup_py() -> tuple:
    """Return (console script name -> target, data_files glob patterns) from setup.py."""
    tree = ast.parse((REPO_ROOT / 'setup.py').read_text())
    scripts = {}
    for constant in ast.walk(tree):
        if isinstance(constant, ast.Constant) and isinstance(constant.value, str) \
                and ' = ' in constant.value and ':' in constant.value:
            name, target = constant.value.split(' = ')
            scripts[name.strip()] = target.strip()
    patterns = [call.args[0].value for call in _calls(tree, '_files')]
    return scripts, patterns


def _referenced_files(tree: ast.AST, launch_file) -> list:
    """Return the repository paths a launch file's PathJoinSubstitution calls point to."""
    files = []
    for call in _calls(tree, 'PathJoinSubstitution'):
        parts = call.args[0].elts
        root = getattr(parts[0].func, 'id', None)
        names = [part.value for part in parts[1:]]
        if root == 'ThisLaunchFileDir':
            files.append(launch_file.parent.relative_to(REPO_ROOT).joinpath(*names))
        else:
            assert root == 'FindPackageShare' and parts[0].args[0].value == 'mtl_perception'
            files.append(REPO_ROOT.joinpath(*names).relative_to(REPO_ROOT))
    return files


def test_launch_files_exist():
    assert {path.name for path in LAUNCH_FILES} == set(LAUNCH_ARGUMENTS)


@pytest.mark.parametrize('launch_file', LAUNCH_FILES, ids=lambda path: path.name)
def test_nodes_name_declared_console_scripts(launch_file):
    tree = ast.parse(launch_file.read_text())
    scripts, _ = _setup_py()
    nodes = _calls(tree, 'Node')
    assert nodes, f'{launch_file.name} starts no Node'
    for node in nodes:
        assert _keyword(node, 'package').value == 'mtl_perception'
        executable = _keyword(node, 'executable').value
        assert executable in scripts, f'{executable} is not a console script in setup.py'
        assert _keyword(node, 'name').value == executable
        module, function = scripts[executable].split(':')
        assert callable(getattr(importlib.import_module(module), function))
        remapped = [element.elts[0].value for element in _keyword(node, 'remappings').elts]
        assert remapped == ['image']
        parameters = _keyword(node, 'parameters').elts
        assert isinstance(parameters[0], ast.Name) and parameters[0].id == 'params_file'


@pytest.mark.parametrize('launch_file', LAUNCH_FILES, ids=lambda path: path.name)
def test_referenced_files_exist_and_are_installed(launch_file):
    tree = ast.parse(launch_file.read_text())
    _, patterns = _setup_py()
    referenced = _referenced_files(tree, launch_file)
    assert referenced, f'{launch_file.name} references no package file'
    for path in referenced:
        assert (REPO_ROOT / path).is_file(), f'{path} does not exist'
        assert any(fnmatch.fnmatch(str(path), pattern) for pattern in patterns), \
            f'{path} is not installed by setup.py data_files ({patterns})'


@pytest.mark.parametrize('launch_file', LAUNCH_FILES, ids=lambda path: path.name)
def test_launch_arguments_and_declarative_style(launch_file):
    text = launch_file.read_text()
    tree = ast.parse(text)
    declared = {call.args[0].value for call in _calls(tree, 'DeclareLaunchArgument')}
    assert declared == LAUNCH_ARGUMENTS[launch_file.name]
    for forbidden in ('OpaqueFunction', 'PythonExpression', 'subprocess', 'eval('):
        assert forbidden not in text, f'{launch_file.name} uses {forbidden}'
    defaults = {call.args[0].value: _keyword(call, 'default_value')
                for call in _calls(tree, 'DeclareLaunchArgument')}
    # An absolute default keeps the baseline nodes (one namespace deeper) on the same camera.
    assert defaults['image_topic'].value.startswith('/')


def test_uav_launch_includes_the_baseline_under_its_argument():
    tree = ast.parse((REPO_ROOT / 'launch' / 'uav.launch.py').read_text())
    (include,) = _calls(tree, 'IncludeLaunchDescription')
    condition = _keyword(include, 'condition')
    assert condition.func.id == 'IfCondition' and condition.args[0].id == 'baseline'


def test_params_file_sets_only_declared_parameters():
    params = yaml.safe_load((REPO_ROOT / 'config' / 'mtl_perception.yaml').read_text())
    # Node keys with a namespace wildcard match the nodes under any launch namespace; no '/**'
    # key, which would make node sections beat `-p` command-line overrides.
    assert set(params) == {f'/**/{name}' for name in NODE_NAMES}
    declared = {spec.name: spec for spec in PARAMETERS}
    for node, section in params.items():
        values = section['ros__parameters']
        assert set(values) == set(declared), node
        for name, value in values.items():
            assert type(value) is type(declared[name].default), (node, name, value)


def test_replay_launch_records_what_the_scorer_reads():
    """The recordings land where `mtl-perception replay --score-only` looks, with its topics."""
    from mtl_perception.replay.run_files import OUTPUT_BAG, TASK_TOPICS
    tree = ast.parse((REPO_ROOT / 'launch' / 'replay.launch.py').read_text())
    conditions = {}
    for node in _calls(tree, 'Node'):
        condition = _keyword(node, 'condition').id
        conditions[_keyword(node, 'executable').value] = (_keyword(node, 'namespace').value,
                                                          condition)
    assert conditions == {'multitask_node': ('/multitask', 'multitask'),
                          'detection_node': ('/baseline', 'pair'),
                          'segmentation_node': ('/baseline', 'pair')}
    recorded = {}
    for call in _calls(tree, '_record'):
        recorded[call.args[0].value] = _keyword(call, 'condition') or call.args[3]
    assert {name: arg.id for name, arg in recorded.items()} == {'/multitask': 'multitask',
                                                                '/baseline': 'pair'}
    (record,) = [call for call in _calls(tree, 'ExecuteProcess')
                 if 'record' in ast.unparse(_keyword(call, 'cmd'))]
    command = ast.unparse(_keyword(record, 'cmd'))
    assert f"'/{OUTPUT_BAG}'" in command and "'/diagnostics'" in command
    outputs = {elt.value for elt in ast.walk(tree) if isinstance(elt, ast.Constant)}
    assert {topic for topic, _ in TASK_TOPICS.values()} <= outputs
    (play,) = [call for call in _calls(tree, 'ExecuteProcess')
               if 'play' in ast.unparse(_keyword(call, 'cmd'))]
    assert "'--topics', image_topic" in ast.unparse(_keyword(play, 'cmd'))
    handlers = _calls(tree, 'OnProcessExit')
    assert len(handlers) == 1 and _keyword(handlers[0], 'target_action').id == 'play'
