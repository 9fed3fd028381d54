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
Measure the multitask network against the pair of single-task networks it replaces.

The three networks (same architecture and input, task lists ('detection',
'segmentation'), ('detection',) and ('segmentation',)) are built once in the calling
process, which counts their parameters and FLOPs and saves each to a safetensors
checkpoint to take its size. Speed and memory are then measured in a fresh process per
network (``python -m mtl_perception.inference.benchmark_worker --worker ...``), started
one after the other so no two measurements share the CPU, and each loading its network
the way a deployment does (through the backend from the saved file; for 'onnxruntime'
and 'tensorrt' from an ONNX export or engine built from it first, untimed; the ONNX
Runtime worker does not import torch). A worker's peak RSS
is its high-water resident set (VmHWM; ``ru_maxrss`` where there is no /proc):
interpreter, framework, weights, activations and loading, i.e. what the process needs
to run, as one ROS node per network would.

Conventions:
    * GFLOPs = FLOPs / 1e9 as ``torch.utils.flop_counter.FlopCounterMode`` counts
      them for one image: a multiply-add is 2 FLOPs, and only convolutions and matrix
      products are counted (batch norm, activations, softmax, resizing are not).
    * MB = 10^6 bytes, for both file sizes and memory. ``size_mb`` is the safetensors
      checkpoint, ``artifact_mb`` the file the backend loads (ONNX file, engine).
    * Latency is one ``Backend.run`` on a preprocessed batch of one image, after
      warm-up; fps = 1000 / mean latency. Preprocessing and NMS are left out: they are
      the same for both deployments.
    * pair fps = 1 / (1 / fps_det + 1 / fps_seg) (both networks on every frame, one
      after the other), pair params/GFLOPs/peak RSS are sums, and every ratio is
      pair / multitask except speed = multitask fps / pair fps, so > 1 favours the
      multitask network.
