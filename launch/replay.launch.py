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
ground positions (detections_3d), masks, per-task label_info and /diagnostics plus the camera
topic to
<out_dir>/multitask/output_bag (or .../baseline/output_bag); `ros2 bag play` starts play_delay
seconds after launch (time for the models to load: frames played before a node is active count
as dropped) and the launch shuts down a few seconds after the bag ends, with exit code 0. If
the player fails, or the recorder or a node ends before that, the launch stops at once and
exits 1, so a script can trust a zero exit. The scorer takes the recorded camera messages'
receive times as the publish times, so latency there leaves out the camera topic's own
transport.
The player also plays the camera's intrinsics and pose (camera_info_topic, pose_topic: the
synthetic flights' /camera/camera_info and /camera/pose; topics the bag lacks are skipped) for
the nodes' ground positions.
Arguments: params_file, bag, image_topic, camera_info_topic, pose_topic, baseline, rate,
out_dir, play_delay, log_level.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, ExecuteProcess, TimerAction
from launch.conditions import IfCondition, UnlessCondition
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare
from mtl_perception.ros.launch_helpers import perception_nodes, required

# Seconds between the end of the bag and shutdown, for the outputs of the last frames.
DRAIN_SECONDS = 5.0
OUTPUTS = ('detections', 'detections_3d', 'segmentation/mask', 'detections/label_info',
           'segmentation/label_info')


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
    camera_info_topic = LaunchConfiguration('camera_info_topic')
    pose_topic = LaunchConfiguration('pose_topic')
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
            description='Node parameters (YAML; shared values under /**).'),
        DeclareLaunchArgument('bag', description='The input bag (rosbag2 directory).'),
        DeclareLaunchArgument('image_topic', default_value='/camera/image_raw',
                              description='Camera topic in the bag (absolute).'),
        DeclareLaunchArgument('camera_info_topic', default_value='/camera/camera_info',
                              description='Camera intrinsics in the bag (absolute); the nodes '
                                          'read them beside the image topic.'),
        DeclareLaunchArgument('pose_topic', default_value='/camera/pose',
                              description='Camera optical-frame pose in the bag (absolute); '
                                          'the nodes read it beside the image topic.'),
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
        *perception_nodes('multitask', params_file=params_file, namespace='/multitask',
                          image_topic=image_topic, log_level=log_level, condition=multitask),
        *perception_nodes('baseline', params_file=params_file, namespace='/baseline',
                          image_topic=image_topic, log_level=log_level, condition=pair),
    ]
    recorders = [_record('/multitask', out_dir, image_topic, multitask),
                 _record('/baseline', out_dir, image_topic, pair)]
    play = ExecuteProcess(
        cmd=['ros2', 'bag', 'play', bag, '--rate', rate, '--topics', image_topic,
             camera_info_topic, pose_topic],
        output='screen')
    # The bag's end shuts the launch down (exit 0) after the drain; a failed player, or a
    # recorder or node that ends first, fails it (exit 1).
    shutdown_after_play = required(play, on_success=[TimerAction(
        period=DRAIN_SECONDS, actions=[EmitEvent(event=Shutdown(reason='bag played'))])])
    return LaunchDescription([
        *arguments, *nodes, *recorders,
        TimerAction(period=play_delay, actions=[play]),
        shutdown_after_play,
        *[required(process) for process in [*recorders, *nodes]],
    ])
