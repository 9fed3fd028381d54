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

"""Tests for anchor matching, the MultiBox loss, the segmentation loss and MultiTaskLoss."""

from mtl_perception.modeling.box_coder import encode
from mtl_perception.modeling.losses import (
    match_anchors, MultiBoxLoss, MultiTaskLoss, segmentation_loss)
from mtl_perception.modeling.weighting import build_weighting
import pytest
import torch
import torch.nn.functional as F


def grid_anchors(cells: int = 4, size: float = 0.25) -> torch.Tensor:
    """Return [cells*cells, 4] cxcywh anchors of side ``size`` centred on a regular grid."""
    centres = (torch.arange(cells, dtype=torch.float32) + 0.5) / cells
    cy, cx = torch.meshgrid(centres, centres, indexing='ij')
    sizes = torch.full_like(cx, size)
    return torch.stack([cx, cy, sizes, sizes], dim=-1).reshape(-1, 4)


def no_boxes() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)


# --- matching ---------------------------------------------------------------------------------

def test_match_forces_best_anchor_below_threshold():
    anchors = grid_anchors()  # 16 anchors of side 0.25
    # A tiny box inside cell (row 1, col 2): IoU with its cell's anchor is far below 0.5.
    gt = torch.tensor([[0.55, 0.30, 0.60, 0.35]])
    matched, labels = match_anchors(gt, torch.tensor([4]), anchors)
    best = 1 * 4 + 2
    assert labels[best] == 5  # label + 1
    assert int((labels > 0).sum()) == 1
    torch.testing.assert_close(matched[best], gt[0])


def test_match_each_gt_keeps_its_best_anchor_and_threshold_adds_more():
    anchors = torch.tensor([
        [0.25, 0.25, 0.5, 0.5],    # 0: exactly gt 0
        [0.27, 0.25, 0.5, 0.5],    # 1: IoU ~0.92 with gt 0
        [0.25, 0.75, 0.5, 0.5],    # 2: overlaps neither gt
        [0.75, 0.75, 0.1, 0.1],    # 3: best (only) anchor of gt 1, IoU 0.16
    ])
    gt = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.6, 0.6, 0.85, 0.85]])
    matched, labels = match_anchors(gt, torch.tensor([0, 1]), anchors)
    assert labels.tolist() == [1, 1, 0, 2]
    torch.testing.assert_close(matched[3], gt[1])
    torch.testing.assert_close(matched[1], gt[0])


def test_match_no_objects_and_degenerate_boxes():
    anchors = grid_anchors(2, 0.5)
    matched, labels = match_anchors(*no_boxes(), anchors)
    assert labels.tolist() == [0, 0, 0, 0]
    torch.testing.assert_close(matched[0], torch.tensor([0.0, 0.0, 0.5, 0.5]))
    # A zero-width box cannot be encoded: it is ignored instead of matched.
    _, labels = match_anchors(torch.tensor([[0.2, 0.2, 0.2, 0.4]]), torch.tensor([0]), anchors)
    assert labels.sum() == 0


def test_match_rejects_bad_shapes():
    with pytest.raises(ValueError, match='gt_boxes'):
        match_anchors(torch.zeros(3), torch.zeros(3, dtype=torch.long), grid_anchors())
    with pytest.raises(ValueError, match='gt_labels'):
        match_anchors(torch.zeros(2, 4), torch.zeros(3, dtype=torch.long), grid_anchors())


# --- MultiBox loss -----------------------------------------------------------------------------

