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

"""The replay's ONNX export cache and the node overrides every node of a replay gets."""

from pathlib import Path

from mtl_perception.cli.replay import node_parameters
from mtl_perception.inference import artifacts
from mtl_perception.model_card import SEGMENTATION_GATE
from mtl_perception.replay.exports import (cached_onnx, checkpoint_digest, EXPORT_REVISION,
                                           onnx_checkpoints)
from mtl_perception.replay.node_processes import node_commands, resolve_checkpoints
from mtl_perception.variants import CONFIGURATIONS
import pytest
from ros_fixtures import make_checkpoint


def test_exports_are_made_once_per_checkpoint_content(tmp_path):
    checkpoint = make_checkpoint(tmp_path / 'models', 'segmentation')
    cache = tmp_path / 'cache'
    digest = checkpoint_digest(checkpoint)
    export = cached_onnx(checkpoint, cache, progress=False)
    # The revision in the name keeps exports cached by older packages from being reused.
    assert export == cache / 'onnx' / f'test_segmentation-{digest}-r{EXPORT_REVISION}.onnx'
    assert export.is_file() and export.with_suffix('.yaml').is_file()
    info = artifacts.read_export_card(export, 'onnx').export['onnx']
    assert info['dynamic_batch'] is True and info['segmentation_gate'] is None
    written = export.stat().st_mtime_ns
    assert onnx_checkpoints({'segmentation': checkpoint}, cache, progress=False) == \
        {'segmentation': export}
    assert export.stat().st_mtime_ns == written  # reused, not exported again
    # An export passed in is used as it is; new weights get a new digest (a new export).
    assert cached_onnx(export, cache, progress=False) == export
    weights = Path(checkpoint).with_suffix('.safetensors')
    weights.write_bytes(weights.read_bytes() + b' ')
    assert checkpoint_digest(checkpoint) != digest


def test_multitask_exports_are_gated_and_batch_cameras(tmp_path):
    checkpoint = make_checkpoint(tmp_path / 'models', 'multitask')
    export = cached_onnx(checkpoint, tmp_path / 'cache', progress=False)
    info = artifacts.read_export_card(export, 'onnx').export['onnx']
    assert info['dynamic_batch'] is True and info['segmentation_gate'] == SEGMENTATION_GATE
    # A fixed-batch export under the same name (made by hand, or damaged) is redone.
    card = artifacts.read_export_card(export, 'onnx')
    card.with_export('onnx', {**info, 'dynamic_batch': False}).save(artifacts.card_path(export))
    assert cached_onnx(checkpoint, tmp_path / 'cache', progress=False) == export
    assert artifacts.read_export_card(export, 'onnx').export['onnx']['dynamic_batch'] is True


def test_every_node_gets_the_same_overrides(tmp_path):
    parameters = node_parameters('onnxruntime', 2, 0)
    assert parameters == {'backend': 'onnxruntime', 'inference_workers': 2,
                          'inference_threads': 0}
    assert node_parameters(None, None, None) == {}
    commands = node_commands('baseline', params_file=tmp_path / 'p.yaml', image_topic='/cam',
                             checkpoints={'detection': 'd.onnx', 'segmentation': 's.onnx'},
                             compressed=False, parameters=parameters)
    # The baseline's nodes, from the one table of variants, each with its own checkpoint.
    assert list(commands) == [variant.node_name for variant in CONFIGURATIONS['baseline']]
    assert 'checkpoint:=d.onnx' in commands['detection_node']
    assert 'checkpoint:=s.onnx' in commands['segmentation_node']
    for command in commands.values():
        assert command[command.index('-r') + 1] == '__ns:=/baseline'
        tail = command[command.index('-p'):]
        assert ' '.join(tail).endswith('-p backend:=onnxruntime -p inference_workers:=2 '
                                       '-p inference_threads:=0')


def test_checkpoints_resolve_per_variant_with_the_demo_models_as_default(tmp_path):
    given = make_checkpoint(tmp_path / 'models', 'detection')
    resolved = resolve_checkpoints('baseline', {'detection': given, 'segmentation': None})
    assert list(resolved) == ['detection', 'segmentation']
    assert resolved['detection'] == Path(given)
    assert resolved['segmentation'].name.startswith('uav_synthetic_segmentation')
    with pytest.raises(FileNotFoundError, match='--checkpoint-multitask'):
        resolve_checkpoints('multitask', {'multitask': tmp_path / 'missing.yaml'})
    with pytest.raises(ValueError, match='unknown configuration'):
        resolve_checkpoints('pair', {})
