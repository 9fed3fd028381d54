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

"""Lifecycle of the node process, driven through its lifecycle and parameter services."""

import shutil

import pytest
from ros_fixtures import (checkpoints, make_image, make_picture, NodeProcess,  # noqa: F401
                          Probe)
from sensor_msgs.msg import Image
import yaml

IMAGE = '/lc_test/image'


@pytest.fixture
def probe():
    """Return a probe recording segmentation masks under two namespaces."""
    probe = Probe('lifecycle_probe')
    probe.subscribe('/manual/segmentation/mask', Image)
    probe.subscribe('/failing/segmentation/mask', Image)
    yield probe
    probe.close()


def _frame(probe, images, frame_id: str, topic: str) -> None:
    msg = make_image(make_picture(40, 32), 'rgb8', frame_id)
    probe.send_until(images, msg, lambda: probe.find(topic, frame_id), 30.0,
                     f'the mask of {frame_id} on {topic}')


def test_transitions_through_the_lifecycle_services(probe, checkpoints,  # noqa: F811
                                                    tmp_path):
    node_name, topic = '/manual/segmentation_node', '/manual/segmentation/mask'
    node = NodeProcess('segmentation_node', tmp_path / 'node.log', '-r', '__ns:=/manual',
                       '-p', 'autostart:=false',
                       '-p', f'checkpoint:={checkpoints["segmentation"]}',
                       '-r', f'image:={IMAGE}')
    try:
        assert probe.get_state(node_name) == 'unconfigured'
        assert probe.node.count_publishers(topic) == 0
        # A bad value fails configure with a log line naming it; the node stays unconfigured.
        probe.set_parameter(node_name, 'backend', 'caffe')
        assert not probe.change_state(node_name, 'configure')
        assert probe.get_state(node_name) == 'unconfigured'
        probe.wait_for(lambda: "backend='caffe' is not one of" in node.log(), 10.0,
                       'the configure error in the log')
        probe.set_parameter(node_name, 'backend', 'torch')

        assert probe.change_state(node_name, 'configure')
        assert probe.get_state(node_name) == 'inactive'
        probe.wait_for(lambda: probe.node.count_publishers(topic) == 1, 10.0, 'the mask topic')
        assert probe.change_state(node_name, 'activate')
        assert probe.get_state(node_name) == 'active'
        images = probe.publisher(IMAGE, Image)
        _frame(probe, images, 'first', topic)

        assert probe.change_state(node_name, 'deactivate')
        assert probe.get_state(node_name) == 'inactive'
        # A frame sent while inactive is ignored, not queued for later.
        images.publish(make_image(make_picture(40, 32), 'rgb8', 'while_inactive'))
        assert probe.change_state(node_name, 'activate')
        _frame(probe, images, 'second', topic)
        assert probe.find(topic, 'while_inactive') is None

        assert probe.change_state(node_name, 'deactivate')
        assert probe.change_state(node_name, 'cleanup')
        assert probe.get_state(node_name) == 'unconfigured'
        probe.wait_for(lambda: probe.node.count_publishers(topic) == 0, 10.0,
                       'the mask publisher to go away after cleanup')
        assert probe.change_state(node_name, 'configure')
        assert probe.change_state(node_name, 'activate')
        _frame(probe, images, 'third', topic)
    finally:
        assert node.stop() == 0, node.log()


def test_bad_checkpoint_fails_activate_and_the_node_keeps_answering(probe,
                                                                    checkpoints,  # noqa: F811
                                                                    tmp_path):
    node_name, topic = '/failing/multitask_node', '/failing/segmentation/mask'
    missing = tmp_path / 'missing_model.safetensors'
    corrupt = tmp_path / 'corrupt_model.safetensors'
    corrupt.write_bytes(b'\x00' * 100)
    corrupt.with_suffix('.yaml').write_text(
        checkpoints['multitask'].with_suffix('.yaml').read_text())
    # Good weights, but a card that names a file to load: refused, the file is never opened.
    naming = tmp_path / 'naming_model.safetensors'
    shutil.copy(checkpoints['multitask'], naming)
    card = yaml.safe_load(checkpoints['multitask'].with_suffix('.yaml').read_text())
    card['arch_kwargs']['backbone_weights'] = str(tmp_path / 'imagenet.pth')
    naming.with_suffix('.yaml').write_text(yaml.safe_dump(card))
    node = NodeProcess('multitask_node', tmp_path / 'node.log', '-r', '__ns:=/failing',
                       '-p', f'checkpoint:={missing}', '-r', f'image:={IMAGE}')
    try:
        # Autostart configured the node, then activating failed: it waits inactive.
        probe.wait_for(lambda: 'autostart: activate failed' in node.log(), 60.0,
                       lambda: f'the autostart failure; log:\n{node.log()}')
        assert probe.get_state(node_name) == 'inactive'
        assert f'cannot load checkpoint {missing}' in node.log()

        probe.set_parameter(node_name, 'checkpoint', str(corrupt))
        assert probe.change_state(node_name, 'cleanup')
        assert probe.change_state(node_name, 'configure')
        assert not probe.change_state(node_name, 'activate')
        assert probe.get_state(node_name) == 'inactive'
        assert f'cannot load checkpoint {corrupt}' in node.log()

        probe.set_parameter(node_name, 'checkpoint', str(naming))
        assert probe.change_state(node_name, 'cleanup')
        assert probe.change_state(node_name, 'configure')
        assert not probe.change_state(node_name, 'activate')
        assert probe.get_state(node_name) == 'inactive'
        probe.wait_for(lambda: f'{naming.with_suffix(".yaml")}: arch_kwargs.backbone_weights: '
                       'a model card cannot name a file' in node.log(), 10.0,
                       lambda: f'the card refusal in the log:\n{node.log()}')

        probe.set_parameter(node_name, 'checkpoint', str(checkpoints['multitask']))
        assert probe.change_state(node_name, 'cleanup')
        assert probe.change_state(node_name, 'configure')
        assert probe.change_state(node_name, 'activate')
        _frame(probe, probe.publisher(IMAGE, Image), 'recovered', topic)
    finally:
        assert node.stop() == 0, node.log()
