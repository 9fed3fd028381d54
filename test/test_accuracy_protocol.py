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
The accuracy protocol: training data, class-balanced loss, split separation, flight scoring.

Flight-style training views, the class-balanced segmentation loss, the separation of the
shipped recipe's and the Makefile's splits, and offline evaluation of a flight bag (at the
evaluation's score threshold and at the nodes').
"""

import json
from pathlib import Path
import re

from mtl_perception.cli.datasets import detect_layout
from mtl_perception.cli.main import main as cli_main
from mtl_perception.cli.recipe import load_recipe
from mtl_perception.data import (class_pixel_counts, CocoFolderDataset, SyntheticAerialDataset,
                                 SyntheticFlightViews)
from mtl_perception.data.synthetic import (CameraEffects, DETECTION_CLASSES, motion_blur,
                                           SEGMENTATION_CLASSES)
from mtl_perception.engine.state import load_training_state
from mtl_perception.modeling.losses import balanced_class_weights, segmentation_loss
from mtl_perception.replay.bag_io import open_bag
from mtl_perception.replay.flight import DETECTIONS_TOPIC, IMAGE_TOPIC, MASK_TOPIC
from mtl_perception.replay.flight_dataset import FlightBagDataset
from mtl_perception.replay.messages import detection_array_to_numpy, image_to_array
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
ARCH = 'mobilenet_v3_large_ssdlite_fcn'
KWARGS = {'min_scale': 0.15, 'max_scale': 0.8, 'first_scale': 0.08, 'fcn_variant': '4s'}


def test_flight_views_are_reproducible_labelled_and_unlike_the_stills():
    views = SyntheticFlightViews(4, seed=3, size=(160, 120))
    again = SyntheticFlightViews(4, seed=3, size=(160, 120))
    stills = SyntheticAerialDataset(4, seed=3, size=(160, 120))
    for i in range(len(views)):
        sample = views[i]
        for key in ('image', 'boxes', 'labels', 'mask'):
            np.testing.assert_array_equal(sample[key], again[i][key])
        assert sample['image'].shape == (120, 160, 3) and sample['mask'].shape == (120, 160)
        assert sample['mask'].max() <= 9  # the world holds the whole rotated view: no void
        assert not np.array_equal(sample['image'], stills[i]['image'])
        for box, label in zip(sample['boxes'], sample['labels']):
            x1, y1, x2, y2 = box.astype(int)
            # Each box holds pixels of its own class (it is the extent of visible pixels).
            assert (sample['mask'][y1:y2, x1:x2] == label + 5).any()
    assert not np.array_equal(views[0]['image'], views[1]['image'])
    assert views[0]['image_id'] == 'synthetic_flight_3_000000'
    with pytest.raises(IndexError):
        views[4]


def test_flight_views_cover_the_classes():
    views = SyntheticFlightViews(12, seed=0, size=(320, 240))
    labels = set()
    seg = set()
    for i in range(len(views)):
        labels |= set(views[i]['labels'].tolist())
        seg |= set(np.unique(views[i]['mask']).tolist())
    assert labels == set(range(len(DETECTION_CLASSES)))
    # Lakes are rarer per view (about one view in six), like a flight's frames over a world.
    assert seg >= set(range(len(SEGMENTATION_CLASSES))) - {SEGMENTATION_CLASSES.index('water')}


def test_motion_blur_smears_along_the_direction_of_travel_only():
    image = np.zeros((40, 30, 3), np.uint8)
    image[20:, :] = 200  # an edge across the direction of travel (rows)
    image[:, 15:, 1] = 100  # and one along it (columns), in another channel
    blurred = motion_blur(image, 6.0)
    assert blurred.shape == image.shape and blurred.dtype == np.uint8
    column = blurred[:, 5, 0].astype(int)
    assert column[10] == 0 and column[30] == 200 and 0 < column[19] < 200
    assert ((column[17:23] > 0) & (column[17:23] < 200)).sum() == 5  # a 6-tap ramp
    np.testing.assert_array_equal(blurred[5, :, 1], image[5, :, 1])  # no horizontal smear
    np.testing.assert_array_equal(motion_blur(image, 1.4), image)
    flat = np.full((10, 10, 3), 77, np.uint8)
    np.testing.assert_array_equal(motion_blur(flat, 5.0), flat)
    effects = CameraEffects.sample_flight(np.random.default_rng(1))
    assert effects.motion_blur_px == 0.0 or 2.0 <= effects.motion_blur_px <= 8.0


def test_weighted_segmentation_loss_equals_torch_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 6, 5, requires_grad=True)
    mask = torch.randint(0, 4, (3, 6, 5))
    mask[0, :2] = 255
    has_mask = torch.tensor([True, False, True])
    weights = torch.tensor([0.5, 1.0, 2.0, 4.0])
    loss = segmentation_loss(logits, mask, has_mask, weights)
    expected = F.cross_entropy(logits[has_mask], mask[has_mask], weight=weights,
                               ignore_index=255)
    assert torch.allclose(loss, expected, atol=1e-6)
    plain = segmentation_loss(logits, mask, has_mask)
    assert torch.allclose(segmentation_loss(logits, mask, has_mask, torch.full((4,), 3.0)),
                          plain, atol=1e-6)
    void = segmentation_loss(logits, torch.full_like(mask, 255), has_mask, weights)
    assert void.item() == 0.0
    void.backward()
    assert not logits.grad.any()
    with pytest.raises(ValueError, match='class_weights'):
        segmentation_loss(logits, mask, has_mask, torch.ones(3))


def test_balanced_class_weights():
    counts = [900, 90, 9, 0, 1]
    weights = balanced_class_weights(counts).double()
    freq = torch.tensor(counts, dtype=torch.float64) / sum(counts)
    assert torch.isclose((freq * weights).sum(), torch.tensor(1.0, dtype=torch.float64))
    assert torch.isclose(weights[2] / weights[0], torch.tensor(10.0, dtype=torch.float64))
    assert weights[3] == weights.max() == weights[4]  # absent: the largest present weight
    assert torch.allclose(balanced_class_weights(counts, power=0.0), torch.ones(5))
    for bad in ([], [0, 0], [-1, 3]):
        with pytest.raises(ValueError, match='pixel_counts'):
            balanced_class_weights(bad)


def test_class_pixel_counts_match_the_masks():
    dataset = SyntheticAerialDataset(3, seed=2, size=(96, 64))
    expected = sum(np.bincount(dataset[i]['mask'].ravel(), minlength=10) for i in range(3))
    np.testing.assert_array_equal(class_pixel_counts(dataset, 10, progress=False), expected)
    bad = [{'mask': np.array([[0, 1], [7, 255]], np.uint8), 'image_id': 'odd'}]
    with pytest.raises(ValueError, match='odd: mask value 7 is not a class of 5'):
        class_pixel_counts(bad, 5, progress=False)


TINY = {
    'name': 'tiny', 'tasks': ['detection', 'segmentation'],
    'model': {'arch': ARCH, 'input_size': 96, 'kwargs': KWARGS},
    'data': {'train': {'type': 'synthetic', 'images': 4, 'seed': 3, 'size': [128, 96]},
             'val': None, 'augment': 'none'},
    'training': {'epochs': 1, 'batch_size': 4, 'optimizer': 'adamw', 'lr': 0.003,
                 'schedule': 'constant', 'warmup_iters': 0, 'eval_interval': 0, 'threads': 1,
                 'segmentation_class_weights': 'balanced'},
}


def _train(tmp_path, *overrides):
    recipe = tmp_path / 'recipe.yaml'
    recipe.write_text(yaml.safe_dump(TINY))
    args = ['--log-level', 'WARNING', 'train', '--config', str(recipe), '--output',
            str(tmp_path / 'run'), '--no-progress']
    for override in overrides:
        args += ['--set', override]
    return cli_main(args)


def test_training_weighs_the_classes_by_their_pixel_counts(tmp_path, capsys):
    assert _train(tmp_path) == 0
    assert 'segmentation class weights: ground' in capsys.readouterr().out
    state = load_training_state(tmp_path / 'run' / 'tiny')
    stored = state['criterion']['segmentation_class_weights']
    dataset = SyntheticAerialDataset(4, seed=3, size=(128, 96))
    expected = balanced_class_weights(class_pixel_counts(dataset, 10, progress=False))
    assert torch.allclose(stored, expected)


def test_class_weight_settings_are_checked(tmp_path, capsys):
    assert _train(tmp_path, 'training.segmentation_class_weights=[1, 2]') == 2
    assert 'has 2 values for 10 segmentation classes' in capsys.readouterr().err
    with pytest.raises(ValueError, match='segmentation_class_weights must be null'):
        load_recipe(REPO_ROOT / 'config' / 'train' / 'synthetic_uav.yaml',
                    ['training.segmentation_class_weights=heavy', 'data.val=null',
                     'data.train={type: synthetic, images: 1}'], base_dir=tmp_path)
    # A detection-only twin of a recipe with class weights trains (nothing to weigh).
    assert _train(tmp_path, 'tasks=[detection]', 'name=det') == 0


def _split_seeds() -> dict:
    """Return {folder: (style, seed, split)} from the Makefile's synth rules."""
    rules = re.findall(r'\$\(SYNTH\) --out (\S+)(.*)', (REPO_ROOT / 'Makefile').read_text())
    seeds = {}
    for folder, rest in rules:
        style = 'flight' if '--style flight' in rest else 'stills'
        split = re.search(r'--split (\w+)', rest)
        seeds[folder] = (style, int(re.search(r'--seed (\d+)', rest).group(1)),
                         split.group(1) if split else 'train')
    return seeds


