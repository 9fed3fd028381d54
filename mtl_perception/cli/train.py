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
`mtl-perception train`: train a network from a YAML recipe.

``mtl-perception train --config config/train/<recipe>.yaml [--set key=value ...]
[--output DIR] [--resume]``. The recipe format is in :mod:`mtl_perception.cli.recipe`. The
resolved recipe is logged, written to ``<output>/recipe.yaml`` and stored in the model card
(``recipe``), so every checkpoint says how it was made. The same recipe with
``--set tasks=[detection]`` or ``--set tasks=[segmentation]`` trains the single-task twins
identically.
"""

import argparse
import logging
from pathlib import Path

import yaml

_LOG = logging.getLogger('mtl_perception.train')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the train options to ``parser``."""
    parser.add_argument('--config', type=Path, required=True, metavar='RECIPE',
                        help='training recipe YAML (e.g. config/train/synthetic_uav.yaml)')
    parser.add_argument('--set', dest='overrides', action='append', default=[],
                        metavar='KEY=VALUE',
                        help='override a recipe value, e.g. --set training.lr=0.01 '
                             '(repeatable; values are YAML)')
    parser.add_argument('--output', type=Path, default=None, metavar='DIR',
                        help="output folder (default: the recipe's output, else runs/<name>)")
    parser.add_argument('--resume', action='store_true',
                        help='continue the run saved in the output folder')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def _device(name: str):
    import torch
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    return torch.device(name)


def build_run(recipe: dict, output: Path, *, progress: bool = True):
    """Build the Trainer a validated recipe describes (model, data, optimisation)."""
    import torch
    from mtl_perception.cli.datasets import build_source, build_transforms, class_names
    from mtl_perception.data import collate_samples, TransformedDataset
    from mtl_perception.engine.optim import build_optimizer, build_scheduler
    from mtl_perception.engine.trainer import seed_everything, Trainer
    from mtl_perception.model_card import IMAGENET_MEAN, IMAGENET_STD
    from mtl_perception.modeling import build_model
    from mtl_perception.modeling.losses import MultiTaskLoss
    from mtl_perception.modeling.weighting import build_weighting

    training, model_cfg = recipe['training'], recipe['model']
    tasks = tuple(t for t in ('detection', 'segmentation') if t in recipe['tasks'])
    if training['threads']:
        torch.set_num_threads(int(training['threads']))
    seed_everything(int(training['seed']))
    train_set = build_source(recipe['data']['train'], tasks)
    names = class_names(train_set, tasks)
    val_set = build_source(recipe['data']['val'], tasks) if recipe['data']['val'] else None
    size = int(model_cfg['input_size'])
    arch_kwargs = dict(model_cfg['kwargs'] or {})
    model = build_model(model_cfg['arch'], num_classes={t: len(names[t]) for t in tasks},
                        input_size=size, tasks=tasks,
                        backbone_weights=model_cfg['backbone_weights'], **arch_kwargs)
    transform = build_transforms(recipe['data']['augment'], size, IMAGENET_MEAN, IMAGENET_STD)
    dataset = TransformedDataset(train_set, transform, seed=int(training['seed']))
    batch_size = int(training['batch_size'])
    generator = torch.Generator().manual_seed(int(training['seed']))
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, generator=generator,
        num_workers=int(training['workers']), collate_fn=collate_samples,
        drop_last=len(dataset) >= 2 * batch_size)
    weighting = build_weighting(training['weighting'], tasks,
                                **(training['weighting_kwargs'] or {}))
    criterion = MultiTaskLoss(tasks, weighting)
    optimizer = build_optimizer(
        [model, criterion], training['optimizer'], float(training['lr']),
        momentum=float(training['momentum']), weight_decay=float(training['weight_decay']),
        betas=training['betas'], nesterov=bool(training['nesterov']))
    total = int(training['epochs']) * len(loader)
    scheduler = build_scheduler(
        optimizer, total_steps=total, warmup_steps=min(int(training['warmup_iters']), total),
        warmup_factor=float(training['warmup_factor']), schedule=training['schedule'],
        milestones=training['milestones'], gamma=float(training['gamma']),
        min_factor=float(training['min_lr_factor']))
    card = {'name': recipe['name'], 'architecture': model_cfg['arch'],
            'arch_kwargs': arch_kwargs, 'tasks': list(tasks), 'input_size': size,
            'mean': list(IMAGENET_MEAN), 'std': list(IMAGENET_STD), 'classes': names,
            'recipe': recipe}
    return Trainer(model, criterion, optimizer, scheduler, loader,
                   epochs=int(training['epochs']), output_dir=output, card=card,
                   eval_dataset=val_set, eval_interval=int(training['eval_interval']),
                   eval_max_images=training['eval_max_images'],
                   grad_clip=training['grad_clip'], amp=bool(training['amp']),
                   device=_device(training['device']), seed=int(training['seed']),
                   progress=progress, channels_last=bool(training['channels_last']))


def main(args: argparse.Namespace) -> int:
    """Load the recipe, train, and print where the checkpoint went."""
    from mtl_perception.cli.recipe import load_recipe

    recipe = load_recipe(args.config, args.overrides)
    output = args.output or Path(recipe['output'] or Path('runs') / recipe['name'])
    recipe['output'] = str(output)
    text = yaml.safe_dump(recipe, sort_keys=False)
    _LOG.info('resolved recipe:\n%s', text)
    output.mkdir(parents=True, exist_ok=True)
    (output / 'recipe.yaml').write_text(text)
    trainer = build_run(recipe, output, progress=not args.no_progress)
    result = trainer.fit(resume=args.resume)
    minutes = result['seconds'] / 60
    print(f'trained {result["epochs"]} epochs ({result["steps"]} steps, {minutes:.1f} min); '
          f'checkpoint {trainer.stem}.safetensors')
    for task in ('detection', 'segmentation'):
        part = (result['metrics'] or {}).get(task)
        if part:
            shown = ', '.join(f'{k} {v:.4f}' for k, v in part.items()
                              if isinstance(v, float))
            print(f'  {task}: {shown}')
    return 0
