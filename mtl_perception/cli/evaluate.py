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
`mtl-perception evaluate`: measure a checkpoint with the standard metrics.

``mtl-perception evaluate --checkpoint CKPT --data DIR [--json PATH] [--backend torch]
[--split SPLIT]``. DIR is a COCO-format folder (what ``mtl-perception synth`` writes) or a
Pascal VOC root; the layout is recognised from its files. The images go through the
Predictor, so the numbers measure what deploys. The JSON is::

    {"images": int,
     "detection": {"map50", "map50_voc07", "map_coco", "per_class_ap50": {name: AP}},
     "segmentation": {"miou", "pixel_accuracy", "per_class_iou": {name: IoU}}}

A single-task checkpoint fills only its own part: the other task's key is present with the
value ``null``, so every result has the same keys. Undefined numbers (a class without ground
truth) are ``null`` too.
"""

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the evaluate options to ``parser``."""
    parser.add_argument('--checkpoint', required=True, metavar='CKPT',
                        help='checkpoint (<stem>, <stem>.safetensors or <stem>.yaml)')
    parser.add_argument('--data', type=Path, required=True, metavar='DIR',
                        help='COCO-format folder or Pascal VOC root')
    parser.add_argument('--split', default=None,
                        help='annotation split (default: the only one; VOC: test/val)')
    parser.add_argument('--json', type=Path, default=None, metavar='PATH',
                        help='write the metrics as JSON to PATH')
    parser.add_argument('--backend', default='torch', help='inference backend (default: torch)')
    parser.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N (default: cpu)')
    parser.add_argument('--batch-size', type=int, default=8,
                        help='images per network run (default: %(default)s)')
    parser.add_argument('--max-images', type=int, default=None,
                        help='evaluate only the first N images')
    parser.add_argument('--threads', type=int, default=None,
                        help='intra-op threads (torch, onnxruntime)')
    parser.add_argument('--score-threshold', type=float, default=None, metavar='S',
                        help='drop detections scoring under S before matching (default: '
                        '0.01, the full precision-recall curve; 0.3 scores what the nodes '
                        'publish with their default score_threshold)')
    parser.add_argument('--update-card', action='store_true',
                        help="also store the metrics in the checkpoint's model card")
    parser.add_argument('--quiet', action='store_true', help='no progress bar')


def _voc_tasks(source: dict, tasks: tuple[str, ...]) -> tuple[str, ...]:
    """Keep the tasks whose VOC split list exists (VOC2007 test has no segmentation list)."""
    root, split = Path(source['root']), source['split']
    folders = {'detection': 'Main', 'segmentation': 'Segmentation'}
    return tuple(t for t in tasks
                 if (root / 'ImageSets' / folders[t] / f'{split}.txt').is_file())


def format_table(result: dict) -> str:
    """Render the metrics dict as a plain-text table."""
    def number(value) -> str:
        return '   n/a' if value is None else f'{value:6.4f}'

    lines = [f'images: {result["images"]}']
    det = result.get('detection')
    if det:
        lines += ['detection', f'  mAP@0.5 (VOC2010+ all-point) {number(det["map50"])}',
                  f'  mAP@0.5 (VOC2007 11-point)    {number(det["map50_voc07"])}',
                  f'  COCO mAP@[.5:.95]             {number(det["map_coco"])}']
        lines += [f'    AP50 {name:<14} {number(v)}' for name, v in det['per_class_ap50'].items()]
    seg = result.get('segmentation')
    if seg:
        lines += ['segmentation', f'  mIoU                          {number(seg["miou"])}',
                  f'  pixel accuracy                {number(seg["pixel_accuracy"])}']
        lines += [f'    IoU  {name:<14} {number(v)}' for name, v in seg['per_class_iou'].items()]
    return '\n'.join(lines)


def update_card_metrics(checkpoint: str, metrics: dict) -> Path:
    """Store ``metrics`` under 'metrics' in the checkpoint's model card (other keys kept)."""
    from mtl_perception.inference.artifacts import card_path
    from mtl_perception.model_card import ModelCard
    path = card_path(checkpoint)
    return ModelCard.load(path).with_changes(metrics=metrics).save(path)


def main(args: argparse.Namespace) -> int:
    """Evaluate, print the table, write the JSON."""
    from mtl_perception.cli.datasets import build_source, detect_layout
    from mtl_perception.engine.evaluation import (EVAL_MAX_DETECTIONS, EVAL_SCORE_THRESHOLD,
                                                  evaluate_predictor)
    from mtl_perception.inference.predictor import Predictor

    if args.batch_size < 1:
        raise ValueError(f'--batch-size must be >= 1, got {args.batch_size}')
    threshold = EVAL_SCORE_THRESHOLD if args.score_threshold is None else args.score_threshold
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f'--score-threshold must be in [0, 1), got {args.score_threshold}')
    options = {}
    if args.threads and args.backend == 'torch':
        # Only the torch backend loads torch: ONNX Runtime and TensorRT evaluate without it.
        import torch
        torch.set_num_threads(args.threads)
    elif args.threads and args.backend == 'onnxruntime':
        options['threads'] = args.threads
    source = detect_layout(args.data, args.split)
    predictor = Predictor.from_checkpoint(
        args.checkpoint, backend=args.backend, device=args.device,
        score_threshold=threshold, max_detections=EVAL_MAX_DETECTIONS, **options)
    try:
        tasks = predictor.tasks
        if source['type'] == 'voc':
            tasks = _voc_tasks(source, tasks)
            if not tasks:
                raise FileNotFoundError(f'{source["root"]}: no split list {source["split"]}.txt '
                                        f'for the tasks {list(predictor.tasks)}')
        dataset = build_source(source, tasks)
        result = evaluate_predictor(predictor, dataset, batch_size=args.batch_size,
                                    max_images=args.max_images, progress=not args.quiet)
    finally:
        predictor.close()
    print(format_table(result))
    # What was evaluated goes with the numbers (the card then says which split they are on).
    record = {**result, 'checkpoint': Path(args.checkpoint).stem,
              'data': Path(args.data).name, 'split': source.get('split'),
              'backend': args.backend, 'score_threshold': threshold}
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2) + '\n')
        print(f'wrote {args.json}')
    if args.update_card:
        print(f'metrics stored in {update_card_metrics(args.checkpoint, record)}')
    return 0
