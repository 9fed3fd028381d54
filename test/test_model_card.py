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

"""ModelCard: the one definition of a model card, its validation and its files."""

from mtl_perception.inference import artifacts
from mtl_perception.inference.checkpoint import CheckpointError, load_card
from mtl_perception.model_card import ModelCard, ModelCardError, output_names, TASKS
from mtl_perception.resources import model_file
import numpy as np
import pytest
import yaml

CARD = {'name': 'm', 'architecture': 'resnet18_ssd_fcn', 'arch_kwargs': {},
        'tasks': ['detection', 'segmentation'], 'input_size': 64,
        'mean': [0.5, 0.5, 0.5], 'std': [0.25, 0.25, 0.25],
        'classes': {'detection': ['car', 'person'], 'segmentation': ['ground', 'road']},
        'format_version': 1}


def test_round_trip_keeps_every_key(tmp_path):
    data = dict(CARD, notes='free text', metrics={'miou': 0.5})
    card = ModelCard.from_dict(data)
    assert card.tasks == ('detection', 'segmentation') and card.input_size == 64
    assert card.output_names == ('loc', 'scores', 'seg_logits')
    assert card.num_classes == {'detection': 2, 'segmentation': 2}
    assert card.extra == {'notes': 'free text'}
    path = card.save(tmp_path / 'm.yaml')
    assert ModelCard.load(path) == card
    assert yaml.safe_load(path.read_text())['notes'] == 'free text'


def test_shipped_cards_are_valid():
    for name in ('uav_synthetic_multitask', 'uav_synthetic_detection',
                 'uav_synthetic_segmentation'):
        card = load_card(model_file(name))
        assert set(card.tasks) <= set(TASKS) and card.input_size == 256


@pytest.mark.parametrize('change,fragment', [
    ({'classes': {'detection': [1, 2], 'segmentation': ['a', 'b']}}, 'non-empty strings'),
    # YAML reads unquoted no / on as booleans: they must not reach the vision_msgs code.
    ({'classes': {'detection': [False, True], 'segmentation': ['a', 'b']}}, 'quote'),
    ({'classes': {'detection': ['car', 'car'], 'segmentation': ['a', 'b']}}, 'repeat'),
    ({'classes': {'detection': [], 'segmentation': ['a']}}, 'detection class names'),
    ({'classes': {'segmentation': ['a']}}, 'detection class names'),
    ({'classes': {'detection': ['a'], 'segmentation': [str(i) for i in range(256)]}},
     'at most 255'),
    ({'std': [0.2, 0.0, 0.2]}, 'std must be 3 finite numbers > 0'),
    ({'mean': [0.5, float('nan'), 0.5]}, 'mean must be 3 finite numbers'),
    ({'mean': [0.5, 0.5]}, 'mean'),
    ({'tasks': ['segmentation', 'detection']}, 'order'),
    ({'tasks': ['depth']}, 'unknown tasks'),
    ({'tasks': []}, 'non-empty'),
    ({'input_size': 0}, 'input_size'),
    ({'input_size': True}, 'input_size'),
    ({'input_size': '64'}, 'input_size'),
    ({'format_version': 99}, 'format_version'),
    ({'arch_kwargs': ['x']}, 'arch_kwargs'),
    ({'export': {'onnx': 'file.onnx'}}, 'export.onnx'),
    ({'name': ''}, 'name'),
    # A card names no file: its weights are the safetensors file beside it.
    ({'arch_kwargs': {'backbone_weights': '/data/resnet50.pth'}},
     'arch_kwargs.backbone_weights: a model card cannot name a file'),
    ({'arch_kwargs': {'backbone_weights': None}}, 'arch_kwargs.backbone_weights'),
    ({'arch_kwargs': {'fcn_variant': '../weights/fcn'}}, 'arch_kwargs.fcn_variant'),
    ({'arch_kwargs': {'init': 'imagenet.safetensors'}}, 'arch_kwargs.init'),
    ({'arch_kwargs': {'extra_channels': [[64, '~/w']]}},
     r'arch_kwargs.extra_channels\[0\]\[1\]'),
])
def test_validation_names_the_problem(change, fragment):
    with pytest.raises(ModelCardError, match=fragment) as error:
        ModelCard.from_dict(dict(CARD, **change), source='card.yaml')
    # Every failure names the file first, then the field.
    field = next(iter(change))
    assert str(error.value).startswith('card.yaml: '), error.value
    assert field in str(error.value) or (field == 'classes' and 'class' in str(error.value))