def make_predictions(n: int, a: int, classes: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    loc = torch.randn(n, a, 4, generator=generator).requires_grad_()
    logits = torch.randn(n, a, classes + 1, generator=generator).requires_grad_()
    return loc, logits


def test_hard_negative_mining_keeps_three_hardest_per_positive():
    anchors = grid_anchors()  # 16 anchors
    gt = torch.tensor([[0.0, 0.0, 0.25, 0.25], [0.75, 0.75, 1.0, 1.0]])  # cells 0 and 15
    loc, logits = make_predictions(1, 16, 3)
    with torch.no_grad():
        logits[0, :, 0] = 5.0  # every anchor confidently background ...
        hard = [3, 6, 9, 10, 12, 13]
        logits[0, hard, 0] = -5.0  # ... except these six hard negatives
    parts = MultiBoxLoss().parts(loc, logits, anchors, [gt], [torch.tensor([0, 2])],
                                 torch.tensor([True]))
    assert int(parts.num_positives) == 2
    assert int(parts.num_negatives) == 6
    parts.total.backward()
    touched = (logits.grad[0].abs().sum(dim=-1) > 0).nonzero().flatten().tolist()
    assert touched == sorted([0, 15] + hard)


def test_hard_negative_mining_takes_all_negatives_when_too_few():
    anchors = grid_anchors(2, 0.5)  # 4 anchors
    gt = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]])
    loc, logits = make_predictions(1, 4, 2)
    parts = MultiBoxLoss().parts(loc, logits, anchors, [gt], [torch.tensor([0, 1])],
                                 torch.tensor([True]))
    assert int(parts.num_positives) == 2
    assert int(parts.num_negatives) == 2  # 6 wanted, only 2 exist


def test_empty_labelled_image_gives_capped_hard_negatives_only():
    anchors = grid_anchors()
    loc, logits = make_predictions(1, 16, 2)
    loss = MultiBoxLoss(empty_image_positives=2)
    parts = loss.parts(loc, logits, anchors, [no_boxes()[0]], [no_boxes()[1]],
                       torch.tensor([True]))
    assert int(parts.num_positives) == 0
    assert int(parts.num_negatives) == 6
    assert float(parts.loc.detach()) == 0.0
    assert float(parts.conf.detach()) > 0.0
    parts.total.backward()
    assert torch.count_nonzero(logits.grad.abs().sum(-1)) == 6
    assert torch.count_nonzero(loc.grad) == 0


def test_unlabelled_sample_gets_zero_gradient_and_does_not_change_loss():
    anchors = grid_anchors()
    gt = torch.tensor([[0.0, 0.0, 0.3, 0.3]])
    loc, logits = make_predictions(2, 16, 2)
    boxes = [gt, torch.tensor([[0.5, 0.5, 1.0, 1.0]])]
    labels = [torch.tensor([1]), torch.tensor([0])]
    loss = MultiBoxLoss()
    total = loss(loc, logits, anchors, boxes, labels, torch.tensor([True, False]))
    total.backward()
    assert torch.count_nonzero(loc.grad[1]) == 0
    assert torch.count_nonzero(logits.grad[1]) == 0
    assert torch.count_nonzero(logits.grad[0]) > 0
    alone = loss(loc[:1], logits[:1], anchors, boxes[:1], labels[:1], torch.tensor([True]))
    torch.testing.assert_close(total, alone)


def test_no_labelled_sample_gives_zero_loss_with_zero_gradient():
    anchors = grid_anchors()
    loc, logits = make_predictions(2, 16, 2)
    total = MultiBoxLoss()(loc, logits, anchors, [None, None], [None, None],
                           torch.tensor([False, False]))
    assert float(total.detach()) == 0.0
    total.backward()
    assert torch.count_nonzero(logits.grad) == 0


def test_loss_values_match_hand_computation():
    anchors = grid_anchors(2, 0.5)
    gt = torch.tensor([[0.05, 0.0, 0.5, 0.45]])
    loc, logits = make_predictions(1, 4, 2)
    parts = MultiBoxLoss().parts(loc, logits, anchors, [gt], [torch.tensor([1])],
                                 torch.tensor([True]))
    target = encode(gt, anchors[:1])
    expected_loc = F.smooth_l1_loss(loc[0, :1], target, reduction='sum')
    ce = F.cross_entropy(logits[0], torch.tensor([2, 0, 0, 0]), reduction='none')
    torch.testing.assert_close(parts.loc, expected_loc)
    torch.testing.assert_close(parts.conf, ce.sum())  # 1 positive + all 3 negatives, / 1
    # Perfect localisation leaves only the confidence term.
    with torch.no_grad():
        loc[0, 0] = target[0]
    parts = MultiBoxLoss().parts(loc, logits, anchors, [gt], [torch.tensor([1])],
                                 torch.tensor([True]))
    assert float(parts.loc.detach()) == pytest.approx(0.0, abs=1e-6)