"""

import json
import os
from pathlib import Path
import subprocess
import sys
import tempfile
from typing import Callable, TextIO

from mtl_perception.inference.checkpoint import load_card, save_checkpoint
from mtl_perception.modeling import build_model, MultiTaskModel
import torch
from torch.utils.flop_counter import FlopCounterMode

# Measured networks and their task lists, in measuring order.
VARIANTS = {
    'multitask': ('detection', 'segmentation'),
    'detection': ('detection',),
    'segmentation': ('segmentation',),
}
# Pascal VOC: 20 object classes; 21 segmentation classes (background included).
DEFAULT_NUM_CLASSES = {'detection': 20, 'segmentation': 21}
_MB = 1e6


def _prepare_torch(checkpoint: Path, workdir: Path, model: MultiTaskModel, *,
                   device: str, half: bool) -> Path:
    return checkpoint


def _prepare_onnx(checkpoint: Path, workdir: Path, model: MultiTaskModel, *,
                  device: str, half: bool) -> Path:
    from mtl_perception.inference.export import export_model_onnx, sample_images

    output = workdir / f'{checkpoint.stem}.onnx'
    export_model_onnx(model, load_card(checkpoint), output, images=sample_images(1),
                      source=str(checkpoint))
    return output


def _prepare_tensorrt(checkpoint: Path, workdir: Path, model: MultiTaskModel, *,
                      device: str, half: bool) -> Path:
    from mtl_perception.inference.tensorrt_build import build_engine

    onnx_path = _prepare_onnx(checkpoint, workdir, model, device=device, half=half)
    engine = workdir / f'{checkpoint.stem}.engine'
    build_engine(onnx_path, engine, precision='fp16' if half else 'fp32', device=device)
    return engine


# backend name -> function(checkpoint, workdir, model, *, device, half) returning the
# path that ``create_backend(name, path)`` loads; an exporting backend writes its file
# into ``workdir``. Runs in the calling process, untimed.
ARTIFACT_BUILDERS: dict[str, Callable[..., Path]] = {
    'torch': _prepare_torch,
    'onnxruntime': _prepare_onnx,
    'tensorrt': _prepare_tensorrt,
}


def count_params(model: torch.nn.Module) -> int:
    """Count the parameters (buffers such as batch-norm statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


def count_gflops(model: MultiTaskModel, input_size: int) -> float:
    """Count the GFLOPs of one ``forward_raw`` on ``[1, 3, S, S]`` (multiply-add = 2 FLOPs)."""
    images = torch.zeros(1, 3, input_size, input_size)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model.forward_raw(images)
    return counter.get_total_flops() / 1e9


def _class_names(count: int) -> list[str]:
    return [f'class_{index}' for index in range(count)]


def prepare_networks(arch: str, input_size: int, num_classes: dict[str, int], backend: str,
                     workdir: Path, progress: TextIO | None = None, *, device: str = 'cpu',
                     half: bool = False) -> dict[str, dict]:
    """
    Build the three networks, count them and save them under ``workdir``.

    Output:
        variant -> {'params', 'gflops', 'size_mb', 'artifact', 'artifact_mb'} (artifact:
        the file the backend loads).
    """
    if backend not in ARTIFACT_BUILDERS:
        raise ValueError(f'benchmark has no backend {backend!r}; known: '
                         f'{sorted(ARTIFACT_BUILDERS)}')
    prepared = {}
    for variant, tasks in VARIANTS.items():
        if progress is not None:
            print(f'[{variant}] building, counting FLOPs, saving', file=progress, flush=True)
        torch.manual_seed(0)
        model = build_model(arch, num_classes={t: num_classes[t] for t in tasks},
                            input_size=input_size, tasks=tasks).eval()
        card = {'name': f'benchmark_{variant}', 'architecture': arch,
                'classes': {t: _class_names(num_classes[t]) for t in tasks}}
        weights, _ = save_checkpoint(model, workdir / variant, card, verify=False)
        artifact = ARTIFACT_BUILDERS[backend](weights, workdir, model, device=device,
                                              half=half)
        prepared[variant] = {
            'params': count_params(model),
            'gflops': count_gflops(model, input_size),
            'size_mb': weights.stat().st_size / _MB,
            'artifact': str(artifact),
            'artifact_mb': Path(artifact).stat().st_size / _MB,
        }
        del model
    return prepared


def measure_in_fresh_process(backend: str, artifact: str, *, device: str, half: bool,
                             iterations: int, warmup: int, threads: int,
                             label: str) -> dict:
    """Run ``worker`` in a new interpreter; its progress goes to this process's stderr."""
    command = [sys.executable, '-m', 'mtl_perception.inference.benchmark_worker', '--worker',
               '--backend', backend, '--artifact', artifact, '--device', device,
               '--iterations', str(iterations), '--warmup', str(warmup),
               '--threads', str(threads), '--label', label] + (['--half'] if half else [])
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f'benchmark worker for {label} failed (exit code '
                           f'{done.returncode}); its error is printed above')
    return json.loads(lines[-1])


