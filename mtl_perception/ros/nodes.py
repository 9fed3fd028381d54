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
The perception lifecycle node: camera images in, detections and segmentation masks out.

One node class serves the multitask node and the single-task baseline (detection_node,
segmentation_node); only its task list and default checkpoint differ. The node wires ROS to
the ROS-free pieces: conversions (messages <-> arrays), pipeline (latest-frame mailbox,
counters) and the Predictor. Inference runs on ``inference_workers`` threads (one Predictor
each) that always take the newest frame, so a frame arriving while every worker is busy
replaces the waiting one; results are published in the order the frames arrived.

Topics (relative, remapped in launch): subscribes ``image`` (and ``image/compressed`` with
use_compressed); publishes per task ``detections``, ``detections/overlay``,
``detections/label_info`` and ``segmentation/mask``, ``segmentation/color``,
``segmentation/label_info`` (label topics transient local, one publisher each, see
``conversions``), and ``/diagnostics``. The node declares only its tasks' parameters.

Input images larger than ``max_image_pixels`` are rejected from their size fields (raw) or
header (compressed) before any pixel is decoded.

The process around the node (signals, spinning, shutdown order) is ``mtl_perception.ros.main``.
"""

from dataclasses import dataclass
from pathlib import Path
import threading
import time
from typing import Callable

from diagnostic_msgs.msg import DiagnosticArray
from mtl_perception.inference.predictor import Predictor
from mtl_perception.resources import model_file
from mtl_perception.ros import conversions
from mtl_perception.ros.diagnostics import stats_status
from mtl_perception.ros.parameters import NodeSettings, parameters_for, validate_settings
from mtl_perception.ros.pipeline import FrameMailbox, LogThrottle, PipelineStats, PublishOrder
from mtl_perception.ros.visualization import colorize_mask, draw_detections
from mtl_perception.variants import NodeVariant
import numpy as np
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray, LabelInfo

SUCCESS = TransitionCallbackReturn.SUCCESS
FAILURE = TransitionCallbackReturn.FAILURE
# Outputs: reliable (reaches reliable and best-effort subscribers alike), a few deep.
OUTPUT_QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)


@dataclass
class Frame:
    """A frame waiting for inference: raw pixels, or a compressed message decoded lazily."""

    header: Header
    received: float
    image: np.ndarray | CompressedImage


def _demo_checkpoint(name: str) -> Path | None:
    try:
        return model_file(name)
    except FileNotFoundError:
        return None


def _load_predictors(settings: NodeSettings) -> list:
    """Load one Predictor per inference worker (closing those loaded if one fails)."""
    options = {}
    if settings.inference_threads and settings.backend == 'onnxruntime':
        options['threads'] = settings.inference_threads
    elif settings.inference_threads and settings.backend == 'torch':
        import torch
        # Per process, not per worker: every worker's ops use this many threads.
        torch.set_num_threads(settings.inference_threads)
    predictors = []
    try:
        for _ in range(settings.inference_workers):
            predictors.append(Predictor.from_checkpoint(
                settings.checkpoint, backend=settings.backend, device=settings.device,
                half=settings.half, score_threshold=settings.score_threshold,
                nms_threshold=settings.nms_threshold, max_detections=settings.max_detections,
                **options))
    except BaseException:
        for predictor in predictors:
            predictor.close()
        raise
    return predictors


class PerceptionNode(LifecycleNode):
    """Lifecycle node running one Predictor for a variant's tasks on an image stream."""

    def __init__(self, variant: NodeVariant, **kwargs) -> None:
        super().__init__(variant.node_name, **kwargs)
        self.tasks = variant.tasks
        self._demo_checkpoint = _demo_checkpoint(variant.demo_model)
        self._parameter_specs = parameters_for(self.tasks)
        for spec in self._parameter_specs:
            default = spec.default
            if spec.name == 'checkpoint' and self._demo_checkpoint is not None:
                default = str(self._demo_checkpoint)
            self.declare_parameter(spec.name, default, spec.descriptor())
        self.settings: NodeSettings | None = None
        self.stats = PipelineStats()
        self._throttle = LogThrottle()
        self._predictors: list = []
        self._mailbox: FrameMailbox | None = None
        self._workers: list = []
        self._active = False
        # Workers publish only while this is set, checked under the lock: once _stop clears
        # it, no result leaves, even one computed before (its publishers may be going away).
        self._publish_lock = threading.Lock()
        self._publishing = False
        self._publishers_by_topic: dict = {}
        self._subscriptions_made: list = []
        self._diagnostics_publisher = None
        self._diagnostics_timer = None
        self._last_report = None
        self._autostart_timer = None
        if self.get_parameter('autostart').value:
            self._autostart_timer = self.create_timer(0.0, self._autostart)

    # Lifecycle transitions -------------------------------------------------------------------

    def _autostart(self) -> None:
        self.destroy_timer(self._autostart_timer)
        self._autostart_timer = None
        if self.trigger_configure() != SUCCESS:
            self.get_logger().error('autostart: configure failed; node stays unconfigured')
        elif self.trigger_activate() != SUCCESS:
            self.get_logger().error('autostart: activate failed; node stays inactive')

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Read and validate parameters, create publishers, subscriptions and diagnostics."""
        values = {spec.name: self.get_parameter(spec.name).value for spec in self._parameter_specs}
        try:
            settings = validate_settings(values, self._demo_checkpoint, self.tasks)
        except ValueError as error:
            self.get_logger().error(f'configure failed: {error}')
            return FAILURE
        self.settings = settings
        topics = {conversions.LABEL_INFO_TOPICS[task]: (LabelInfo, LATCHED_QOS)
                  for task in self.tasks}
        if 'detection' in self.tasks:
            topics['detections'] = (Detection2DArray, OUTPUT_QOS)
            topics['detections/overlay'] = (Image, OUTPUT_QOS)
        if 'segmentation' in self.tasks:
            topics['segmentation/mask'] = (Image, OUTPUT_QOS)
            topics['segmentation/color'] = (Image, OUTPUT_QOS)
        self._publishers_by_topic = {
            topic: self.create_lifecycle_publisher(msg_type, topic, qos)
            for topic, (msg_type, qos) in topics.items()}
        reliability = (ReliabilityPolicy.RELIABLE if settings.qos_reliability == 'reliable'
                       else ReliabilityPolicy.BEST_EFFORT)
        input_qos = QoSProfile(depth=settings.qos_depth, reliability=reliability,
                               history=HistoryPolicy.KEEP_LAST)
        self._subscriptions_made = [
            self.create_subscription(Image, 'image', self._on_image, input_qos)]
        if settings.use_compressed:
            # Follow image_transport's naming: the compressed stream hangs off the raw topic.
            compressed = self.resolve_topic_name('image') + '/compressed'
            self._subscriptions_made.append(self.create_subscription(
                CompressedImage, compressed, self._on_compressed, input_qos))
        self._diagnostics_publisher = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._diagnostics_timer = self.create_timer(settings.diagnostics_period,
                                                    self._publish_diagnostics)
        self.get_logger().info(
            f'configured: tasks {list(self.tasks)}, checkpoint {settings.checkpoint}, '
            f'backend {settings.backend} on {settings.device}, input QoS '
            f'{settings.qos_reliability} depth {settings.qos_depth}')
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the model and start the inference worker; FAILURE if the model cannot load."""
        settings = self.settings
        try:
            predictors = _load_predictors(settings)
        except Exception as error:  # noqa: B902 (any load failure must fail the transition)
            self.get_logger().error(
                f'activate failed: cannot load checkpoint {settings.checkpoint} with backend '
                f'{settings.backend} on {settings.device}: {type(error).__name__}: {error}')
            return FAILURE
        predictor = predictors[0]
        missing = [task for task in self.tasks if task not in predictor.tasks]
        if missing:
            for loaded in predictors:
                loaded.close()
            self.get_logger().error(
                f'activate failed: checkpoint {settings.checkpoint} has tasks '
                f'{list(predictor.tasks)}, this node needs {list(self.tasks)}')
            return FAILURE
        if len(predictor.tasks) > len(self.tasks):
            self.get_logger().warning(
                f'checkpoint {settings.checkpoint} also computes {list(predictor.tasks)}; '
                f'only {list(self.tasks)} is published')
        self._predictors = predictors
        result = super().on_activate(state)
        header = Header(stamp=self.get_clock().now().to_msg())
        for task in self.tasks:
            threshold = settings.score_threshold if task == 'detection' else 0.0
            self._publishers_by_topic[conversions.LABEL_INFO_TOPICS[task]].publish(
                conversions.label_info(task, predictor.class_names[task], threshold, header))
        self._mailbox, order = FrameMailbox(), PublishOrder()
        with self._publish_lock:
            self._publishing = True
        self._workers = [threading.Thread(target=self._work, args=(self._mailbox, loaded, order),
                                          name=f'inference_{index}', daemon=True)
                         for index, loaded in enumerate(predictors)]
        for worker in self._workers:
            worker.start()
        self._active = True
        self.get_logger().info(
            f'active: {predictor.card.name} ({predictor.input_size} px input), '
            f'{len(predictors)} inference worker(s), '
            f'{settings.inference_threads or "default"} thread(s) each')
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop the worker and release the model (and the CUDA cache)."""
        self._stop()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Destroy publishers, subscriptions and the diagnostics timer."""
        self._destroy_endpoints()
        self.settings = None
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release everything whatever the state."""
        self._stop()
        self._destroy_endpoints()
        return super().on_shutdown(state)

    def destroy_node(self) -> None:
        """Stop the worker before the node's endpoints go away."""
        self._stop()
        super().destroy_node()

    def _stop(self) -> None:
        """Stop taking frames and publishing, join the workers, then release the models."""
        with self._publish_lock:
            self._publishing = False
        self._active = False
        if self._mailbox is not None and self._mailbox.close():
            self.stats.frame_dropped()
        for worker in self._workers:
            worker.join()
        self._mailbox, self._workers = None, []
        if self._predictors:
            device = self.settings.device if self.settings else 'cpu'
            for predictor in self._predictors:
                predictor.close()
            self._predictors = []
            if device.startswith('cuda'):
                import torch
                torch.cuda.empty_cache()

    def _destroy_endpoints(self) -> None:
        for publisher in self._publishers_by_topic.values():
            self.destroy_lifecycle_publisher(publisher)
        for subscription in self._subscriptions_made:
            self.destroy_subscription(subscription)
        if self._diagnostics_timer is not None:
            self.destroy_timer(self._diagnostics_timer)
        if self._diagnostics_publisher is not None:
            self.destroy_publisher(self._diagnostics_publisher)
        self._publishers_by_topic, self._subscriptions_made = {}, []
        self._diagnostics_timer = self._diagnostics_publisher = None

    # Frames ----------------------------------------------------------------------------------

    def _on_image(self, msg: Image) -> None:
        if not self._active:
            return
        received = time.monotonic()
        try:
            # The size is checked on width and height before the data is looked at.
            pixels = conversions.image_to_rgb(msg, self.settings.max_image_pixels)
        except conversions.ImageConversionError as error:
            self._reject(error)
            return
        self._submit(Frame(msg.header, received, pixels))

    def _on_compressed(self, msg: CompressedImage) -> None:
        if self._active:
            # Decoding waits for the worker, so frames that get replaced are never decoded
            # (and an oversized one is refused from its header there).
            self._submit(Frame(msg.header, time.monotonic(), msg))

    def _submit(self, frame: Frame) -> None:
        mailbox = self._mailbox
        if mailbox is None:
            return
        self.stats.frame_received()
        if mailbox.put(frame):
            self.stats.frame_dropped()

    def _reject(self, error: conversions.ImageConversionError, received: bool = False) -> None:
        self.stats.input_rejected(received)
        suppressed = self._throttle.allow(error.reason)
        if suppressed is not None:
            note = f' ({suppressed} similar since the last report)' if suppressed else ''
            self.get_logger().error(f'rejected input image: {error}{note}')

    def _work(self, mailbox: FrameMailbox, predictor: Predictor, order: PublishOrder) -> None:
        while True:
            frame, ticket = order.take(mailbox)
            if frame is None:
                if mailbox.closed:
                    return
                continue
            try:
                self._process(frame, predictor, lambda: order.wait_turn(ticket))
            except Exception as error:  # noqa: B902 (the stream must survive any one frame)
                self.stats.frame_failed()
                if self._throttle.allow('inference') is not None:
                    self.get_logger().error(
                        f'inference failed: {type(error).__name__}: {error}')
            finally:
                order.done(ticket)

    def _process(self, frame: Frame, predictor: Predictor,
                 wait_turn: Callable[[], bool]) -> None:
        pixels, settings = frame.image, self.settings
        if isinstance(pixels, CompressedImage):
            try:
                pixels = conversions.compressed_to_rgb(pixels, settings.max_image_pixels)
            except conversions.ImageConversionError as error:
                self._reject(error, received=True)
                return
        prediction = predictor.predict(pixels)
        # Publish only after every earlier frame: outputs leave in arrival order.
        wait_turn()
        with self._publish_lock:
            if not self._publishing:
                self.stats.frame_dropped()  # stopping: the result is discarded
                return
            self._publish(frame, pixels, prediction, predictor, settings.publish_debug_images)

    def _publish(self, frame: Frame, pixels: np.ndarray, prediction, predictor: Predictor,
                 force: bool) -> None:
        header, publishers = frame.header, self._publishers_by_topic
        if 'detection' in self.tasks:
            publishers['detections'].publish(conversions.detections_to_msg(
                prediction.boxes, prediction.scores, prediction.labels,
                predictor.class_names['detection'], header))
            overlay = publishers['detections/overlay']
            if force or overlay.get_subscription_count() > 0:
                overlay.publish(conversions.rgb_to_image(draw_detections(
                    pixels, prediction.boxes, prediction.scores, prediction.labels,
                    predictor.class_names['detection']), header))
        if 'segmentation' in self.tasks:
            publishers['segmentation/mask'].publish(
                conversions.mask_to_image(prediction.mask, header))
            color = publishers['segmentation/color']
            if force or color.get_subscription_count() > 0:
                color.publish(conversions.rgb_to_image(colorize_mask(prediction.mask), header))
        self.stats.frame_processed(sum(prediction.timings.values()),
                                   (time.monotonic() - frame.received) * 1000.0)

    def _publish_diagnostics(self) -> None:
        snapshot = self.stats.snapshot()
        state = 'active' if self._active else 'inactive'
        status = stats_status(snapshot, name=self.get_fully_qualified_name(),
                              hardware_id=self.settings.device if self.settings else '',
                              state=state, previous=self._last_report)
        self._last_report = snapshot
        message = DiagnosticArray(status=[status])
        message.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_publisher.publish(message)
