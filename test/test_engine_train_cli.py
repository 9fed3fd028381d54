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

"""`mtl-perception train` end to end on a tiny synthetic set: logs, checkpoint, resume."""

from pathlib import Path

from mtl_perception.cli.main import main as cli_main
from mtl_perception.cli.recipe import DEFAULTS, load_recipe
from mtl_perception.engine.metric_log import read_log
from mtl_perception.engine.state import load_training_state
from mtl_perception.inference.checkpoint import load_checkpoint
import pytest
from safetensors.torch import load_file
import torch
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent

TINY = {
    'name': 'tiny',
    'tasks': ['detection', 'segmentation'],
    'model': {'arch': 'mobilenet_v3_large_ssdlite_fcn', 'input_size': 96,
              'kwargs': {'min_scale': 0.15, 'max_scale': 0.8, 'first_scale': 0.08}},
    'data': {'train': {'type': 'synthetic', 'images': 4, 'seed': 3, 'size': [128, 96]},
             'val': {'type': 'synthetic', 'images': 2, 'seed': 11, 'size': [128, 96]},
             'augment': 'none'},
    'training': {'epochs': 3, 'batch_size': 4, 'optimizer': 'adamw', 'lr': 0.003,
                 'weight_decay': 0.0, 'schedule': 'constant', 'warmup_iters': 0,
                 'eval_interval': 3, 'threads': 1, 'seed': 5, 'channels_last': True},
}


def _recipe(tmp_path, **changes):
    recipe = yaml.safe_load(yaml.safe_dump(TINY))
    for section, values in changes.items():
        recipe[section].update(values) if isinstance(values, dict) else \
            recipe.__setitem__(section, values)
    path = tmp_path / 'recipe.yaml'
    path.write_text(yaml.safe_dump(recipe))
    return path


def _train(recipe, output, *extra):
    return cli_main(['--log-level', 'WARNING', 'train', '--config', str(recipe),
                     '--output', str(output), '--no-progress', *extra])


