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

"""Checkpoints: safetensors + model card round trip, and clear errors for bad files."""

import json
from pathlib import Path
import shutil
import struct

from mtl_perception.inference.checkpoint import (
    checkpoint_paths, CheckpointError, load_card, load_checkpoint, save_checkpoint)
from mtl_perception.model_card import FORMAT_VERSION
from mtl_perception.modeling import build_model
import pytest
import torch
import yaml

ARCH = 'resnet18_ssd_fcn'
SIZE = 64
CLASSES = {'detection': ['car', 'person', 'boat'], 'segmentation': ['ground', 'road', 'water',
                                                                    'building']}
TASK_SUBSETS = [('detection', 'segmentation'), ('detection',), ('segmentation',)]


def _model(tasks, **kwargs):
    torch.manual_seed(0)
    model = build_model(ARCH, num_classes={t: len(CLASSES[t]) for t in tasks},
                        input_size=SIZE, tasks=tasks, **kwargs)
    # Non-trivial batch-norm statistics, so buffers are checked as well as parameters.
    model.train()
    with torch.no_grad():
        model(torch.randn(2, 3, SIZE, SIZE))
    return model.eval()


def _card(tasks, **extra):
    return dict({'name': 'test_model', 'architecture': ARCH,
                 'classes': {t: CLASSES[t] for t in tasks},
                 'recipe': {'epochs': 3}, 'metrics': {'mAP': 0.5}}, **extra)


@pytest.fixture(scope='module', params=TASK_SUBSETS, ids='+'.join)
def saved(request, tmp_path_factory):
    tasks = request.param
    model = _model(tasks, min_scale=0.25)
    stem = tmp_path_factory.mktemp('ckpt') / 'model'
    paths = save_checkpoint(model, stem, _card(tasks, arch_kwargs={'min_scale': 0.25}))
    return model, stem, paths


@pytest.fixture(scope='module')
def multitask_files(tmp_path_factory):
    stem = tmp_path_factory.mktemp('mt') / 'mt'
    save_checkpoint(_model(TASK_SUBSETS[0]), stem, _card(TASK_SUBSETS[0]))
    return checkpoint_paths(stem)


@pytest.fixture
def copy(multitask_files, tmp_path):
    """Copy the multitask checkpoint privately, so a test may damage it."""
    weights, card = multitask_files
    shutil.copy(weights, tmp_path / 'copy.safetensors')
    shutil.copy(card, tmp_path / 'copy.yaml')
    return checkpoint_paths(tmp_path / 'copy')


def test_paths_accept_any_suffix(tmp_path):
    expected = (tmp_path / 'm.safetensors', tmp_path / 'm.yaml')
    for name in ('m', 'm.safetensors', 'm.yaml'):
        assert checkpoint_paths(tmp_path / name) == expected


@pytest.mark.parametrize('suffix', ['', '.safetensors', '.yaml'])
def test_round_trip_gives_identical_outputs(saved, suffix):
    model, stem, _ = saved
    loaded, card = load_checkpoint(str(stem) + suffix)
    assert loaded.tasks == model.tasks
    assert not loaded.training
    images = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        expected, got = model.forward_raw(images), loaded.forward_raw(images)
    assert loaded.output_names == model.output_names
    for a, b in zip(expected, got):
        assert torch.equal(a, b)
    reference = model.state_dict()
    for key, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, reference[key]), key
    if 'detection' in model.tasks:
        assert torch.equal(loaded.anchors, model.anchors)


def test_card_contents(saved):
    model, stem, (weights, card_path) = saved
    card = yaml.safe_load(card_path.read_text())
    assert card == load_card(stem).to_dict()
    assert card['name'] == 'test_model'
    assert card['architecture'] == ARCH
    assert card['arch_kwargs'] == {'min_scale': 0.25}
    assert card['tasks'] == list(model.tasks)
    assert card['input_size'] == SIZE
    assert card['classes'] == {t: CLASSES[t] for t in model.tasks}
    assert card['mean'] == pytest.approx([0.485, 0.456, 0.406])
    assert card['std'] == pytest.approx([0.229, 0.224, 0.225])
    assert card['recipe'] == {'epochs': 3}
    assert card['metrics'] == {'mAP': 0.5}
    assert card['format_version'] == FORMAT_VERSION
    assert card['created'] and card['package_version']


def test_weights_are_safetensors_not_pickle(saved):
    _, _, (weights, _) = saved
    data = weights.read_bytes()
    header_len = struct.unpack('<Q', data[:8])[0]
    header = json.loads(data[8:8 + header_len])
    assert header['__metadata__']['architecture'] == ARCH
    assert header['__metadata__']['mtl_perception_format_version'] == str(FORMAT_VERSION)
    # A pickle starts with the PROTO opcode 0x80; torch.save files are zip archives.
    assert data[0] != 0x80 and not data.startswith(b'PK')


