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

"""Tests for the loss weighting strategies."""

import math

from mtl_perception.modeling.weighting import build_weighting, list_weightings
import pytest
import torch
from torch import nn


TASKS = ('detection', 'segmentation')


def test_registry_lists_strategies_and_rejects_unknown_names():
    assert list_weightings() == ['dwa', 'fixed', 'gradnorm', 'uncertainty']
    with pytest.raises(ValueError, match='dwa.*fixed.*gradnorm.*uncertainty'):
        build_weighting('pcgrad', TASKS)
    with pytest.raises(ValueError, match='bad arguments'):
        build_weighting('dwa', TASKS, alpha=1.0)
    with pytest.raises(ValueError, match='unique'):
        build_weighting('fixed', ('detection', 'detection'))


@pytest.mark.parametrize('name', ['fixed', 'uncertainty', 'dwa', 'gradnorm'])
def test_single_task_is_the_plain_loss(name):
    weighting = build_weighting(name, ('segmentation',))
    assert weighting.requires_shared_grads is False
    loss = torch.tensor(2.5, requires_grad=True)
    total = weighting.combine({'segmentation': loss})
    torch.testing.assert_close(total, loss)
    total.backward()
    assert float(loss.grad) == 1.0
    weighting.end_epoch({'segmentation': 3.0})
    weighting.end_epoch({'segmentation': 1.0})
    weighting.end_epoch({'segmentation': 2.0})
    assert weighting.weights == {'segmentation': 1.0}


@pytest.mark.parametrize('name', ['fixed', 'uncertainty', 'dwa', 'gradnorm'])
def test_initial_weights_are_one_and_keys_are_checked(name):
    weighting = build_weighting(name, TASKS)
    assert weighting.weights == pytest.approx({'detection': 1.0, 'segmentation': 1.0})
    losses = {'detection': torch.tensor(1.0), 'segmentation': torch.tensor(2.0)}
    # Every strategy starts at weight 1 (uncertainty: s = 0 adds nothing).
    assert float(weighting.combine(losses).detach()) == pytest.approx(3.0)
    with pytest.raises(ValueError, match='missing'):
        weighting.combine({'detection': torch.tensor(1.0)})
    with pytest.raises(ValueError, match='unexpected'):
        weighting.combine({**losses, 'total': torch.tensor(3.0)})
    with pytest.raises(ValueError, match='scalar'):
        weighting.combine({'detection': torch.ones(2), 'segmentation': torch.tensor(1.0)})


def test_fixed_weights_are_configurable():
    weighting = build_weighting('fixed', TASKS, weights={'segmentation': 0.25, 'depth': 7.0})
    assert weighting.weights == {'detection': 1.0, 'segmentation': 0.25}
    total = weighting.combine({'detection': torch.tensor(2.0), 'segmentation': torch.tensor(4.0)})
    assert float(total) == pytest.approx(3.0)
    with pytest.raises(ValueError, match='>= 0'):
        build_weighting('fixed', TASKS, weights={'detection': -1.0})


def test_uncertainty_gives_the_noisier_task_the_smaller_weight():
    torch.manual_seed(0)
    # Two regressions of the same quantity; the first task's targets are 10x noisier.
    theta = nn.Parameter(torch.zeros(1))
    weighting = build_weighting('uncertainty', ('noisy', 'clean'))
    optimizer = torch.optim.Adam([theta, *weighting.parameters()], lr=0.05)
    for _ in range(300):
        truth = torch.full((64,), 3.0)
        losses = {
            'noisy': ((theta - (truth + 1.0 * torch.randn(64))) ** 2).mean(),
            'clean': ((theta - (truth + 0.1 * torch.randn(64))) ** 2).mean(),
        }
        optimizer.zero_grad()
        weighting.combine(losses).backward()
        optimizer.step()
    weights = weighting.weights
    assert weights['noisy'] < weights['clean']
    # At the optimum exp(-s) = 1 / L: about 1 / 1.0 for the noisy task.
    assert weights['noisy'] == pytest.approx(1.0, rel=0.3)
    assert weights['clean'] > 5.0


def test_uncertainty_ignores_a_task_missing_from_the_batch():
    weighting = build_weighting('uncertainty', TASKS)
    total = weighting.combine({'detection': torch.tensor(2.0), 'segmentation': torch.tensor(0.0)})
    total.backward()
    assert weighting.log_vars.grad[1] == 0.0
    assert weighting.log_vars.grad[0] == pytest.approx(-1.0)  # d/ds (e^-s L + s) = 1 - L


def test_dwa_weights_the_slower_task_higher():
    weighting = build_weighting('dwa', TASKS, temperature=2.0)
    weighting.end_epoch({'detection': 1.0, 'segmentation': 1.0})
    assert weighting.weights == pytest.approx({'detection': 1.0, 'segmentation': 1.0})
    weighting.end_epoch({'detection': 0.9, 'segmentation': 0.5})  # detection falls slower
    weights = weighting.weights
    e_det, e_seg = math.exp(0.9 / 2.0), math.exp(0.5 / 2.0)
    assert weights['detection'] == pytest.approx(2 * e_det / (e_det + e_seg))
    assert weights['detection'] > 1.0 > weights['segmentation']
    assert sum(weights.values()) == pytest.approx(2.0)
    total = weighting.combine({'detection': torch.tensor(1.0), 'segmentation': torch.tensor(1.0)})
    assert float(total) == pytest.approx(2.0)


