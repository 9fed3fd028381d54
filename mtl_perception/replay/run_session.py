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
The ROS side every replay run shares: its own context, recorder, spinner, nodes and monitor.

:class:`RunSession` is the base of the single-camera run (:mod:`mtl_perception.replay.runner`)
and the multi-camera one (:mod:`mtl_perception.replay.camera_runner`). It gives the replay
process an rclpy context of its own in the run's domain, a node whose executor spins on a
daemon thread, a :class:`mtl_perception.replay.recorder.Recorder` of the outputs, latched
label topics and ``/diagnostics``; it starts the node processes with a
:class:`mtl_perception.inference.measurement.ProcessMonitor`, waits for their label topics,
waits for one more ``/diagnostics`` per node at the end of play, stops the nodes, gathers what
the monitor measured for ``run.json`` and closes.
A subclass makes its players and names its topics in :meth:`RunSession._setup_topics` (with
``record_topics``: more topics recorded that are no part of a frame's outputs, e.g. the
detection nodes' ``detections_3d``) and waits for its players to be matched in
:meth:`RunSession._wait_matched`.
"""

import logging
from pathlib import Path
import threading
from typing import Callable

from diagnostic_msgs.msg import DiagnosticArray
from mtl_perception.inference.measurement import load_average, MEMORY_KINDS, ProcessMonitor
from mtl_perception.replay.messages import DETECTION2D_ARRAY, DETECTION3D_ARRAY, IMAGE
from mtl_perception.replay.node_processes import NodeProcesses
from mtl_perception.replay.recorder import Recorder
from mtl_perception.replay.run_control import spin, Timeout, wait_until
from mtl_perception.replay.run_files import DIAGNOSTICS, LABEL_INFO, LOG_DIR, TASK_TOPICS
from mtl_perception.ros.environment import localhost_ros_env
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray, LabelInfo

try:
    from vision_msgs.msg import Detection3DArray
except ImportError:  # vision_msgs built before its 3D messages: no 3D detections to record
    Detection3DArray = None

__all__ = ['AUTO_UTILIZATION', 'CAPACITY_INTERVAL_S', 'CAPACITY_STAMPS', 'RESEND_S', 'RunSession']

LOGGER = logging.getLogger(__name__)

# rate='auto' plays at this fraction of the first run's saturated frame rate: the nodes then
# have idle time on every frame, so a lost frame means a real problem.
AUTO_UTILIZATION = 0.7
# How long a warm-up frame waits for its outputs before it is sent again.
RESEND_S = 10.0
# Warm-up stamps (0 s, k ns): k from 1 for the sequential warm-up, from here for the flood.
CAPACITY_STAMPS = 1000
# Flood period per camera: faster than any CPU configuration here answers, without burying
# the nodes in subscription callbacks for frames they will drop anyway.
CAPACITY_INTERVAL_S = 0.01


class RunSession:
    """
    One run's replay node, recorder, node processes and monitor (a base class).

    :param settings: the replay settings (``params_file``, ``startup_timeout``, ...).
    :param domain_id: the ROS domain of the run.
    :param run_dir: the run directory; node logs go to its ``LOG_DIR``.
    """

    def __init__(self, settings, domain_id: int, run_dir: Path) -> None:
        self.settings, self.domain_id, self.run_dir = settings, domain_id, run_dir
        self.nodes: NodeProcesses | None = None
        self.monitor: ProcessMonitor | None = None
        self.warmup_stamps: list = []
        self.label_topics: list = []
        self.record_topics: dict = {}  # topic -> message type name, recorded besides
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self._stop_spin = threading.Event()
        self._spinner = self.node = None
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    def _setup_topics(self) -> dict:
        """
        Make the players and set ``label_topics``; return ``{output topic: task}``.

        Called once the replay node exists (``self.node``), before the recorder.
        """
        raise NotImplementedError

    def _wait_matched(self) -> None:
        """Wait until the nodes match the players and show their outputs to the recorder."""
        raise NotImplementedError

    def _setup(self) -> None:
        self.node = rclpy.create_node('mtl_replay', context=self.context)
        tasks = self._setup_topics()
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        classes = {DETECTION2D_ARRAY: Detection2DArray, IMAGE: Image,
                   DETECTION3D_ARRAY: Detection3DArray}
        topics = {topic: (classes[TASK_TOPICS[task][1]], reliable, TASK_TOPICS[task][1])
                  for topic, task in tasks.items()}
        for topic, msgtype in self.record_topics.items():
            if classes.get(msgtype) is None:
                LOGGER.warning('not recording %s: this vision_msgs build has no %s', topic,
                               msgtype)
                continue
            topics[topic] = (classes[msgtype], reliable, msgtype)
        topics.update({topic: (LabelInfo, latched, LABEL_INFO) for topic in self.label_topics})
        topics['/diagnostics'] = (DiagnosticArray, QoSProfile(depth=50), DIAGNOSTICS)
        self.recorder = Recorder(self.node, topics)
        executor = SingleThreadedExecutor(context=self.context)
        executor.add_node(self.node)
        self._spinner = threading.Thread(target=spin, args=(executor, self._stop_spin),
                                         daemon=True)
        self._spinner.start()

    def start(self, commands: dict) -> None:
        """
        Start the node processes and their monitor; wait until they are ready.

        :param commands: node name -> command line.
        """
        env = localhost_ros_env(domain_id=self.domain_id)
        self.nodes = NodeProcesses(commands, env, self.run_dir / LOG_DIR)
        self.monitor = ProcessMonitor({n: p.pid for n, p in self.nodes.processes.items()})
        self.monitor.start()
        self.monitor.mark('start')
        wait_until(lambda: all(self.recorder.count(topic) for topic in self.label_topics),
                   self.settings.startup_timeout,
                   f'label_info on {self.label_topics} (models loading)', self.nodes.check_alive)
        self._wait_matched()

    def end_play(self, nodes: int) -> None:
        """
        Mark the end of play; wait briefly for one more ``/diagnostics`` from every node.

        The recording then ends with the nodes' final counters.

        :param nodes: how many nodes publish diagnostics.
        """
        self.monitor.mark('play_end')
        seen = self.recorder.count('/diagnostics')
        try:
            wait_until(lambda: self.recorder.count('/diagnostics') >= seen + nodes,
                       5.0, 'final /diagnostics', self.nodes.check_alive)
        except Timeout:
            pass

    def stop_nodes(self) -> dict:
        """Stop the monitor and the node processes; return their exit codes by name."""
        codes = {}
        if self.monitor is not None:
            self.monitor.stop()
        if self.nodes is not None:
            codes, self.nodes = self.nodes.stop(), None
        return codes

    def measurements(self, commands: dict, exit_codes: dict, checkpoint: Callable[[str], str],
                     load_at_start, logger: logging.Logger, label: str) -> dict:
        """
        Return the monitor's figures for ``run.json`` once the nodes are stopped; log the peaks.

        ``{'processes': {name: {'pid', 'command', 'checkpoint', 'exit_code', peaks,
        'cpu_percent'}}, peaks of the per-sample sum, 'cpu_percent', 'load_average',
        'marks_ns', 'memory_mb'}``.

        :param commands: node name -> command line, as started.
        :param exit_codes: node name -> exit code, from :meth:`stop_nodes`.
        :param checkpoint: node name -> the checkpoint it ran.
        :param load_at_start: the 1-minute load average before the nodes started.
        :param logger: where to log the peak memory.
        :param label: the run's name in the log.
        """
        monitor, names = self.monitor, list(commands)
        processes = {name: {
            'pid': monitor.pids[name], 'command': commands[name],
            'checkpoint': checkpoint(name), 'exit_code': exit_codes.get(name),
            **monitor.peaks_mb([name]),
            'cpu_percent': monitor.cpu_percent('play_start', 'play_end', [name])}
            for name in names}
        totals = monitor.peaks_mb(names)
        logger.info('%s: peak memory %s', label, ', '.join(
            f'{kind.split("_")[1].upper()} {value:.0f} MB' for kind, value in totals.items()))
        return {
            'processes': processes, **totals,
            'cpu_percent': monitor.cpu_percent('play_start', 'play_end', names),
            'load_average': {'start': load_at_start, 'end': load_average()},
            'marks_ns': {k: monitor.samples[i][0] for k, i in monitor.marks.items()},
            'memory_mb': {kind: monitor.series(kind) for kind in MEMORY_KINDS}}

    def close(self) -> None:
        """Stop the nodes, the spinner and the replay node; shut the context down."""
        self.stop_nodes()
        self._stop_spin.set()
        if self._spinner is not None:
            self._spinner.join()
        if self.node is not None:
            self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
