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

"""The evaluation loop, `mtl-perception evaluate` and `mtl-perception synth`."""

import json
import math

from mtl_perception.cli.datasets import detect_layout
from mtl_perception.cli.main import main as cli_main
from mtl_perception.data import CocoFolderDataset, SyntheticAerialDataset
from mtl_perception.data.synthetic import DETECTION_CLASSES, SEGMENTATION_CLASSES
from mtl_perception.engine.evaluation import (EVAL_SCORE_THRESHOLD, evaluate_predictor,
                                              predictor_for_model)
from mtl_perception.inference.checkpoint import load_card, save_checkpoint
from mtl_perception.inference.predictor import Predictor
from mtl_perception.metrics import DetectionEvaluator, SegmentationEvaluator
from mtl_perception.modeling import build_model
from mtl_perception.replay.bag_io import open_bag
from mtl_perception.replay.flight import (CAMERA_INFO_TOPIC, DETECTIONS_TOPIC, IMAGE_TOPIC,
                                          MASK_TOPIC, OBJECTS_TOPIC, POSE_TOPIC)
import numpy as np
import pytest
import torch

ARCH = 'mobilenet_v3_large_ssdlite_fcn'
KWARGS = {'min_scale': 0.15, 'max_scale': 0.8, 'first_scale': 0.08}
DET_KEYS = {'map50', 'map50_voc07', 'map_coco', 'per_class_ap50'}
SEG_KEYS = {'miou', 'pixel_accuracy', 'per_class_iou'}


def _checkpoint(path, tasks):
    torch.manual_seed(0)
    model = build_model(ARCH, num_classes={'detection': 5, 'segmentation': 10},
                        input_size=96, tasks=tasks, **KWARGS)
    card = {'name': path.name, 'architecture': ARCH, 'arch_kwargs': KWARGS,
            'classes': {'detection': list(DETECTION_CLASSES),
                        'segmentation': list(SEGMENTATION_CLASSES)}}
    card['classes'] = {t: card['classes'][t] for t in tasks}
    save_checkpoint(model, path, card)
    return path


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    """Write a 3-image COCO-format folder with the synth CLI."""
    out = tmp_path_factory.mktemp('synth') / 'set'
    assert cli_main(['synth', '--out', str(out), '--images', '3', '--seed', '4',
                     '--size', '160x120', '--split', 'val', '--quiet']) == 0
    return out


def test_synth_folder_loads_with_exact_labels(folder, tmp_path):
    dataset = CocoFolderDataset(folder, split='val')
    reference = SyntheticAerialDataset(3, seed=4, size=(160, 120))
    assert len(dataset) == 3
    assert dataset.detection_classes == list(DETECTION_CLASSES)
    assert dataset.segmentation_classes == list(SEGMENTATION_CLASSES)
    for i in range(3):
        got, want = dataset[i], reference[i]
        np.testing.assert_array_equal(got['image'], want['image'])
        np.testing.assert_array_equal(got['mask'], want['mask'])
        np.testing.assert_allclose(got['boxes'], want['boxes'], atol=1e-4)
        np.testing.assert_array_equal(got['labels'], want['labels'])
    # --resize keeps the scene and halves the geometry
    half = tmp_path / 'half'
    assert cli_main(['synth', '--out', str(half), '--images', '1', '--seed', '4',
                     '--size', '160x120', '--resize', '80x60', '--quiet']) == 0
    small = CocoFolderDataset(half)[0]
    assert small['image'].shape == (60, 80, 3) and small['mask'].shape == (60, 80)
    np.testing.assert_allclose(small['boxes'], reference[0]['boxes'] / 2, atol=1e-3)


def test_synth_bag_is_readable(tmp_path):
    bag = tmp_path / 'flight'
    assert cli_main(['synth', '--bag', str(bag), '--frames', '2', '--rate', '5',
                     '--seed', '3', '--size', '96x64', '--world-size', '700x600',
                     '--storage', 'sqlite3', '--quiet']) == 0
    with open_bag(bag) as reader:
        counts = {name: info.count for name, info in reader.topics().items()}
    assert counts == {IMAGE_TOPIC: 2, CAMERA_INFO_TOPIC: 2, POSE_TOPIC: 2, DETECTIONS_TOPIC: 2,
                      MASK_TOPIC: 2, OBJECTS_TOPIC: 2}


def test_synth_needs_exactly_one_mode(tmp_path, capsys):
    assert cli_main(['synth', '--quiet']) == 2
    assert 'exactly one of' in capsys.readouterr().err
    assert cli_main(['synth', '--out', str(tmp_path), '--size', '640by480']) == 2


