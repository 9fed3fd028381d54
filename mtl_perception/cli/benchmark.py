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
`mtl-perception benchmark`: the multitask network against the single-task pair.

Speed, parameters, FLOPs, checkpoint size and peak memory of the three networks in one
run on this machine; the conventions are in ``mtl_perception.inference.benchmark``.
The default class counts are Pascal VOC's (20 detection classes, 21 segmentation
classes), the reference design's setting.
"""

import argparse
import json
from pathlib import Path
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark options to ``parser``."""
    parser.add_argument('--arch', default='resnet50_ssd_fcn',
                        help='registered architecture (default: %(default)s)')
    parser.add_argument('--input-size', type=int, default=300,
                        help='square network input side in pixels (default: %(default)s)')
    parser.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N (default: cpu)')
    parser.add_argument('--half', action='store_true', help='float16 (CUDA only)')
    parser.add_argument('--backend', default='torch',
                        help='torch, onnxruntime (ONNX export timed without torch) or '
                             'tensorrt (engine built first; needs a GPU) (default: torch)')
    parser.add_argument('--iterations', type=int, default=30,
                        help='timed runs per network (default: %(default)s)')
    parser.add_argument('--warmup', type=int, default=5,
                        help='untimed runs before timing (default: %(default)s)')
    parser.add_argument('--threads', type=int, default=None,
                        help='intra-op threads of torch or ONNX Runtime '
                             "(default: torch's default)")
    parser.add_argument('--num-classes', type=int, nargs=2, default=[20, 21],
                        metavar=('DET', 'SEG'),
                        help='detection and segmentation class counts (default: VOC, 20 21)')
    parser.add_argument('--json', type=Path, default=None, metavar='PATH',
                        help='also write the result as JSON to PATH')


def main(args: argparse.Namespace) -> int:
    """Run the benchmark, print the table and optionally write the JSON."""
    from mtl_perception.inference.benchmark import format_table, run_benchmark
    from mtl_perception.modeling import list_models

    if args.arch not in list_models():
        raise ValueError(f'unknown --arch {args.arch!r}; known: {list_models()}')
    if args.iterations < 1 or args.warmup < 0:
        raise ValueError('--iterations must be >= 1 and --warmup >= 0')
    if args.threads is not None and args.threads < 1:
        raise ValueError(f'--threads must be >= 1, got {args.threads}')
    if min(args.num_classes) < 1:
        raise ValueError(f'--num-classes must be positive, got {args.num_classes}')
    result = run_benchmark(
        arch=args.arch, input_size=args.input_size, device=args.device, half=args.half,
        iterations=args.iterations, warmup=args.warmup, threads=args.threads,
        num_classes={'detection': args.num_classes[0], 'segmentation': args.num_classes[1]},
        backend=args.backend, progress=sys.stderr)
    print(format_table(result))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + '\n', encoding='utf-8')
        print(f'wrote {args.json}', file=sys.stderr)
    return 0
