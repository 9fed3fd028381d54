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
"""MultiTaskModel and the builder registry: shapes, task subsets, raw outputs, errors."""

from mtl_perception.modeling import build_model, list_models, MultiTaskModel
from mtl_perception.modeling.multitask import validate_tasks
from mtl_perception.modeling.registry import register_model
import pytest
import torch

NAMES = ['mobilenet_v3_large_ssd_fcn', 'mobilenet_v3_large_ssdlite_fcn', 'resnet18_ssd_fcn',
         'resnet34_ssd_fcn', 'resnet50_ssd_fcn']
TASK_SUBSETS = [('detection', 'segmentation'), ('detection',), ('segmentation',)]
NUM_CLASSES = {'detection': 3, 'segmentation': 5}
SIZE = 64
BOXES_AT_64 = 8 * 8 * 4 + 4 * 4 * 6 + 2 * 2 * 6 + 6 + 4 + 4  # sources 8, 4, 2, 1, 1, 1


def test_registry_lists_builders():
    assert list_models() == NAMES


def test_unknown_model_lists_known_names():
    with pytest.raises(ValueError, match='resnet50_ssd_fcn'):
        build_model('vgg16_ssd', num_classes=NUM_CLASSES)


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match='already registered'):
        register_model('resnet18_ssd_fcn')(lambda **kwargs: None)


@pytest.mark.parametrize('tasks', TASK_SUBSETS)
@pytest.mark.parametrize('name', NAMES)
def test_forward_shapes(name, tasks):
    torch.manual_seed(0)
    model = build_model(name, num_classes=NUM_CLASSES, input_size=SIZE, tasks=tasks).eval()
    assert model.tasks == tasks
    assert set(model.heads) == set(tasks)  # the unused head is not built
    with torch.no_grad():
        outputs = model(torch.randn(2, 3, SIZE, SIZE))
    assert set(outputs) == set(tasks)
    if 'detection' in tasks:
        assert model.anchors.shape == (BOXES_AT_64, 4)
        assert outputs['detection']['loc'].shape == (2, BOXES_AT_64, 4)
        assert outputs['detection']['logits'].shape == (2, BOXES_AT_64, 4)
        assert outputs['detection']['logits'].dtype == torch.float32
    else:
        with pytest.raises(AttributeError):
            model.anchors
    if 'segmentation' in tasks:
        assert outputs['segmentation'].shape == (2, 5, SIZE, SIZE)
        assert outputs['segmentation'].dtype == torch.float32


@pytest.mark.parametrize('tasks', TASK_SUBSETS)
def test_forward_raw_matches_forward(tasks):
    torch.manual_seed(0)
    model = build_model('resnet18_ssd_fcn', num_classes=NUM_CLASSES, input_size=SIZE,
                        tasks=tasks).eval()
    images = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        outputs = model(images)
        raw = model.forward_raw(images)
    expected_names = {('detection', 'segmentation'): ('loc', 'scores', 'seg_logits'),
                      ('detection',): ('loc', 'scores'),
                      ('segmentation',): ('seg_logits',)}[tasks]
    assert model.output_names == expected_names
    assert len(raw) == len(expected_names)
    named = dict(zip(expected_names, raw))
    if 'detection' in tasks:
        assert torch.allclose(named['loc'], outputs['detection']['loc'])
        scores = named['scores']
        assert torch.allclose(scores, outputs['detection']['logits'].softmax(-1))
        assert torch.allclose(scores.sum(-1), torch.ones(scores.shape[:2]), atol=1e-5)
    if 'segmentation' in tasks:
        assert torch.allclose(named['seg_logits'], outputs['segmentation'])


def test_asked_tasks_run_only_their_heads():
    torch.manual_seed(0)
    model = build_model('resnet18_ssd_fcn', num_classes=NUM_CLASSES, input_size=SIZE).eval()
    calls = []
    for task in model.tasks:
        model.heads[task].register_forward_hook(lambda *args, task=task: calls.append(task))
    images = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        full = model.forward_raw(images)
        assert calls == ['detection', 'segmentation']
        calls.clear()
        detection = model.forward_raw(images, ('detection',))
        assert calls == ['detection']  # the segmentation head did not run
        calls.clear()
        segmentation = model(images, tasks=['segmentation'])
        assert calls == ['segmentation']
    assert len(detection) == 2
    assert all(torch.equal(a, b) for a, b in zip(detection, full[:2]))
    assert list(segmentation) == ['segmentation']
    assert torch.equal(segmentation['segmentation'], full[2])
    with pytest.raises(ValueError, match='non-empty'):
        model(images, tasks=())
    single = build_model('resnet18_ssd_fcn', num_classes=NUM_CLASSES, input_size=SIZE,
                         tasks=('detection',))
    with pytest.raises(ValueError, match=r"\['segmentation'\] are not tasks of this model"):
        single.forward_raw(images, ('segmentation',))


