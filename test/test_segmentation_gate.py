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
Skipping the segmentation head on frames that need no mask, on every backend.

The gated ONNX export (``inference.onnx_gate``) against the plain one, what ONNX Runtime
really runs with the gate off, the Predictor's per-image flags, and the torch backend
running the detection head alone. TensorRT's side is in ``test_tensorrt_runtime.py``
(stand-ins) and ``test_export_tensorrt.py`` (a GPU).
"""

import json

from mtl_perception.inference import export as export_module
from mtl_perception.inference import onnx_gate
from mtl_perception.inference.backends import create_backend
from mtl_perception.inference.checkpoint import save_checkpoint
from mtl_perception.inference.export import (export_checkpoint_onnx, ExportVerificationError,
                                             sample_images)
from mtl_perception.inference.predictor import Predictor
from mtl_perception.model_card import SEGMENTATION_GATE
from mtl_perception.modeling import build_model
import numpy as np
import onnx
import onnxruntime
import pytest
import torch

ARCH, SIZE = 'resnet18_ssd_fcn', 64
CLASSES = {'detection': ['car', 'person', 'boat'], 'segmentation': ['ground', 'road', 'water']}
BOTH = ('detection', 'segmentation')


def _checkpoint(folder, tasks):
    torch.manual_seed(0)
    model = build_model(ARCH, input_size=SIZE, tasks=tasks,
                        num_classes={t: len(CLASSES[t]) for t in tasks})
    stem = folder / '_'.join(tasks)
    save_checkpoint(model, stem, {'name': stem.name, 'architecture': ARCH,
                                  'classes': {t: CLASSES[t] for t in tasks}})
    return stem


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    """Checkpoints and exports: gated (fixed and dynamic batch) and plain (as before)."""
    folder = tmp_path_factory.mktemp('gate')
    multitask = _checkpoint(folder, BOTH)
    images = sample_images(1)
    paths = {'checkpoint': multitask,
             'segmentation_only': _checkpoint(folder, ('segmentation',))}
    for key, dynamic, gated in [('gated', False, True), ('gated_dynamic', True, True),
                                ('plain', False, False)]:
        paths[key] = folder / f'{key}.onnx'
        paths[key + '_info'] = export_checkpoint_onnx(
            multitask, paths[key], dynamic_batch=dynamic, segmentation_gate=gated,
            images=images)
    return paths


@pytest.fixture(scope='module')
def image():
    return np.random.default_rng(3).integers(0, 256, (90, 120, 3), dtype=np.uint8)


def _session(path, **settings):
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # the gate's "initializer is an input" note
    for key, value in settings.items():
        setattr(options, key, value)
    return onnxruntime.InferenceSession(str(path), options,
                                        providers=['CPUExecutionProvider'])


def _batch(count, seed=0):
    return np.random.default_rng(seed).standard_normal((count, 3, SIZE, SIZE),
                                                       dtype=np.float32)


def test_export_records_the_gate_and_keeps_one_input(models):
    assert models['gated_info']['segmentation_gate'] == SEGMENTATION_GATE
    assert models['gated_dynamic_info']['segmentation_gate'] == SEGMENTATION_GATE
    assert models['plain_info']['segmentation_gate'] is None
    # Verification ran with the gate off too: detections unchanged, the mask zeros.
    assert models['gated_info']['max_abs_diff'].keys() == {'loc', 'scores', 'seg_logits'}
    session = _session(models['gated'])
    assert [i.name for i in session.get_inputs()] == ['images']
    assert [i.name for i in session.get_overridable_initializers()] == [SEGMENTATION_GATE]
    assert [o.name for o in session.get_outputs()] == ['loc', 'scores', 'seg_logits']


@pytest.mark.parametrize('key, count', [('gated', 1), ('gated_dynamic', 3)])
def test_gate_on_equals_the_plain_export(models, key, count):
    plain, gated = _session(models['plain']), _session(models[key])
    batch = _batch(count)
    expected = [np.concatenate(parts) for parts in
                zip(*[plain.run(None, {'images': batch[i:i + 1]}) for i in range(count)])]
    by_default = gated.run(None, {'images': batch})
    explicit = gated.run(None, {'images': batch, SEGMENTATION_GATE: np.array(True)})
    for name, reference, got, got_explicit in zip(('loc', 'scores', 'seg_logits'), expected,
                                                  by_default, explicit):
        scale = max(1.0, float(np.abs(reference).max()))
        np.testing.assert_allclose(got, reference, rtol=0, atol=1e-6 * scale, err_msg=name)
        np.testing.assert_array_equal(got_explicit, got, err_msg=name)


@pytest.mark.parametrize('key, count', [('gated', 1), ('gated_dynamic', 3)])
def test_gate_off_keeps_detections_and_skips_the_mask(models, key, count):
    session = _session(models[key])
    batch = _batch(count, seed=1)
    on = session.run(None, {'images': batch})
    off = session.run(None, {'images': batch, SEGMENTATION_GATE: np.array(False)})
    np.testing.assert_array_equal(off[0], on[0])
    np.testing.assert_array_equal(off[1], on[1])
    # Zeros of the same shape (TensorRT needs equal shapes in both branches): had the
    # optimiser folded the gate, the head's logits would be here.
    assert off[2].shape == on[2].shape == (count, len(CLASSES['segmentation']), SIZE, SIZE)
    assert np.abs(on[2]).max() > 0 and not off[2].any()


def _kernel_ops(session, feed) -> list[str]:
    session.run(None, feed)
    with open(session.end_profiling()) as stream:
        events = json.load(stream)
    return [e['args']['op_name'] for e in events
            if e.get('cat') == 'Node' and e['name'].endswith('_kernel_time')]


def test_onnxruntime_runs_fewer_nodes_with_the_gate_off(models, tmp_path):
    batch = _batch(1)
    ran = {}
    for key, feed in [('plain', {}), ('gated', {}),
                      ('off', {SEGMENTATION_GATE: np.array(False)})]:
        path = models['plain' if key == 'plain' else 'gated']
        session = _session(path, enable_profiling=True,
                           profile_file_prefix=str(tmp_path / key))
        ran[key] = _kernel_ops(session, {'images': batch, **feed})
    # The head's transposed convolutions (the FCN upsamplers) run only with the gate on.
    assert ran['plain'].count('ConvTranspose') == ran['gated'].count('ConvTranspose') > 0
    assert 'ConvTranspose' not in ran['off']
    assert len(ran['off']) < len(ran['plain']) - 5
    assert len(ran['off']) < len(ran['gated']) - 5


def test_the_head_lies_in_the_branch_and_survives_optimisation(models, tmp_path):
    plain = onnx.load(str(models['plain']))
    gated = onnx.load(str(models['gated']))
    head = onnx_gate.gated_nodes(plain.graph)
    assert any(node.op_type == 'ConvTranspose' for node in head)
    [condition] = [node for node in gated.graph.node if node.op_type == 'If']
    assert list(condition.input) == [SEGMENTATION_GATE]
    assert list(condition.output) == ['seg_logits']
    branches = {a.name: a.g for a in condition.attribute}
    assert [n.op_type for n in branches['then_branch'].node] == [n.op_type for n in head]
    assert not any(n.op_type == 'ConvTranspose' for n in gated.graph.node)
    assert not any(n.op_type == 'Conv' for n in branches['else_branch'].node)
    # What ONNX Runtime runs after all its optimisations still holds the If on the gate.
    optimised = tmp_path / 'optimised.onnx'
    _session(models['gated'], optimized_model_filepath=str(optimised))
    kept = onnx.load(str(optimised))
    assert [list(n.input) for n in kept.graph.node if n.op_type == 'If'] == [
        [SEGMENTATION_GATE]]


def test_gating_twice_or_single_task_graphs_is_refused(models):
    gated = onnx.load(str(models['gated']))
    with pytest.raises(onnx_gate.GateError, match='already gated'):
        onnx_gate.add_gate(gated)
    runtime = onnx_gate.runtime_gate_model(gated)
    assert SEGMENTATION_GATE not in {t.name for t in runtime.graph.initializer}
    assert onnx_gate.gate_of(runtime) == SEGMENTATION_GATE
    plain = onnx.load(str(models['plain']))
    with pytest.raises(onnx_gate.GateError, match='not gated'):
        onnx_gate.runtime_gate_model(plain)
    del plain.graph.output[2]
    with pytest.raises(onnx_gate.GateError, match=r"outputs \['seg_logits'\] missing"):
        onnx_gate.add_gate(plain)


def test_verification_fails_when_the_gate_does_not_skip(models, tmp_path, monkeypatch):
    def inert_gate(model, shape=None):
        """Add the gate input and its default but leave the head ungated."""
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        copy.graph.input.append(onnx.helper.make_tensor_value_info(
            SEGMENTATION_GATE, onnx.TensorProto.BOOL, []))
        copy.graph.initializer.append(onnx.helper.make_tensor(
            SEGMENTATION_GATE, onnx.TensorProto.BOOL, [], [True]))
        return copy

    monkeypatch.setattr(export_module.onnx_gate, 'add_gate', inert_gate)
    output = tmp_path / 'inert.onnx'
    with pytest.raises(ExportVerificationError, match='not zeros with run_segmentation False'):
        export_checkpoint_onnx(models['checkpoint'], output, images=sample_images(1))
    assert not output.exists()


def _spy(predictor):
    """Record the segmentation argument of every backend run."""
    calls = []
    run = predictor.backend.run

    def spied(batch, segmentation=True):
        calls.append(segmentation)
        return run(batch, segmentation=segmentation)

    predictor.backend.run = spied
    return calls


@pytest.mark.parametrize('key', ['gated', 'gated_dynamic', 'checkpoint'])
def test_predictor_masks_only_for_flagged_images(models, image, key):
    backend = 'torch' if key == 'checkpoint' else 'onnxruntime'
    with Predictor.from_checkpoint(models[key], backend=backend,
                                   score_threshold=0.05) as predictor:
        assert predictor.skips_segmentation
        calls = _spy(predictor)
        full = predictor.predict(image)
        boxes_only = predictor.predict(image, segmentation=False)
        small = image[:40, :70]
        mixed = predictor.predict_batch([image, small, image], segmentation=[True, False, True])
        none = predictor.predict_batch([image, small], segmentation=[False, False])
    assert calls == [True, False, True, False]
    assert full.mask.shape == image.shape[:2] and boxes_only.mask is None
    assert len(full.boxes) > 0
    np.testing.assert_array_equal(boxes_only.boxes, full.boxes)
    np.testing.assert_array_equal(boxes_only.labels, full.labels)
    assert set(boxes_only.timings) == {'preprocess', 'inference', 'postprocess'}
    assert mixed[1].mask is None and all(p.mask is None for p in none)
    np.testing.assert_array_equal(mixed[0].mask, full.mask)
    np.testing.assert_array_equal(mixed[2].mask, full.mask)
    np.testing.assert_allclose(mixed[1].boxes, none[1].boxes, atol=1e-3)


def test_torch_backend_leaves_the_head_out(models):
    with create_backend('torch', models['checkpoint']) as backend:
        assert backend.skips_segmentation
        calls = []
        backend.model.heads['segmentation'].register_forward_hook(
            lambda *args: calls.append('segmentation'))
        batch = _batch(2)
        off = backend.run(batch, segmentation=False)
        assert calls == [] and list(off) == ['loc', 'scores']
        on = backend.run(batch)
        assert calls == ['segmentation'] and list(on) == ['loc', 'scores', 'seg_logits']
    np.testing.assert_array_equal(off['loc'], on['loc'])
    np.testing.assert_array_equal(off['scores'], on['scores'])


def test_onnxruntime_backend_with_the_gate_off(models):
    with create_backend('onnxruntime', models['gated_dynamic'], threads=1) as backend:
        assert backend.skips_segmentation and backend.gate == SEGMENTATION_GATE
        batch = _batch(3)
        off = backend.run(batch, segmentation=False)
        on = backend.run(batch)
    assert list(off) == ['loc', 'scores'] and list(on) == ['loc', 'scores', 'seg_logits']
    np.testing.assert_array_equal(off['scores'], on['scores'])


def test_an_export_without_the_gate_still_runs(models, image):
    with create_backend('onnxruntime', models['plain'], threads=1) as backend:
        assert not backend.skips_segmentation and backend.gate is None
        assert list(backend.run(_batch(2), segmentation=False)) == ['loc', 'scores']
    with Predictor.from_checkpoint(models['plain'], backend='onnxruntime',
                                   score_threshold=0.05) as old, \
            Predictor.from_checkpoint(models['gated'], backend='onnxruntime',
                                      score_threshold=0.05) as new:
        assert not old.skips_segmentation and new.skips_segmentation
        expected, got = new.predict(image, segmentation=False), old.predict(image, False)
    assert got.mask is None
    np.testing.assert_allclose(got.boxes, expected.boxes, atol=1e-3)


@pytest.mark.parametrize('backend', ['torch', 'onnxruntime'])
def test_segmentation_only_model_honours_the_flags(models, image, tmp_path, backend):
    path = models['segmentation_only']
    if backend == 'onnxruntime':
        info = export_checkpoint_onnx(path, tmp_path / 'seg.onnx', images=sample_images(1))
        assert info['segmentation_gate'] is None  # nothing else to run: not gated
        path = tmp_path / 'seg.onnx'
    with Predictor.from_checkpoint(path, backend=backend) as predictor:
        assert not predictor.skips_segmentation
        calls = _spy(predictor)
        skipped = predictor.predict(image, segmentation=False)
        both = predictor.predict_batch([image, image], segmentation=[False, True])
        assert predictor.backend.run(_batch(1), segmentation=False) == {}
    assert calls == [False, True, False]
    assert skipped.mask is None and skipped.boxes.shape == (0, 4)
    assert both[0].mask is None and both[1].mask.shape == image.shape[:2]


def test_bad_flags_are_refused(models, image):
    with Predictor.from_checkpoint(models['checkpoint']) as predictor:
        with pytest.raises(ValueError, match='2 flags for 1 images'):
            predictor.predict_batch([image], segmentation=[True, False])
        with pytest.raises(ValueError, match='must be bools'):
            predictor.predict_batch([image], segmentation=[1])
        with pytest.raises(ValueError, match='bool or a sequence'):
            predictor.predict_batch([image], segmentation='yes')
        assert predictor.predict_batch([image], segmentation=np.array([False]))[0].mask is None