def test_plain_builder_choices_are_not_mistaken_for_files():
    card = ModelCard.from_dict(dict(CARD, arch_kwargs={
        'fcn_variant': '16s', 'ssd_head_style': 'lite', 'extra_channels': [[64, 128]]}))
    assert card.arch_kwargs['fcn_variant'] == '16s'


def test_missing_key_and_not_a_mapping():
    data = dict(CARD)
    del data['std']
    with pytest.raises(ModelCardError, match=r"card.yaml: .*lacks the keys \['std'\]"):
        ModelCard.from_dict(data, source='card.yaml')
    with pytest.raises(ModelCardError, match='not a YAML mapping'):
        ModelCard.from_dict(['a'], source='card.yaml')


def test_export_card_gets_the_same_checks_as_a_checkpoint_card(tmp_path):
    # Export cards once skipped the std > 0 check; a zero std divided by zero at run time.
    onnx_path = tmp_path / 'm.onnx'
    onnx_path.write_bytes(b'')
    card = dict(CARD, std=[0.25, 0.0, 0.25], export={'onnx': {'file': 'm.onnx'}})
    (tmp_path / 'm.yaml').write_text(yaml.safe_dump(card))
    with pytest.raises(artifacts.ExportedModelError, match='m.yaml: std must be'):
        artifacts.read_export_card(onnx_path, 'onnx')
    (tmp_path / 'm.yaml').write_text(yaml.safe_dump(dict(card, std=[0.25] * 3)))
    assert artifacts.read_export_card(onnx_path, 'onnx').std == (0.25, 0.25, 0.25)
    (tmp_path / 'm.yaml').write_text(yaml.safe_dump(dict(CARD)))
    with pytest.raises(artifacts.ExportedModelError, match='no export.onnx section'):
        artifacts.read_export_card(onnx_path, 'onnx')


def test_export_card_naming_a_file_is_refused(tmp_path):
    onnx_path = tmp_path / 'm.onnx'
    onnx_path.write_bytes(b'')
    card = dict(CARD, arch_kwargs={'backbone_weights': 'imagenet.pth'},
                export={'onnx': {'file': 'm.onnx'}})
    (tmp_path / 'm.yaml').write_text(yaml.safe_dump(card))
    with pytest.raises(artifacts.ExportedModelError,
                       match=r'm\.yaml: arch_kwargs\.backbone_weights: a model card cannot'):
        artifacts.read_export_card(onnx_path, 'onnx')


def test_checkpoint_card_with_boolean_class_names_is_refused(tmp_path):
    (tmp_path / 'm.yaml').write_text(yaml.safe_dump(CARD).replace('- person', '- no'))
    with pytest.raises(CheckpointError, match='quote'):
        load_card(tmp_path / 'm')


def test_write_export_card_keeps_other_exports(tmp_path):
    base = ModelCard.from_dict(CARD)
    artifacts.write_export_card(tmp_path / 'm.onnx', base, 'onnx', {'file': 'm.onnx'})
    artifacts.write_export_card(tmp_path / 'm.engine', base, 'tensorrt', {'file': 'm.engine'})
    card = ModelCard.load(tmp_path / 'm.yaml')
    assert set(card.export) == {'onnx', 'tensorrt'}
    assert card.with_changes(export={}).identity() == base.identity()
    anchors = np.zeros((3, 4), np.float32)
    artifacts.write_anchors(tmp_path / 'm.onnx', anchors)
    np.testing.assert_array_equal(artifacts.read_anchors(tmp_path / 'm.onnx', card), anchors)


def test_output_names_follow_the_tasks():
    assert output_names(['segmentation']) == ('seg_logits',)
    assert output_names(['segmentation', 'detection']) == ('loc', 'scores', 'seg_logits')