def run_benchmark(*, arch: str = 'resnet50_ssd_fcn', input_size: int = 300,
                  device: str = 'cpu', half: bool = False, iterations: int = 30,
                  warmup: int = 5, threads: int | None = None,
                  num_classes: dict[str, int] | None = None, backend: str = 'torch',
                  progress: TextIO | None = sys.stderr) -> dict:
    """
    Measure the multitask network and the single-task pair; see the module docstring.

    Output:
        {'device', 'backend', 'input_size', 'threads', 'models': {variant: M},
        'pair': {...}, 'ratios': {...}} with M = {'params', 'size_mb', 'gflops',
        'latency_ms': {'p50', 'p95'}, 'fps', 'peak_rss_mb'} plus diagnostics.
    """
    if iterations < 1 or warmup < 0:
        raise ValueError(f'need iterations >= 1 and warmup >= 0, got {iterations}, {warmup}')
    threads = int(threads or torch.get_num_threads())
    if threads < 1:
        raise ValueError(f'threads must be >= 1, got {threads}')
    num_classes = dict(num_classes or DEFAULT_NUM_CLASSES)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix='mtl_benchmark_') as workdir:
        prepared = prepare_networks(arch, input_size, num_classes, backend, Path(workdir),
                                    progress, device=device, half=half)
        models = {}
        for variant, info in prepared.items():
            measured = measure_in_fresh_process(
                backend, info['artifact'], device=device, half=half, iterations=iterations,
                warmup=warmup, threads=threads, label=variant)
            models[variant] = {key: info[key]
                               for key in ('params', 'size_mb', 'gflops', 'artifact_mb')}
            models[variant].update(measured)
    det, seg, multi = models['detection'], models['segmentation'], models['multitask']
    pair = {
        'params': det['params'] + seg['params'],
        'gflops': det['gflops'] + seg['gflops'],
        'fps': 1.0 / (1.0 / det['fps'] + 1.0 / seg['fps']),
        'peak_rss_mb': det['peak_rss_mb'] + seg['peak_rss_mb'],
        'size_mb': det['size_mb'] + seg['size_mb'],
        'peak_anon_rss_mb': det['peak_anon_rss_mb'] + seg['peak_anon_rss_mb'],
    }
    return {
        'device': device,
        'backend': backend,
        'input_size': input_size,
        'threads': threads,
        'arch': arch,
        'num_classes': num_classes,
        'iterations': iterations,
        'warmup': warmup,
        'half': half,
        'cpu_count': os.cpu_count(),
        'load_average': {'before': load_before, 'after': os.getloadavg()[0]},
        'models': models,
        'pair': pair,
        'ratios': {
            'speed': multi['fps'] / pair['fps'],
            'params': pair['params'] / multi['params'],
            'memory': pair['peak_rss_mb'] / multi['peak_rss_mb'],
            'flops': pair['gflops'] / multi['gflops'],
            # Diagnostic: memory without the mapped framework libraries, which a second
            # process shares with the first through the page cache.
            'memory_anon': pair['peak_anon_rss_mb'] / multi['peak_anon_rss_mb'],
        },
    }


def format_table(result: dict) -> str:
    """Render a benchmark result as a plain-text table."""
    header = (f'{"network":<14}{"params (M)":>11}{"size (MB)":>11}{"GFLOPs":>9}'
              f'{"p50 (ms)":>10}{"p95 (ms)":>10}{"fps":>8}{"peak RSS (MB)":>15}')
    lines = [f'{result["arch"]}, input {result["input_size"]}, {result["backend"]} on '
             f'{result["device"]}, {result["threads"]} threads, {result["iterations"]} '
             'iterations after warm-up', header, '-' * len(header)]
    for name, m in result['models'].items():
        lines.append(f'{name:<14}{m["params"] / 1e6:>11.2f}{m["size_mb"]:>11.1f}'
                     f'{m["gflops"]:>9.2f}{m["latency_ms"]["p50"]:>10.1f}'
                     f'{m["latency_ms"]["p95"]:>10.1f}{m["fps"]:>8.2f}'
                     f'{m["peak_rss_mb"]:>15.0f}')
    pair = result['pair']
    lines.append(f'{"det + seg":<14}{pair["params"] / 1e6:>11.2f}{pair["size_mb"]:>11.1f}'
                 f'{pair["gflops"]:>9.2f}{"":>10}{"":>10}{pair["fps"]:>8.2f}'
                 f'{pair["peak_rss_mb"]:>15.0f}')
    ratios = result['ratios']
    lines.append('')
    lines.append(f'multitask vs pair: {ratios["speed"]:.2f}x faster, {ratios["params"]:.2f}x '
                 f'fewer parameters, {ratios["flops"]:.2f}x fewer FLOPs, '
                 f'{ratios["memory"]:.2f}x less memory (peak RSS; '
                 f'{ratios["memory_anon"]:.2f}x counting anonymous memory only)')
    return '\n'.join(lines)
