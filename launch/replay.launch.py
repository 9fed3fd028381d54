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
Replay a bag through the multitask node (or the baseline) and record its outputs.

For a real ROS 2 install, as the same evaluation `mtl-perception replay` runs without one:

    ros2 launch mtl_perception replay.launch.py bag:=flight/ out_dir:=runs/launch
    ros2 launch mtl_perception replay.launch.py bag:=flight/ out_dir:=runs/launch baseline:=true
    mtl-perception replay --score-only runs/launch --bag flight/

The nodes run under /multitask (or /baseline); `ros2 bag record` writes their detections,
masks, label_info and /diagnostics plus the camera topic to <out_dir>/multitask/output_bag (or
.../baseline/output_bag); `ros2 bag play` starts play_delay seconds after launch (time for the
models to load: frames played before a node is active count as dropped) and the launch shuts
down a few seconds after the bag ends. The scorer takes the recorded camera messages' receive
times as the publish times, so latency there leaves out the camera topic's own transport.
Arguments: params_file, bag, image_topic, baseline, rate, out_dir, play_delay, log_level.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, ExecuteProcess
from launch.actions import RegisterEventHandler, TimerAction
from launch.conditions import IfCondition, UnlessCondition
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

# Seconds between the end of the bag and shutdown, for the outputs of the last frames.
DRAIN_SECONDS = 5.0
OUTPUTS = ('detections', 'segmentation/mask', 'label_info')


def _record(namespace, out_dir, image_topic, condition):
    return ExecuteProcess(
        cmd=['ros2', 'bag', 'record', '-o', [out_dir, namespace, '/output_bag'], image_topic,
             *[f'{namespace}/{topic}' for topic in OUTPUTS], '/diagnostics'],
        output='screen',
        condition=condition,
    )


def generate_launch_description():
    """Return the launch description."""
    params_file = LaunchConfiguration('params_file')
    bag = LaunchConfiguration('bag')
    image_topic = LaunchConfiguration('image_topic')
    baseline = LaunchConfiguration('baseline')
    rate = LaunchConfiguration('rate')
    out_dir = LaunchConfiguration('out_dir')
    play_delay = LaunchConfiguration('play_delay')
    log_level = LaunchConfiguration('log_level')

    arguments = [
        DeclareLaunchArgument(
            'params_file',
            default_value=PathJoinSubstitution(
                [FindPackageShare('mtl_perception'), 'config', 'mtl_perception.yaml']),
            description='Node parameters (YAML with /**/<node name> sections).'),
        DeclareLaunchArgument('bag', description='The input bag (rosbag2 directory).'),
        DeclareLaunchArgument('image_topic', default_value='/camera/image_raw',
                              description='Camera topic in the bag (absolute).'),
        DeclareLaunchArgument('baseline', default_value='false',
                              description='Run the single-task baseline pair instead of the '
                                          'multitask node.'),
        DeclareLaunchArgument('rate', default_value='1.0',
                              description='Playback speed (ros2 bag play --rate).'),
        DeclareLaunchArgument('out_dir', default_value='runs/launch',
                              description='Recordings go to <out_dir>/<multitask|baseline>/'
                                          'output_bag (must not exist yet).'),
        DeclareLaunchArgument('play_delay', default_value='15.0',
                              description='Seconds to wait for the models to load before '
                                          'playing.'),
        DeclareLaunchArgument('log_level', default_value='info',
                              description='Log level of the nodes.'),
    ]
    multitask = UnlessCondition(baseline)
    pair = IfCondition(baseline)
    nodes = [
        Node(
            package='mtl_perception',
            executable='multitask_node',
            name='multitask_node',
            namespace='/multitask',
            parameters=[params_file],
            remappings=[('image', image_topic)],
            arguments=['--ros-args', '--log-level', log_level],
            output='screen',
            condition=multitask,
        ),
        Node(
            package='mtl_perception',
            executable='detection_node',
            name='detection_node',
            namespace='/baseline',
            parameters=[params_file],
            remappings=[('image', image_topic)],
            arguments=['--ros-args', '--log-level', log_level],
            output='screen',
            condition=pair,
        ),
        Node(
            package='mtl_perception',
            executable='segmentation_node',
            name='segmentation_node',
            namespace='/baseline',
            parameters=[params_file],
            remappings=[('image', image_topic)],
            arguments=['--ros-args', '--log-level', log_level],
            output='screen',
            condition=pair,
        ),
    ]
    recorders = [_record('/multitask', out_dir, image_topic, multitask),
                 _record('/baseline', out_dir, image_topic, pair)]
    play = ExecuteProcess(
        cmd=['ros2', 'bag', 'play', bag, '--rate', rate, '--topics', image_topic],
        output='screen')
    shutdown_after_play = RegisterEventHandler(OnProcessExit(
        target_action=play,
        on_exit=[TimerAction(period=DRAIN_SECONDS, actions=[
            EmitEvent(event=Shutdown(reason='bag played'))])]))
    return LaunchDescription([
        *arguments, *nodes, *recorders,
        TimerAction(period=play_delay, actions=[play]),
        shutdown_after_play,
    ])
