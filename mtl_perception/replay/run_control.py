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
What every replay run needs around its nodes: bounded waits, run directories, the spin loop.

Shared by the single-camera runner (:mod:`mtl_perception.replay.runner`) and the multi-camera
one (:mod:`mtl_perception.replay.camera_runner`). Every wait has a deadline and fails naming
what it waited for; nothing sleeps a fixed time.
"""

from pathlib import Path
import shutil
import threading
import time
from typing import Callable

from mtl_perception.replay.bag_io import open_bag
from mtl_perception.replay.messages import COMPRESSED_IMAGE
from mtl_perception.replay.node_processes import ReplayError
from mtl_perception.replay.run_files import LOG_DIR, OUTPUT_BAG, round_dir, ROUNDS_DIR
from mtl_perception.replay.run_files import RUN_FILE

__all__ = ['Timeout', 'bag_rate_hz', 'clear_stale_rounds', 'prepare_run_dir',
           'publish_topic_for', 'remove_run_dir', 'spin', 'wait_until']


def bag_rate_hz(bag_path: Path, topic: str) -> float:
    """Return the mean message rate of ``topic`` in the bag (frames per second)."""
    with open_bag(bag_path) as bag:
        times = [t for _, t, _ in bag.messages(topic, raw=True)]
    if len(times) < 2 or times[-1] <= times[0]:
        return 1.0
    return (len(times) - 1) / ((times[-1] - times[0]) / 1e9)


def remove_run_dir(run_dir: Path) -> None:
    """Remove a run directory; FileExistsError when it holds anything a run does not write."""
    if run_dir.exists():
        ours = {RUN_FILE, OUTPUT_BAG, LOG_DIR}
        strangers = [p.name for p in run_dir.iterdir() if p.name not in ours]
        if strangers:
            raise FileExistsError(f'{run_dir} holds files that are not a replay run '
                                  f'({strangers[:3]}); choose another --out')
        shutil.rmtree(run_dir)


def prepare_run_dir(run_dir: Path) -> None:
    """Empty ``run_dir`` (see :func:`remove_run_dir`) and create its log directory."""
    remove_run_dir(run_dir)
    (run_dir / LOG_DIR).mkdir(parents=True)


def clear_stale_rounds(out_dir: Path, configs, rounds: int) -> None:
    """
    Remove the runs of ``configs`` from rounds after ``rounds`` left by an earlier replay.

    The scorer reads every round it finds, so a run of fewer rounds into the same ``out_dir``
    must not leave older rounds behind; empty round directories go too.
    """
    rounds_dir = Path(out_dir) / ROUNDS_DIR
    if not rounds_dir.is_dir():
        return
    for entry in rounds_dir.iterdir():
        if not (entry.is_dir() and entry.name.isdigit() and int(entry.name) > rounds):
            continue
        for config in configs:
            remove_run_dir(round_dir(out_dir, config, int(entry.name)))
        if not any(entry.iterdir()):
            entry.rmdir()
    if not any(rounds_dir.iterdir()):
        rounds_dir.rmdir()


class Timeout(ReplayError):
    """A wait ran past its deadline."""


def wait_until(predicate: Callable[[], bool], timeout: float, what: str,
               check: Callable[[], None]) -> float:
    """
    Poll ``predicate`` until true; return the seconds it took.

    :param check: called on every poll (e.g. raise when a node died).
    :raises Timeout: past ``timeout`` seconds, naming ``what``.
    """
    start = time.monotonic()
    while not predicate():
        check()
        if time.monotonic() - start > timeout:
            raise Timeout(f'timed out after {timeout:.0f} s waiting for {what}')
        time.sleep(0.01)
    return time.monotonic() - start


def publish_topic_for(topic: str, bag_path: Path) -> str:
    """Return where the bag's image ``topic`` is played: ``<topic>/compressed`` if compressed."""
    with open_bag(bag_path) as bag:
        info = bag.topics().get(topic)
    if info is not None and info.msgtype == COMPRESSED_IMAGE and \
            not topic.endswith('/compressed'):
        # The nodes subscribe '<image>/compressed' (image_transport's naming).
        return topic + '/compressed'
    return topic


def spin(executor, stop: threading.Event) -> None:
    """Spin ``executor`` until ``stop`` is set."""
    while not stop.is_set():
        executor.spin_once(timeout_sec=0.05)