def test_shipped_recipe_keeps_train_val_and_test_apart(tmp_path):
    seeds = _split_seeds()
    assert {split for _, _, split in seeds.values()} == {'train', 'val', 'test'}
    per_style = {}
    for style, seed, _ in seeds.values():
        per_style.setdefault(style, []).append(seed)
    for style, values in per_style.items():
        assert len(values) == len(set(values)), f'{style} splits share a seed: {values}'
    recipe = yaml.safe_load((REPO_ROOT / 'config' / 'train' / 'synthetic_uav.yaml').read_text())
    for part, split in (('train', 'train'), ('val', 'val')):
        roots = {s['root'] for s in recipe['data'][part]['sources']}
        assert roots == {f for f, (_, _, sp) in seeds.items() if sp == split}
        assert all(s['split'] == split for s in recipe['data'][part]['sources'])
    # The demo flight (seed 0) and the test splits are never trained or validated on.
    assert all(seed != 0 for _, seed, split in seeds.values() if split != 'test')


@pytest.fixture(scope='module')
def flight_bag(tmp_path_factory):
    bag = tmp_path_factory.mktemp('flight') / 'bag'
    # Frames 2 s apart over a small world: 11 objects in the 4 frames of this seed.
    assert cli_main(['synth', '--bag', str(bag), '--frames', '4', '--rate', '0.5', '--seed',
                     '3', '--size', '320x240', '--world-size', '1500x1200', '--quiet']) == 0
    return bag