def test_dwa_accumulates_training_losses_itself():
    weighting = build_weighting('dwa', TASKS)
    for det, seg in [((1.0, 3.0), (1.0, 1.0)), ((0.5, 1.5), (0.1, 0.1))]:
        for d, s in zip(det, seg):
            weighting.combine({'detection': torch.tensor(d, requires_grad=True),
                               'segmentation': torch.tensor(s, requires_grad=True)})
        with torch.no_grad():  # validation batches do not count
            weighting.combine({'detection': torch.tensor(100.0),
                               'segmentation': torch.tensor(100.0)})
        weighting.end_epoch()
    # Epoch means: detection 2.0 -> 1.0 (ratio 0.5), segmentation 1.0 -> 0.1 (ratio 0.1).
    expected = build_weighting('dwa', TASKS)
    expected.end_epoch({'detection': 2.0, 'segmentation': 1.0})
    expected.end_epoch({'detection': 1.0, 'segmentation': 0.1})
    assert weighting.weights == pytest.approx(expected.weights)
    assert weighting.weights['detection'] > weighting.weights['segmentation']
    restored = build_weighting('dwa', TASKS)
    restored.load_state_dict(weighting.state_dict())
    assert restored.weights == pytest.approx(weighting.weights)


def linear_losses(shared: torch.Tensor, directions, offsets):
    """Losses ``offset_t + <u_t, W>`` at ``W = 0``: value ``offset_t``, gradient ``u_t``."""
    return {f't{i}': offset + (u * shared).sum()
            for i, (u, offset) in enumerate(zip(directions, offsets))}


def test_gradnorm_lowers_the_weight_of_the_larger_gradient():
    shared = nn.Parameter(torch.zeros(3))
    weighting = build_weighting('gradnorm', ('t0', 't1'), alpha=1.5)
    assert weighting.requires_shared_grads is True
    optimizer = torch.optim.SGD(weighting.parameters(), lr=0.01)
    directions = [torch.tensor([10.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])]
    for _ in range(20):
        optimizer.zero_grad()
        aux = weighting.gradnorm_step(linear_losses(shared, directions, [1.0, 1.0]), [shared])
        assert aux is not None
        optimizer.step()
    assert shared.grad is None  # GradNorm never writes the network's gradients
    weights = weighting.weights
    assert weights['t0'] < 1.0 < weights['t1']
    assert sum(weights.values()) == pytest.approx(2.0)


def test_gradnorm_lowers_the_weight_of_the_faster_learning_task():
    shared = nn.Parameter(torch.zeros(2))
    weighting = build_weighting('gradnorm', ('t0', 't1'))
    directions = [torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])]  # equal gradient norms
    weighting.gradnorm_step(linear_losses(shared, directions, [2.0, 2.0]), [shared])  # L(0)
    # t0 has since dropped to 10 % of its initial loss, t1 only to 90 %.
    weighting.gradnorm_step(linear_losses(shared, directions, [0.2, 1.8]), [shared])
    grad = weighting.task_weights.grad
    assert grad[0] > 0.0 > grad[1]  # gradient descent lowers w0 and raises w1


def test_gradnorm_skips_a_task_missing_from_the_batch():
    shared = nn.Parameter(torch.zeros(2))
    weighting = build_weighting('gradnorm', ('t0', 't1'))
    directions = [torch.tensor([1.0, 0.0]), torch.tensor([0.0, 5.0])]
    losses = linear_losses(shared, directions, [1.0, 0.0])
    losses['t1'] = losses['t1'] * 0.0
    assert weighting.gradnorm_step(losses, [shared]) is None
    assert torch.count_nonzero(weighting.task_weights.grad) == 0
    assert float(weighting.initial_losses[1]) == 0.0  # L(0) waits for a real loss


def test_gradnorm_with_the_trainer_calling_convention():
    torch.manual_seed(0)
    shared = nn.Linear(4, 8)
    heads = nn.ModuleDict({'big': nn.Linear(8, 1), 'small': nn.Linear(8, 1)})
    weighting = build_weighting('gradnorm', ('big', 'small'))
    params = [*shared.parameters(), *heads.parameters()]
    optimizer = torch.optim.Adam([{'params': params},
                                  {'params': weighting.parameters(), 'lr': 0.02}], lr=0.01)
    x = torch.randn(32, 4)
    y = x.sum(dim=1, keepdim=True)
    for _ in range(30):
        features = torch.relu(shared(x))
        losses = {'big': 100.0 * ((heads['big'](features) - y) ** 2).mean(),
                  'small': ((heads['small'](features) - y) ** 2).mean()}
        total = weighting.combine(losses)
        optimizer.zero_grad()
        weighting.gradnorm_step(losses, shared.parameters())
        total.backward()
        optimizer.step()
    weights = weighting.weights
    assert weights['big'] < weights['small']
    assert min(weights.values()) > 0.0
    assert sum(weights.values()) == pytest.approx(2.0, rel=1e-4)
