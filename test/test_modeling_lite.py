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
"""The light MobileNetV3 network: SSDLite head, its cost next to the single-task pair."""

from mtl_perception.modeling import build_model
from mtl_perception.modeling.ssd import LiteExtraBlock, SeparablePredictor, SSDHead
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

NAME = 'mobilenet_v3_large_ssdlite_fcn'
DEMO_CLASSES = {'detection': 5, 'segmentation': 10}
PAIR = (('detection',), ('segmentation',))


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _flops(model: nn.Module, size: int) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, size, size))
    return counter.get_total_flops()


def _demo_models(input_size: int) -> dict:
    torch.manual_seed(0)
    return {tasks: build_model(NAME, num_classes=DEMO_CLASSES, input_size=input_size,
                               tasks=tasks).eval()
            for tasks in (('detection', 'segmentation'),) + PAIR}


@pytest.fixture(scope='module')
def demo_models() -> dict:
    """Multitask and single-task demo networks at their default 300 px input."""
    return _demo_models(300)


def test_pair_has_at_least_1_7_times_the_parameters(demo_models):
    models = demo_models
    multitask = _params(models[('detection', 'segmentation')])
    pair = sum(_params(models[tasks]) for tasks in PAIR)
    assert pair / multitask >= 1.7


def test_pair_needs_at_least_1_75_times_the_flops(demo_models):
    models = demo_models
    multitask = _flops(models[('detection', 'segmentation')], 300)
    pair = sum(_flops(models[tasks], 300) for tasks in PAIR)
    assert pair / multitask >= 1.75


def test_demo_checkpoint_fits_in_25_mb(demo_models):
    model = demo_models[('detection', 'segmentation')]
    size = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    assert size < 25e6


def test_single_task_twins_carry_the_multitask_heads():
    models = _demo_models(128)
    shapes = {k: v.shape for k, v in models[('detection', 'segmentation')]
              .state_dict().items()}
    for tasks in PAIR:
        twin = {k: v.shape for k, v in models[tasks].state_dict().items()}
        assert twin.items() <= shapes.items()
        assert any(k.startswith(f'heads.{tasks[0]}.') for k in twin)


def test_head_is_lite_with_small_default_boxes():
    model = build_model(NAME, num_classes=DEMO_CLASSES, tasks=('detection',))
    head = model.heads['detection']
    assert head.source_sizes == (38, 19, 10, 5, 3, 1)
    assert model.anchors.shape == (8732, 4)
    assert model.anchors[0, 2].item() == pytest.approx(0.04)
    assert all(isinstance(block, LiteExtraBlock) for block in head.extras)
    assert all(isinstance(layer, SeparablePredictor)
               for layer in list(head.loc_layers) + list(head.conf_layers))
    # Batch norm only where the source map has more than one cell.
    has_norm = [any(isinstance(m, nn.BatchNorm2d) for m in layer) for layer in head.loc_layers]
    assert has_norm == [True, True, True, True, True, False]


def test_lite_head_trains_at_batch_one():
    model = build_model(NAME, num_classes=DEMO_CLASSES, input_size=64).train()
    outputs = model(torch.randn(1, 3, 64, 64))
    loss = outputs['detection']['loc'].mean() + outputs['detection']['logits'].mean() \
        + outputs['segmentation'].mean()
    loss.backward()
    head = model.heads['detection']
    for layer in list(head.loc_layers) + list(head.conf_layers) + list(head.extras):
        assert all(p.grad is not None for p in layer.parameters())


def test_lite_kwargs_can_be_overridden():
    model = build_model(NAME, num_classes=DEMO_CLASSES, input_size=64, first_scale=0.1,
                        fcn_mid_channels=64)
    assert model.anchors[0, 2].item() == pytest.approx(0.1)
    assert model.heads['segmentation'].score_c5.in_channels == 64


def test_unknown_head_style_is_refused():
    with pytest.raises(ValueError, match='fancy'):
        SSDHead([40, 112, 960], [8, 4, 2], 3, head_style='fancy')
