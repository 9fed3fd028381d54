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
Export a network to ONNX and verify the file with ONNX Runtime against PyTorch.

The exported graph is ``MultiTaskModel.forward_raw``: input ``images`` float32
``[N, 3, S, S]`` (normalised as the card says), outputs named as ``model.output_names``
('loc' ``[N, A, 4]``, 'scores' ``[N, A, C + 1]`` softmax, 'seg_logits' ``[N, K, S, S]``).
N is 1, or any size with ``dynamic_batch``. The card and the default boxes are written
beside the file (see ``inference.artifacts``).

A multitask export is gated (``inference.onnx_gate``): a second, optional bool scalar
input ``run_segmentation`` (default True) skips the segmentation head when False, so a
frame that needs only boxes does not pay for the mask ('seg_logits' is then zeros). The
card records it as ``export.onnx.segmentation_gate: run_segmentation`` (None: ungated,
as single-task exports and exports made with ``segmentation_gate=False`` are). The gate
is added to the exported graph, whichever exporter made it (both are gated; the tests
cover the TorchScript exporter, the dynamo one was checked by hand with torch 2.14).

Verification runs sample images through the shared preprocessing, then through PyTorch
and through an ONNX Runtime CPU session (all graph optimisations on, as deployed). An
output passes when its largest absolute difference is at most ``tolerance`` times its
scale, ``max(1, max |PyTorch output|)``: logits of a trained network reach tens, and
float32 rounding grows with the values. A gated export is also run with the gate False:
'loc' and 'scores' must not change (same tolerance) and 'seg_logits' must be zeros, which
also proves that ONNX Runtime's optimisations kept the gate. Nothing is written unless
every check passes.

