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
A minimal ROS process for the socket tests: one node with an image publisher and subscription.

Run as `python socket_peer.py`. It prints READY once its endpoints exist and it has spun for a
moment (so FastDDS has opened every socket it will), then waits for a line on stdin and exits.
"""

import sys
import time

import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image


def main() -> int:
    rclpy.init()
    try:
        node = rclpy.create_node('socket_peer')
        node.create_publisher(Image, 'socket_peer/image', qos_profile_sensor_data)
        node.create_subscription(Image, 'socket_peer/image', lambda msg: None,
                                 qos_profile_sensor_data)
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)
        print('READY', flush=True)
        sys.stdin.readline()
        node.destroy_node()
        return 0
    finally:
        rclpy.try_shutdown()


if __name__ == '__main__':
    sys.exit(main())
