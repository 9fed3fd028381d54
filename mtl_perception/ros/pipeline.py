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
The node's frame counters and log throttling, without ROS.

``PipelineStats`` counts one camera's frame flow (or, as the parent of the cameras' stats, the
whole node's); which frames run and in which order their results leave is
``mtl_perception.ros.scheduling``.
"""

from collections import deque
from dataclasses import dataclass
import threading
import time
from typing import Callable, Optional


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
    skipped: int
    rejected: int
    failed: int
    pending: int
    masks: int
    batched: int
    input_rate_hz: float
    processed_rate_hz: float
    inference_ms: float
    end_to_end_ms: float


class PipelineStats:
    """
    Thread-safe counters of one camera's frame flow (or a node's), reported on /diagnostics.

    received = frames accepted into the camera's slot; each is later processed, dropped
    (replaced while waiting, or discarded on deactivate), skipped (not due on a node whose
    only task runs at a lower rate, see ``segmentation_every``), rejected (could not be
    decoded) or failed (inference raised); ``pending`` are those not yet finished (waiting or
    in inference). Inputs rejected before the slot count as rejected only. ``masks``: frames
    whose segmentation mask was published; ``batched``: frames that ran in one batch with
    frames of other cameras.

    ``parent``: every count is also made there (the node's totals over its cameras).
    """

    def __init__(self, window: float = 5.0, clock: Callable[[], float] = time.monotonic,
                 parent: 'PipelineStats | None' = None) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._parent = parent
        self._inputs = RateWindow(window)
        self._outputs = RateWindow(window)
        self._inference: deque = deque(maxlen=50)
        self._end_to_end: deque = deque(maxlen=50)
        self.received = self.processed = self.dropped = self.skipped = 0
        self.rejected = self.failed = self.masks = self.batched = 0
        self._rejected_received = 0

    def frame_received(self) -> None:
        """Count one frame accepted into the camera's slot."""
        with self._lock:
            self.received += 1
            self._inputs.add(self._clock())
        if self._parent is not None:
            self._parent.frame_received()

    def frame_dropped(self) -> None:
        """Count one frame replaced in (or discarded from) its slot before inference."""
        with self._lock:
            self.dropped += 1
        if self._parent is not None:
            self._parent.frame_dropped()

    def frame_skipped(self) -> None:
        """Count one frame taken but not run: no task of the node was due on it."""
        with self._lock:
            self.skipped += 1
        if self._parent is not None:
            self._parent.frame_skipped()

    def input_rejected(self, received: bool = False) -> None:
        """
        Count one input that could not be converted to an image.

        ``received``: the input had been accepted into the slot (decoded lazily).
        """
        with self._lock:
            self.rejected += 1
            self._rejected_received += int(received)
        if self._parent is not None:
            self._parent.input_rejected(received)

    def frame_failed(self) -> None:
        """Count one frame whose inference raised."""
        with self._lock:
            self.failed += 1
        if self._parent is not None:
            self._parent.frame_failed()

    def frame_processed(self, inference_ms: float, end_to_end_ms: float,
                        mask: bool = False, batched: bool = False) -> None:
        """
        Count one frame whose results were published, with its latencies in ms.

        ``mask``: its segmentation mask was among them; ``batched``: it ran in one batch with
        other cameras' frames.
        """
        with self._lock:
            self.processed += 1
            self.masks += int(mask)
            self.batched += int(batched)
            self._outputs.add(self._clock())
            self._inference.append(inference_ms)
            self._end_to_end.append(end_to_end_ms)
        if self._parent is not None:
            self._parent.frame_processed(inference_ms, end_to_end_ms, mask, batched)

    def snapshot(self) -> StatsSnapshot:
        """Return the current counters, rates and mean recent latencies."""
        with self._lock:
            now = self._clock()
            return StatsSnapshot(
                received=self.received, processed=self.processed, dropped=self.dropped,
                skipped=self.skipped, rejected=self.rejected, failed=self.failed,
                pending=self.received - self.processed - self.dropped - self.skipped
                - self.failed - self._rejected_received,
                masks=self.masks, batched=self.batched,
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