def test_training_step_reaches_every_head():
    model = build_model('mobilenet_v3_large_ssd_fcn', num_classes=NUM_CLASSES,
                        input_size=SIZE).train()
    outputs = model(torch.randn(1, 3, SIZE, SIZE))
    loss = outputs['detection']['loc'].mean() + outputs['detection']['logits'].mean() \
        + outputs['segmentation'].mean()
    loss.backward()
    assert model.heads['detection'].conf_layers[-1].weight.grad is not None
    assert model.heads['segmentation'].score_c5.weight.grad is not None


def test_resnet50_at_300_is_the_ssd300_layout():
    model = build_model('resnet50_ssd_fcn', num_classes={'detection': 20, 'segmentation': 21})
    model.eval()
    assert model.heads['detection'].source_sizes == (38, 19, 10, 5, 3, 1)
    with torch.no_grad():
        outputs = model(torch.zeros(1, 3, 300, 300))
    assert outputs['detection']['loc'].shape == (1, 8732, 4)
    assert outputs['detection']['logits'].shape == (1, 8732, 21)
    assert outputs['segmentation'].shape == (1, 21, 300, 300)


@pytest.mark.parametrize('name', ['resnet50_ssd_fcn', 'mobilenet_v3_large_ssd_fcn'])
def test_512_layout(name):
    model = build_model(name, num_classes=NUM_CLASSES, input_size=512, tasks=('detection',))
    assert model.heads['detection'].source_sizes == (64, 32, 16, 8, 4, 2)
    assert model.anchors.shape == (24528, 4)


def test_fcn_variant_and_anchor_kwargs():
    model = build_model('resnet18_ssd_fcn', num_classes=NUM_CLASSES, input_size=SIZE,
                        fcn_variant='16s', first_scale=0.05)
    assert model.heads['segmentation'].variant == '16s'
    assert model.anchors[0, 2].item() == pytest.approx(0.05)


def test_input_shape_is_validated():
    model = build_model('resnet18_ssd_fcn', num_classes=NUM_CLASSES, input_size=SIZE)
    with pytest.raises(ValueError, match=r'\[1, 3, 96, 96\]'):
        model(torch.zeros(1, 3, 96, 96))
    with pytest.raises(ValueError, match=r'\[1, 3, 64, 32\]'):
        model(torch.zeros(1, 3, SIZE, 32))
    with pytest.raises(ValueError, match=r'\[1, 1, 64, 64\]'):
        model(torch.zeros(1, 1, SIZE, SIZE))


@pytest.mark.parametrize('tasks, message', [
    ((), 'non-empty'),
    (('depth',), 'unknown tasks'),
    (('detection', 'detection'), 'repeated'),
])
def test_tasks_are_validated(tasks, message):
    with pytest.raises(ValueError, match=message):
        build_model('resnet18_ssd_fcn', num_classes=NUM_CLASSES, input_size=SIZE,
                    tasks=tasks)


def test_tasks_are_put_in_canonical_order():
    assert validate_tasks(['segmentation', 'detection']) == ('detection', 'segmentation')


def test_missing_head_and_class_count_are_reported():
    detection_only = build_model('resnet18_ssd_fcn', num_classes=NUM_CLASSES,
                                 input_size=SIZE, tasks=('detection',))
    with pytest.raises(ValueError, match='segmentation'):
        MultiTaskModel(detection_only.backbone, dict(detection_only.heads),
                       ('detection', 'segmentation'), input_size=SIZE)
    with pytest.raises(ValueError, match='segmentation'):
        build_model('resnet18_ssd_fcn', num_classes={'detection': 3}, input_size=SIZE)
    with pytest.raises(ValueError, match='input_size'):
        build_model('resnet18_ssd_fcn', num_classes=NUM_CLASSES, input_size=32)


def test_missing_backbone_weights_names_the_file(tmp_path):
    path = str(tmp_path / 'imagenet_resnet18.safetensors')
    with pytest.raises(FileNotFoundError, match='imagenet_resnet18.safetensors'):
        build_model('resnet18_ssd_fcn', num_classes=NUM_CLASSES, input_size=SIZE,
                    backbone_weights=path)
