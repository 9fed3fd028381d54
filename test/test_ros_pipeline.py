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

"""ROS-free node plumbing: latest-frame mailbox, counters, log throttle, diagnostics, params."""

from pathlib import Path
import threading

from diagnostic_msgs.msg import DiagnosticStatus
from mtl_perception.ros.diagnostics import stats_status
from mtl_perception.ros.parameters import NodeSettings, PARAMETERS, validate_settings
from mtl_perception.ros.pipeline import FrameMailbox, LogThrottle, PipelineStats, PublishOrder
from mtl_perception.ros.pipeline import RateWindow
import pytest


class FakeClock:
    """A settable monotonic clock (seconds)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_mailbox_keeps_only_the_newest_item():
    mailbox = FrameMailbox()
    assert mailbox.put('a') is False
    assert mailbox.put('b') is True
    assert mailbox.put('c') is True
    assert mailbox.take(timeout=0) == 'c'
    assert mailbox.take(timeout=0.01) is None
    assert mailbox.put('d') is False


def test_mailbox_close_wakes_a_waiting_taker_and_discards():
    mailbox = FrameMailbox()
    got = []
    taker = threading.Thread(target=lambda: got.append(mailbox.take()))
    taker.start()
    mailbox.put('x')
    taker.join(timeout=10)
    assert got == ['x']
    taker = threading.Thread(target=lambda: got.append(mailbox.take()))
    taker.start()
    assert mailbox.close() is False
    taker.join(timeout=10)
    assert not taker.is_alive() and got == ['x', None] and mailbox.closed
    assert mailbox.put('late') is True
    assert mailbox.take(timeout=0) is None


def test_mailbox_close_reports_a_discarded_item():
    mailbox = FrameMailbox()
    mailbox.put('waiting')
    assert mailbox.close() is True


def test_mailbox_under_a_fast_producer_hands_over_each_item_once():
    mailbox, taken = FrameMailbox(), []

    def consume() -> None:
        while not taken or taken[-1] != 'end':
            taken.append(mailbox.take(timeout=10))

    consumer = threading.Thread(target=consume)
    consumer.start()
    drops = sum(mailbox.put(index) for index in range(2000))
    drops += mailbox.put('end')
    consumer.join(timeout=30)
    assert not consumer.is_alive() and taken[-1] == 'end'
    delivered = taken[:-1]
    assert delivered == sorted(set(delivered))
    # Every item is either taken or replaced (and reported), never lost silently.
    assert len(delivered) + drops == 2000


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
                           'frames_processed', 'frames_dropped', 'frames_pending',
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
])
def test_bad_parameters_are_named(changes, message):
    with pytest.raises(ValueError, match=message):
        validate_settings(_values(**changes), Path('/x.safetensors'))


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


def test_publish_order_follows_arrival_whoever_finishes_first():
    mailbox, order = FrameMailbox(), PublishOrder()
    taken = []
    for frame in ('f0', 'f1', 'f2'):
        mailbox.put(frame)
        taken.append(order.take(mailbox, timeout=1.0))
    assert [ticket for _, ticket in taken] == [0, 1, 2] and order.in_flight == 3
    published = []

    def finish(index: int) -> None:
        frame, ticket = taken[index]
        assert order.wait_turn(ticket, timeout=5.0)
        published.append(frame)
        order.done(ticket)

    # The newest frame finishes first, the oldest last: they still publish oldest first.
    late = [threading.Thread(target=finish, args=(index,)) for index in (2, 1)]
    for thread in late:
        thread.start()
    assert not order.wait_turn(taken[1][1], timeout=0.05)
    finish(0)
    for thread in late:
        thread.join(timeout=5.0)
    assert published == ['f0', 'f1', 'f2'] and order.in_flight == 0


def test_publish_order_lets_an_abandoned_frame_go():
    mailbox, order = FrameMailbox(), PublishOrder()
    mailbox.put('bad')
    _, first = order.take(mailbox, timeout=1.0)
    mailbox.put('good')
    _, second = order.take(mailbox, timeout=1.0)
    assert not order.wait_turn(second, timeout=0.05)
    order.done(first)
    order.done(first)
    assert order.wait_turn(second, timeout=1.0)
    assert order.take(mailbox, timeout=0.01) == (None, None)
    mailbox.close()
    assert order.take(mailbox) == (None, None)
