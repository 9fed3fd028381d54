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
The node processes' entry points: signal handlers first, the heavy imports after.

The console scripts ``multitask_node``, ``detection_node`` and ``segmentation_node`` call
``*_main`` here. This module imports only the standard library at load time. Each installs the
SIGINT/SIGTERM handlers before anything else, then imports the node (rclpy, numpy, the
Predictor: about half a second), so a Ctrl-C while the process is still loading is recorded
instead of raising KeyboardInterrupt in the middle of an import: the process then exits 0
without starting the node.

Shutdown: SIGINT and SIGTERM only request it (``run`` spins until then); the workers stop
taking frames and publishing, are joined, and only then are the node and the ROS context
destroyed. Further signals during that cleanup are ignored (a terminal Ctrl-C under
``ros2 launch`` delivers two), so the process exits 0 however many arrive. (A signal in the
first tenth of a second, before Python has run any of this package's code, is beyond it.)
"""

import signal
import sys

# Signals that stop the node, and how often the spin loop looks for them (seconds): a Python
# signal handler runs only between bytecodes, never while the executor waits in C.
SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM)
SIGNAL_POLL_PERIOD = 0.1


class ShutdownSignals:
    """
    SIGINT and SIGTERM handlers that only record the request (no KeyboardInterrupt).

    rclpy's own handlers shut the context down the moment a signal arrives, while workers may
    still publish, and chain to Python's, which raises KeyboardInterrupt wherever the main
    thread is (a second Ctrl-C then escapes from the cleanup). These let ``run`` stop the
    node in order instead; ``ignore`` makes later signals harmless while it does.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        for signum in SHUTDOWN_SIGNALS:
            signal.signal(signum, self._record)

    def _record(self, signum: int, frame) -> None:
        self.received = signum

    @staticmethod
    def ignore() -> None:
        """Ignore further SIGINT/SIGTERM for the rest of the process (shutdown has begun)."""
        for signum in SHUTDOWN_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)


def run(variant_key: str, args: list | None = None,
        signals: ShutdownSignals | None = None) -> int:
    """
    Create the node, spin it until SIGINT/SIGTERM or shutdown and clean up.

    :param variant_key: which node: a key of ``mtl_perception.variants.VARIANTS``.
    :param args: command-line arguments (``--ros-args ...``); None: ``sys.argv``.
    :param signals: the handlers installed before the imports; None: install them now.
    :return: the exit code: 0, or 2 for a parameter of the wrong type.
    """
    if signals is None:
        signals = ShutdownSignals()
    # The heavy imports, under the handlers: a signal meanwhile is only recorded.
    from mtl_perception.ros.nodes import PerceptionNode
    from mtl_perception.variants import VARIANTS
    import rclpy
    from rclpy.exceptions import ParameterException
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    variant = VARIANTS[variant_key]
    if signals.received is not None:
        return 0  # stopped while loading: nothing was started
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = executor = None
    code = 0
    try:
        node = PerceptionNode(variant)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while signals.received is None and rclpy.ok():
            executor.spin_once(timeout_sec=SIGNAL_POLL_PERIOD)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ParameterException as error:
        print(f'{variant.node_name}: invalid parameter: {error}', file=sys.stderr, flush=True)
        code = 2
    finally:
        signals.ignore()
        if executor is not None:
            executor.shutdown()
        if node is not None:
            node.destroy_node()  # joins the inference workers before the context goes
        rclpy.try_shutdown()
    return code


def multitask_main(args: list | None = None) -> int:
    """Run the multitask node (detection + segmentation from one network)."""
    return run('multitask', args, ShutdownSignals())


def detection_main(args: list | None = None) -> int:
    """Run the single-task baseline detection node."""
    return run('detection', args, ShutdownSignals())


def segmentation_main(args: list | None = None) -> int:
    """Run the single-task baseline segmentation node."""
    return run('segmentation', args, ShutdownSignals())
