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
Fixtures and helpers for the node tests: tiny checkpoints, node processes, a probe node.

The node tests start the real console scripts as separate processes (they inherit the
loopback-only environment test/conftest.py sets) and talk to them over DDS through ``Probe``,
an rclpy node living in the test process. Every wait has a deadline; nothing sleeps a fixed time.
"""

import array
from collections import defaultdict
import os
from pathlib import Path
import signal
import subprocess
import sys
import time
from typing import Callable, Optional, Union

from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from mtl_perception.inference.checkpoint import save_checkpoint
from mtl_perception.modeling import build_model
from mtl_perception.variants import VARIANTS
import numpy as np
import pytest
from rcl_interfaces.srv import GetParameters, ListParameters, SetParameters
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter, parameter_value_to_python
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
DETECTION_CLASSES = ['car', 'truck', 'bus', 'person', 'bicycle']
SEGMENTATION_CLASSES = ['ground', 'road', 'building', 'vegetation', 'water', 'car', 'truck',
                        'bus', 'person', 'bicycle']
PARAMS_FILE = REPO_ROOT / 'config' / 'mtl_perception.yaml'
TRANSITIONS = {'configure': Transition.TRANSITION_CONFIGURE,
               'activate': Transition.TRANSITION_ACTIVATE,
               'deactivate': Transition.TRANSITION_DEACTIVATE,
               'cleanup': Transition.TRANSITION_CLEANUP}
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
# As the nodes' label_info topics publish: transient local, one publisher per topic.
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


def make_checkpoint(directory: Path, kind: str) -> Path:
    """Save a small random MobileNetV3 network for variant ``kind`` (128 px input); return it."""
    tasks = VARIANTS[kind].tasks
    classes = {'detection': DETECTION_CLASSES, 'segmentation': SEGMENTATION_CLASSES}
    model = build_model('mobilenet_v3_large_ssd_fcn', input_size=128, tasks=tasks,
                        num_classes={task: len(classes[task]) for task in tasks})
    weights, _ = save_checkpoint(model.eval(), directory / f'test_{kind}', {
        'name': f'test_{kind}', 'architecture': 'mobilenet_v3_large_ssd_fcn',
        'classes': {task: classes[task] for task in tasks}})
    return weights


def write_params_file(path: Path, checkpoints: dict) -> Path:
    """
    Write config/mtl_perception.yaml plus a checkpoint section per node; return ``path``.

    ``checkpoints`` maps 'multitask' / 'detection' / 'segmentation' to checkpoint paths. The
    node sections follow the shared ``/**`` one, so they win over it (as a user's would).
    """
    params = yaml.safe_load(PARAMS_FILE.read_text())
    for kind, checkpoint in checkpoints.items():
        params[f'/**/{VARIANTS[kind].node_name}'] = {
            'ros__parameters': {'checkpoint': str(checkpoint)}}
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


@pytest.fixture(scope='session')
def checkpoints(tmp_path_factory) -> dict:
    """Return {'multitask'|'detection'|'segmentation': checkpoint path} (made once)."""
    directory = tmp_path_factory.mktemp('checkpoints')
    return {kind: make_checkpoint(directory, kind) for kind in VARIANTS}


class NodeProcess:
    """A node started through its console script, logging to a file."""

    def __init__(self, executable: str, log_path: Path, *ros_args: str) -> None:
        self.log_path = log_path
        script = Path(sys.executable).parent / executable
        self._log = open(log_path, 'w')
        self.process = subprocess.Popen(
            [str(script), '--ros-args', '--params-file', str(PARAMS_FILE), *ros_args],
            stdout=self._log, stderr=subprocess.STDOUT, env=dict(os.environ))

    def log(self) -> str:
        """Return what the node printed so far."""
        return self.log_path.read_text()

    def stop(self) -> int:
        """Interrupt the node (as Ctrl-C would) and return its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


def make_image(pixels: np.ndarray, encoding: str, frame_id: str, stamp_sec: int = 0,
               padding: int = 0) -> Image:
    """Return an Image of ``pixels`` [H, W, C] already in ``encoding``'s channel order."""
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1)
    if padding:
        rows = np.concatenate([rows, np.full((height, padding), 7, np.uint8)], axis=1)
    header = Header(frame_id=frame_id)
    header.stamp.sec = stamp_sec
    header.stamp.nanosec = 123
    msg = Image(header=header, height=height, width=width, encoding=encoding,
                step=rows.shape[1])
    data = array.array('B')
    data.frombytes(np.ascontiguousarray(rows).data)
    msg.data = data
    return msg


def make_picture(width: int = 96, height: int = 72, seed: int = 0) -> np.ndarray:
    """Return a reproducible uint8 RGB picture [H, W, 3] with some structure."""
    rng = np.random.default_rng(seed)
    picture = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
    return np.repeat(np.repeat(picture, 8, axis=0), 8, axis=1)


