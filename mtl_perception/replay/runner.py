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
Run one configuration on a bag: node processes, player, recorder, process monitor.

A replay calls :func:`run_config` once per configuration and round, alternating (multitask,
baseline, multitask, baseline, ...); round ``k`` of configuration ``C`` is written to
:func:`mtl_perception.replay.run_files.round_dir` (``OUT/C/`` for round 1,
``OUT/rounds/<k>/C/`` after it). A run's nodes are stopped before the next run starts, so a
configuration is measured with no other configuration's nodes alive: PSS splits shared pages
between the processes that map them, and another deployment's processes would take a share.
(The replay process itself maps the ROS libraries too and takes its share of those pages in
every run alike.)

Stages of :func:`run_config` (each logged): start the nodes through their console scripts
(own process each, loopback-only DDS in a domain of their own); wait until every task's
latched label topic (``detections/label_info``, ``segmentation/label_info``: one publisher
each, which publishes once its model is loaded) has answered, every node has matched the
player's image publisher and shown its outputs to the recorder; send warm-up frames one at a
time until each comes back (the first inference of a network is slow); flood the nodes with
the bag's images for several seconds, faster than they can answer, to measure their saturated
frame rate (``capacity_fps``: the report's throughput; it also calibrates ``rate='auto'``);
play the bag at its paced rate (latency, frames lost, CPU, accuracy; the camera's camera_info
and pose play along when the bag has them, and the detection nodes' ``detections_3d`` are
recorded beside their outputs, see :mod:`mtl_perception.replay.player`); wait for the outputs of
the last frame (a node always processes the newest frame, so when the last frame is answered
nothing else is coming);
stop the nodes with SIGINT (kill after a grace period); write ``output_bag`` and ``run.json``
(memory of every node process and of their per-sample sum as peak RSS, USS and PSS, sampled
at 10 Hz by :class:`mtl_perception.inference.measurement.ProcessMonitor`; CPU; the 1-minute
load average before the nodes start and after they stop).
Every wait has a deadline and fails naming what it waited for; nothing sleeps a fixed time.
"""

from dataclasses import dataclass, field
import logging
import os
from pathlib import Path
import statistics
import time

from mtl_perception.inference.measurement import load_average
from mtl_perception.replay.messages import COMPRESSED_IMAGE
from mtl_perception.replay.node_processes import input_qos, NAMESPACES, node_commands
from mtl_perception.replay.node_processes import ReplayError, resolve_checkpoints
from mtl_perception.replay.player import Player
from mtl_perception.replay.run_control import bag_rate_hz, clear_stale_rounds
from mtl_perception.replay.run_control import prepare_run_dir, publish_topic_for
from mtl_perception.replay.run_control import Timeout, wait_until
from mtl_perception.replay.run_files import config_tasks, GROUND_OUTPUT, OUTPUT_BAG, round_dir
from mtl_perception.replay.run_files import TASK_TOPICS, write_run_info
from mtl_perception.replay.run_session import AUTO_UTILIZATION, CAPACITY_INTERVAL_S
from mtl_perception.replay.run_session import CAPACITY_STAMPS, RESEND_S, RunSession
from mtl_perception.ros.conversions import LABEL_INFO_TOPICS
from mtl_perception.ros.environment import pick_domain_id
from mtl_perception.variants import CONFIGURATIONS
from rclpy.qos import ReliabilityPolicy
from tqdm import tqdm

__all__ = ['AUTO_UTILIZATION', 'NAMESPACES', 'ReplayError', 'ReplaySettings', 'RunOutcome',
           'clear_stale_rounds', 'run_config']

LOGGER = logging.getLogger(__name__)
# Long enough for a stable rate (hundreds of answers at tens of fps, a few at ~1 fps); a replay
# of several rounds floods each round for less (see mtl_perception.cli.replay).
CAPACITY_SECONDS = 8.0


@dataclass
class ReplaySettings:
    """
    What a replay needs besides the configuration.

    ``rate``: playback speed over the bag's timing, or None for 'auto' (from the measured
    saturated frame rate, see AUTO_UTILIZATION). ``max_seconds`` caps the frames played to
    what fits that long at the chosen rate; ``utilization`` is the fraction of the saturated
    rate that 'auto' plays at. ``capacity_seconds``: how long to flood the nodes
    to measure their saturated frame rate (0: not measured; 'auto' then uses the warm-up
    round trips). ``checkpoints``: 'multitask' / 'detection' / 'segmentation' -> checkpoint
    path (or ONNX export with backend onnxruntime); missing keys use the demo models in models/.
    ``node_parameters``: parameter overrides (``-p name:=value``) given to every node alike,
    e.g. backend, inference_workers, inference_threads, so the comparison stays fair.
    """

    bag: Path
    out_dir: Path
    image_topic: str
    params_file: Path
    checkpoints: dict = field(default_factory=dict)
    node_parameters: dict = field(default_factory=dict)
    rate: float | None = 1.0
    max_frames: int | None = None
    max_seconds: float | None = None
    domain_id: int | None = None
    warmup_frames: int = 4
    capacity_seconds: float = CAPACITY_SECONDS
    utilization: float = AUTO_UTILIZATION
    startup_timeout: float = 180.0
    progress: bool = True


@dataclass
class RunOutcome:
    """What a run produced: its directory and the rate it played at."""

    config: str
    round_index: int
    run_dir: Path
    rate: float
    playback_hz: float
    warmup_ms: list
    frames: int


class _Run(RunSession):
    """The ROS side of one run: node, player, recorder, node processes, monitor."""

    def __init__(self, config: str, settings: ReplaySettings, domain_id: int,
                 run_dir: Path) -> None:
        self.config = config
        self.variants = CONFIGURATIONS[config]
        self.checkpoints = resolve_checkpoints(config, settings.checkpoints)
        self.namespace = NAMESPACES[config]
        super().__init__(settings, domain_id, run_dir)

    def _setup_topics(self) -> dict:
        settings = self.settings
        self.qos = input_qos(settings.params_file, [v.node_name for v in self.variants])
        self.player = Player(self.node, settings.bag, settings.image_topic, qos=self.qos,
                             rate=settings.rate or 1.0, max_frames=settings.max_frames,
                             publish_topic=publish_topic_for(settings.image_topic, settings.bag),
                             companions=True)
        self.outputs = {task: f'{self.namespace}/{TASK_TOPICS[task][0]}' for task in TASK_TOPICS}
        self.output_topics = list(self.outputs.values())
        if 'detection' in config_tasks(self.config):
            # Ground positions: recorded, but no part of a frame's outputs (nodes publish them
            # only with camera intrinsics and a pose).
            self.record_topics[f'{self.namespace}/{GROUND_OUTPUT[0]}'] = GROUND_OUTPUT[1]
        # One latched label topic per task, each with exactly one publisher.
        self.label_topics = [f'{self.namespace}/{LABEL_INFO_TOPICS[task]}'
                             for task in config_tasks(self.config)]
        return {self.outputs[task]: task for task in TASK_TOPICS}

    def commands(self) -> dict:
        compressed = self.player.msgtype == COMPRESSED_IMAGE
        remap = self.player.publish_topic[:-len('/compressed')] if compressed \
            else self.player.publish_topic
        return node_commands(self.config, params_file=self.settings.params_file,
                             image_topic=remap, checkpoints=self.checkpoints,
                             compressed=compressed, parameters=self.settings.node_parameters)

    def _wait_matched(self) -> None:
        count = len(self.variants)
        wait_until(lambda: self.player.subscriber_count() >= count
                   and all(self.recorder.publisher_count(t) > 0 for t in self.output_topics),
                   60.0, f'the nodes to match {self.player.publish_topic} and '
                   f'{self.output_topics}', self.nodes.check_alive)

    def warm_up(self, index: int) -> float:
        """Send warm-up frame ``index`` until its outputs are back; return the round trip ms."""
        deadline = time.monotonic() + 180.0
        while True:
            sent = time.monotonic()
            stamp = self.player.publish_warmup(index)
            if stamp not in self.warmup_stamps:
                self.warmup_stamps.append(stamp)
            try:
                wait_until(lambda: self.recorder.complete(self.output_topics, stamp), RESEND_S,
                           'warm-up outputs', self.nodes.check_alive)
                return (time.monotonic() - sent) * 1000.0
            except Timeout:
                # A best-effort frame can be lost right after discovery: send it again.
                if time.monotonic() > deadline:
                    raise ReplayError(f'no outputs for warm-up frame {index} within 180 s')

    def measure_capacity(self, seconds: float,
                         interval: float = CAPACITY_INTERVAL_S) -> dict | None:
        """
        Flood the nodes with the bag's images for ``seconds``; return their saturated rates.

        Frames (the bag's first images in turn, with warm-up stamps) go out every ``interval``
        s, faster than any node here answers, so each node works back to back on the newest
        frame. Returns ``{'fps': the slowest output topic's answers per second (for the
        baseline: the pair's rate as if its nodes worked in step, the figure most favourable
        to it), 'complete_fps': frames that got every output per second, 'sent', 'answered'}``;
        None when fewer than two answers came back.
        """
        stamps, start = [], time.monotonic()
        while time.monotonic() - start < seconds:
            stamp = self.player.publish_warmup(CAPACITY_STAMPS + len(stamps), len(stamps))
            self.warmup_stamps.append(stamp)
            stamps.append(stamp)
            # Sleep to the next slot (not a fixed pause): publishing itself takes time.
            time.sleep(max(0.0, start + len(stamps) * interval - time.monotonic()))
        try:
            wait_until(lambda: self.recorder.complete(self.output_topics, stamps[-1]), 60.0,
                       'the outputs of the last capacity frame', self.nodes.check_alive)
        except Timeout:
            return None
        rates, complete = [], None
        for topic in self.output_topics:
            received = {s: self.recorder.received(topic, s) for s in stamps}
            received = {s: t for s, t in received.items() if t is not None}
            complete = set(received) if complete is None else complete & set(received)
            times = sorted(received.values())
            if len(times) < 2 or times[-1] <= times[0]:
                return None
            rates.append((len(times) - 1) / ((times[-1] - times[0]) / 1e9))
        ends = sorted(max(self.recorder.received(t, s) for t in self.output_topics)
                      for s in complete)
        span = (ends[-1] - ends[0]) / 1e9 if len(ends) > 1 else 0.0
        return {'fps': min(rates), 'complete_fps': (len(ends) - 1) / span if span > 0 else 0.0,
                'sent': len(stamps), 'answered': len(complete), 'seconds': seconds}

    def play(self, deadline: float) -> list:
        self.monitor.mark('play_start')
        with tqdm(total=self.player.frame_count, desc=f'{self.config} replay', unit='frame',
                  disable=not self.settings.progress) as bar:
            def progress(count: int) -> None:
                answered = self.recorder.count(self.output_topics[-1])
                bar.set_postfix_str(f'answered {answered}', refresh=False)
                bar.update(1)
            frames = self.player.play(on_frame=progress)
        last = frames[-1][0]
        try:
            wait_until(lambda: self.recorder.complete(self.output_topics, last), deadline,
                       'the outputs of the last frame', self.nodes.check_alive)
        except Timeout as error:
            LOGGER.warning('%s: %s; scoring what arrived', self.config, error)
        self.end_play(len(self.variants))
        return frames


def run_config(config: str, settings: ReplaySettings, domain_offset: int = 0,
               round_index: int = 1) -> RunOutcome:
    """
    Run ``config`` ('multitask' or 'baseline') on the bag as round ``round_index``.

    Writes ``round_dir(out_dir, config, round_index)`` (see the module docstring). Raises
    FileNotFoundError for a missing checkpoint or console script, ReplayError when a node dies
    or does not get ready in time.
    """
    if config not in CONFIGURATIONS:
        raise ValueError(f'unknown configuration {config!r}; expected {sorted(CONFIGURATIONS)}')
    resolve_checkpoints(config, settings.checkpoints)
    run_dir = round_dir(settings.out_dir, config, round_index)
    prepare_run_dir(run_dir)
    load_at_start = load_average()
    label = f'{config} round {round_index}'
    domain_id = settings.domain_id if settings.domain_id is not None else \
        pick_domain_id(os.getpid() + domain_offset)
    run = _Run(config, settings, domain_id, run_dir)
    try:
        commands = run.commands()
        LOGGER.info('%s: starting %s (ROS domain %d)', label, ', '.join(commands), domain_id)
        started = time.monotonic()
        run.start(commands)
        LOGGER.info('%s: nodes ready after %.1f s; %d warm-up frame(s)', label,
                    time.monotonic() - started, settings.warmup_frames)
        warmup_ms = [run.warm_up(k + 1) for k in range(settings.warmup_frames)]
        LOGGER.info('%s: warm-up round trips %s ms', label,
                    ', '.join(f'{t:.0f}' for t in warmup_ms))
        flood = run.measure_capacity(settings.capacity_seconds) \
            if settings.capacity_seconds > 0 else None
        capacity = flood['fps'] if flood else None
        LOGGER.info('%s: saturated capacity %s fps', label,
                    'n/a' if capacity is None else f'{capacity:.2f}')
        source_hz = bag_rate_hz(settings.bag, settings.image_topic)
        rate = settings.rate
        if rate is None:
            # Without a flood, the sequential warm-ups (first one left out: it is slow) stand in.
            steady = warmup_ms[1:] or warmup_ms or [1000.0]
            fps = capacity if capacity is not None else 1000.0 / statistics.median(steady)
            rate = settings.utilization * fps / source_hz
        run.player.rate = rate
        if settings.max_seconds is not None:
            run.player.frame_count = min(run.player.frame_count,
                                         max(1, int(settings.max_seconds * rate * source_hz)))
        LOGGER.info('%s: playing %d frames of %s at %.2f Hz (rate %.3g x %.2f Hz)', label,
                    run.player.frame_count, settings.image_topic, rate * source_hz, rate,
                    source_hz)
        frames = run.play(max(30.0, 20 * max(warmup_ms, default=1000.0) / 1000.0))
        exit_codes = run.stop_nodes()
        answered = sum(run.recorder.complete(run.output_topics, s) for s, _ in frames)
        LOGGER.info('%s: %d frames played, %d answered; writing %s', label, len(frames),
                    answered, run_dir / OUTPUT_BAG)
        run.recorder.write_bag(run_dir / OUTPUT_BAG,
                               custom_data={'mtl_perception.replay': config})
        keys = {variant.node_name: variant.key for variant in run.variants}
        measured = run.measurements(commands, exit_codes,
                                    lambda name: str(run.checkpoints[keys[name]]),
                                    load_at_start, LOGGER, label)
        write_run_info(run_dir, {
            'format': 2, 'config': config, 'round': round_index,
            'bag': str(Path(settings.bag).resolve()),
            'image_topic': settings.image_topic, 'image_type': run.player.msgtype,
            'publish_topic': run.player.publish_topic, 'namespace': run.namespace,
            'outputs': run.outputs, 'domain_id': domain_id, 'rate': rate,
            'source_hz': source_hz, 'playback_hz': rate * source_hz,
            'qos': {'reliability': 'reliable' if run.qos.reliability ==
                    ReliabilityPolicy.RELIABLE else 'best_effort', 'depth': run.qos.depth},
            'warmup_ms': warmup_ms, 'warmup_stamps': run.warmup_stamps,
            'capacity_fps': capacity, 'capacity': flood,
            'node_parameters': dict(settings.node_parameters),
            'frames': [list(f) for f in frames],
            **measured})
        return RunOutcome(config, round_index, run_dir, rate, rate * source_hz, warmup_ms,
                          len(frames))
    finally:
        run.close()