def _epoch_losses(output):
    return {r['epoch']: r['value'] for r in read_log(output / 'train_log.csv')
            if r['phase'] == 'epoch' and r['name'] == 'loss/total'}


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Train the tiny recipe for 2 epochs, then resume it to 3."""
    root = tmp_path_factory.mktemp('train')
    recipe = _recipe(root)
    output = root / 'run'
    assert _train(recipe, output, '--set', 'training.epochs=2') == 0
    after_two = {k: v.clone() for k, v in load_file(str(output / 'tiny.safetensors')).items()}
    state_two = load_training_state(output / 'tiny')
    assert _train(recipe, output, '--resume') == 0
    return {'root': root, 'recipe': recipe, 'output': output, 'after_two': after_two,
            'state_two': state_two}


def test_training_writes_checkpoint_card_and_logs(trained):
    output = trained['output']
    model, card = load_checkpoint(output / 'tiny')
    assert card.tasks == ('detection', 'segmentation')
    assert card.classes['detection'] == ('car', 'truck', 'bus', 'person', 'bicycle')
    # the resolved recipe travels with the checkpoint
    assert card.recipe['training']['lr'] == pytest.approx(0.003)
    assert card.recipe['model']['arch'] == 'mobilenet_v3_large_ssdlite_fcn'
    assert (output / 'recipe.yaml').is_file()
    # held-out evaluation after the last epoch, in the evaluate JSON shape
    assert card.metrics['images'] == 2
    assert 0.0 <= card.metrics['segmentation']['miou'] <= 1.0
    assert set(card.metrics['detection']) == {'map50', 'map50_voc07', 'map_coco',
                                              'per_class_ap50'}
    rows = read_log(output / 'train_log.csv')
    assert {'loss/detection', 'loss/segmentation', 'loss/total', 'lr'} <= {
        r['name'] for r in rows if r['phase'] == 'train'}
    assert any(r['phase'] == 'eval' and r['name'] == 'segmentation/miou' for r in rows)


def test_loss_decreases(trained):
    losses = _epoch_losses(trained['output'])
    assert sorted(losses) == [1, 2, 3]
    assert losses[3] < losses[1]


def test_resume_continues_from_the_saved_step(trained):
    output = trained['output']
    assert trained['state_two']['epoch'] == 2 and trained['state_two']['step'] == 2
    state = load_training_state(output / 'tiny')
    assert state['epoch'] == 3 and state['step'] == 3
    steps = sorted({r['step'] for r in read_log(output / 'train_log.csv')
                    if r['phase'] == 'train'})
    assert steps == [1, 2, 3]  # the resumed run went on from step 2, not from scratch
    final = load_file(str(output / 'tiny.safetensors'))
    assert any(not torch.equal(final[k], v) for k, v in trained['after_two'].items())


def test_resumed_run_matches_an_uninterrupted_run(trained, tmp_path):
    output = tmp_path / 'straight'
    assert _train(trained['recipe'], output) == 0
    straight = load_file(str(output / 'tiny.safetensors'))
    resumed = load_file(str(trained['output'] / 'tiny.safetensors'))
    for key, value in straight.items():
        torch.testing.assert_close(resumed[key], value, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('tasks', [['detection'], ['segmentation']])
def test_single_task_twin_from_the_same_recipe(tmp_path, tasks):
    recipe = _recipe(tmp_path, training={'epochs': 1, 'eval_interval': 0})
    output = tmp_path / 'twin'
    assert _train(recipe, output, '--set', f'tasks={tasks}') == 0
    model, card = load_checkpoint(output / 'tiny')
    assert model.tasks == tuple(tasks) and card.tasks == tuple(tasks)


def test_overrides_apply_dotted_keys(tmp_path):
    recipe = load_recipe(_recipe(tmp_path), ['training.lr=0.05', 'model.kwargs.min_scale=0.2',
                                             'data.train.images=7', 'tasks=[segmentation]'])
    assert recipe['training']['lr'] == 0.05
    assert recipe['model']['kwargs']['min_scale'] == 0.2
    assert recipe['data']['train']['images'] == 7
    assert recipe['tasks'] == ['segmentation']
    assert recipe['training']['momentum'] == DEFAULTS['training']['momentum']


@pytest.mark.parametrize('override,message', [
    ('training.lrr=0.1', "unknown recipe key 'training.lrr'"),
    ('modle.arch=x', "unknown recipe key 'modle'"),
    ('model.arch=no_such_net', 'not a registered architecture'),
    ('training.optimizer=adam', 'training.optimizer must be one of'),
    ('training.epochs=0', 'training.epochs must be an int >= 1'),
    ('tasks=[depth]', 'tasks must be a non-empty list'),
    ('data.train.imagez=3', "unknown keys ['imagez']"),
    ('training.lr', 'must look like key=value'),
])
def test_bad_recipes_are_clear_errors(tmp_path, override, message):
    with pytest.raises(ValueError, match=message.replace('[', r'\[').replace(']', r'\]')):
        load_recipe(_recipe(tmp_path), [override])


def test_missing_data_folder_is_named(tmp_path, capsys):
    missing = tmp_path / 'nowhere'
    recipe = _recipe(tmp_path, data={'train': {'type': 'coco_folder', 'root': str(missing)}})
    assert _train(recipe, tmp_path / 'out') == 2
    assert str(missing) in capsys.readouterr().err


def test_shipped_recipes_validate_up_to_their_data(tmp_path):
    voc = REPO_ROOT / 'config' / 'train' / 'voc_resnet50_ssd300_fcn.yaml'
    with pytest.raises(FileNotFoundError, match='backbone_weights'):
        load_recipe(voc, base_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match='data folder not found'):
        load_recipe(voc, ['model.backbone_weights=null'], base_dir=tmp_path)
    uav = REPO_ROOT / 'config' / 'train' / 'synthetic_uav.yaml'
    recipe = load_recipe(uav, ['data.train={type: synthetic, images: 1}', 'data.val=null'],
                         base_dir=tmp_path)
    assert recipe['model']['arch'] == 'mobilenet_v3_large_ssdlite_fcn'


@pytest.mark.parametrize('weighting', ['uncertainty', 'dwa', 'gradnorm'])
def test_adaptive_weightings_train_and_log_their_weights(tmp_path, weighting):
    recipe = _recipe(tmp_path, training={'epochs': 2, 'eval_interval': 0,
                                         'weighting': weighting, 'weighting_kwargs': {}})
    output = tmp_path / weighting
    assert _train(recipe, output) == 0
    rows = [r for r in read_log(output / 'train_log.csv') if r['phase'] == 'train']
    names = {r['name'] for r in rows}
    assert {'weight/detection', 'weight/segmentation'} <= names
    assert ('gradnorm_loss' in names) == (weighting == 'gradnorm')
    if weighting != 'dwa':  # DWA keeps weight 1 for its first two epochs
        weights = [r['value'] for r in rows if r['name'] == 'weight/detection']
        assert weights[-1] != pytest.approx(1.0, abs=1e-7)