class Probe:
    """An rclpy node in the test process that publishes inputs and records every output."""

    def __init__(self, name: str) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.received = defaultdict(list)

    def subscribe(self, topic: str, msg_type, qos: QoSProfile = RELIABLE) -> list:
        """Record (monotonic receive time, message) of ``topic``; return the live list."""
        records = self.received[topic]
        self.node.create_subscription(
            msg_type, topic, lambda msg: records.append((time.monotonic(), msg)), qos)
        return records

    def publisher(self, topic: str, msg_type, qos: QoSProfile = RELIABLE):
        """Create a publisher and wait until a subscriber matches it."""
        publisher = self.node.create_publisher(msg_type, topic, qos)
        self.wait_for(lambda: publisher.get_subscription_count() > 0, 30.0,
                      f'a subscriber on {topic}')
        return publisher

    def wait_for(self, predicate: Callable[[], bool], timeout: float,
                 what: Union[str, Callable[[], str]]) -> None:
        """
        Spin until ``predicate()`` holds; fail naming ``what`` after ``timeout`` seconds.

        ``what`` may be a callable, evaluated only on failure (e.g. to attach a node's log).
        """
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                what = what() if callable(what) else what
                raise AssertionError(f'timed out after {timeout} s waiting for {what}')
            self.executor.spin_once(timeout_sec=0.02)

    def find(self, topic: str, frame_id: str) -> Optional[tuple]:
        """Return the first recorded (time, message) on ``topic`` with this frame_id."""
        for record in self.received[topic]:
            if record[1].header.frame_id == frame_id:
                return record
        return None

    def send_until(self, publisher, msg, predicate: Callable[[], bool], timeout: float,
                   what: str, every: float = 1.0) -> float:
        """
        Publish ``msg`` (again every ``every`` s) until ``predicate()``; return first send.

        Resending covers a best-effort sample lost right after discovery.
        """
        first = time.monotonic()
        deadline = first + timeout
        while True:
            publisher.publish(msg)
            try:
                self.wait_for(predicate, min(every, max(deadline - time.monotonic(), 0.01)),
                              what)
                return first
            except AssertionError:
                if time.monotonic() > deadline:
                    raise

    def call(self, srv_type, name: str, request, timeout: float = 30.0, attempts: int = 1):
        """
        Call a service and return its response.

        ``attempts`` > 1 (for queries only: a repeated transition would fail) asks again when
        no response came within ``timeout / attempts``: Fast DDS may drop a response it sends
        before the client's reader is matched ("failed to send response (timeout)").
        """
        client = self.node.create_client(srv_type, name)
        try:
            self.wait_for(client.service_is_ready, timeout, f'service {name}')
            for attempt in range(attempts):
                future = client.call_async(request)
                try:
                    self.wait_for(future.done, timeout / attempts, f'a response from {name}')
                    return future.result()
                except AssertionError:
                    if attempt + 1 == attempts:
                        raise
        finally:
            self.node.destroy_client(client)

    def get_state(self, node: str) -> str:
        """Return the lifecycle state label of ``node`` (fully qualified name)."""
        return self.call(GetState, f'{node}/get_state', GetState.Request(),
                         attempts=3).current_state.label

    def change_state(self, node: str, transition: str) -> bool:
        """Request a lifecycle transition by name; return whether it succeeded."""
        request = ChangeState.Request()
        request.transition.id = TRANSITIONS[transition]
        return self.call(ChangeState, f'{node}/change_state', request, timeout=60.0).success

    def set_parameter(self, node: str, name: str, value) -> None:
        """Set one parameter of ``node`` through its parameter service."""
        request = SetParameters.Request(
            parameters=[Parameter(name, value=value).to_parameter_msg()])
        response = self.call(SetParameters, f'{node}/set_parameters', request)
        assert response.results[0].successful, response.results[0].reason

    def list_parameters(self, node: str) -> set:
        """Return the names of the parameters ``node`` declares (as ``ros2 param list``)."""
        return set(self.call(ListParameters, f'{node}/list_parameters',
                             ListParameters.Request()).result.names)

    def get_parameters(self, node: str, names: list) -> dict:
        """Return ``{name: value}`` of ``node``'s parameters (as ``ros2 param get``)."""
        response = self.call(GetParameters, f'{node}/get_parameters',
                             GetParameters.Request(names=names))
        return {name: parameter_value_to_python(value)
                for name, value in zip(names, response.values)}

    def diagnostics(self, node: str) -> dict:
        """Return the values of the newest /diagnostics status from ``node`` ({} if none)."""
        for _, msg in reversed(self.received['/diagnostics']):
            for status in msg.status:
                if status.name == node:
                    return {item.key: item.value for item in status.values}
        return {}

    def settled(self, node: str, min_processed: int = 0) -> dict:
        """Wait until ``node`` has no frame pending (and processed enough); return its stats."""
        def settled() -> bool:
            stats = self.diagnostics(node)
            return bool(stats) and stats['frames_pending'] == '0' \
                and int(stats['frames_processed']) >= min_processed
        self.wait_for(settled, 20.0, lambda: f'settled counters; last: {self.diagnostics(node)}')
        return self.diagnostics(node)

    def counter(self, node: str, key: str) -> int:
        """Return one integer diagnostics counter of ``node`` (-1 before any report)."""
        return int(self.diagnostics(node).get(key, -1))

    def close(self) -> None:
        """Destroy the probe node and its context."""
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
