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
A publisher or subscriber process for the DDS exchange tests.

Run as `python dds_peer.py pub|sub --count N --rate HZ`. The subscriber prints READY once it has
matched both publishers, then one JSON line with what it received. The publisher waits for both
subscribers, then for a line on stdin (the test's go), then publishes N images and N detection
arrays at the given rate.
"""

import argparse
import json
import sys
import time

import numpy as np
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from vision_msgs.msg import BoundingBox2D, Detection2D, Detection2DArray, ObjectHypothesisWithPose

WIDTH, HEIGHT = 640, 480


def _wait(node, predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        rclpy.spin_once(node, timeout_sec=0.05)
    return False


def _image(index: int) -> Image:
    msg = Image(height=HEIGHT, width=WIDTH, encoding='rgb8', step=WIDTH * 3)
    msg.header.frame_id = f'camera_{index}'
    pixels = np.full((HEIGHT, WIDTH, 3), index % 256, dtype=np.uint8)
    pixels[0, 0] = (1, 2, 3)
    msg.data = pixels.tobytes()
    return msg


def _detections(index: int) -> Detection2DArray:
    msg = Detection2DArray()
    msg.header.frame_id = f'camera_{index}'
    hypothesis = ObjectHypothesisWithPose()
    hypothesis.hypothesis.class_id = 'car'
    hypothesis.hypothesis.score = 0.5 + index / 1000.0
    box = BoundingBox2D(size_x=20.0, size_y=10.0)
    box.center.position.x = float(index)
    box.center.position.y = 2.0 * index
    msg.detections = [Detection2D(results=[hypothesis], bbox=box, id=str(index))]
    return msg


def publish(count: int, rate: float) -> int:
    node = rclpy.create_node('dds_peer_pub')
    images = node.create_publisher(Image, 'exchange/image', qos_profile_sensor_data)
    detections = node.create_publisher(Detection2DArray, 'exchange/detections',
                                       qos_profile_sensor_data)
    ready = _wait(node, lambda: images.get_subscription_count() > 0
                  and detections.get_subscription_count() > 0, 30.0)
    if not ready:
        print('publisher: no subscriber matched in 30 s', file=sys.stderr)
        return 1
    sys.stdin.readline()
    period = 1.0 / rate
    start = time.monotonic()
    for index in range(count):
        images.publish(_image(index))
        detections.publish(_detections(index))
        time.sleep(max(0.0, start + (index + 1) * period - time.monotonic()))
    node.destroy_node()
    return 0


def subscribe(count: int, timeout: float) -> int:
    node = rclpy.create_node('dds_peer_sub')
    received = {'images': [], 'detections': [], 'bad': []}

    def on_image(msg: Image) -> None:
        index = int(msg.header.frame_id.split('_')[1])
        pixels = np.frombuffer(msg.data, dtype=np.uint8).reshape(msg.height, msg.width, 3)
        if (msg.width, msg.height) != (WIDTH, HEIGHT) or tuple(pixels[0, 0]) != (1, 2, 3) \
                or int(pixels[-1, -1, 0]) != index % 256:
            received['bad'].append(index)
        received['images'].append(index)

    def on_detections(msg: Detection2DArray) -> None:
        index = int(msg.header.frame_id.split('_')[1])
        det = msg.detections[0]
        class_id = det.results[0].hypothesis.class_id
        if det.bbox.center.position.y != 2.0 * index or class_id != 'car':
            received['bad'].append(index)
        received['detections'].append(index)

    node.create_subscription(Image, 'exchange/image', on_image, qos_profile_sensor_data)
    node.create_subscription(Detection2DArray, 'exchange/detections', on_detections,
                             qos_profile_sensor_data)
    if not _wait(node, lambda: node.count_publishers('exchange/image') > 0
                 and node.count_publishers('exchange/detections') > 0, 30.0):
        print('subscriber: no publisher matched in 30 s', file=sys.stderr)
        return 1
    print('READY', flush=True)
    _wait(node, lambda: len(received['images']) >= count
          and len(received['detections']) >= count, timeout)
    # Linger briefly so late duplicates (which would be a bug) are seen too.
    _wait(node, lambda: False, 0.3)
    print(json.dumps(received), flush=True)
    node.destroy_node()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('role', choices=['pub', 'sub'])
    parser.add_argument('--count', type=int, default=30)
    parser.add_argument('--rate', type=float, default=10.0)
    parser.add_argument('--timeout', type=float, default=30.0)
    args = parser.parse_args()
    rclpy.init()
    try:
        if args.role == 'pub':
            return publish(args.count, args.rate)
        return subscribe(args.count, args.timeout)
    finally:
        rclpy.try_shutdown()


if __name__ == '__main__':
    sys.exit(main())
