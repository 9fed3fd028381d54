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

Under ``torchrun`` (``torchrun --standalone --nproc_per_node=N $(which mtl-perception) train
...``) the N processes train one run with DistributedDataParallel
(:mod:`mtl_perception.engine.distributed`): ``training.batch_size`` stays the GLOBAL batch,
split evenly among the processes, so the same recipe trains the same network on one process
or several; rank 0 alone writes the output folder.
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


def build_run(recipe: dict, output: Path, *, progress: bool = True, distributed=None):
    """
    Build the Trainer a validated recipe describes (model, data, optimisation).

    :param distributed: this process's
        :class:`~mtl_perception.engine.distributed.DistributedContext` (None: one process on
        the recipe's device).
    """
    import torch
    from mtl_perception.cli.datasets import build_source, build_transforms, class_names
    from mtl_perception.data import collate_samples, TransformedDataset
    from mtl_perception.engine.distributed import DistributedContext, ShardedBatchSampler
    from mtl_perception.engine.optim import build_optimizer, build_scheduler
    from mtl_perception.engine.trainer import seed_everything, Trainer
    from mtl_perception.model_card import IMAGENET_MEAN, IMAGENET_STD
    from mtl_perception.modeling import build_model
    from mtl_perception.modeling.losses import MultiTaskLoss
    from mtl_perception.modeling.weighting import build_weighting

    training, model_cfg = recipe['training'], recipe['model']
    distributed = distributed or DistributedContext(device=_device(training['device']))
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
    batch_size = int(training['batch_size'])  # global: all processes together
    generator = torch.Generator().manual_seed(int(training['seed']))
    drop_last = len(dataset) >= 2 * batch_size
    if distributed.enabled:
        # The very sampler and generator one process would use, each global batch split.
        sampler = torch.utils.data.RandomSampler(dataset, generator=generator)
        batches = ShardedBatchSampler(
            torch.utils.data.BatchSampler(sampler, batch_size, drop_last),
            distributed.rank, distributed.world_size)
        loader = torch.utils.data.DataLoader(
            dataset, batch_sampler=batches, generator=generator,
            num_workers=int(training['workers']), collate_fn=collate_samples)
    else:
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, shuffle=True, generator=generator,
            num_workers=int(training['workers']), collate_fn=collate_samples,
            drop_last=drop_last)
    weighting = build_weighting(training['weighting'], tasks,
                                **(training['weighting_kwargs'] or {}))
    criterion = MultiTaskLoss(tasks, weighting, segmentation_class_weights=_class_weights(
        training['segmentation_class_weights'], train_set, names, tasks,
        distributed.is_main, progress))
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
                   device=distributed.device, seed=int(training['seed']),
                   progress=progress, channels_last=bool(training['channels_last']),
                   distributed=distributed)


def _class_weights(setting, train_set, names: dict, tasks: tuple, verbose: bool,
                   progress: bool):
    """Return the segmentation loss's class weights for the recipe setting (or None)."""
    if setting is None:
        return None
    if 'segmentation' not in tasks:
        return None  # a detection-only twin of a recipe: nothing to weigh
    from mtl_perception.modeling.losses import balanced_class_weights
    classes = names['segmentation']
    if setting == 'balanced':
        from mtl_perception.data import class_pixel_counts
        weights = balanced_class_weights(
            class_pixel_counts(train_set, len(classes), verbose and progress))
    else:
        if len(setting) != len(classes):
            raise ValueError(f'training.segmentation_class_weights has {len(setting)} values '
                             f'for {len(classes)} segmentation classes {classes}')
        weights = setting
    if verbose:
        print('segmentation class weights: ' + ', '.join(
            f'{name} {float(w):.2f}' for name, w in zip(classes, weights)), flush=True)
    return weights


def main(args: argparse.Namespace) -> int:
    """Load the recipe, train (distributed under torchrun), print where the checkpoint went."""
    from mtl_perception.cli.recipe import load_recipe
    from mtl_perception.engine.distributed import init_distributed, shutdown_distributed

    recipe = load_recipe(args.config, args.overrides)
    output = args.output or Path(recipe['output'] or Path('runs') / recipe['name'])
    recipe['output'] = str(output)
    distributed = init_distributed(_device(recipe['training']['device']))
    try:
        return _train(recipe, output, args, distributed)
    finally:
        shutdown_distributed()


def _train(recipe: dict, output: Path, args: argparse.Namespace, distributed) -> int:
    text = yaml.safe_dump(recipe, sort_keys=False)
    if distributed.is_main:
        _LOG.info('resolved recipe:\n%s', text)
        if distributed.enabled:
            _LOG.info('distributed training: %d processes, global batch %d (%d each)',
                      distributed.world_size, recipe['training']['batch_size'],
                      recipe['training']['batch_size'] // distributed.world_size)
        output.mkdir(parents=True, exist_ok=True)
        (output / 'recipe.yaml').write_text(text)
    trainer = build_run(recipe, output, progress=not args.no_progress, distributed=distributed)
    result = trainer.fit(resume=args.resume)
    if not distributed.is_main:
        return 0
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