def test_loss_is_normalised_by_positives():
    anchors = grid_anchors()
    gt = torch.tensor([[0.0, 0.0, 0.25, 0.25], [0.5, 0.5, 0.75, 0.75]])
    loc, logits = make_predictions(1, 16, 2)
    loss = MultiBoxLoss()
    one = loss(loc, logits, anchors, [gt], [torch.tensor([0, 1])], torch.tensor([True]))
    two = loss(loc.repeat(2, 1, 1), logits.repeat(2, 1, 1), anchors, [gt, gt],
               [torch.tensor([0, 1])] * 2, torch.tensor([True, True]))
    torch.testing.assert_close(one, two)


def test_multibox_rejects_bad_input():
    anchors = grid_anchors()
    loc, logits = make_predictions(1, 16, 2)
    loss = MultiBoxLoss()
    with pytest.raises(ValueError, match='anchors'):
        loss(loc, logits, anchors[:5], [no_boxes()[0]], [no_boxes()[1]], torch.tensor([True]))
    with pytest.raises(ValueError, match='logits'):
        loss(loc, logits[:, :3], anchors, [no_boxes()[0]], [no_boxes()[1]],
             torch.tensor([True]))
    with pytest.raises(ValueError, match='has_boxes'):
        loss(loc, logits, anchors, [no_boxes()[0]], [no_boxes()[1]], torch.tensor(True))
    with pytest.raises(ValueError, match='labels must be in'):
        loss(loc, logits, anchors, [torch.tensor([[0.0, 0.0, 0.2, 0.2]])], [torch.tensor([2])],
             torch.tensor([True]))


# --- segmentation loss -------------------------------------------------------------------------

def test_segmentation_loss_without_masks_is_zero_with_zero_gradient():
    logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    mask = torch.full((2, 8, 8), 255, dtype=torch.long)
    loss = segmentation_loss(logits, mask, torch.tensor([False, False]))
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert logits.grad is not None and torch.count_nonzero(logits.grad) == 0


def test_segmentation_loss_uses_only_labelled_samples_and_ignores_void():
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 8, 8, generator=generator, requires_grad=True)
    mask = torch.randint(0, 3, (2, 8, 8), generator=generator)
    mask[0, :4] = 255
    loss = segmentation_loss(logits, mask, torch.tensor([True, False]))
    expected = F.cross_entropy(logits[:1], mask[:1], ignore_index=255)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert torch.count_nonzero(logits.grad[1]) == 0
    assert torch.count_nonzero(logits.grad[0, :, :4]) == 0
    assert torch.count_nonzero(logits.grad[0, :, 4:]) > 0


def test_segmentation_loss_all_void_is_zero_not_nan():
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    mask = torch.full((1, 4, 4), 255, dtype=torch.long)
    loss = segmentation_loss(logits, mask, torch.tensor([True]))
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert torch.isfinite(logits.grad).all()


def test_segmentation_loss_rejects_bad_shapes():
    logits = torch.randn(2, 3, 8, 8)
    with pytest.raises(ValueError, match='mask'):
        segmentation_loss(logits, torch.zeros(2, 4, 4, dtype=torch.long),
                          torch.tensor([True, True]))
    with pytest.raises(ValueError, match='has_mask'):
        segmentation_loss(logits, torch.zeros(2, 8, 8, dtype=torch.long), torch.tensor([True]))


# --- MultiTaskLoss -----------------------------------------------------------------------------