A different input size than the checkpoint's rebuilds the network at that size from the
card (new default boxes) and copies the weights in; architectures whose layers depend
on the input size (e.g. a source map shrinking to 1x1 changes an SSDLite predictor) are
refused with the reason.
"""

import os
from pathlib import Path
import tempfile
from typing import Sequence, TextIO
import warnings

from mtl_perception.inference import artifacts, onnx_gate
from mtl_perception.inference.backends.onnxruntime_backend import session_gate
from mtl_perception.inference.checkpoint import build_from_card, load_checkpoint
from mtl_perception.inference.preprocess import preprocess
from mtl_perception.model_card import INPUT_NAME, ModelCard, SEGMENTATION_GATE, utc_now
from mtl_perception.modeling import MultiTaskModel
from mtl_perception.modeling.flops import count_gflops
import numpy as np
import torch

DEFAULT_OPSET = 17
DEFAULT_TOLERANCE = 1e-3
EXPORTERS = ('torchscript', 'dynamo')


class ExportVerificationError(ValueError):
    """ONNX Runtime's outputs differ from PyTorch's by more than the tolerance."""


class _RawOutputs(torch.nn.Module):
    """Expose ``forward_raw`` as ``forward`` so the exporter traces the raw outputs."""

    def __init__(self, model: MultiTaskModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.model.forward_raw(images)


def sample_images(count: int = 4, seed: int = 0) -> list[np.ndarray]:
    """
    Return ``count`` reproducible uint8 RGB pictures of assorted sizes for verification.

    Blocky colour noise over smooth gradients: varied enough to exercise every channel
    and resize path, with no data set needed.
    """
    rng = np.random.default_rng(seed)
    images = []
    for index in range(count):
        height, width = (240, 320) if index % 2 == 0 else (300, 300)
        blocks = rng.integers(0, 256, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
        noise = np.repeat(np.repeat(blocks, 16, axis=0), 16, axis=1)[:height, :width]
        ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
        images.append(((noise.astype(np.float32) + ramp) / 2).astype(np.uint8))
    return images


def resize_network(model: MultiTaskModel, card: ModelCard, input_size: int) -> MultiTaskModel:
    """
    Return ``model`` rebuilt for ``input_size`` with the same weights (new default boxes).

    :raises ValueError: the architecture cannot run at that size, or its layers differ
        at that size so the trained weights do not fit.
    """
    if input_size == card.input_size:
        return model
    resized = build_from_card(card.with_changes(input_size=input_size))
    try:
        resized.load_state_dict(model.state_dict(), strict=True)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise ValueError(
            f'cannot export {card.architecture} at input size {input_size}: its layers '
            f'differ from the {card.input_size} px network ({first}); export at '
            f'{card.input_size} or retrain at {input_size}') from error
    return resized.eval()


def _run_exporter(wrapper: torch.nn.Module, path: Path, size: int, names: list[str], *,
                  opset: int, dynamic_batch: bool, exporter: str) -> None:
    example = (torch.zeros(1, 3, size, size),)
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer warns that the shape checks in forward become constants, which they
        # are for a fixed input size; the TorchScript exporter is deprecated but remains
        # the default here: it is faster and keeps opset 17, which TensorRT 8.6+ parses.
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        warnings.simplefilter('ignore', DeprecationWarning)
        if exporter == 'dynamo':
            shapes = ({'images': {0: torch.export.Dim('batch', min=1, max=1024)}}
                      if dynamic_batch else None)
            torch.onnx.export(wrapper, example, str(path), input_names=[INPUT_NAME],
                              output_names=names, opset_version=opset,
                              dynamic_shapes=shapes, dynamo=True, verbose=False,
                              external_data=False)  # one file: it is renamed after checks
        else:
            axes = ({name: {0: 'batch'} for name in [INPUT_NAME, *names]}
                    if dynamic_batch else None)
            torch.onnx.export(wrapper, example, str(path), input_names=[INPUT_NAME],
                              output_names=names, opset_version=opset, dynamic_axes=axes,
                              do_constant_folding=True, dynamo=False)


def _gate(path: Path, card: ModelCard) -> None:
    """Gate the segmentation head of the multitask export at ``path`` in place."""
    import onnx

    model = onnx.load(str(path))
    gated = onnx_gate.add_gate(model, (len(card.classes['segmentation']), card.input_size))
    onnx.save(gated, str(path))


def _torch_outputs(model: MultiTaskModel, batch: np.ndarray) -> dict[str, np.ndarray]:
    with torch.inference_mode():
        outputs = model.forward_raw(torch.from_numpy(batch))
    return {name: t.float().numpy() for name, t in zip(model.output_names, outputs)}


def verify_onnx(onnx_path: str | os.PathLike, model: MultiTaskModel, card: ModelCard,
                images: Sequence[np.ndarray], *, dynamic_batch: bool,
                tolerance: float) -> dict[str, dict]:
    """
    Compare ONNX Runtime (CPU) with PyTorch on ``images``; return per-output statistics.

    A gated export (see the module doc) is also run with the gate False.

    :return: ``{output: {'max_abs_diff', 'scale', 'passed'}}``; for a gated export each
        detection output also has 'gate_off_max_abs_diff' (its change with the gate
        False) and 'seg_logits' 'gate_off_max_abs' (its largest value then, 0 expected),
        both counted in 'passed'.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(str(onnx_path), options,
                                           providers=['CPUExecutionProvider'])
    batch = np.concatenate([preprocess(image, card.input_size, card.mean, card.std)
                            for image in images])
    # A dynamic export runs the whole batch at once, which also checks the batch axis.
    chunks = [batch] if dynamic_batch else [batch[i:i + 1] for i in range(len(batch))]
    names = list(model.output_names)
    gate = session_gate(session)
    onnx_parts = {name: [] for name in names}
    off_parts = {name: [] for name in names}
    for chunk in chunks:
        for name, value in zip(names, session.run(names, {INPUT_NAME: chunk})):
            onnx_parts[name].append(value)
        if gate is not None:
            feed = {INPUT_NAME: chunk, gate: np.array(False)}
            for name, value in zip(names, session.run(names, feed)):
                off_parts[name].append(value)
    reference = _torch_outputs(model, batch)
    stats = {}
    for name in names:
        exported = np.concatenate(onnx_parts[name])
        if exported.shape != reference[name].shape:
            raise ExportVerificationError(f'ONNX output {name} has shape {list(exported.shape)}, '
                                          f'PyTorch {list(reference[name].shape)}')
        diff = float(np.abs(exported.astype(np.float64) - reference[name]).max())
        scale = max(1.0, float(np.abs(reference[name]).max()))
        entry = {'max_abs_diff': diff, 'scale': scale,
                 'passed': bool(np.isfinite(diff) and diff <= tolerance * scale)}
        if gate is not None:
            off = np.concatenate(off_parts[name])
            if off.shape != exported.shape:
                raise ExportVerificationError(
                    f'ONNX output {name} has shape {list(off.shape)} with {gate} False, '
                    f'{list(exported.shape)} with it True')
            if name == 'seg_logits':
                # Not zeros: the head ran anyway (e.g. the gate was folded as a constant).
                entry['gate_off_max_abs'] = float(np.abs(off).max())
                entry['passed'] &= entry['gate_off_max_abs'] == 0.0
            else:
                change = float(np.abs(off.astype(np.float64) - exported).max())
                entry['gate_off_max_abs_diff'] = change
                entry['passed'] &= bool(np.isfinite(change) and change <= tolerance * scale)
        stats[name] = entry
    return stats


