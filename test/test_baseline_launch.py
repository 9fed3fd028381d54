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
Launch test: baseline.launch.py brings up the two single-task nodes.

Both run under <namespace>/baseline (tried with and without a namespace) and must publish
detections and masks stamped like an image sent to the launch's image topic.

Runs under `colcon test` in a ROS 2 workspace; skipped where launch_testing is missing.
"""

from pathlib import Path
import sys
import tempfile
import unittest

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
launch_testing = pytest.importorskip(
    'launch_testing', reason='launch_testing is not installable in this environment (no ROS 2 '
    'distribution); runs under colcon test')

from launch import LaunchDescription  # noqa: E402, I100
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
# launch_test loads this file by path without adding its folder to sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from ros_fixtures import (make_checkpoint, make_image, make_picture, Probe,  # noqa: E402
                          VARIANTS, write_params_file)
from sensor_msgs.msg import Image  # noqa: E402
from vision_msgs.msg import Detection2DArray  # noqa: E402

IMAGE = '/baseline_launch_test/camera/image_raw'


@pytest.mark.launch_test
@launch_testing.parametrize('namespace', ['', 'uav1'])
def generate_test_description(namespace):
    """Include baseline.launch.py with freshly made checkpoints and the test's image topic."""
    directory = Path(tempfile.mkdtemp(prefix='baseline_launch_test_'))
    params = write_params_file(directory / 'params.yaml',
                               {kind: make_checkpoint(directory, kind) for kind in VARIANTS})
    baseline = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(REPO_ROOT / 'launch' / 'baseline.launch.py')),
        launch_arguments={'params_file': str(params), 'image_topic': IMAGE,
                          'namespace': namespace}.items())
    return LaunchDescription([baseline, launch_testing.actions.ReadyToTest()])


class TestOutputs(unittest.TestCase):
    """While the launch runs."""

    def test_detections_and_masks_for_each_image(self, namespace):
        """Both baseline nodes answer an image with outputs stamped like the input."""
        prefix = f'/{namespace}/baseline' if namespace else '/baseline'
        probe = Probe('baseline_launch_probe')
        try:
            probe.subscribe(f'{prefix}/detections', Detection2DArray)
            probe.subscribe(f'{prefix}/segmentation/mask', Image)
            topics = [f'{prefix}/detections', f'{prefix}/segmentation/mask']
            images = probe.publisher(IMAGE, Image)
            subscribers = 2
            probe.wait_for(lambda: images.get_subscription_count() == subscribers, 120.0,
                           'every node subscribed to the image topic')
            msg = make_image(make_picture(96, 72), 'rgb8', 'launch_frame', 3)
            probe.send_until(images, msg, lambda: all(probe.find(t, 'launch_frame')
                                                      for t in topics), 120.0, str(topics))
            for topic in topics:
                self.assertEqual(probe.find(topic, 'launch_frame')[1].header.stamp.sec, 3)
        finally:
            probe.close()


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    """After the launch is shut down."""

    def test_nodes_exit_cleanly(self, proc_info):
        """Every node exits with code 0 on SIGINT."""
        launch_testing.asserts.assertExitCodes(proc_info)
