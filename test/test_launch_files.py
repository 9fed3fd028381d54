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

Two views of each launch file. Its text: the declared arguments, no imperative escapes
(OpaqueFunction, eval, subprocess), no node built outside the one helper, and every package
file it points to exists and is installed. Its result: ``generate_launch_description()`` runs
against stand-in ``launch``/``launch_ros`` modules whose classes only record their arguments,
so the tests see the LifecycleNodes the helper builds (console script, name, namespace,
params file, remapping, condition) and the replay's exit handlers, which they call with
made-up exit events. (test_uav_launch.py and test_baseline_launch.py run the files for real
under launch_testing.)
"""

import ast
import fnmatch
import importlib
import importlib.util
from pathlib import Path
import sys
import types

from mtl_perception.replay.run_files import GROUND_OUTPUT, OUTPUT_BAG, TASK_TOPICS
from mtl_perception.ros.conversions import LABEL_INFO_TOPICS
from mtl_perception.ros.parameters import PARAMETERS
from mtl_perception.variants import CONFIGURATIONS
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent

LAUNCH_FILES = sorted((REPO_ROOT / 'launch').glob('*.launch.py'))
LAUNCH_ARGUMENTS = {
    'uav.launch.py': {'params_file', 'namespace', 'image_topic', 'use_sim_time', 'log_level',
                      'baseline', 'cameras', 'camera_topics'},
    'baseline.launch.py': {'params_file', 'namespace', 'image_topic', 'use_sim_time',
                           'log_level', 'cameras', 'camera_topics'},
    'replay.launch.py': {'params_file', 'bag', 'image_topic', 'camera_info_topic', 'pose_topic',
                         'baseline', 'rate', 'out_dir', 'play_delay', 'log_level'},
}
HELPERS = 'mtl_perception.ros.launch_helpers'
STUBBED_MODULES = ('launch', 'launch.actions', 'launch.conditions', 'launch.event_handlers',
                   'launch.events', 'launch.launch_description_sources',
                   'launch.substitutions', 'launch_ros', 'launch_ros.actions',
                   'launch_ros.parameter_descriptions', 'launch_ros.substitutions')


# The text of the launch files -----------------------------------------------------------------

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
def test_nodes_come_from_the_one_helper(launch_file):
    tree = ast.parse(launch_file.read_text())
    for name in ('Node', 'LifecycleNode', 'ComposableNode'):
        assert not _calls(tree, name), f'{launch_file.name} builds a {name} itself'
    imported = {(node.module, alias.name) for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert (HELPERS, 'perception_nodes') in imported
    assert _calls(tree, 'perception_nodes')


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


# What the launch files build, against stand-in launch modules -----------------------------

class Recorded:
    """An instance of a stand-in launch class: its class name and constructor arguments."""

    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs

    def __eq__(self, other) -> bool:
        return type(other).__name__ == type(self).__name__ \
            and (other.args, other.kwargs) == (self.args, self.kwargs)

    __hash__ = None

    def __repr__(self) -> str:
        return f'{type(self).__name__}(*{self.args!r}, **{self.kwargs!r})'


class _StubModule(types.ModuleType):
    """A module whose every public attribute is a Recorded subclass of that name."""

    def __getattr__(self, name: str):
        if name.startswith('__'):
            raise AttributeError(name)
        cls = type(name, (Recorded,), {})
        setattr(self, name, cls)
        return cls


def _kind(entity) -> str:
    return type(entity).__name__


def _config(name: str) -> Recorded:
    return sys.modules['launch.substitutions'].LaunchConfiguration(name)


@pytest.fixture
def stubs(monkeypatch):
    """Put stand-in launch / launch_ros modules in sys.modules for this test only."""
    for name in STUBBED_MODULES:
        monkeypatch.setitem(sys.modules, name, _StubModule(name))
    # The helper imports launch_ros inside its functions, so it sees the stand-ins.
    return importlib.import_module(HELPERS)


def _generate(name: str) -> list:
    """Run launch/<name>'s generate_launch_description(); return the entities it lists."""
    spec = importlib.util.spec_from_file_location(name.replace('.', '_'),
                                                  REPO_ROOT / 'launch' / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert _kind(description) == 'LaunchDescription'
    (entities,) = description.args
    arguments = [e.args[0] for e in entities if _kind(e) == 'DeclareLaunchArgument']
    assert sorted(arguments) == sorted(LAUNCH_ARGUMENTS[name])
    return entities


def _nodes(entities: list) -> dict:
    nodes = [e for e in entities if _kind(e) == 'LifecycleNode']
    assert len({node.kwargs['name'] for node in nodes}) == len(nodes)
    return {node.kwargs['name']: node.kwargs for node in nodes}


def _check_node(node: dict, use_sim_time: bool, cameras: bool = False) -> None:
    """Check what every node gets: its console script, the params file, the camera remap."""
    scripts, _ = _setup_py()
    assert node['package'] == 'mtl_perception'
    assert node['executable'] == node['name'] and node['executable'] in scripts
    module, function = scripts[node['executable']].split(':')
    assert callable(getattr(importlib.import_module(module), function))
    parameters = node['parameters']
    assert parameters[0] == _config('params_file')
    overrides = {'use_sim_time': _config('use_sim_time')} if use_sim_time else {}
    if cameras:
        value = sys.modules['launch_ros.parameter_descriptions'].ParameterValue
        overrides.update({name: value(_config(name), value_type=str)
                          for name in ('cameras', 'camera_topics')})
    assert parameters[1:] == ([overrides] if overrides else [])
    assert node['remappings'] == [('image', _config('image_topic'))]
    assert node['arguments'] == ['--ros-args', '--log-level', _config('log_level')]


def test_uav_launch_runs_the_multitask_node_and_includes_the_baseline(stubs):
    entities = _generate('uav.launch.py')
    nodes = _nodes(entities)
    assert list(nodes) == ['multitask_node']
    _check_node(nodes['multitask_node'], use_sim_time=True, cameras=True)
    assert nodes['multitask_node']['namespace'] == _config('namespace')
    assert nodes['multitask_node']['condition'] is None
    (include,) = [e for e in entities if _kind(e) == 'IncludeLaunchDescription']
    assert include.kwargs['condition'] == sys.modules['launch.conditions'].IfCondition(
        _config('baseline'))
    passed = dict(include.kwargs['launch_arguments'])
    assert passed == {name: _config(name) for name in LAUNCH_ARGUMENTS['baseline.launch.py']}


def test_baseline_launch_runs_the_pair_one_namespace_deeper(stubs):
    nodes = _nodes(_generate('baseline.launch.py'))
    assert list(nodes) == [variant.node_name for variant in CONFIGURATIONS['baseline']]
    for node in nodes.values():
        _check_node(node, use_sim_time=True, cameras=True)
        assert node['namespace'] == [_config('namespace'), '/baseline']


def test_replay_launch_runs_one_configuration_and_records_what_the_scorer_reads(stubs):
    """The recordings land where `mtl-perception replay --score-only` looks, with its topics."""
    conditions = sys.modules['launch.conditions']
    multitask = conditions.UnlessCondition(_config('baseline'))
    pair = conditions.IfCondition(_config('baseline'))
    entities = _generate('replay.launch.py')
    nodes = _nodes(entities)
    expected = {'multitask_node': ('/multitask', multitask),
                'detection_node': ('/baseline', pair),
                'segmentation_node': ('/baseline', pair)}
    assert {name: (node['namespace'], node['condition']) for name, node in nodes.items()} == \
        expected
    for node in nodes.values():
        _check_node(node, use_sim_time=False)
    processes = [e for e in entities if _kind(e) == 'ExecuteProcess']
    recorders = {process.kwargs['cmd'][4][1]: process for process in processes}
    assert sorted(recorders) == ['/baseline', '/multitask'] and len(processes) == 2
    for namespace, condition in (('/multitask', multitask), ('/baseline', pair)):
        record = recorders[namespace].kwargs
        assert record['condition'] == condition
        command = record['cmd']
        assert command[:4] == ['ros2', 'bag', 'record', '-o']
        assert command[4] == [_config('out_dir'), namespace, f'/{OUTPUT_BAG}']
        topics = [topic for topic in command[5:] if isinstance(topic, str)]
        wanted = [topic for topic, _ in TASK_TOPICS.values()] + \
            list(LABEL_INFO_TOPICS.values()) + [GROUND_OUTPUT[0]]
        assert {f'{namespace}/{topic}' for topic in wanted} | {'/diagnostics'} == set(topics)
        assert _config('image_topic') in command
    (timer,) = [e for e in entities if _kind(e) == 'TimerAction']
    assert timer.kwargs['period'] == _config('play_delay')
    (play,) = timer.kwargs['actions']
    assert play.kwargs['cmd'] == ['ros2', 'bag', 'play', _config('bag'), '--rate',
                                  _config('rate'), '--topics', _config('image_topic'),
                                  _config('camera_info_topic'), _config('pose_topic')]
    handlers = [e.args[0] for e in entities if _kind(e) == 'RegisterEventHandler']
    watched = [handler.kwargs['target_action'] for handler in handlers]
    assert all(_kind(handler) == 'OnProcessExit' for handler in handlers)
    # The player, both recorders and every node: each is watched once.
    assert len(watched) == 1 + len(processes) + len(nodes)
    for action in [play, *processes, *[e for e in entities if _kind(e) == 'LifecycleNode']]:
        assert sum(other is action for other in watched) == 1, action
    on_play_exit = handlers[[w is play for w in watched].index(True)].kwargs['on_exit']
    (drain,) = on_play_exit(_Exit(0), _Context(False))
    assert _kind(drain) == 'TimerAction' and drain.kwargs['period'] > 0
    (shutdown,) = drain.kwargs['actions']
    assert _kind(shutdown) == 'EmitEvent' and _kind(shutdown.kwargs['event']) == 'Shutdown'
    with pytest.raises(RuntimeError, match='ros2-1 exited with code 1 before the launch'):
        on_play_exit(_Exit(1), _Context(False))


class _Exit:
    """A stand-in ProcessExited event."""

    def __init__(self, returncode: int) -> None:
        self.returncode, self.process_name = returncode, 'ros2-1'


class _Context:
    """A stand-in LaunchContext."""

    def __init__(self, is_shutdown: bool) -> None:
        self.is_shutdown = is_shutdown


@pytest.mark.parametrize('on_success', [None, ['then']])
def test_a_required_process_fails_the_launch_only_before_shutdown(stubs, on_success):
    process = object()
    handler = stubs.required(process, on_success=on_success)
    assert _kind(handler) == 'RegisterEventHandler'
    (exit_handler,) = handler.args
    assert exit_handler.kwargs['target_action'] is process
    on_exit = exit_handler.kwargs['on_exit']
    # Ending with the launch (Ctrl-C, end of the run) is normal, whatever the exit code.
    for code in (0, 1, -2):
        assert on_exit(_Exit(code), _Context(True)) is None
    # Before that, a failure always fails the launch; exit code 0 only with on_success.
    for code in (1, -9):
        with pytest.raises(RuntimeError, match=f'exited with code {code}'):
            on_exit(_Exit(code), _Context(False))
    if on_success is None:
        with pytest.raises(RuntimeError, match='exited with code 0'):
            on_exit(_Exit(0), _Context(False))
    else:
        assert on_exit(_Exit(0), _Context(False)) == on_success


def test_perception_nodes_follow_the_variants_table(stubs):
    for config, variants in CONFIGURATIONS.items():
        nodes = stubs.perception_nodes(config, params_file='p.yaml', namespace='/ns',
                                       image_topic='/cam', log_level='warn')
        assert [node.kwargs['name'] for node in nodes] == [v.node_name for v in variants]
        for node in nodes:
            assert _kind(node) == 'LifecycleNode'
            assert node.kwargs['parameters'] == ['p.yaml']
            assert (node.kwargs['namespace'], node.kwargs['remappings']) == \
                ('/ns', [('image', '/cam')])


# The params file --------------------------------------------------------------------------------

def test_params_file_holds_every_parameter_once_under_the_wildcard():
    params = yaml.safe_load((REPO_ROOT / 'config' / 'mtl_perception.yaml').read_text())
    # One '/**' section: no node section, which would beat `-p` overrides (after '/**') or be
    # beaten by this file's '/**' values in a user's file layered after it (before '/**').
    assert list(params) == ['/**']
    values = params['/**']['ros__parameters']
    declared = {spec.name: spec for spec in PARAMETERS}
    # The list parameters have no value here (commented examples): rcl lets a string beat an
    # array for the same key in any order, so a '' default would beat a user's array.
    lists = {spec.name for spec in PARAMETERS if spec.dynamic_typing}
    assert lists == {'cameras', 'camera_topics'}
    assert set(values) == set(declared) - lists
    text = (REPO_ROOT / 'config' / 'mtl_perception.yaml').read_text()
    assert all(f'    # {name}: [' in text for name in lists)
    for name, value in values.items():
        assert type(value) is type(declared[name].default), (name, value)
    assert values['checkpoint'] == ''  # each node's own demo model