def _failure(entry: dict, tolerance: float) -> str:
    """Say why one output's verification failed."""
    if not entry['max_abs_diff'] <= tolerance * entry['scale']:
        return f'{entry["max_abs_diff"]:.3e} > {tolerance:g} x {entry["scale"]:.3g}'
    if entry.get('gate_off_max_abs', 0.0) != 0.0:
        return (f'not zeros with {SEGMENTATION_GATE} False (max |output| '
                f'{entry["gate_off_max_abs"]:.3e}: the head ran)')
    return (f'changes by {entry.get("gate_off_max_abs_diff", float("nan")):.3e} with '
            f'{SEGMENTATION_GATE} False')


def export_model_onnx(model: MultiTaskModel, card: ModelCard, output: str | os.PathLike, *,
                      opset: int = DEFAULT_OPSET, dynamic_batch: bool = False,
                      tolerance: float = DEFAULT_TOLERANCE,
                      images: Sequence[np.ndarray] | None = None,
                      source: str | None = None, progress: TextIO | None = None,
                      exporter: str = 'torchscript', segmentation_gate: bool = True) -> dict:
    """
    Export ``model`` (described by ``card``) to ``output`` and verify it; see the module doc.

    :param model: the network, at ``card.input_size``.
    :param card: its model card (as ``load_card`` returns it).
    :param output: the ``.onnx`` path; the card and default boxes go beside it.
    :param opset: ONNX opset version.
    :param dynamic_batch: make the batch axis dynamic (otherwise N = 1).
    :param tolerance: largest allowed difference relative to each output's scale.
    :param images: uint8 RGB verification images (default: ``sample_images()``).
    :param source: what the network came from (recorded in the card).
    :param progress: where to print the verification table (None: silent).
    :param exporter: 'torchscript' (``torch.onnx.export(dynamo=False)``) or 'dynamo'.
    :param segmentation_gate: gate the segmentation head of a multitask network (see the
        module doc); False writes the plain graph, as exports before the gate were.
    :return: the ``export.onnx`` card entry written.
    :raises ExportVerificationError: an output differs above the tolerance (nothing written).
    """
    output = Path(output)
    if output.suffix != artifacts.EXPORT_SUFFIXES['onnx']:
        raise ValueError(f'the ONNX output must end in .onnx, got {output}')
    if exporter not in EXPORTERS:
        raise ValueError(f'unknown exporter {exporter!r}; known: {EXPORTERS}')
    if tolerance < 0:
        raise ValueError(f'tolerance must be >= 0, got {tolerance}')
    images = list(images) if images is not None else sample_images()
    if not images:
        raise ValueError('need at least one verification image')
    artifacts.check_card_writable(output, card)
    import onnx
    import onnxruntime

    model = model.eval()
    wrapper = _RawOutputs(model).eval()  # eval on the wrapper too: export restores its mode
    size = card.input_size
    names = list(model.output_names)
    gated = bool(segmentation_gate) and set(model.tasks) == {'detection', 'segmentation'}
    output.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(suffix='.onnx', prefix=f'.{output.stem}.',
                                        dir=output.parent)
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        _run_exporter(wrapper, tmp, size, names, opset=opset, dynamic_batch=dynamic_batch,
                      exporter=exporter)
        if gated:
            _gate(tmp, card)
        # Shape inference checks that both branches of the gate emit the same tensor.
        onnx.checker.check_model(str(tmp), full_check=gated)
        stats = verify_onnx(tmp, model, card, images, dynamic_batch=dynamic_batch,
                            tolerance=tolerance)
        if progress is not None:
            print(f'ONNX Runtime {onnxruntime.__version__} (CPU) vs PyTorch on {len(images)} '
                  f'images, tolerance {tolerance:g} x max(1, max |output|):', file=progress)
            for name, entry in stats.items():
                off = ''
                if 'gate_off_max_abs_diff' in entry:
                    off = f'  gate off: change {entry["gate_off_max_abs_diff"]:.3e}'
                elif 'gate_off_max_abs' in entry:
                    off = f'  gate off: max |output| {entry["gate_off_max_abs"]:.3e}'
                print(f'  {name:<11} max |diff| {entry["max_abs_diff"]:.3e}  scale '
                      f'{entry["scale"]:.3g}{off}  {"ok" if entry["passed"] else "FAILED"}',
                      file=progress, flush=True)
        failed = [name for name, entry in stats.items() if not entry['passed']]
        if failed:
            detail = ', '.join(f'{n} {_failure(stats[n], tolerance)}' for n in failed)
            raise ExportVerificationError(
                f'ONNX Runtime differs from PyTorch above the tolerance ({detail}); '
                f'{output} was not written')
        info = {
            'file': output.name,
            'format': 'onnx',
            'opset': int(opset),
            'exporter': exporter,
            'input_name': INPUT_NAME,
            # The optional bool input that skips the segmentation head (None: ungated).
            'segmentation_gate': SEGMENTATION_GATE if gated else None,
            'output_names': names,
            'input_size': size,
            # Compute per image: tools without torch (replay) bound speed ratios with it.
            'gflops': count_gflops(model, size),
            'dynamic_batch': bool(dynamic_batch),
            'tolerance': float(tolerance),
            'max_abs_diff': {n: e['max_abs_diff'] for n, e in stats.items()},
            'verified_images': len(images),
            'torch_version': torch.__version__.split('+')[0],
            'onnx_version': onnx.__version__,
            'onnxruntime_version': onnxruntime.__version__,
            'source': source,
            'created': utc_now(),
        }
        anchors = (model.anchors.detach().float().cpu().numpy()
                   if 'detection' in model.tasks else None)
        artifacts.write_export_card(output, card, 'onnx', info)
        artifacts.write_anchors(output, anchors)
        os.replace(tmp, output)
    finally:
        if tmp.exists():
            tmp.unlink()
    return info


def export_checkpoint_onnx(checkpoint: str | os.PathLike, output: str | os.PathLike, *,
                           input_size: int | None = None, **options) -> dict:
    """
    Load ``checkpoint`` and export it with ``export_model_onnx`` (``options`` pass through).

    :param input_size: export at this input size instead of the checkpoint's.
    """
    model, card = load_checkpoint(checkpoint)
    if input_size is not None and input_size != card.input_size:
        model = resize_network(model, card, int(input_size))
        card = card.with_changes(input_size=int(input_size))
    options.setdefault('source', str(checkpoint))
    return export_model_onnx(model, card, output, **options)
