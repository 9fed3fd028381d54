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
Which frames the inference workers run, and in which order results leave (no ROS).

Every camera has a one-slot mailbox holding only its newest frame (process-latest per camera):
a frame arriving while the camera's previous one still waits replaces it (counted as a drop),
so latency stays near one inference time however fast a camera publishes. Workers take
cameras in turn (round robin from the camera after the last one served), so a fast camera
cannot starve a slow one: a camera with a frame waiting is served within one pass over the
cameras. Frames of several cameras waiting at once are taken together, up to ``max_batch``,
and run as one batch.

With several workers, ``PublishOrder`` makes their results leave in the order they were
taken, hence in arrival order for every camera.
"""

from dataclasses import dataclass
import threading
from typing import Any, Optional


@dataclass(frozen=True)
class Taken:
    """
    One frame handed to a worker.

    ``camera``: the camera's index; ``sequence``: how many frames of this camera were taken
    before this one (0 for its first), which per-head rates count on.
    """

    camera: int
    item: Any
    sequence: int


class CameraQueue:
    """Thread-safe newest-frame slots, one per camera, served in turn."""

    def __init__(self, cameras: int) -> None:
        if cameras < 1:
            raise ValueError(f'a camera queue needs at least one camera, got {cameras}')
        self._condition = threading.Condition()
        self._items: list = [None] * cameras
        self._full = [False] * cameras
        self._taken = [0] * cameras
        self._next = 0
        self._closed = False

    @property
    def cameras(self) -> int:
        """Return the number of cameras."""
        return len(self._items)

    def put(self, camera: int, item: Any) -> bool:
        """
        Store ``item`` as ``camera``'s newest frame; return True if a frame was dropped.

        The dropped frame is the one that was waiting, or ``item`` itself once closed.
        """
        with self._condition:
            if self._closed:
                return True
            replaced = self._full[camera]
            self._items[camera], self._full[camera] = item, True
            self._condition.notify()
            return replaced

    def take(self, max_batch: int = 1, timeout: Optional[float] = None) -> list:
        """
        Remove and return up to ``max_batch`` waiting frames, each from a different camera.

        Cameras are visited in turn from the one after the last camera served, so every
        camera with a frame waiting is served within one pass. Returns a list of ``Taken``
        (empty on timeout or once closed).
        """
        if max_batch < 1:
            raise ValueError(f'max_batch must be >= 1, got {max_batch}')
        with self._condition:
            self._condition.wait_for(lambda: any(self._full) or self._closed, timeout)
            if self._closed:
                return []
            count, taken = len(self._items), []
            for offset in range(count):
                camera = (self._next + offset) % count
                if not self._full[camera]:
                    continue
                taken.append(Taken(camera, self._items[camera], self._taken[camera]))
                self._items[camera], self._full[camera] = None, False
                self._taken[camera] += 1
                if len(taken) == max_batch:
                    break
            if taken:
                self._next = (taken[-1].camera + 1) % count
            return taken

    def close(self) -> list:
        """
        Wake every waiting ``take`` (they return []) and refuse further frames.

        Returns the indices of the cameras whose waiting frame was discarded.
        """
        with self._condition:
            discarded = [camera for camera, full in enumerate(self._full) if full]
            self._closed = True
            self._items = [None] * len(self._items)
            self._full = [False] * len(self._items)
            self._condition.notify_all()
            return discarded

    @property
    def closed(self) -> bool:
        """Whether close() was called."""
        return self._closed


class PublishOrder:
    """
    Let workers that finish batches out of order publish them in the order they were taken.

    A worker takes a batch and a ticket in one step (``take``, serialised between workers, so
    tickets follow the queue's order), runs inference without any lock, then publishes after
    ``wait_turn(ticket)``, which waits until every batch taken before its own has been
    published or abandoned (``done``). A newer frame of a camera is therefore never published
    before an older one, and a slow batch delays the batches behind it rather than being
    overtaken.
    """

    def __init__(self) -> None:
        self._take_lock = threading.Lock()
        self._condition = threading.Condition()
        self._next = 0
        self._in_flight: list = []

    def take(self, queue: CameraQueue, max_batch: int = 1,
             timeout: Optional[float] = None) -> tuple:
        """Return ``(frames, ticket)`` from ``queue``; ``([], None)`` on timeout or close."""
        with self._take_lock:
            frames = queue.take(max_batch, timeout)
            if not frames:
                return [], None
            with self._condition:
                ticket = self._next
                self._next += 1
                self._in_flight.append(ticket)
            return frames, ticket

    def wait_turn(self, ticket: int, timeout: Optional[float] = None) -> bool:
        """Wait until ``ticket`` is the oldest batch in flight; False on timeout."""
        with self._condition:
            return self._condition.wait_for(lambda: self._in_flight[0] == ticket, timeout)

    def done(self, ticket: int) -> None:
        """Mark ``ticket`` published or abandoned, letting the next batch go (idempotent)."""
        with self._condition:
            if ticket in self._in_flight:
                self._in_flight.remove(ticket)
                self._condition.notify_all()

    @property
    def in_flight(self) -> int:
        """Batches taken and not yet done."""
        with self._condition:
            return len(self._in_flight)
