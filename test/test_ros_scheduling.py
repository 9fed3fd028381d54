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

"""ROS-free scheduling: newest frame per camera, cameras in turn, batches, publish order."""

import threading

from mtl_perception.ros.scheduling import CameraQueue, PublishOrder, Taken
import pytest


def _items(taken: list) -> list:
    return [(entry.camera, entry.item) for entry in taken]


def test_each_camera_keeps_only_its_newest_frame():
    queue = CameraQueue(2)
    assert queue.put(0, 'a0') is False
    assert queue.put(0, 'a1') is True
    assert queue.put(1, 'b0') is False
    assert queue.put(0, 'a2') is True
    assert _items(queue.take(max_batch=4, timeout=0)) == [(0, 'a2'), (1, 'b0')]
    assert queue.take(timeout=0.01) == []
    assert queue.put(0, 'a3') is False


def test_cameras_are_served_in_turn_and_a_slow_one_never_starves():
    queue = CameraQueue(2)
    served = []
    # Camera 0 always has a new frame; camera 1 has one every 12th turn (60 Hz vs 5 Hz).
    for turn in range(120):
        queue.put(0, f'fast{turn}')
        if turn % 12 == 0:
            assert queue.put(1, f'slow{turn}') is False  # never replaced: always served
        (entry,) = queue.take(max_batch=1, timeout=0)
        served.append(entry.camera)
    assert served.count(1) == 10 and served.count(0) == 110
    # A slow frame is answered on the turn after it arrives, at the latest.
    queue.put(0, 'fast')
    queue.put(1, 'slow')
    first = queue.take(max_batch=1, timeout=0)[0].camera
    second = queue.take(max_batch=1, timeout=0)[0].camera
    assert {first, second} == {0, 1}


def test_batches_take_one_frame_per_camera_round_robin():
    queue = CameraQueue(3)
    for camera in range(3):
        queue.put(camera, f'c{camera}')
    assert _items(queue.take(max_batch=2, timeout=0)) == [(0, 'c0'), (1, 'c1')]
    for camera in range(3):
        queue.put(camera, f'd{camera}')
    # The next batch starts after the last camera served.
    assert _items(queue.take(max_batch=2, timeout=0)) == [(2, 'd2'), (0, 'd0')]
    assert _items(queue.take(max_batch=2, timeout=0)) == [(1, 'd1')]
    with pytest.raises(ValueError, match='max_batch'):
        queue.take(max_batch=0)
    with pytest.raises(ValueError, match='at least one camera'):
        CameraQueue(0)


def test_sequence_counts_the_frames_taken_per_camera():
    queue = CameraQueue(2)
    sequences = []
    for turn in range(4):
        queue.put(0, turn)
        queue.put(0, turn)  # replaced frames are not counted
        if turn % 2:
            queue.put(1, turn)
        sequences += [(entry.camera, entry.sequence) for entry in queue.take(2, timeout=0)]
    assert sequences == [(0, 0), (1, 0), (0, 1), (0, 2), (1, 1), (0, 3)]
    assert Taken(0, 'x', 3).sequence == 3


def test_close_wakes_a_waiting_taker_and_reports_discarded_cameras():
    queue = CameraQueue(3)
    got = []
    taker = threading.Thread(target=lambda: got.append(queue.take()))
    taker.start()
    queue.put(2, 'x')
    taker.join(timeout=10)
    assert _items(got[0]) == [(2, 'x')]
    taker = threading.Thread(target=lambda: got.append(queue.take()))
    taker.start()
    assert queue.close() == [] and queue.closed
    taker.join(timeout=10)
    assert not taker.is_alive() and got[1] == []
    queue = CameraQueue(3)
    queue.put(0, 'left')
    queue.put(2, 'behind')
    assert queue.close() == [0, 2]
    assert queue.put(1, 'late') is True
    assert queue.take(timeout=0) == []


def test_a_fast_producer_loses_nothing_silently():
    queue, taken = CameraQueue(2), []

    def consume() -> None:
        while not taken or taken[-1] != (0, 'end'):
            taken.extend(_items(queue.take(max_batch=2, timeout=10)))

    consumer = threading.Thread(target=consume)
    consumer.start()
    drops = sum(queue.put(index % 2, index) for index in range(4000))
    consumer.join(timeout=0.5)
    drops += queue.put(0, 'end')
    consumer.join(timeout=30)
    assert not consumer.is_alive()
    delivered = [item for _, item in taken[:-1]]
    for camera in (0, 1):
        mine = [item for cam, item in taken[:-1] if cam == camera]
        assert mine == sorted(mine) and all(item % 2 == camera for item in mine)
    # Every frame is either taken or replaced (and reported), never lost silently.
    assert len(delivered) + drops == 4000


def test_publish_order_follows_take_order_whoever_finishes_first():
    queue, order = CameraQueue(1), PublishOrder()
    taken = []
    for frame in ('f0', 'f1', 'f2'):
        queue.put(0, frame)
        taken.append(order.take(queue, timeout=1.0))
    assert [ticket for _, ticket in taken] == [0, 1, 2] and order.in_flight == 3
    published = []

    def finish(index: int) -> None:
        frames, ticket = taken[index]
        assert order.wait_turn(ticket, timeout=5.0)
        published.append(frames[0].item)
        order.done(ticket)

    # The newest batch finishes first, the oldest last: they still publish oldest first.
    late = [threading.Thread(target=finish, args=(index,)) for index in (2, 1)]
    for thread in late:
        thread.start()
    assert not order.wait_turn(taken[1][1], timeout=0.05)
    finish(0)
    for thread in late:
        thread.join(timeout=5.0)
    assert published == ['f0', 'f1', 'f2'] and order.in_flight == 0


def test_publish_order_lets_an_abandoned_batch_go():
    queue, order = CameraQueue(2), PublishOrder()
    queue.put(0, 'bad')
    _, first = order.take(queue, timeout=1.0)
    queue.put(1, 'good')
    queue.put(0, 'also')
    frames, second = order.take(queue, max_batch=2, timeout=1.0)
    assert len(frames) == 2
    assert not order.wait_turn(second, timeout=0.05)
    order.done(first)
    order.done(first)
    assert order.wait_turn(second, timeout=1.0)
    assert order.take(queue, timeout=0.01) == ([], None)
    queue.close()
    assert order.take(queue) == ([], None)