def make_batch(tasks, n=2, a=16, det_classes=2, seg_classes=3, size=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    outputs, targets = {}, {}
    if 'detection' in tasks:
        outputs['detection'] = {
            'loc': torch.randn(n, a, 4, generator=generator, requires_grad=True),
            'logits': torch.randn(n, a, det_classes + 1, generator=generator,
                                  requires_grad=True)}
    if 'segmentation' in tasks:
        outputs['segmentation'] = torch.randn(n, seg_classes, size, size, generator=generator,
                                              requires_grad=True)
    targets['boxes'] = [torch.tensor([[0.1, 0.1, 0.4, 0.5]])] * n
    targets['labels'] = [torch.tensor([1])] * n
    targets['has_boxes'] = torch.ones(n, dtype=torch.bool)
    targets['mask'] = torch.randint(0, seg_classes, (n, size, size), generator=generator)
    targets['has_mask'] = torch.ones(n, dtype=torch.bool)
    return outputs, targets


@pytest.mark.parametrize('tasks', [('detection',), ('segmentation',),
                                   ('detection', 'segmentation')])
def test_multitask_loss_per_task_and_total(tasks):
    weights = {'detection': 1.0, 'segmentation': 0.5}
    criterion = MultiTaskLoss(tasks, build_weighting('fixed', tasks, weights=weights))
    outputs, targets = make_batch(tasks)
    losses = criterion(outputs, targets, grid_anchors())
    assert set(losses) == set(tasks) | {'total'}
    if 'detection' in tasks:
        det = outputs['detection']
        expected = MultiBoxLoss()(det['loc'], det['logits'], grid_anchors(), targets['boxes'],
                                  targets['labels'], targets['has_boxes'])
        torch.testing.assert_close(losses['detection'], expected)
        assert set(criterion.last_components) == {
            'detection/loc', 'detection/conf', 'detection/num_positives'}
    if 'segmentation' in tasks:
        expected = segmentation_loss(outputs['segmentation'], targets['mask'],
                                     targets['has_mask'])
        torch.testing.assert_close(losses['segmentation'], expected)
    if len(tasks) == 2:
        expected_total = losses['detection'] + 0.5 * losses['segmentation']
    else:
        expected_total = losses[tasks[0]]  # a single task trains on the plain loss
    torch.testing.assert_close(losses['total'], expected_total)
    losses['total'].backward()


def test_multitask_loss_partially_labelled_batch():
    tasks = ('detection', 'segmentation')
    criterion = MultiTaskLoss(tasks, build_weighting('fixed', tasks))
    outputs, targets = make_batch(tasks)
    targets['has_mask'] = torch.tensor([False, False])
    targets['has_boxes'] = torch.tensor([True, False])
    losses = criterion(outputs, targets, grid_anchors())
    assert float(losses['segmentation'].detach()) == 0.0
    losses['total'].backward()
    assert torch.count_nonzero(outputs['segmentation'].grad) == 0
    assert torch.count_nonzero(outputs['detection']['logits'].grad[1]) == 0
    assert torch.count_nonzero(outputs['detection']['logits'].grad[0]) > 0


def test_multitask_loss_owns_weighting_parameters():
    tasks = ('detection', 'segmentation')
    criterion = MultiTaskLoss(tasks, build_weighting('uncertainty', tasks))
    assert len(list(criterion.parameters())) == 1
    outputs, targets = make_batch(tasks)
    criterion(outputs, targets, grid_anchors())['total'].backward()
    assert criterion.weighting.log_vars.grad is not None


def test_multitask_loss_rejects_mismatches():
    with pytest.raises(ValueError, match='weighting'):
        MultiTaskLoss(('detection',), build_weighting('fixed', ('detection', 'segmentation')))
    with pytest.raises(ValueError, match='tasks'):
        MultiTaskLoss(('depth',), build_weighting('fixed', ('depth',)))
    tasks = ('detection', 'segmentation')
    criterion = MultiTaskLoss(tasks, build_weighting('fixed', tasks))
    outputs, targets = make_batch(('segmentation',))
    with pytest.raises(ValueError, match='detection'):
        criterion(outputs, targets, grid_anchors())
    outputs, targets = make_batch(tasks)
    with pytest.raises(ValueError, match='anchors'):
        criterion(outputs, targets, None)
