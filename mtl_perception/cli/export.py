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
`mtl-perception export`: a checkpoint to ONNX, or an ONNX export to a TensorRT engine.

ONNX::

    mtl-perception export --checkpoint CKPT --format onnx [--output PATH.onnx]
        [--input-size N] [--dynamic-batch] [--opset 17] [--tolerance 1e-3]
        [--no-segmentation-gate]

writes ``PATH.onnx`` (default: ``<checkpoint stem>.onnx`` beside the checkpoint), the
card ``PATH.yaml`` and, for detection, the default boxes ``PATH.anchors.npy``; the export
is verified with ONNX Runtime against PyTorch on synthetic aerial images and nothing is
written when an output differs above the tolerance (exit code 2). A multitask export gets
the segmentation gate, an optional bool input ``run_segmentation`` (default true) that
skips the segmentation head when false; the TensorRT engine built from it keeps the gate
as an input.

TensorRT (needs the optional ``tensorrt`` package and a CUDA GPU)::

    mtl-perception export --format tensorrt (--onnx PATH.onnx | --checkpoint CKPT)
        [--output PATH.engine] [--precision fp32|fp16|int8] [--calibration-data DIR]
        [--max-batch 8] [--opt-batch 1] [--device cuda]

builds the engine from ``--onnx``, or exports ONNX beside the engine first (with the
ONNX options above). The backends 'onnxruntime' and 'tensorrt' load these files.
"""

import argparse
from pathlib import Path
import sys

VERIFY_IMAGE_SIZE = (320, 240)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the export options to ``parser``."""
    parser.add_argument('--checkpoint', metavar='CKPT',
                        help='checkpoint (<stem>, <stem>.safetensors or <stem>.yaml)')
    parser.add_argument('--format', required=True, choices=['onnx', 'tensorrt'],
                        help='what to write')
    parser.add_argument('--output', type=Path, default=None, metavar='PATH',
                        help='the .onnx or .engine file (default: beside the checkpoint '
                             'or the --onnx file, same stem)')
    parser.add_argument('--input-size', type=int, default=None, metavar='N',
                        help="network input side (default: the checkpoint's)")
    parser.add_argument('--dynamic-batch', action='store_true',
                        help='dynamic batch axis (default: batch of 1)')
    parser.add_argument('--opset', type=int, default=17, help='ONNX opset (default: 17)')
    parser.add_argument('--exporter', default='torchscript', choices=['torchscript', 'dynamo'],
                        help='torch.onnx exporter (default: torchscript; dynamo needs '
                             'onnxscript and opset >= 18)')
    parser.add_argument('--no-segmentation-gate', dest='segmentation_gate',
                        action='store_false',
                        help='multitask: export without the run_segmentation input that lets '
                             'a node skip the segmentation head on frames needing no mask')
    parser.add_argument('--tolerance', type=float, default=1e-3,
                        help='largest allowed |ONNX Runtime - PyTorch| relative to '
                             'max(1, max |output|) (default: %(default)g)')
    parser.add_argument('--verify-images', type=int, default=3, metavar='N',
                        help='synthetic images used to verify the export (default: 3)')
    parser.add_argument('--onnx', type=Path, default=None, metavar='PATH',
                        help='tensorrt: build from this ONNX export (default: export first)')
    parser.add_argument('--precision', default='fp16', choices=['fp32', 'fp16', 'int8'],
                        help='tensorrt: engine precision (default: fp16)')
    parser.add_argument('--calibration-data', type=Path, default=None, metavar='DIR',
                        help='tensorrt int8: folder with images (COCO-format folder, VOC '
                             'root or plain folder)')
    parser.add_argument('--calibration-images', type=int, default=256, metavar='N',
                        help='tensorrt int8: most calibration images (default: 256)')
    parser.add_argument('--max-batch', type=int, default=8,
                        help='tensorrt: largest batch with --dynamic-batch (default: 8)')
    parser.add_argument('--opt-batch', type=int, default=1,
                        help='tensorrt: batch the engine is tuned for with --dynamic-batch: '
                             'the number of cameras one node serves (default: 1)')
    parser.add_argument('--device', default='cuda', help='tensorrt: cuda or cuda:N')


def verification_images(count: int) -> list:
    """Render ``count`` synthetic aerial images (small, reproducible) for verification."""
    from mtl_perception.data import SyntheticAerialDataset

    dataset = SyntheticAerialDataset(count, seed=2026, size=VERIFY_IMAGE_SIZE)
    return [dataset[index]['image'] for index in range(count)]


def _export_onnx(args: argparse.Namespace, output: Path) -> dict:
    from mtl_perception.inference.export import export_checkpoint_onnx

    if args.checkpoint is None:
        raise ValueError('--checkpoint is required to export ONNX')
    if args.verify_images < 1:
        raise ValueError(f'--verify-images must be >= 1, got {args.verify_images}')
    info = export_checkpoint_onnx(
        args.checkpoint, output, input_size=args.input_size, opset=args.opset,
        dynamic_batch=args.dynamic_batch, tolerance=args.tolerance, exporter=args.exporter,
        images=verification_images(args.verify_images), progress=sys.stdout,
        segmentation_gate=args.segmentation_gate)
    gate = info.get('segmentation_gate')
    print(f'wrote {output} (opset {info["opset"]}, input {info["input_size"]} px, batch '
          f'{"dynamic" if info["dynamic_batch"] else 1}'
          f'{f", segmentation gate input {gate} (default true)" if gate else ""}) with its '
          'card and default boxes')
    return info


def main(args: argparse.Namespace) -> int:
    """Export; verification failures and missing TensorRT exit with code 2."""
    from mtl_perception.inference import artifacts

    if args.checkpoint is not None:
        from mtl_perception.inference.checkpoint import checkpoint_paths
        weights, card = checkpoint_paths(args.checkpoint)
        if not weights.is_file() or not card.is_file():
            raise FileNotFoundError(f'checkpoint not found: {args.checkpoint} (need '
                                    f'{weights.name} and {card.name})')
    if args.format == 'onnx':
        output = args.output or artifacts.export_path(args.checkpoint or '', 'onnx')
        _export_onnx(args, output)
        return 0

    from mtl_perception.inference.tensorrt_build import build_engine
    from mtl_perception.inference.tensorrt_support import cuda_device_index, import_tensorrt

    # Say what is missing before spending minutes on an ONNX export.
    import_tensorrt()
    cuda_device_index(args.device)
    if args.onnx is None and args.checkpoint is None:
        raise ValueError('--format tensorrt needs --onnx PATH or --checkpoint CKPT')
    source = args.onnx if args.onnx is not None else args.checkpoint
    output = args.output or artifacts.export_path(source, 'tensorrt')
    onnx_path = args.onnx
    if onnx_path is None:
        onnx_path = artifacts.export_path(output, 'onnx')
        _export_onnx(args, onnx_path)
    elif not Path(onnx_path).is_file():
        raise FileNotFoundError(f'ONNX file not found: {onnx_path}')
    info = build_engine(onnx_path, output, precision=args.precision,
                        calibration_data=args.calibration_data,
                        calibration_images=args.calibration_images,
                        max_batch=args.max_batch, opt_batch=args.opt_batch,
                        device=args.device, progress=sys.stdout)
    gate = info.get('segmentation_gate')
    print(f'wrote {output} ({info["precision"]}, TensorRT {info["build"]["tensorrt_version"]}, '
          f'{info["build"]["device_name"]}, compute capability '
          f'{info["build"]["compute_capability"]}'
          f'{f", segmentation gate input {gate}" if gate else ""})')
    return 0
