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
Bring up the multitask perception node on a UAV camera (and optionally the baseline).

ros2 launch mtl_perception uav.launch.py image_topic:=/camera/image_raw [baseline:=true]
ros2 launch mtl_perception uav.launch.py cameras:="[front, down]" \
    camera_topics:="[/uav/front/image_raw, /uav/down/image_raw]"

Arguments: params_file, namespace, image_topic, use_sim_time, log_level, baseline, cameras,
camera_topics. With baseline:=true the single-task detection_node and segmentation_node also
run, under <namespace>/baseline, on the same camera(s) (see baseline.launch.py). With cameras,
one multitask node serves every camera (one model in memory) and publishes each camera's
outputs under <namespace>/<camera>/.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, ThisLaunchFileDir
from launch_ros.substitutions import FindPackageShare
from mtl_perception.ros.launch_helpers import perception_nodes


def generate_launch_description():
    """Return the launch description."""
    params_file = LaunchConfiguration('params_file')
    namespace = LaunchConfiguration('namespace')
    image_topic = LaunchConfiguration('image_topic')
    use_sim_time = LaunchConfiguration('use_sim_time')
    log_level = LaunchConfiguration('log_level')
    cameras = LaunchConfiguration('cameras')
    camera_topics = LaunchConfiguration('camera_topics')
    baseline = LaunchConfiguration('baseline')

    arguments = [
        DeclareLaunchArgument(
            'params_file',
            default_value=PathJoinSubstitution(
                [FindPackageShare('mtl_perception'), 'config', 'mtl_perception.yaml']),
            description='Node parameters (YAML; shared values under /**).'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='Namespace of the nodes and their topics.'),
        DeclareLaunchArgument(
            'image_topic', default_value='/camera/image_raw',
            description='Camera image topic (sensor_msgs/Image). Give it absolute: a relative '
                        'name resolves inside each node namespace, and the baseline nodes '
                        'live one level deeper.'),
        DeclareLaunchArgument('use_sim_time', default_value='false',
                              description='Use /clock (rosbag replay) instead of wall time.'),
        DeclareLaunchArgument('log_level', default_value='info',
                              description='Log level of the nodes.'),
        DeclareLaunchArgument(
            'cameras', default_value='',
            description="Cameras one node serves, e.g. '[front, down]': it subscribes "
                        '<camera>/image (or camera_topics) and publishes <camera>/detections, '
                        "<camera>/segmentation/mask, ... per camera; '' for one camera on "
                        'image_topic. Overrides the params file.'),
        DeclareLaunchArgument(
            'camera_topics', default_value='',
            description="Input image topic of each camera, e.g. '[/uav/front/image_raw, "
                        "/uav/down/image_raw]' (give them absolute); '': <camera>/image."),
        DeclareLaunchArgument('baseline', default_value='false',
                              description='Also run the single-task baseline nodes.'),
    ]
    multitask_node = perception_nodes('multitask', params_file=params_file, namespace=namespace,
                                      image_topic=image_topic, log_level=log_level,
                                      use_sim_time=use_sim_time, cameras=cameras,
                                      camera_topics=camera_topics)
    baseline_nodes = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            PathJoinSubstitution([ThisLaunchFileDir(), 'baseline.launch.py'])),
        launch_arguments={
            'params_file': params_file,
            'namespace': namespace,
            'image_topic': image_topic,
            'use_sim_time': use_sim_time,
            'log_level': log_level,
            'cameras': cameras,
            'camera_topics': camera_topics,
        }.items(),
        condition=IfCondition(baseline),
    )
    return LaunchDescription([*arguments, *multitask_node, baseline_nodes])
