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
Run one multi-camera configuration on a multi-camera bag: every camera fed at once.

The multi-camera twin of :mod:`mtl_perception.replay.runner`, with the same stages and the same
run directory layout (``OUT/<run>/`` for round 1, ``OUT/rounds/<k>/<run>/`` after it; output
bag, run.json, node logs), for a :class:`mtl_perception.replay.camera_nodes.CameraRun`: start
the deployment's node processes (loopback-only DDS in a domain of their own); wait for every
latched label topic, for every camera's image publisher to be matched and every output topic to
show a publisher; send warm-up frames to every camera at once until each camera's outputs come
back; flood every camera at once with its own images (each camera's first bag images, every 10
ms x the number of cameras) for ``capacity_seconds`` and count, per camera and output topic,
the answers per second: a camera's saturated rate is that of its slowest required output (the
detections alone with ``segmentation_every`` > 1), the deployment's aggregate throughput the
sum over cameras; then play every camera's frames at their paced rate in one pass over the bag
(the frames of a tick leave back to back) for latency, frames lost, CPU and accuracy per
camera; stop the nodes; write ``run.json``, which records per camera its topics and the frames
played (``cameras.<cam>.frames``), beside the peak memory of the deployment's processes (RSS,
USS, PSS, per process and of their per-sample sum) and CPU, as the single-camera runner does.
"""

from dataclasses import dataclass, field
import logging
import os
from pathlib import Path
import statistics
import time

from mtl_perception.inference.measurement import load_average
from mtl_perception.replay.camera_nodes import camera_node_commands, CameraRun, label_topics
from mtl_perception.replay.camera_nodes import output_topics, resolve_camera_checkpoints
from mtl_perception.replay.camera_nodes import RUN_FORMAT
from mtl_perception.replay.camera_nodes import subscribers_per_camera
from mtl_perception.replay.messages import COMPRESSED_IMAGE
from mtl_perception.replay.node_processes import input_qos, ReplayError
from mtl_perception.replay.player import play_together, Player
from mtl_perception.replay.run_control import bag_rate_hz, prepare_run_dir, publish_topic_for
from mtl_perception.replay.run_control import Timeout, wait_until
from mtl_perception.replay.run_files import OUTPUT_BAG, round_dir, write_run_info
from mtl_perception.replay.run_session import AUTO_UTILIZATION, CAPACITY_INTERVAL_S
from mtl_perception.replay.run_session import CAPACITY_STAMPS, RESEND_S, RunSession
from mtl_perception.ros.environment import pick_domain_id
from mtl_perception.variants import CAMERA_DEPLOYMENTS
from tqdm import tqdm

__all__ = ['CameraReplaySettings', 'CameraRunOutcome', 'run_camera_config']

LOGGER = logging.getLogger(__name__)


@dataclass
class CameraReplaySettings:
    """
    What a multi-camera replay needs besides the run (see ``runner.ReplaySettings``).

    ``cameras``: the bag's :class:`mtl_perception.replay.flight.FlightCamera` list, in order.
    ``rate`` None is 'auto': ``utilization`` times the first run's saturated rate per camera
    (aggregate / cameras). ``max_frames`` and ``max_seconds`` count frames per camera.
    """

    bag: Path
    out_dir: Path
    cameras: tuple
    params_file: Path
    checkpoints: dict = field(default_factory=dict)
    node_parameters: dict = field(default_factory=dict)
    rate: float | None = 1.0
    max_frames: int | None = None
    max_seconds: float | None = None
    domain_id: int | None = None
    warmup_frames: int = 4
    capacity_seconds: float = 3.0
    utilization: float = AUTO_UTILIZATION
    startup_timeout: float = 180.0
    progress: bool = True


@dataclass
class CameraRunOutcome:
    """What a run produced: its directory, the rate it played at and the frames per camera."""

    name: str
    round_index: int
    run_dir: Path
    rate: float
    playback_hz: float
    frames: int


class _CameraRun(RunSession):
    """The ROS side of one multi-camera run: players, recorder, node processes, monitor."""

    def __init__(self, run: CameraRun, settings: CameraReplaySettings, domain_id: int,
                 run_dir: Path) -> None:
        self.run = run
        self.deployment = CAMERA_DEPLOYMENTS[run.deployment]
        self.checkpoints = resolve_camera_checkpoints(run.deployment, settings.checkpoints)
        self.names = [camera.name for camera in settings.cameras]
        super().__init__(settings, domain_id, run_dir)

    def _setup_topics(self) -> dict:
        settings = self.settings
        self.qos = input_qos(settings.params_file,
                             [v.node_name for v in self.deployment.variants])
        self.players = {camera.name: Player(
            self.node, settings.bag, camera.image_topic, qos=self.qos,
            rate=settings.rate or 1.0, max_frames=settings.max_frames,
            publish_topic=publish_topic_for(camera.image_topic, settings.bag))
            for camera in settings.cameras}
        self.outputs = output_topics(self.run.deployment, self.names)
        # Topics every answered frame has, per camera (detections alone for sparse masks).
        self.required = {camera: [topics[task] for task in self.run.required_tasks]
                         for camera, topics in self.outputs.items()}
        self.label_topics = label_topics(self.run.deployment, self.names)
        return {topic: task for by_task in self.outputs.values()
                for task, topic in by_task.items()}

    def commands(self) -> dict:
        first = next(iter(self.players.values()))
        compressed = first.msgtype == COMPRESSED_IMAGE
        inputs = {name: player.publish_topic[:-len('/compressed')] if compressed
                  else player.publish_topic for name, player in self.players.items()}
        return camera_node_commands(self.run, cameras=inputs,
                                    params_file=self.settings.params_file,
                                    checkpoints=self.checkpoints, compressed=compressed,
                                    parameters=self.settings.node_parameters)

    def _answered(self, stamp: int) -> bool:
        return all(self.recorder.complete(topics, stamp) for topics in self.required.values())

    def _wait_matched(self) -> None:
        subscribers = subscribers_per_camera(self.run.deployment)
        outputs = [topic for by_task in self.outputs.values() for topic in by_task.values()]
        wait_until(lambda: all(p.subscriber_count() >= subscribers
                               for p in self.players.values())
                   and all(self.recorder.publisher_count(t) > 0 for t in outputs),
                   60.0, f'the nodes to match the camera topics and {outputs}',
                   self.nodes.check_alive)

    def warm_up(self, index: int) -> float:
        """Send warm-up frame ``index`` to every camera until all answer; return the ms."""
        deadline = time.monotonic() + 180.0
        while True:
            sent = time.monotonic()
            for player in self.players.values():
                stamp = player.publish_warmup(index)
            if stamp not in self.warmup_stamps:
                self.warmup_stamps.append(stamp)
            try:
                wait_until(lambda: self._answered(stamp), RESEND_S, 'warm-up outputs',
                           self.nodes.check_alive)
                return (time.monotonic() - sent) * 1000.0
            except Timeout:
                if time.monotonic() > deadline:
                    raise ReplayError(f'no outputs for warm-up frame {index} within 180 s')

    def measure_capacity(self, seconds: float,
                         interval: float = CAPACITY_INTERVAL_S) -> dict | None:
        """
        Flood every camera at once for ``seconds``; return the saturated rates.

        ``{'fps': sum over cameras of the camera's slowest required output rate,
        'detection_fps', 'segmentation_fps': the sums of that task's rates (None without the
        task), 'cameras': {camera: {'fps', 'rates': {task: fps}, 'answered': {task: n}}},
        'sent' (per camera), 'seconds'}``; None when a camera's required output got fewer than
        two answers.
        """
        stamps, start = [], time.monotonic()
        while time.monotonic() - start < seconds:
            index = len(stamps)
            for player in self.players.values():
                stamp = player.publish_warmup(CAPACITY_STAMPS + index, index)
            self.warmup_stamps.append(stamp)
            stamps.append(stamp)
            time.sleep(max(0.0, start + len(stamps) * interval - time.monotonic()))
        try:
            wait_until(lambda: self._answered(stamps[-1]), 60.0,
                       'the outputs of the last capacity frame', self.nodes.check_alive)
        except Timeout:
            return None
        cameras = {}
        for camera, by_task in self.outputs.items():
            rates, answered = {}, {}
            for task, topic in by_task.items():
                times = sorted(t for t in (self.recorder.received(topic, s) for s in stamps)
                               if t is not None)
                answered[task] = len(times)
                rates[task] = (len(times) - 1) / ((times[-1] - times[0]) / 1e9) \
                    if len(times) > 1 and times[-1] > times[0] else None
            required = [rates[task] for task in self.run.required_tasks]
            if any(rate is None for rate in required):
                return None
            cameras[camera] = {'fps': min(required), 'rates': rates, 'answered': answered}

        def total(task: str) -> float | None:
            values = [c['rates'].get(task) for c in cameras.values()]
            return None if any(v is None for v in values) else sum(values)
        return {'fps': sum(c['fps'] for c in cameras.values()),
                'detection_fps': total('detection'), 'segmentation_fps': total('segmentation'),
                'cameras': cameras, 'sent': len(stamps), 'seconds': seconds}

    def play(self, deadline: float) -> dict:
        self.monitor.mark('play_start')
        total = sum(player.frame_count for player in self.players.values())
        with tqdm(total=total, desc=f'{self.run.name} replay', unit='frame',
                  disable=not self.settings.progress) as bar:
            frames = play_together(self.players, on_frame=lambda name, count: bar.update(1))
        for camera, played in frames.items():
            if not played:
                continue
            last, topics = played[-1][0], self.required[camera]
            try:
                wait_until(lambda: self.recorder.complete(topics, last), deadline,
                           f'the outputs of the last frame of {camera}', self.nodes.check_alive)
            except Timeout as error:
                LOGGER.warning('%s: %s; scoring what arrived', self.run.name, error)
        self.end_play(len(self.nodes.processes))
        return frames


def _node_checkpoint(name: str, deployment, checkpoints: dict) -> str:
    variant = next(v for v in deployment.variants if name.startswith(v.node_name))
    return str(checkpoints[variant.key])


def run_camera_config(run: CameraRun, settings: CameraReplaySettings, domain_offset: int = 0,
                      round_index: int = 1) -> CameraRunOutcome:
    """
    Run ``run`` on the multi-camera bag as round ``round_index``.

    Writes ``round_dir(out_dir, run.name, round_index)``. Raises FileNotFoundError for a
    missing checkpoint or console script, ReplayError when a node dies or does not get ready.
    """
    if len(settings.cameras) < 1:
        raise ValueError("a multi-camera replay needs the bag's cameras")
    resolve_camera_checkpoints(run.deployment, settings.checkpoints)
    run_dir = round_dir(settings.out_dir, run.name, round_index)
    prepare_run_dir(run_dir)
    load_at_start = load_average()
    label = f'{run.name} round {round_index}'
    domain_id = settings.domain_id if settings.domain_id is not None else \
        pick_domain_id(os.getpid() + domain_offset)
    ros = _CameraRun(run, settings, domain_id, run_dir)
    try:
        commands = ros.commands()
        LOGGER.info('%s: starting %s (ROS domain %d)', label, ', '.join(commands), domain_id)
        started = time.monotonic()
        ros.start(commands)
        LOGGER.info('%s: nodes ready after %.1f s', label, time.monotonic() - started)
        warmup_ms = [ros.warm_up(k + 1) for k in range(settings.warmup_frames)]
        # Every camera at 100 / K Hz: the replay publishes what the single-camera flood does
        # (its own CPU time comes off the nodes' cores), still several times what they answer.
        flood = ros.measure_capacity(settings.capacity_seconds,
                                     CAPACITY_INTERVAL_S * len(ros.players)) \
            if settings.capacity_seconds > 0 else None
        capacity = flood['fps'] if flood else None
        LOGGER.info('%s: saturated throughput %s fps over %d cameras', label,
                    'n/a' if capacity is None else f'{capacity:.2f}', len(ros.players))
        source_hz = bag_rate_hz(settings.bag, settings.cameras[0].image_topic)
        rate = settings.rate
        if rate is None:
            steady = warmup_ms[1:] or warmup_ms or [1000.0]
            per_camera = capacity / len(ros.players) if capacity is not None else \
                1000.0 / statistics.median(steady)
            rate = settings.utilization * per_camera / source_hz
        for player in ros.players.values():
            player.rate = rate
            if settings.max_seconds is not None:
                player.frame_count = min(player.frame_count,
                                         max(1, int(settings.max_seconds * rate * source_hz)))
        LOGGER.info('%s: playing %d frames per camera at %.2f Hz', label,
                    max(p.frame_count for p in ros.players.values()), rate * source_hz)
        frames = ros.play(max(30.0, 20 * max(warmup_ms, default=1000.0) / 1000.0))
        exit_codes = ros.stop_nodes()
        ros.recorder.write_bag(run_dir / OUTPUT_BAG,
                               custom_data={'mtl_perception.replay': run.name})
        measured = ros.measurements(
            commands, exit_codes,
            lambda name: _node_checkpoint(name, ros.deployment, ros.checkpoints),
            load_at_start, LOGGER, label)
        cameras = {camera.name: {
            'image_topic': camera.image_topic,
            'publish_topic': ros.players[camera.name].publish_topic,
            'detections_truth': camera.detections_topic, 'mask_truth': camera.mask_topic,
            'outputs': ros.outputs[camera.name],
            'frames': [list(f) for f in frames[camera.name]]} for camera in settings.cameras}
        write_run_info(run_dir, {
            'format': RUN_FORMAT, 'config': run.name, 'deployment': run.deployment,
            'round': round_index, 'bag': str(Path(settings.bag).resolve()),
            'cameras': cameras, 'tasks': list(run.tasks),
            'required_tasks': list(run.required_tasks),
            'segmentation_every': run.segmentation_every,
            'image_type': next(iter(ros.players.values())).msgtype,
            'domain_id': domain_id, 'rate': rate, 'source_hz': source_hz,
            'playback_hz': rate * source_hz, 'warmup_ms': warmup_ms,
            'warmup_stamps': ros.warmup_stamps, 'capacity_fps': capacity, 'capacity': flood,
            'node_parameters': {**settings.node_parameters, **run.parameters},
            **measured})
        played = max(len(f) for f in frames.values())
        return CameraRunOutcome(run.name, round_index, run_dir, rate, rate * source_hz, played)
    finally:
        ros.close()