def test_save_rejects_card_that_disagrees_with_model(tmp_path):
    model = _model(('detection',))
    bad = _card(('detection',))
    bad['classes'] = {'detection': ['only_one']}
    with pytest.raises(ValueError, match='3 detection classes'):
        save_checkpoint(model, tmp_path / 'm', bad)
    with pytest.raises(ValueError, match='tasks'):
        save_checkpoint(model, tmp_path / 'm',
                        dict(_card(('detection',)), tasks=['segmentation']))
    with pytest.raises(ValueError, match='unknown architecture'):
        save_checkpoint(model, tmp_path / 'm', _card(('detection',), architecture='nope'))
    # Anchor scales not recorded in arch_kwargs would rebuild different default boxes.
    with pytest.raises(ValueError, match='default boxes'):
        save_checkpoint(_model(('detection',), min_scale=0.3), tmp_path / 'm',
                        _card(('detection',)))
    assert not (tmp_path / 'm.safetensors').exists()


def _expect_error(path: Path, *fragments: str) -> CheckpointError:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return info.value


def test_missing_weights(copy):
    weights, _ = copy
    weights.unlink()
    _expect_error(weights, str(weights), 'not found')


def test_missing_card(copy):
    weights, card = copy
    card.unlink()
    _expect_error(weights, str(card), 'not found')


def test_missing_path_entirely(tmp_path):
    _expect_error(tmp_path / 'nothing', 'nothing.yaml', 'not found')


@pytest.mark.parametrize('damage', ['truncated', 'garbage', 'short'])
def test_corrupt_weights(copy, damage):
    weights, _ = copy
    data = weights.read_bytes()
    weights.write_bytes({'truncated': data[:len(data) // 2],
                         'garbage': bytes(range(256)) * 40,
                         'short': b'\x01\x02'}[damage])
    error = _expect_error(weights, str(weights), 'safetensors')
    assert isinstance(error, ValueError)


def _edit_card(card_path: Path, **changes) -> None:
    card = yaml.safe_load(card_path.read_text())
    for key, value in changes.items():
        if value is None:
            del card[key]
        else:
            card[key] = value
    card_path.write_text(yaml.safe_dump(card))


def test_card_missing_key(copy):
    _, card = copy
    _edit_card(card, architecture=None)
    _expect_error(card, str(card), 'architecture')


def test_card_not_yaml(copy):
    _, card = copy
    card.write_text('name: [unclosed\n  - : :\n')
    _expect_error(card, str(card), 'YAML')
    card.write_text('just a string\n')
    _expect_error(card, str(card), 'mapping')


def test_unknown_architecture(copy):
    _, card = copy
    _edit_card(card, architecture='resnet9000_ssd_fcn')
    _expect_error(card, str(card), 'unknown architecture', 'resnet9000_ssd_fcn')


def test_wrong_class_count_is_a_shape_mismatch(copy):
    weights, card = copy
    _edit_card(card, classes={'detection': CLASSES['detection'] + ['extra'],
                              'segmentation': CLASSES['segmentation']})
    error = _expect_error(weights, str(weights), 'shape mismatch', 'conf_layers')
    # Four classes + background = 5 per box in the card, 4 in the file.
    assert 'heads.detection.conf_layers.0.weight' in str(error)


def test_fewer_tasks_than_weights_lists_unexpected_keys(copy):
    weights, card = copy
    _edit_card(card, tasks=['detection'])
    _expect_error(weights, str(weights), 'unexpected keys', 'heads.segmentation')


def test_weights_of_another_architecture(copy, tmp_path):
    weights, card = copy
    _edit_card(card, architecture='resnet34_ssd_fcn')
    _expect_error(weights, str(weights), 'resnet18_ssd_fcn', 'resnet34_ssd_fcn')


def test_card_naming_a_backbone_weights_file_is_refused_before_anything_is_opened(copy,
                                                                                  tmp_path):
    weights, card = copy
    # A real file: the refusal comes from the card, not from the file being absent.
    bait = tmp_path / 'imagenet.pth'
    torch.save(_model(('detection',)).backbone.state_dict(), bait)
    _edit_card(card, arch_kwargs={'backbone_weights': str(bait)})
    _expect_error(weights, f'{card}: arch_kwargs.backbone_weights', 'cannot name a file',
                  '.safetensors file beside it')
    with pytest.raises(CheckpointError, match='arch_kwargs.backbone_weights'):
        load_card(card)


def test_save_refuses_a_card_naming_a_file(tmp_path):
    model = _model(('detection',))
    with pytest.raises(ValueError, match='arch_kwargs.backbone_weights'):
        save_checkpoint(model, tmp_path / 'm',
                        _card(('detection',), arch_kwargs={'backbone_weights': 'w.pth'}))
    assert not (tmp_path / 'm.yaml').exists()


def test_file_arguments_cover_every_builder_argument_taking_a_string():
    """A builder argument taking a string is a choice, or a file listed in FILE_ARGUMENTS."""
    import inspect

    from mtl_perception.model_card import FILE_ARGUMENTS
    from mtl_perception.modeling import registry
    choices = {'backbone_name', 'fcn_variant', 'ssd_head_style'}
    builders = [registry._build_ssd_fcn] + [registry._MODELS[name]
                                            for name in registry.list_models()]
    for builder in builders:
        for name, parameter in inspect.signature(builder).parameters.items():
            if parameter.annotation in (str, str | None) and name not in choices:
                assert name in FILE_ARGUMENTS, (builder.__name__, name)
    assert 'backbone_weights' in inspect.signature(registry.build_model).parameters