def test_layout_detection(folder, tmp_path):
    assert detect_layout(folder) == {'type': 'coco_folder', 'root': str(folder), 'split': 'val'}
    voc = tmp_path / 'VOCdevkit' / 'VOC2007' / 'JPEGImages'
    voc.mkdir(parents=True)
    assert detect_layout(tmp_path)['root'] == str(voc.parent)
    with pytest.raises(FileNotFoundError, match='neither'):
        detect_layout(tmp_path / 'VOCdevkit' / 'VOC2007' / 'JPEGImages')


def test_evaluation_loop_equals_metrics_computed_directly(folder, tmp_path):
    stem = _checkpoint(tmp_path / 'mt', ('detection', 'segmentation'))
    dataset = CocoFolderDataset(folder, split='val')
    with Predictor.from_checkpoint(stem, score_threshold=EVAL_SCORE_THRESHOLD) as predictor:
        result = evaluate_predictor(predictor, dataset, batch_size=2)
        det = DetectionEvaluator(list(DETECTION_CLASSES))
        seg = SegmentationEvaluator(list(SEGMENTATION_CLASSES))
        for i in range(len(dataset)):
            sample = dataset[i]
            pred = predictor.predict(sample['image'])
            det.update(pred.boxes, pred.scores, pred.labels, sample['boxes'], sample['labels'],
                       sample['difficult'])
            seg.update(pred.mask, sample['mask'])
    want_det, want_seg = det.compute(), seg.compute()
    assert result['images'] == 3
    for key in ('map50', 'map50_voc07', 'map_coco'):
        assert result['detection'][key] == pytest.approx(want_det[key], abs=1e-9)
    assert result['segmentation']['miou'] == pytest.approx(want_seg['miou'])
    assert result['segmentation']['pixel_accuracy'] == pytest.approx(
        want_seg['pixel_accuracy'])
    for name, iou in want_seg['per_class_iou'].items():
        got = result['segmentation']['per_class_iou'][name]
        assert (got is None and math.isnan(iou)) or got == pytest.approx(iou)


def test_in_memory_model_evaluates_like_its_checkpoint(folder, tmp_path):
    stem = _checkpoint(tmp_path / 'seg', ('segmentation',))
    dataset = CocoFolderDataset(folder, split='val')
    with Predictor.from_checkpoint(stem, score_threshold=EVAL_SCORE_THRESHOLD) as predictor:
        from_file = evaluate_predictor(predictor, dataset)
        model = build_model(ARCH, num_classes={'segmentation': 10}, input_size=96,
                            tasks=('segmentation',), **KWARGS)
        model.load_state_dict(predictor.backend.model.state_dict())
    in_memory = evaluate_predictor(predictor_for_model(model, load_card(stem)), dataset)
    assert in_memory == from_file


@pytest.mark.parametrize('tasks', [('detection', 'segmentation'), ('detection',),
                                   ('segmentation',)])
def test_evaluate_cli_json_shape(folder, tmp_path, capsys, tasks):
    stem = _checkpoint(tmp_path / 'model', tasks)
    out = tmp_path / 'metrics.json'
    assert cli_main(['evaluate', '--checkpoint', str(stem) + '.safetensors', '--data',
                     str(folder), '--json', str(out), '--quiet', '--update-card']) == 0
    record = json.loads(out.read_text())
    assert set(record) == {'images', 'detection', 'segmentation', 'checkpoint', 'data',
                           'split', 'backend', 'score_threshold'}
    assert (record['checkpoint'], record['data'], record['split'], record['backend'],
            record['score_threshold']) == ('model', 'set', 'val', 'torch', EVAL_SCORE_THRESHOLD)
    result = {k: record[k] for k in ('images', 'detection', 'segmentation')}
    assert result['images'] == 3
    if 'detection' in tasks:
        assert set(result['detection']) == DET_KEYS
        assert list(result['detection']['per_class_ap50']) == list(DETECTION_CLASSES)
        assert 0.0 <= result['detection']['map50'] <= 1.0
    else:
        assert result['detection'] is None
    if 'segmentation' in tasks:
        assert set(result['segmentation']) == SEG_KEYS
        assert list(result['segmentation']['per_class_iou']) == list(SEGMENTATION_CLASSES)
        assert 0.0 <= result['segmentation']['miou'] <= 1.0
    else:
        assert result['segmentation'] is None
    assert load_card(stem).metrics == record
    printed = capsys.readouterr().out
    assert ('mIoU' in printed) == ('segmentation' in tasks)
    assert ('COCO mAP' in printed) == ('detection' in tasks)


def test_evaluate_cli_reports_a_missing_folder(tmp_path, capsys):
    stem = _checkpoint(tmp_path / 'model', ('segmentation',))
    assert cli_main(['evaluate', '--checkpoint', str(stem), '--data',
                     str(tmp_path / 'none')]) == 2
    assert 'data folder not found' in capsys.readouterr().err
