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
Bring up the single-task baseline: detection_node and segmentation_node on the camera(s).

ros2 launch mtl_perception baseline.launch.py image_topic:=/camera/image_raw

Both nodes run under <namespace>/baseline, so their topics (baseline/detections,
baseline/segmentation/mask, ...) sit beside the multitask node's for a side-by-side comparison.
With cameras:="[front, down]" each node serves every camera (baseline/front/detections, ...).
Arguments: params_file, namespace, image_topic, use_sim_time, log_level, cameras,
camera_topics.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
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

    arguments = [
        DeclareLaunchArgument(
            'params_file',
            default_value=PathJoinSubstitution(
                [FindPackageShare('mtl_perception'), 'config', 'mtl_perception.yaml']),
            description='Node parameters (YAML; shared values under /**).'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='Namespace; the nodes run under <namespace>/baseline.'),
        DeclareLaunchArgument(
            'image_topic', default_value='/camera/image_raw',
            description='Camera image topic (sensor_msgs/Image); give it absolute.'),
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
    ]
    # namespace '' gives '/baseline', 'uav1' gives 'uav1/baseline'.
    nodes = perception_nodes('baseline', params_file=params_file,
                             namespace=[namespace, '/baseline'], image_topic=image_topic,
                             log_level=log_level, use_sim_time=use_sim_time, cameras=cameras,
                             camera_topics=camera_topics)
    return LaunchDescription([*arguments, *nodes])
