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

"""ROS-free node plumbing: counters, log throttle, diagnostics, parameters."""

from pathlib import Path

from diagnostic_msgs.msg import DiagnosticStatus
from mtl_perception.ros.diagnostics import stats_status
from mtl_perception.ros.parameters import NodeSettings, PARAMETERS, validate_settings
from mtl_perception.ros.pipeline import LogThrottle, PipelineStats, RateWindow
import pytest


class FakeClock:
    """A settable monotonic clock (seconds)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_window():
    window = RateWindow(2.0)
    assert window.rate(0.0) == 0.0
    for tick in range(11):
        window.add(tick * 0.1)
    assert window.rate(1.0) == pytest.approx(10.0)
    for tick in range(11, 31):
        window.add(tick * 0.1)
    assert window.rate(3.0) == pytest.approx(10.0, rel=0.1)
    assert window.rate(10.0) == 0.0
    with pytest.raises(ValueError, match='window'):
        RateWindow(0)


def test_pipeline_stats_counts_and_pending():
    clock = FakeClock()
    stats = PipelineStats(window=1.0, clock=clock)
    for _ in range(4):
        stats.frame_received()
        clock.now += 0.1
    stats.frame_dropped()
    stats.frame_processed(inference_ms=20.0, end_to_end_ms=30.0)
    stats.frame_processed(inference_ms=40.0, end_to_end_ms=50.0)
    stats.input_rejected()
    snapshot = stats.snapshot()
    assert (snapshot.received, snapshot.processed, snapshot.dropped, snapshot.rejected) == \
        (4, 2, 1, 1)
    assert snapshot.pending == 1
    assert snapshot.inference_ms == 30.0 and snapshot.end_to_end_ms == 40.0
    assert snapshot.input_rate_hz == pytest.approx(3 / 0.4)
    stats.input_rejected(received=True)
    assert stats.snapshot().pending == 0 and stats.snapshot().rejected == 2
    stats.frame_received()
    stats.frame_failed()
    assert stats.snapshot().pending == 0 and stats.snapshot().failed == 1
    stats.frame_received()
    stats.frame_skipped()
    assert stats.snapshot().pending == 0 and stats.snapshot().skipped == 1


def test_camera_stats_count_into_the_node_totals():
    clock = FakeClock()
    node = PipelineStats(clock=clock)
    front, down = (PipelineStats(clock=clock, parent=node) for _ in range(2))
    front.frame_received()
    front.frame_processed(10.0, 20.0, mask=True, batched=True)
    down.frame_received()
    down.frame_received()
    down.frame_dropped()
    down.frame_processed(30.0, 40.0, mask=False)
    down.frame_received()
    down.frame_skipped()
    totals = node.snapshot()
    assert (totals.received, totals.processed, totals.dropped, totals.skipped, totals.masks) \
        == (4, 2, 1, 1, 1)
    assert totals.pending == 0 and totals.inference_ms == 20.0 and totals.batched == 1
    assert (front.snapshot().received, down.snapshot().received) == (1, 3)
    assert (front.snapshot().masks, down.snapshot().masks) == (1, 0)


def test_log_throttle_per_key():
    clock = FakeClock()
    throttle = LogThrottle(period=2.0, clock=clock)
    assert throttle.allow('encoding') == 0
    assert throttle.allow('encoding') is None
    assert throttle.allow('encoding') is None
    assert throttle.allow('step') == 0
    clock.now += 2.5
    assert throttle.allow('encoding') == 2
    assert throttle.allow('encoding') is None


def test_diagnostics_status_values_and_level():
    clock = FakeClock()
    stats = PipelineStats(clock=clock)
    stats.frame_received()
    stats.frame_processed(12.5, 20.0)
    first = stats.snapshot()
    status = stats_status(first, name='/ns/multitask_node', hardware_id='cpu', state='active')
    values = {item.key: item.value for item in status.values}
    assert status.level == DiagnosticStatus.OK and status.name == '/ns/multitask_node'
    assert status.hardware_id == 'cpu' and status.message.startswith('active:')
    assert values['frames_received'] == '1' and values['frames_processed'] == '1'
    assert values['inference_ms'] == '12.5' and values['end_to_end_ms'] == '20.0'
    assert set(values) == {'input_rate_hz', 'processed_rate_hz', 'frames_received',
                           'frames_processed', 'frames_dropped', 'frames_skipped',
                           'masks_published', 'frames_batched', 'frames_pending',
                           'inputs_rejected', 'inference_failures', 'inference_ms',
                           'end_to_end_ms'}
    stats.input_rejected()
    warned = stats_status(stats.snapshot(), name='n', hardware_id='cpu', state='active',
                          previous=first)
    assert warned.level == DiagnosticStatus.WARN and '1 inputs rejected' in warned.message


def _values(**changes) -> dict:
    values = {spec.name: spec.default for spec in PARAMETERS}
    values.update(changes)
    return values


def test_parameter_defaults_validate():
    settings = validate_settings(_values(), Path('/share/models/demo.safetensors'))
    assert isinstance(settings, NodeSettings)
    assert settings.checkpoint == Path('/share/models/demo.safetensors')
    assert (settings.backend, settings.device, settings.qos_reliability) == \
        ('torch', 'cpu', 'best_effort')
    assert settings.qos_depth == 1 and settings.autostart is True
    assert (settings.inference_workers, settings.inference_threads) == (1, 0)
    assert (settings.cameras, settings.camera_topics) == ((), ())
    assert (settings.max_batch, settings.segmentation_every) == (1, 1)
    explicit = validate_settings(_values(checkpoint='/m/x.safetensors', device='cuda:1',
                                         half=True, backend='onnxruntime'), None)
    assert explicit.checkpoint == Path('/m/x.safetensors') and explicit.device == 'cuda:1'


@pytest.mark.parametrize('changes, message', [
    ({'backend': 'caffe'}, "backend='caffe' is not one of"),
    ({'device': 'gpu'}, "device='gpu' must be"),
    ({'device': 'cuda:x'}, "device='cuda:x'"),
    ({'half': True}, 'half=true needs a GPU'),
    ({'qos_reliability': 'sometimes'}, 'qos_reliability'),
    ({'score_threshold': 1.5}, r'score_threshold=1.5 is outside \[0.0, 1.0\]'),
    ({'max_detections': 0}, 'max_detections=0'),
    ({'qos_depth': 0}, 'qos_depth=0'),
    ({'diagnostics_period': 0.0}, 'diagnostics_period'),
    ({'inference_workers': 0}, r'inference_workers=0 is outside \[1, 8\]'),
    ({'inference_workers': 9}, 'inference_workers=9'),
    ({'inference_threads': -1}, 'inference_threads=-1'),
    ({'max_batch': 0}, 'max_batch=0'),
    ({'segmentation_every': 0}, r'segmentation_every=0 is outside \[1, 10000\]'),
    ({'cameras': ['front', 'front']}, 'names a camera twice'),
    ({'cameras': ['/front']}, "'/front' is not a relative ROS name"),
    ({'cameras': 'front,,down'}, 'has an empty item'),
    ({'cameras': '2nd'}, "'2nd' is not a relative ROS name"),
    ({'cameras': [1, 2]}, 'must be a string array or a string'),
    ({'cameras': ','.join(f'c{i}' for i in range(17))}, 'at most 16'),
    ({'cameras': 'a,b', 'camera_topics': '/x'}, 'lists 1 topics for 2 cameras'),
    ({'camera_topics': '/x'}, 'lists 1 topics for 0 cameras'),
    ({'cameras': 'a', 'camera_topics': 'bad topic'}, "'bad topic' is not a valid topic"),
])
def test_bad_parameters_are_named(changes, message):
    with pytest.raises(ValueError, match=message):
        validate_settings(_values(**changes), Path('/x.safetensors'))


@pytest.mark.parametrize('value', [['front', 'down'], 'front,down', '[front, down]',
                                   "['front', 'down']", ' [ front ,down ] '])
def test_cameras_as_array_or_launch_string(value):
    settings = validate_settings(_values(cameras=value), Path('/x.safetensors'))
    assert settings.cameras == ('front', 'down')


def test_camera_topics_one_per_camera():
    settings = validate_settings(
        _values(cameras='[front, down/nadir]',
                camera_topics='[/uav/front/image_raw, down/image_raw]'), Path('/x.safetensors'))
    assert settings.cameras == ('front', 'down/nadir')
    assert settings.camera_topics == ('/uav/front/image_raw', 'down/image_raw')
    for empty in ('', '[]', []):
        assert validate_settings(_values(cameras=empty), Path('/x')).cameras == ()


def test_empty_checkpoint_without_a_demo_model_is_an_error():
    with pytest.raises(ValueError, match='checkpoint is empty'):
        validate_settings(_values(), None)
    with pytest.raises(ValueError, match='missing parameters'):
        validate_settings({'backend': 'torch'}, None)


def test_descriptors_carry_descriptions_and_ranges():
    for spec in PARAMETERS:
        descriptor = spec.descriptor()
        assert descriptor.description.endswith('.'), spec.name
        if spec.choices:
            assert all(choice in descriptor.additional_constraints for choice in spec.choices)
    by_name = {spec.name: spec.descriptor() for spec in PARAMETERS}
    assert by_name['score_threshold'].floating_point_range[0].to_value == 1.0
    assert by_name['max_detections'].integer_range[0].from_value == 1
    checkpoint = by_name['checkpoint']
    assert not checkpoint.integer_range and not checkpoint.floating_point_range
    assert by_name['cameras'].dynamic_typing and not checkpoint.dynamic_typing
