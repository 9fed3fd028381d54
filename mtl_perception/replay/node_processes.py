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
The node processes of a configuration: console scripts, command lines, start and stop.

The configurations and their nodes come from :mod:`mtl_perception.variants` (the one table of
node variants): the multitask configuration is one ``multitask_node``; the baseline is
``detection_node`` and ``segmentation_node`` side by side. Each runs as its own process
through its console script, with the params file, the checkpoint as a ``-p`` override and
``image`` remapped to the played topic, under the configuration's namespace (``/multitask``
or ``/baseline``), so that ``launch/replay.launch.py`` lays out the same topics. Nothing here
loads rclpy at import (``input_qos`` does, when called), so the command line can resolve
checkpoints before it makes the environment loopback-only.
"""

import logging
from pathlib import Path
import shutil
import signal
import subprocess
import sys

from mtl_perception.resources import model_file
from mtl_perception.variants import CONFIGURATIONS
import yaml

__all__ = ['NAMESPACES', 'NodeProcesses', 'ReplayError', 'find_script', 'input_qos',
           'node_commands', 'resolve_checkpoints', 'variant_checkpoints']

LOGGER = logging.getLogger(__name__)
STOP_GRACE_S = 15.0


class ReplayError(RuntimeError):
    """A replay run failed (a node died, or a wait ran past its deadline)."""


# The namespace each configuration's nodes run under (as launch/replay.launch.py lays out).
NAMESPACES = {'multitask': '/multitask', 'baseline': '/baseline'}


def find_script(name: str) -> str:
    """Return the path of the console script ``name`` (beside this Python, else on PATH)."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.is_file() else shutil.which(name)
    if not found:
        raise FileNotFoundError(f'console script {name} not found next to {sys.executable} '
                                'or on PATH; install the package (make setup)')
    return found


def resolve_checkpoints(config: str, checkpoints: dict) -> dict:
    """
    Return ``{variant key: checkpoint path}`` of the nodes of ``config``.

    :param config: 'multitask' or 'baseline'.
    :param checkpoints: variant key ('multitask', 'detection', 'segmentation') -> path; a
        missing or empty entry is the variant's demo model in ``models/``.
    :raises FileNotFoundError: naming a checkpoint that is not there.
    """
    if config not in CONFIGURATIONS:
        raise ValueError(f'unknown configuration {config!r}; expected {sorted(CONFIGURATIONS)}')
    return variant_checkpoints(CONFIGURATIONS[config], checkpoints)


def variant_checkpoints(variants, checkpoints: dict) -> dict:
    """
    Return ``{variant key: checkpoint path}`` for ``variants`` (NodeVariants).

    :param checkpoints: variant key -> path; a missing or empty entry is the variant's demo
        model in ``models/``.
    :raises FileNotFoundError: naming a checkpoint that is not there.
    """
    resolved = {}
    for variant in variants:
        path = Path(checkpoints.get(variant.key) or model_file(variant.demo_model))
        if not path.is_file():
            raise FileNotFoundError(
                f'checkpoint for {variant.node_name} not found: {path} (train the demo models '
                f'into models/ or pass --checkpoint-{variant.key})')
        resolved[variant.key] = path
    return resolved


def input_qos(params_file: Path, node_names):
    """Return a publisher QoS every node's image subscription (per the params file) accepts."""
    # rclpy only now: the caller has made the environment loopback-only by this time.
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    try:
        params = yaml.safe_load(Path(params_file).read_text(encoding='utf-8')) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f'cannot read params file {params_file}: {error}') from error
    reliable, depth = False, 1
    for name in node_names:
        values = {}
        for key in ('/**', name, f'/{name}', f'/**/{name}'):
            values.update((params.get(key) or {}).get('ros__parameters') or {})
        reliable |= values.get('qos_reliability', 'best_effort') == 'reliable'
        depth = max(depth, int(values.get('qos_depth', 1)))
    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE if reliable
                      else ReliabilityPolicy.BEST_EFFORT)


def _parameter_text(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def node_commands(config: str, *, params_file: Path, image_topic: str, checkpoints: dict,
                  compressed: bool, parameters: dict | None = None) -> dict:
    """
    Return ``{node name: command line}`` of ``config``.

    ``autostart`` is forced on: the runner waits for the nodes to activate themselves.

    :param image_topic: what ``image`` is remapped to (the nodes add ``/compressed``
        themselves when ``compressed``).
    :param checkpoints: variant key -> path (see :func:`resolve_checkpoints`).
    :param parameters: more ``-p`` overrides, the same for every node.
    """
    overrides = []
    for name, value in (parameters or {}).items():
        overrides += ['-p', f'{name}:={_parameter_text(value)}']
    return {variant.node_name: [
        find_script(variant.node_name), '--ros-args', '--params-file', str(params_file),
        '-r', f'__ns:={NAMESPACES[config]}', '-r', f'image:={image_topic}',
        '-p', f'checkpoint:={checkpoints[variant.key]}', '-p', 'autostart:=true',
        '-p', f'use_compressed:={str(compressed).lower()}'] + overrides
        for variant in CONFIGURATIONS[config]}


class NodeProcesses:
    """The node processes of one run, each logging to ``log_dir/<name>.log``."""

    def __init__(self, commands: dict, env: dict, log_dir: Path) -> None:
        """Start every command of ``commands`` ({name: argv}) with ``env``."""
        self.commands, self.processes, self.logs = commands, {}, {}
        for name, command in commands.items():
            self.logs[name] = log_dir / f'{name}.log'
            with open(self.logs[name], 'w') as log:
                self.processes[name] = subprocess.Popen(
                    command, stdout=log, stderr=subprocess.STDOUT, env=env)

    def check_alive(self) -> None:
        """Raise ReplayError with the log tail of a node that has exited."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = self.logs[name].read_text(errors='replace')[-3000:]
                raise ReplayError(f'{name} exited with code {process.returncode}; its log '
                                  f'({self.logs[name]}) ends with:\n{tail}')

    def stop(self) -> dict:
        """SIGINT every node, kill those still running after a grace period; return codes."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        codes = {}
        for name, process in self.processes.items():
            try:
                codes[name] = process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                LOGGER.warning('%s did not stop within %.0f s of SIGINT; killing it', name,
                               STOP_GRACE_S)
                process.kill()
                codes[name] = process.wait()
        return codes
