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
What the launch files in ``launch/`` compose: the node descriptions and a required process.

``perception_nodes`` describes the nodes of one configuration (the multitask node, or the
baseline pair; see :mod:`mtl_perception.variants`) as ``launch_ros`` LifecycleNodes, so the
three launch files share one definition. The nodes activate themselves (their ``autostart``
parameter); as LifecycleNodes, launch also sees their state transitions, and a lifecycle
manager can drive them instead (``autostart: false`` in the params file).

``required`` makes a process's early end fail the launch. ``ros2 launch`` exits non-zero
only when an exception reaches the launch service: a plain ``Shutdown`` event, whatever its
reason, ends the launch with code 0. So the exit handler raises, which launch reports
(``Caught exception in launch``) before it shuts everything down and returns 1.

``launch`` and ``launch_ros`` are imported inside the functions: this module is imported by
launch files, which only run where they are installed.
"""

from mtl_perception.variants import CONFIGURATIONS

PACKAGE = 'mtl_perception'


def perception_nodes(config: str, *, params_file, namespace, image_topic, log_level,
                     use_sim_time=None, cameras=None, camera_topics=None,
                     condition=None) -> list:
    """
    Return the LifecycleNode descriptions of the nodes of ``config``.

    Every node gets the params file (plus ``use_sim_time``, ``cameras`` and ``camera_topics``
    when given, which override the file), its relative ``image`` topic remapped to
    ``image_topic`` and the log level; its node name is its console script's name.

    :param config: 'multitask' (the multitask node) or 'baseline' (detection_node and
        segmentation_node).
    :param params_file: the YAML parameters file (substitution or path).
    :param namespace: the nodes' namespace (substitutions allowed).
    :param image_topic: the camera topic ``image`` is remapped to (give it absolute).
    :param log_level: the nodes' log level.
    :param use_sim_time: the ``use_sim_time`` parameter; None leaves it to the params file.
    :param cameras: the ``cameras`` parameter as a string ('' for one camera on ``image``,
        '[front, down]' for one node serving both); None leaves it to the params file.
    :param camera_topics: the ``camera_topics`` parameter, likewise.
    :param condition: launch condition of every node (e.g. ``IfCondition(baseline)``).
    """
    from launch_ros.actions import LifecycleNode
    from launch_ros.parameter_descriptions import ParameterValue

    parameters = [params_file]
    overrides = {}
    if use_sim_time is not None:
        overrides['use_sim_time'] = use_sim_time
    # Passed as strings: the node parses '[front, down]', and '' would have no type as a list.
    for name, value in (('cameras', cameras), ('camera_topics', camera_topics)):
        if value is not None:
            overrides[name] = ParameterValue(value, value_type=str)
    if overrides:
        parameters.append(overrides)
    return [LifecycleNode(
        package=PACKAGE,
        executable=variant.node_name,
        name=variant.node_name,
        namespace=namespace,
        parameters=parameters,
        remappings=[('image', image_topic)],
        arguments=['--ros-args', '--log-level', log_level],
        output='screen',
        condition=condition,
    ) for variant in CONFIGURATIONS[config]]


def required(process, on_success=None):
    """
    Return an event handler that fails the launch when ``process`` ends before shutdown.

    An end after the launch began shutting down (Ctrl-C, or the end of the run) is normal.
    Before that, exit code 0 runs ``on_success`` when given (e.g. the bag player finishing);
    any other end raises, so ``ros2 launch`` shuts down and exits 1.

    :param process: the ExecuteProcess (or Node) action to watch.
    :param on_success: actions to run when it exits 0; None: exiting at all is a failure.
    """
    from launch.actions import RegisterEventHandler
    from launch.event_handlers import OnProcessExit

    def on_exit(event, context):
        if context.is_shutdown:
            return None
        if event.returncode == 0 and on_success is not None:
            return on_success
        raise RuntimeError(f'{event.process_name} exited with code {event.returncode} before '
                           'the launch was shut down')

    return RegisterEventHandler(OnProcessExit(target_action=process, on_exit=on_exit))
