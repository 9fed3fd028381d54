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
The node's frame plumbing without ROS: latest-frame mailbox, counters and log throttling.

The camera callback puts each frame into a one-slot mailbox; the inference workers take the
newest one. A frame arriving while every worker is busy replaces the waiting one (counted as a
drop), so at most one frame waits and end-to-end latency stays near one inference time however
fast images arrive. With several workers, ``PublishOrder`` makes their results leave in the
order the frames arrived.
"""

from collections import deque
from dataclasses import dataclass
import threading
import time
from typing import Any, Callable, Optional


class FrameMailbox:
    """One-slot, thread-safe mailbox holding only the newest item."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._item: Any = None
        self._full = False
        self._closed = False

    def put(self, item: Any) -> bool:
        """
        Store ``item``; return True if an item was dropped.

        The dropped item is the one that was waiting, or ``item`` itself once closed.
        """
        with self._condition:
            if self._closed:
                return True
            replaced = self._full
            self._item, self._full = item, True
            self._condition.notify()
            return replaced

    def take(self, timeout: Optional[float] = None) -> Any:
        """Remove and return the waiting item; None on timeout or once closed."""
        with self._condition:
            self._condition.wait_for(lambda: self._full or self._closed, timeout)
            if self._closed or not self._full:
                return None
            item, self._item, self._full = self._item, None, False
            return item

    def close(self) -> bool:
        """
        Wake every waiting ``take`` (they return None) and refuse further items.

        Returns True if a waiting item was discarded.
        """
        with self._condition:
            discarded = self._full
            self._closed = True
            self._item, self._full = None, False
            self._condition.notify_all()
            return discarded

    @property
    def closed(self) -> bool:
        """Whether close() was called."""
        return self._closed


class PublishOrder:
    """
    Let workers that finish frames out of order publish them in arrival order.

    A worker takes a frame and a ticket in one step (``take``, serialised between workers, so
    tickets follow the mailbox's arrival order), runs inference without any lock, then
    publishes after ``wait_turn(ticket)``, which waits until every frame taken before its own
    has been published or abandoned (``done``). A newer frame is therefore never published
    before an older one, and a slow frame delays the frames behind it rather than being
    overtaken.
    """

    def __init__(self) -> None:
        self._take_lock = threading.Lock()
        self._condition = threading.Condition()
        self._next = 0
        self._in_flight: list = []

    def take(self, mailbox: FrameMailbox, timeout: Optional[float] = None) -> tuple:
        """Return ``(item, ticket)`` from ``mailbox``; ``(None, None)`` on timeout or close."""
        with self._take_lock:
            item = mailbox.take(timeout)
            if item is None:
                return None, None
            with self._condition:
                ticket = self._next
                self._next += 1
                self._in_flight.append(ticket)
            return item, ticket

    def wait_turn(self, ticket: int, timeout: Optional[float] = None) -> bool:
        """Wait until ``ticket`` is the oldest frame in flight; False on timeout."""
        with self._condition:
            return self._condition.wait_for(lambda: self._in_flight[0] == ticket, timeout)

    def done(self, ticket: int) -> None:
        """Mark ``ticket`` published or abandoned, letting the next frame go (idempotent)."""
        with self._condition:
            if ticket in self._in_flight:
                self._in_flight.remove(ticket)
                self._condition.notify_all()

    @property
    def in_flight(self) -> int:
        """Frames taken and not yet done."""
        with self._condition:
            return len(self._in_flight)


class RateWindow:
    """Event rate (Hz) over the last ``window`` seconds."""

    def __init__(self, window: float = 5.0) -> None:
        if window <= 0:
            raise ValueError(f'window must be > 0 s, got {window}')
        self.window = window
        self._times: deque = deque()
        self._start: Optional[float] = None

    def add(self, now: float) -> None:
        """Record one event at monotonic time ``now`` (seconds)."""
        if self._start is None:
            self._start = now
        self._times.append(now)
        self._trim(now)

    def rate(self, now: float) -> float:
        """Return events per second over the window ending at ``now``."""
        self._trim(now)
        if self._start is None:
            return 0.0
        elapsed = now - self._start
        if elapsed >= self.window:
            return len(self._times) / self.window
        # Before the window has filled, count the intervals actually observed.
        return (len(self._times) - 1) / elapsed if elapsed > 0 else 0.0

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] < now - self.window:
            self._times.popleft()


@dataclass
class StatsSnapshot:
    """Counters and rates at one moment; latencies are means over the recent window (ms)."""

    received: int
    processed: int
    dropped: int
    rejected: int
    failed: int
    pending: int
    input_rate_hz: float
    processed_rate_hz: float
    inference_ms: float
    end_to_end_ms: float


class PipelineStats:
    """
    Thread-safe counters of the node's frame flow, reported on /diagnostics.

    received = frames accepted into the mailbox; each is later processed, dropped (replaced
    while waiting, or discarded on deactivate), rejected (could not be decoded) or failed
    (inference raised); ``pending`` are those not yet finished (waiting or in inference).
    Inputs rejected before the mailbox count as rejected only.
    """

    def __init__(self, window: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._inputs = RateWindow(window)
        self._outputs = RateWindow(window)
        self._inference: deque = deque(maxlen=50)
        self._end_to_end: deque = deque(maxlen=50)
        self.received = self.processed = self.dropped = self.rejected = self.failed = 0
        self._rejected_received = 0

    def frame_received(self) -> None:
        """Count one frame accepted into the mailbox."""
        with self._lock:
            self.received += 1
            self._inputs.add(self._clock())

    def frame_dropped(self) -> None:
        """Count one frame replaced in (or discarded from) the mailbox before inference."""
        with self._lock:
            self.dropped += 1

    def input_rejected(self, received: bool = False) -> None:
        """
        Count one input that could not be converted to an image.

        ``received``: the input had been accepted into the mailbox (decoded lazily).
        """
        with self._lock:
            self.rejected += 1
            self._rejected_received += int(received)

    def frame_failed(self) -> None:
        """Count one frame whose inference raised."""
        with self._lock:
            self.failed += 1

    def frame_processed(self, inference_ms: float, end_to_end_ms: float) -> None:
        """Count one frame whose results were published, with its latencies in ms."""
        with self._lock:
            self.processed += 1
            self._outputs.add(self._clock())
            self._inference.append(inference_ms)
            self._end_to_end.append(end_to_end_ms)

    def snapshot(self) -> StatsSnapshot:
        """Return the current counters, rates and mean recent latencies."""
        with self._lock:
            now = self._clock()
            return StatsSnapshot(
                received=self.received, processed=self.processed, dropped=self.dropped,
                rejected=self.rejected, failed=self.failed,
                pending=self.received - self.processed - self.dropped - self.failed
                - self._rejected_received,
                input_rate_hz=self._inputs.rate(now), processed_rate_hz=self._outputs.rate(now),
                inference_ms=_mean(self._inference), end_to_end_ms=_mean(self._end_to_end))


def _mean(values: deque) -> float:
    return sum(values) / len(values) if values else 0.0


class LogThrottle:
    """Allow one log line per key per ``period`` seconds and count what was suppressed."""

    def __init__(self, period: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.period = period
        self._clock = clock
        self._last: dict = {}
        self._suppressed: dict = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> Optional[int]:
        """Return None to stay silent, else the number of lines suppressed since the last one."""
        with self._lock:
            now = self._clock()
            last = self._last.get(key)
            if last is not None and now - last < self.period:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return None
            self._last[key] = now
            return self._suppressed.pop(key, 0)
