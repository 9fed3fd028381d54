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
The node process stops cleanly on any number of SIGINT/SIGTERM, whenever they arrive.

A terminal Ctrl-C under ``ros2 launch`` delivers two SIGINTs in quick succession (the process
group's, then the one launch forwards), the second during the node's cleanup. Whatever the
moment (still importing, model loading, streaming with frames in flight), the process must
exit 0 with no traceback, no C++ abort and no error log line (such as a publish on a dead
context).
"""

import os
import signal
import time

import pytest
from ros_fixtures import (checkpoints, make_image, make_picture, NodeProcess,  # noqa: F401
                          Probe)
from sensor_msgs.msg import Image

IMAGE = '/shutdown_test/image'
# Signs of an unclean stop in the node's output.
FORBIDDEN = ('Traceback', 'terminate called', '[ERROR]', 'Failed to publish')
STREAM_PERIOD = 0.04  # s: a 25 Hz camera
# Rounds of start, stream, two SIGINTs; MTL_SHUTDOWN_ROUNDS=10 for the ten in a row.
STREAMING_ROUNDS = int(os.environ.get('MTL_SHUTDOWN_ROUNDS', '5'))


@pytest.fixture
def probe():
    """Return a probe that streams frames on IMAGE at 25 Hz once ``stream`` is called."""
    probe = Probe('shutdown_probe')
    yield probe
    probe.close()


def _stream(probe):
    """Publish a small frame every STREAM_PERIOD seconds while the probe spins."""
    images = probe.node.create_publisher(Image, IMAGE, 10)
    msg = make_image(make_picture(96, 72), 'rgb8', 'camera')
    probe.node.create_timer(STREAM_PERIOD, lambda: images.publish(msg))


def _pause(probe, seconds: float) -> None:
    """Spin the probe (its stream keeps flowing) for ``seconds``."""
    end = time.monotonic() + seconds
    probe.wait_for(lambda: time.monotonic() >= end, seconds + 5.0, 'the pause to end')


def _signal_and_wait(probe, node: NodeProcess, signals: tuple, gap: float = 0.05) -> int:
    """Send ``signals`` ``gap`` seconds apart, wait for the process to end; return its code."""
    for index, signum in enumerate(signals):
        if index:
            _pause(probe, gap)
        if node.process.poll() is None:
            node.process.send_signal(signum)
    probe.wait_for(lambda: node.process.poll() is not None, 30.0,
                   lambda: f'the node to exit; log:\n{node.log()}')
    return node.stop()


def _assert_clean(node: NodeProcess, code: int) -> None:
    log = node.log()
    assert code == 0, f'exit code {code}; log:\n{log}'
    for sign in FORBIDDEN:
        assert sign not in log, f'{sign!r} in the log:\n{log}'


def _start(tmp_path, checkpoint, name: str, workers: int = 1) -> NodeProcess:
    return NodeProcess('multitask_node', tmp_path / f'{name}.log', '-r', f'__ns:=/{name}',
                       '-p', f'checkpoint:={checkpoint}', '-r', f'image:={IMAGE}',
                       '-p', 'diagnostics_period:=0.2', '-p', f'inference_workers:={workers}')


def test_two_sigints_while_streaming_exit_cleanly(probe, checkpoints, tmp_path):  # noqa: F811
    _stream(probe)
    codes = []
    for round_ in range(STREAMING_ROUNDS):
        name = f'stream_{round_}'
        masks = probe.subscribe(f'/{name}/segmentation/mask', Image)
        # Every other round with two workers: two frames in flight, one waiting to publish.
        node = _start(tmp_path, checkpoints['multitask'], name, workers=1 + round_ % 2)
        try:
            probe.wait_for(lambda: len(masks) >= 3, 60.0,
                           lambda: f'masks from {name}; log:\n{node.log()}')
            # Vary the moment within a frame so the signals meet inference, publishing and
            # waiting for a frame in different rounds.
            _pause(probe, round_ * STREAM_PERIOD / STREAMING_ROUNDS)
            code = _signal_and_wait(probe, node, (signal.SIGINT, signal.SIGINT))
        finally:
            node.stop()
        codes.append(code)
        print(f'round {round_}: exit code {code}')
        _assert_clean(node, code)
    assert codes == [0] * STREAMING_ROUNDS


def test_sigint_while_loading_the_model_exits_cleanly(probe, checkpoints,  # noqa: F811
                                                      tmp_path):
    _stream(probe)
    node = _start(tmp_path, checkpoints['multitask'], 'loading')
    try:
        # 'configured' is logged right before autostart activates, i.e. loads the model.
        probe.wait_for(lambda: 'configured:' in node.log(), 60.0,
                       lambda: f'the node to configure; log:\n{node.log()}')
        code = _signal_and_wait(probe, node, (signal.SIGINT, signal.SIGINT))
    finally:
        node.stop()
    _assert_clean(node, code)


def test_sigterm_while_streaming_exits_cleanly(probe, checkpoints, tmp_path):  # noqa: F811
    _stream(probe)
    masks = probe.subscribe('/term/segmentation/mask', Image)
    node = _start(tmp_path, checkpoints['multitask'], 'term')
    try:
        probe.wait_for(lambda: len(masks) >= 3, 60.0,
                       lambda: f'masks from the node; log:\n{node.log()}')
        code = _signal_and_wait(probe, node, (signal.SIGTERM, signal.SIGINT, signal.SIGTERM))
    finally:
        node.stop()
    _assert_clean(node, code)


def _catches_sigterm(pid: int) -> bool:
    """Return whether process ``pid`` has a SIGTERM handler (Python alone installs none)."""
    try:
        with open(f'/proc/{pid}/status') as status:
            caught = [line.split()[1] for line in status if line.startswith('SigCgt:')]
    except OSError:
        return False
    return bool(caught) and bool(int(caught[0], 16) >> (signal.SIGTERM - 1) & 1)


def _has_loaded_rclpy(pid: int) -> bool:
    """Return whether process ``pid`` has mapped rclpy's C extension."""
    with open(f'/proc/{pid}/maps') as maps:
        return '_rclpy_pybind11' in maps.read()


@pytest.mark.parametrize('delay', [0.1, 0.3, 0.6])
def test_sigint_while_starting_exits_cleanly(tmp_path, delay):
    """A Ctrl-C while the script still imports rclpy, numpy and the node ends it with 0."""
    start = time.monotonic()
    node = NodeProcess('multitask_node', tmp_path / 'node.log', '-r', '__ns:=/starting',
                       '-p', 'autostart:=false')
    try:
        # The entry module installs its handlers first thing, about 0.05 s after the start and
        # some 0.2 s before rclpy loads; before that only the interpreter runs (and the ROS
        # wheels' re-exec), no code of ours. A loaded machine can take longer than the delay
        # to get there: then the signal goes as soon as the handlers are in place.
        deadline = start + 30.0
        while not _catches_sigterm(node.process.pid):
            assert node.process.poll() is None and time.monotonic() < deadline, \
                f'no signal handlers; log:\n{node.log()}'
            time.sleep(0.002)
        assert not _has_loaded_rclpy(node.process.pid), 'signal handlers only after rclpy'
        time.sleep(max(0.0, start + delay - time.monotonic()))
        node.process.send_signal(signal.SIGINT)
        node.process.wait(timeout=30.0)
    finally:
        code = node.stop()
    _assert_clean(node, code)
