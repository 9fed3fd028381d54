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
TensorRT without a GPU: shape choices, missing packages, and the code around the engine.

``FakeCudart`` stands in for ``cuda.bindings.runtime`` with host memory (a "device"
address is a ctypes buffer) and counts what is allocated, so leaks show; ``FakeTensorRT``
stands in for ``tensorrt`` with a builder that calibrates as TensorRT does (at the
calibration profile's OPT shape) and an engine whose one output is float16, or (``gated``)
a multitask engine with the segmentation gate as a second input. Both are put in
``sys.modules``, where ``import_tensorrt`` and ``import_cudart`` find them. The real
engine is exercised in ``test_export_tensorrt.py`` where TensorRT and a GPU exist.
"""

import ctypes
import enum
import importlib.util
import sys
import types

from mtl_perception.inference import artifacts
from mtl_perception.inference import tensorrt_support as support
from mtl_perception.inference.backends.tensorrt_backend import create, TensorRTBackend
from mtl_perception.inference.onnx_gate import add_gate
from mtl_perception.inference.preprocess import preprocess
from mtl_perception.inference.tensorrt_build import (build_engine, calibration_batch_size,
                                                     profile_shapes)
from mtl_perception.model_card import ModelCard, SEGMENTATION_GATE as GATE
import numpy as np
import onnx
from onnx import helper, TensorProto
from PIL import Image
import pytest

SIZE, CLASSES, MAX_BATCH = 8, ('ground', 'road'), 4
ANCHORS = 48  # the gated stand-in predicts [N, 48, 4] boxes (SIZE * SIZE * 3 / 4)


class Err(enum.IntEnum):
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorMemoryAllocation = 2
    cudaErrorNoDevice = 100


class FakeStream:
    """A stream handle: like ``cudaStream_t``, ``int()`` gives its address."""

    def __init__(self, handle: int):
        self.handle = handle

    def __int__(self) -> int:
        return self.handle


class FakeCudart:
    """Host memory behind the CUDA runtime calls the package makes; ``fail``: call -> error."""

    cudaError_t = Err
    cudaMemcpyKind = enum.IntEnum('cudaMemcpyKind', {'cudaMemcpyHostToDevice': 1,
                                                     'cudaMemcpyDeviceToHost': 2})

    def __init__(self, devices=1, fail=None):
        self.devices, self.fail = devices, dict(fail or {})
        self.device, self.host, self.streams, self.current = {}, {}, set(), 0
        self.copies = []  # (kind name, destination, source) of every copy

    def _ok(self, call, *values):
        return (self.fail.get(call, Err.cudaSuccess), *values)

    def cudaGetErrorString(self, error):
        return Err.cudaSuccess, f'fake {error.name}'.encode()

    def cudaGetDeviceCount(self):
        return self._ok('cudaGetDeviceCount', self.devices)

    def cudaGetDevice(self):
        return self._ok('cudaGetDevice', self.current)

    def cudaSetDevice(self, index):
        self.current = index
        return self._ok('cudaSetDevice')

    def cudaGetDeviceProperties(self, index):
        return self._ok('cudaGetDeviceProperties',
                        types.SimpleNamespace(name=b'Fake GPU\0\0\0', major=8, minor=7))

    def _alloc(self, call, table, nbytes):
        if call in self.fail:
            return self.fail[call], None
        buffer = ctypes.create_string_buffer(nbytes)
        table[ctypes.addressof(buffer)] = buffer
        return Err.cudaSuccess, ctypes.addressof(buffer)

    def cudaMalloc(self, nbytes):
        return self._alloc('cudaMalloc', self.device, nbytes)

    def cudaMallocHost(self, nbytes):
        return self._alloc('cudaMallocHost', self.host, nbytes)

    def cudaFree(self, pointer):
        return (Err.cudaSuccess if self.device.pop(pointer, None) is not None
                else Err.cudaErrorInvalidValue,)

    def cudaFreeHost(self, pointer):
        return (Err.cudaSuccess if self.host.pop(pointer, None) is not None
                else Err.cudaErrorInvalidValue,)

    def cudaStreamCreate(self):
        stream = FakeStream(1000 + len(self.streams))
        self.streams.add(int(stream))
        return self._ok('cudaStreamCreate', stream)

    def cudaStreamSynchronize(self, stream):
        return (Err.cudaSuccess if int(stream) in self.streams else Err.cudaErrorInvalidValue,)

    def cudaStreamDestroy(self, stream):
        self.streams.discard(int(stream))
        return (Err.cudaSuccess,)

    def cudaMemcpyAsync(self, dst, src, count, kind, stream):
        assert int(stream) in self.streams
        self.copies.append((kind.name, dst, src))
        ctypes.memmove(dst, src, count)
        return self._ok('cudaMemcpyAsync')

    def held(self) -> int:
        return len(self.device) + len(self.host) + len(self.streams)


def view(pointer, shape, dtype):
    """Return a numpy view of fake device memory."""
    dtype = np.dtype(dtype)
    count = int(np.prod(shape)) * dtype.itemsize
    return np.frombuffer((ctypes.c_uint8 * count).from_address(pointer), dtype).reshape(shape)


class FakeTensorRT:
    """The TensorRT 10 calls the package makes, on one input and float16 'seg_logits'."""

    __version__ = '10.0.0.fake'
    Logger = type('Logger', (), {'WARNING': 2, '__init__': lambda self, level: None})
    TensorIOMode = types.SimpleNamespace(INPUT='in', OUTPUT='out')
    MemoryPoolType = types.SimpleNamespace(WORKSPACE='workspace')
    BuilderFlag = types.SimpleNamespace(FP16='fp16', INT8='int8')

    class IInt8EntropyCalibrator2:
        """The calibrator base class."""

        def __init__(self):
            pass

    def __init__(self, dynamic=True, gated=False, gate_on_host=False):
        self.dynamic, self.built, self.parsed = dynamic, None, None
        # gated: inputs images and the gate; outputs loc, scores and seg_logits.
        self.gated, self.gate_on_host, self.gates = gated, gate_on_host, []

    @staticmethod
    def nptype(dtype):
        return dtype

    def Builder(self, logger):  # noqa: N802 (TensorRT's name)
        trt = self

        class Profile:
            """An optimisation profile: records MIN, OPT, MAX per input."""

            def set_shape(self, name, *shapes):
                setattr(self, name, shapes)

        class Config:
            """A builder config: records flags, profiles and the calibrator."""

            def __init__(self):
                self.flags, self.profiles, self.calibration_profile = set(), [], None
                self.int8_calibrator = None

            def set_memory_pool_limit(self, pool, size):
                pass

            def set_flag(self, flag):
                self.flags.add(flag)

            def add_optimization_profile(self, profile):
                self.profiles.append(profile)

            def set_calibration_profile(self, profile):
                self.calibration_profile = profile

        class Builder:
            create_builder_config = staticmethod(Config)
            create_optimization_profile = staticmethod(Profile)

            @staticmethod
            def create_network(flags):
                shape = (-1 if trt.dynamic else 1, 3, SIZE, SIZE)
                return types.SimpleNamespace(
                    get_input=lambda i: types.SimpleNamespace(shape=shape))

            @staticmethod
            def build_serialized_network(network, config):
                trt.built = {'config': config, 'batches': []}
                calibrator = config.int8_calibrator
                if calibrator is not None:
                    # TensorRT calibrates at the calibration profile's OPT shape.
                    shape = (config.calibration_profile.images[1]
                             if config.calibration_profile else (1, 3, SIZE, SIZE))
                    assert calibrator.get_batch_size() == shape[0]
                    names = ['images', GATE] if trt.gated else ['images']
                    while (pointers := calibrator.get_batch(names)) is not None:
                        assert len(pointers) == len(names)
                        trt.built['batches'].append(view(pointers[0], shape,
                                                         np.float32).copy())
                        if trt.gated:  # the head is calibrated: the gate is True
                            assert view(pointers[1], (), np.bool_)
                    calibrator.write_calibration_cache(b'scales')
                return b'fake engine'

        return Builder()

    def OnnxParser(self, network, logger):  # noqa: N802 (TensorRT's name)
        trt = self

        def parse_from_file(path):
            trt.parsed = ('file', path)
            return True

        def parse(model, path=None):
            trt.parsed = ('bytes', bytes(model), path)
            return True

        return types.SimpleNamespace(parse_from_file=parse_from_file, parse=parse,
                                     num_errors=0)

    def Runtime(self, logger):  # noqa: N802 (TensorRT's name)
        trt, dynamic, gated = self, self.dynamic, self.gated
        batch = MAX_BATCH if dynamic else 1
        inputs = ('images', GATE) if gated else ('images',)
        outputs = ('loc', 'scores', 'seg_logits') if gated else ('seg_logits',)
        shapes = {'images': (3, SIZE, SIZE), 'loc': (ANCHORS, 4), 'scores': (ANCHORS, 2),
                  'seg_logits': (len(CLASSES), SIZE, SIZE)}
        dtypes = {'images': np.float32, GATE: np.bool_, 'loc': np.float32,
                  'scores': np.float32, 'seg_logits': np.float16}

        class Context:
            """An execution context computing seg_logits = images[:, :1] + class index."""

            def __init__(self):
                self.shape, self.addresses = None, {}

            def set_input_shape(self, name, shape):
                self.shape = tuple(shape)
                return 1 <= shape[0] <= batch

            def get_tensor_shape(self, name):
                if name == 'images':
                    return self.shape
                return () if name == GATE else (self.shape[0], *shapes[name])

            def set_tensor_address(self, name, address):
                self.addresses[name] = address
                return True

            def _view(self, name):
                return view(self.addresses[name], self.get_tensor_shape(name), dtypes[name])

            def execute_async_v3(self, stream):
                assert isinstance(stream, int)
                images = self._view('images')
                head = True
                if gated:
                    # Device and host memory are both host memory in FakeCudart.
                    head = bool(self._view(GATE))
                    trt.gates.append(head)
                    self._view('loc')[...] = images[:, :1, 0, :4]
                    self._view('scores')[...] = 0.5
                logits = self._view('seg_logits')
                logits[...] = (images[:, :1] + np.arange(len(CLASSES))[None, :, None, None]
                               if head else 0)
                return True

        class Engine:
            num_io_tensors = len(inputs) + len(outputs)
            get_tensor_name = staticmethod(lambda i: (*inputs, *outputs)[i])
            get_tensor_mode = staticmethod(lambda name: 'in' if name in inputs else 'out')
            get_tensor_dtype = staticmethod(lambda name: dtypes[name])
            is_shape_inference_io = staticmethod(lambda name: trt.gate_on_host and name == GATE)
            get_tensor_profile_shape = staticmethod(
                lambda name, index: [(1, 3, SIZE, SIZE)] * 2 + [(batch, 3, SIZE, SIZE)])
            create_execution_context = staticmethod(Context)

            @staticmethod
            def get_tensor_shape(name):
                return () if name == GATE else (-1 if dynamic else 1, *shapes[name])

        return types.SimpleNamespace(
            deserialize_cuda_engine=lambda data: Engine() if data == b'fake engine' else None)


@pytest.fixture
def cudart(monkeypatch):
    fake = FakeCudart()
    monkeypatch.setitem(sys.modules, 'cuda.bindings.runtime', fake)
    return fake


@pytest.fixture
def trt(monkeypatch):
    fake = FakeTensorRT()
    monkeypatch.setitem(sys.modules, 'tensorrt', fake)
    return fake


def make_card(fmt='onnx', build=None) -> ModelCard:
    info = {'file': f'model.{fmt}'}
    if build is not None:
        info['build'] = build
    card = ModelCard(name='fake', architecture='fake', tasks=('segmentation',),
                     input_size=SIZE, classes={'segmentation': CLASSES}).validate()
    return card.with_export(fmt, info)


HERE = {'tensorrt_version': '10.0.0.fake', 'device_name': 'Fake GPU',
        'compute_capability': '8.7'}


@pytest.mark.parametrize('max_batch, images, dynamic, expected', [
    (8, 256, True, 8), (4, 256, True, 4), (16, 3, True, 3), (32, 100, True, 8),
    (8, 256, False, 1), (1, 5, True, 1)])
def test_calibration_batch(max_batch, images, dynamic, expected):
    batch = calibration_batch_size(max_batch, images, dynamic=dynamic)
    assert batch == expected
    assert profile_shapes(SIZE, batch, batch, batch) == ((batch, 3, SIZE, SIZE),) * 3


def test_profile_shapes_reject_bad_ranges():
    assert profile_shapes(96, 1, 1, 8) == ((1, 3, 96, 96), (1, 3, 96, 96), (8, 3, 96, 96))
    for bad in [(0, 1, 1), (2, 1, 4), (1, 5, 4)]:
        with pytest.raises(ValueError, match='bad profile'):
            profile_shapes(96, *bad)
    with pytest.raises(ValueError, match='at least one image'):
        calibration_batch_size(8, 0, dynamic=True)


def test_missing_packages_say_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, 'tensorrt', None)
    with pytest.raises(support.TensorRTUnavailableError, match='TensorRT is not installed') \
            as error:
        support.import_tensorrt()
    assert 'pip install .[tensorrt]' in str(error.value) and '\n' not in str(error.value)
    with pytest.raises(support.TensorRTUnavailableError, match='TensorRT is not installed'):
        create('/nowhere/model.engine')  # says what is missing before looking for files
    for name in support.CUDART_MODULES:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(support.TensorRTUnavailableError, match='cuda-python is not '
                       r'installed .*pip install \.\[tensorrt\]'):
        support.cuda_device_index('cuda')


@pytest.mark.skipif(importlib.util.find_spec('cuda') is None
                    or importlib.util.find_spec('cuda.bindings') is None,
                    reason='cuda-python (cuda.bindings) is not installed')
def test_real_cudart_without_a_gpu_is_a_clear_error():
    from cuda.bindings import runtime

    code, count = runtime.cudaGetDeviceCount()
    if code == runtime.cudaError_t.cudaSuccess and count > 0:
        pytest.skip('a CUDA GPU is present')
    with pytest.raises(support.TensorRTUnavailableError,
                       match='TensorRT needs a CUDA GPU.*cudaGetDeviceCount') as error:
        support.cuda_device_index('cuda')
    assert '\n' not in str(error.value)


def test_device_checks(monkeypatch):
    for fake, device, message in [
            (FakeCudart(fail={'cudaGetDeviceCount': Err.cudaErrorNoDevice}), 'cuda',
             'cudaGetDeviceCount failed: cudaErrorNoDevice'),
            (FakeCudart(devices=0), 'cuda', 'sees none'),
            (FakeCudart(devices=2), 'cuda:2', "'cuda:2' does not exist: 2 CUDA device"),
            (FakeCudart(), 'cpu', 'pass device=cuda')]:
        monkeypatch.setitem(sys.modules, 'cuda.bindings.runtime', fake)
        with pytest.raises(support.TensorRTUnavailableError, match=message):
            support.cuda_device_index(device)
    fake = FakeCudart(devices=2)
    fake.current = 1
    monkeypatch.setitem(sys.modules, 'cuda.bindings.runtime', fake)
    assert support.cuda_device_index('cuda') == 1 and support.cuda_device_index('cuda:0') == 0
    with pytest.raises(ValueError, match='bad device'):
        support.cuda_device_index('gpu0')
    assert support.build_target(FakeTensorRT(), 0) == HERE


def test_cuda_memory_copies_and_frees_everything(cudart):
    with pytest.raises(support.CudaError, match='cudaMalloc failed: cudaErrorMemoryAllocation'):
        support.cuda_call(FakeCudart(fail={'cudaMalloc': Err.cudaErrorMemoryAllocation}),
                          'cudaMalloc', 16)
    memory = support.CudaMemory(0)
    for pinned in (True, False):
        host = memory.host_array((2, 3), np.float16, pinned=pinned)
        pointer = memory.device_buffer(host.nbytes)
        source = np.arange(6, dtype=np.float16).reshape(2, 3)
        host[...] = source
        memory.copy_to_device(pointer, host)
        host[...] = 0
        memory.copy_to_host(host, pointer)
        memory.synchronize()
        np.testing.assert_array_equal(host, source)
    with pytest.raises(ValueError, match='C-contiguous'):
        memory.copy_to_device(pointer, np.zeros((4, 4), np.float32)[:, :2])
    assert len(cudart.host) == 1 and len(cudart.device) == 2
    memory.close()
    memory.close()  # idempotent
    assert cudart.held() == 0


def test_backend_runs_chunks_and_returns_float32_copies(tmp_path, cudart, trt):
    engine = tmp_path / 'model.engine'
    engine.write_bytes(b'fake engine')
    card = make_card('tensorrt', HERE)
    backend = TensorRTBackend(engine, card, None, device='cuda')
    assert backend.max_batch == MAX_BATCH and backend.output_names == ('seg_logits',)
    batch = np.random.default_rng(0).random((6, 3, SIZE, SIZE), dtype=np.float32)
    first = backend.run(batch)  # 4 + 2: two chunks
    expected = batch[:, :1] + np.arange(len(CLASSES), dtype=np.float32)[None, :, None, None]
    assert first['seg_logits'].dtype == np.float32 and first['seg_logits'].shape == (6, 2, 8, 8)
    np.testing.assert_allclose(first['seg_logits'], expected, atol=1e-2)
    kept = first['seg_logits'].copy()
    single = backend.run(batch[5:6] + 1)
    np.testing.assert_allclose(single['seg_logits'], expected[5:6] + 1, atol=1e-2)
    np.testing.assert_array_equal(first['seg_logits'], kept)  # not views of the buffers
    with pytest.raises(ValueError, match=r'float32 \[N, 3, 8, 8\]'):
        backend.run(batch[:, :, :4])
    backend.close()
    backend.close()
    assert cudart.held() == 0
    with pytest.raises(RuntimeError, match='closed'):
        backend.run(batch)


def test_backend_refuses_foreign_or_corrupt_engines_without_leaking(tmp_path, cudart, trt):
    engine = tmp_path / 'model.engine'
    engine.write_bytes(b'fake engine')
    card = make_card('tensorrt', {**HERE, 'tensorrt_version': '8.6.1'})
    with pytest.raises(support.TensorRTUnavailableError, match='rebuild it here with'):
        TensorRTBackend(engine, card, None)
    engine.write_bytes(b'garbage')
    with pytest.raises(artifacts.ExportedModelError, match='cannot deserialise'):
        TensorRTBackend(engine, make_card('tensorrt', HERE), None)
    assert cudart.held() == 0


@pytest.mark.parametrize('dynamic, max_batch, images, batch', [
    (True, 4, 5, 4), (True, 16, 10, 8), (False, 8, 3, 1)])
def test_int8_build_calibrates_at_the_profile_batch(tmp_path, cudart, trt, dynamic,
                                                    max_batch, images, batch):
    trt.dynamic = dynamic
    make_card().save(artifacts.card_path(tmp_path / 'model.onnx'))
    (tmp_path / 'model.onnx').write_bytes(b'onnx')
    folder = tmp_path / 'calibration'
    folder.mkdir()
    pictures = [np.random.default_rng(i).integers(0, 256, (12, 10, 3), dtype=np.uint8)
                for i in range(images)]
    for index, picture in enumerate(pictures):
        Image.fromarray(picture).save(folder / f'{index:02d}.png')
    info = build_engine(tmp_path / 'model.onnx', tmp_path / 'model.engine', precision='int8',
                        calibration_data=folder, max_batch=max_batch)
    config = trt.built['config']
    assert {'fp16', 'int8'} <= config.flags
    if dynamic:
        assert config.profiles[0].images == profile_shapes(SIZE, 1, 1, max_batch)
        assert config.calibration_profile.images == profile_shapes(SIZE, batch, batch, batch)
    else:
        assert config.profiles == [] and config.calibration_profile is None
    used = images - images % batch
    fed = np.concatenate(trt.built['batches'])
    card = ModelCard.load(artifacts.card_path(tmp_path / 'model.engine'))
    reference = np.concatenate([preprocess(p, SIZE, card.mean, card.std)
                                for p in pictures[:used]])
    np.testing.assert_allclose(fed, reference, atol=1e-6)
    assert info['calibration_batch'] == batch and info['calibration_images'] == used
    assert info['build'] == HERE and card.export['tensorrt'] == info and 'onnx' in card.export
    assert info['rebuild_command'].endswith(f'--calibration-images {used}'
                                            + (f' --max-batch {max_batch}' if dynamic else ''))
    assert (tmp_path / 'model.calibration.cache').read_bytes() == b'scales'
    # An ungated export is parsed from its file, as it is.
    assert trt.parsed == ('file', str((tmp_path / 'model.onnx').resolve()))
    assert info['segmentation_gate'] is None
    assert cudart.held() == 0  # the calibrator's buffers are freed after the build
    with create(tmp_path / 'model', device='cuda') as backend:  # the card says it runs here
        assert backend.run(reference[:1])['seg_logits'].shape == (1, 2, SIZE, SIZE)
    assert cudart.held() == 0


def multitask_card(fmt, info) -> ModelCard:
    card = ModelCard(name='fake', architecture='fake', tasks=('detection', 'segmentation'),
                     input_size=SIZE, classes={'detection': ('car',),
                                               'segmentation': CLASSES}).validate()
    return card.with_export(fmt, info)


def gated_onnx(path):
    """Write a tiny gated multitask graph (loc and scores from images, a 1x1 conv head)."""
    def constant(name, values):
        return helper.make_tensor(name, TensorProto.INT64, [len(values)], values)

    nodes = [
        helper.make_node('Reshape', ['images', 'loc_shape'], ['loc']),
        helper.make_node('Slice', ['loc', 'starts', 'ends', 'axes'], ['pairs']),
        helper.make_node('Softmax', ['pairs'], ['scores'], axis=-1),
        helper.make_node('Conv', ['images', 'weight'], ['head']),
        helper.make_node('Relu', ['head'], ['seg_logits']),
    ]
    weight = helper.make_tensor('weight', TensorProto.FLOAT, [len(CLASSES), 3, 1, 1],
                                [0.5] * (3 * len(CLASSES)))
    graph = helper.make_graph(
        nodes, 'tiny', [helper.make_tensor_value_info('images', TensorProto.FLOAT,
                                                      [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info('loc', TensorProto.FLOAT, [1, ANCHORS, 4]),
         helper.make_tensor_value_info('scores', TensorProto.FLOAT, [1, ANCHORS, 2]),
         helper.make_tensor_value_info('seg_logits', TensorProto.FLOAT,
                                       [1, len(CLASSES), SIZE, SIZE])],
        [constant('loc_shape', [1, ANCHORS, 4]), constant('starts', [0]),
         constant('ends', [2]), constant('axes', [2]), weight])
    model = add_gate(helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)]))
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    multitask_card('onnx', {'file': path.name, 'segmentation_gate': GATE}).save(
        artifacts.card_path(path))
    np.save(artifacts.anchors_path(path), np.full((ANCHORS, 4), 0.5, np.float32))


@pytest.mark.parametrize('gate_on_host', [False, True])
def test_gated_build_makes_the_gate_an_engine_input(tmp_path, cudart, trt, gate_on_host):
    gated_onnx(tmp_path / 'model.onnx')
    folder = tmp_path / 'calibration'
    folder.mkdir()
    for index in range(2):
        picture = np.full((12, 10, 3), 40 * index, np.uint8)
        Image.fromarray(picture).save(folder / f'{index}.png')
    trt.gated = True  # the network TensorRT sees has the gate as a second input
    info = build_engine(tmp_path / 'model.onnx', tmp_path / 'model.engine', precision='int8',
                        calibration_data=folder)
    assert info['segmentation_gate'] == GATE and info['calibration_batch'] == 2
    assert len(trt.built['batches']) == 1
    assert cudart.held() == 0
    # TensorRT parsed bytes in which the gate is an input without its default (True):
    # with the default it would be folded as a build-time constant.
    kind, data, _ = trt.parsed
    parsed = onnx.load_from_string(data)
    assert kind == 'bytes' and GATE in [i.name for i in parsed.graph.input]
    assert GATE not in [t.name for t in parsed.graph.initializer]
    assert [n.op_type for n in parsed.graph.node][-1] == 'If'
    # The file itself keeps its default for ONNX Runtime.
    assert GATE in [t.name for t in onnx.load(str(tmp_path / 'model.onnx')).graph.initializer]

    trt.gate_on_host = gate_on_host
    with create(tmp_path / 'model', device='cuda') as backend:
        assert backend.skips_segmentation and backend.gate == GATE
        batch = np.random.default_rng(0).random((6, 3, SIZE, SIZE), dtype=np.float32)
        cudart.copies.clear()
        off = backend.run(batch, segmentation=False)  # two chunks: 4 + 2
        assert trt.gates == [False, False] and list(off) == ['loc', 'scores']
        copied_back = [source for kind, _, source in cudart.copies
                       if kind == 'cudaMemcpyDeviceToHost']
        assert backend.device['loc'] in copied_back
        assert backend.device['seg_logits'] not in copied_back
        # The gate travels to the device, unless TensorRT reads it from the host.
        gate_copies = [kind for kind, destination, _ in cudart.copies
                       if destination == backend.device.get(GATE)]
        assert gate_copies == ([] if gate_on_host else ['cudaMemcpyHostToDevice'] * 2)
        on = backend.run(batch)
        assert trt.gates[2:] == [True, True]
        expected = batch[:, :1] + np.arange(len(CLASSES), dtype=np.float32)[None, :, None, None]
        np.testing.assert_allclose(on['seg_logits'], expected, atol=1e-2)
        np.testing.assert_array_equal(on['loc'], off['loc'])
    assert cudart.held() == 0


def test_engine_without_gate_skips_only_the_copy(tmp_path, cudart, trt):
    engine = tmp_path / 'model.engine'
    engine.write_bytes(b'fake engine')
    with TensorRTBackend(engine, make_card('tensorrt', HERE), None) as backend:
        assert not backend.skips_segmentation and backend.gate is None
        batch = np.zeros((2, 3, SIZE, SIZE), np.float32)
        cudart.copies.clear()
        assert backend.run(batch, segmentation=False) == {}  # nothing else to compute
        assert cudart.copies == []
        assert backend.run(batch)['seg_logits'].shape == (2, len(CLASSES), SIZE, SIZE)
    assert cudart.held() == 0


def test_profile_is_tuned_for_the_cameras_a_node_serves(tmp_path, cudart, trt):
    trt.dynamic = True
    make_card().save(artifacts.card_path(tmp_path / 'model.onnx'))
    (tmp_path / 'model.onnx').write_bytes(b'onnx')
    info = build_engine(tmp_path / 'model.onnx', tmp_path / 'model.engine', precision='fp16',
                        max_batch=4, opt_batch=2)
    assert trt.built['config'].profiles[0].images == profile_shapes(SIZE, 1, 2, 4)
    assert info['opt_batch'] == 2
    assert info['rebuild_command'].endswith('--max-batch 4 --opt-batch 2')
    with pytest.raises(ValueError, match='opt_batch must be between 1 and max_batch=4'):
        build_engine(tmp_path / 'model.onnx', tmp_path / 'other.engine', max_batch=4,
                     opt_batch=5)