def test_flight_bag_reads_as_a_data_set(flight_bag):
    dataset = FlightBagDataset(flight_bag)
    assert len(dataset) == 4
    assert sum(len(s['labels']) for s in dataset.samples) == 11
    assert dataset.detection_classes == list(DETECTION_CLASSES)
    with open_bag(flight_bag) as bag:
        messages = list(bag.messages([IMAGE_TOPIC, DETECTIONS_TOPIC, MASK_TOPIC]))
    images = [image_to_array(m) for t, _, m in messages if t == IMAGE_TOPIC]
    truth = [detection_array_to_numpy(m) for t, _, m in messages if t == DETECTIONS_TOPIC]
    masks = [image_to_array(m) for t, _, m in messages if t == MASK_TOPIC]
    for i, sample in enumerate(dataset.samples):
        np.testing.assert_array_equal(sample['image'], images[i])
        np.testing.assert_array_equal(sample['mask'], masks[i])
        np.testing.assert_allclose(sample['boxes'], truth[i][0])
        assert [DETECTION_CLASSES[k] for k in sample['labels']] == truth[i][1]
    assert detect_layout(flight_bag) == {'type': 'flight_bag', 'root': str(flight_bag)}
    with pytest.raises(ValueError, match='no splits'):
        detect_layout(flight_bag, 'val')
    with pytest.raises(ValueError, match='single-camera flight'):
        FlightBagDataset(flight_bag, camera='cam1')


def test_evaluate_a_flight_bag_at_two_score_thresholds(flight_bag, tmp_path):
    stem = REPO_ROOT / 'models' / 'uav_synthetic_multitask'  # the shipped demo model
    records = {}
    for threshold in (None, '0.3'):
        out = tmp_path / f'{threshold}.json'
        extra = [] if threshold is None else ['--score-threshold', threshold]
        assert cli_main(['evaluate', '--checkpoint', str(stem), '--data', str(flight_bag),
                         '--json', str(out), '--quiet', *extra]) == 0
        records[threshold] = json.loads(out.read_text())
    low, high = records[None], records['0.3']
    assert low['images'] == high['images'] == 4 and low['data'] == 'bag'
    assert (low['score_threshold'], high['score_threshold']) == (0.01, 0.3)
    # A higher threshold only cuts the low-score end of the precision-recall curve.
    assert 0.0 < high['detection']['map50'] <= low['detection']['map50']
    assert high['segmentation'] == low['segmentation']
    assert cli_main(['evaluate', '--checkpoint', str(stem), '--data', str(flight_bag),
                     '--score-threshold', '1.5']) == 2


def test_coco_folder_of_flight_views(tmp_path):
    out = tmp_path / 'views'
    assert cli_main(['synth', '--out', str(out), '--style', 'flight', '--images', '2',
                     '--seed', '5', '--size', '160x120', '--quiet']) == 0
    folder = CocoFolderDataset(out, split='train')
    views = SyntheticFlightViews(2, seed=5, size=(160, 120))
    for i in range(2):
        np.testing.assert_array_equal(folder[i]['mask'], views[i]['mask'])
        np.testing.assert_array_equal(folder[i]['labels'], views[i]['labels'])
