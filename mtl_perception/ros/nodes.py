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
the ROS-free pieces: conversions (messages <-> arrays), scheduling (newest frame per camera,
cameras served in turn, batches, publish order), pipeline (counters) and the Predictor.
Inference runs on ``inference_workers`` threads (one Predictor each).

Cameras: by default the node serves one camera and its topics are relative: it subscribes
``image`` (and ``image/compressed`` with use_compressed) and publishes per task
``detections``, ``detections/overlay``, ``segmentation/mask``, ``segmentation/color``. With
``cameras: [front, down]`` one node (one model in memory) serves both: it subscribes
``front/image`` and ``down/image`` (or the ``camera_topics`` given) and publishes the outputs
under ``front/`` and ``down/``, each with the header of its own input frame. Frames of
several cameras waiting at once run as one batch (``max_batch``). The label topics
``detections/label_info`` and ``segmentation/label_info`` (transient local, see
``conversions``) and ``/diagnostics`` (one status for the node, one per named camera) are
one per node. The node declares only its tasks' parameters.

Per-head rates: with ``segmentation_every: N`` the mask is computed and published on every
Nth frame of each camera (its 1st, N+1th, ...) and detection on every frame; the Predictor
skips the segmentation head on the others. segmentation_node, whose only task it is, skips
those frames altogether (counted as frames_skipped).

Tracks and ground positions (detection nodes): with ``tracking`` each camera has a
ByteTrack-style tracker (``mtl_perception.tracking``) and every published Detection2D carries
its track identity in ``id`` ('' until the track is confirmed); the network then keeps
detections down to ``tracking_low_threshold`` for the tracker's second stage, and only those
scoring ``score_threshold`` or more are published. With ``ground_projection`` the node also
publishes ``detections_3d`` (vision_msgs/Detection3DArray, stamped like the image, in
``world_frame``): where each published detection touches the ground plane, from the camera's
``camera_info`` and ``pose`` (geometry_msgs/PoseStamped of its optical frame) beside the image
topic, or TF. Without intrinsics or a pose nothing is published and /diagnostics says why; a
detection whose ray does not meet the ground (at or above the horizon) gets no position.

Input images larger than ``max_image_pixels`` are rejected from their size fields (raw) or
header (compressed) before any pixel is decoded.

The process around the node (signals, spinning, shutdown order) is ``mtl_perception.ros.main``.
"""

from functools import partial
import threading
import time
from typing import Callable

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from mtl_perception.geometry import contact_pixels, Pose, project_to_ground
from mtl_perception.inference.predictor import Predictor
from mtl_perception.ros import conversions
from mtl_perception.ros.cameras import Camera, Frame, GROUND_TOPIC, input_topic
from mtl_perception.ros.diagnostics import stats_status
from mtl_perception.ros.parameters import (NodeSettings, parameters_for, tracker_settings,
                                           validate_settings)
from mtl_perception.ros.pipeline import LogThrottle, PipelineStats
from mtl_perception.ros.predictors import close_predictors, demo_checkpoint, load_predictors
from mtl_perception.ros.scheduling import CameraQueue, PublishOrder, Taken
from mtl_perception.ros.visualization import colorize_mask, draw_detections
from mtl_perception.ros.world_state import (CameraGeometry, combine, GroundUnavailable,
                                            sibling_topic, stamp_ns, WorldStats)
from mtl_perception.tracking import ByteTracker
from mtl_perception.variants import NodeVariant
import numpy as np
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray, Detection3DArray, LabelInfo

SUCCESS = TransitionCallbackReturn.SUCCESS
FAILURE = TransitionCallbackReturn.FAILURE
# Outputs: reliable (reaches reliable and best-effort subscribers alike), a few deep.
OUTPUT_QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
OUTPUT_TYPES = {'detections': Detection2DArray, 'detections/overlay': Image,
                'segmentation/mask': Image, 'segmentation/color': Image,
                GROUND_TOPIC: Detection3DArray}
# Camera intrinsics and poses: best effort reaches both reliable and best-effort publishers.
GEOMETRY_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)


class PerceptionNode(LifecycleNode):
    """Lifecycle node running one Predictor for a variant's tasks on an image stream."""

    def __init__(self, variant: NodeVariant, **kwargs) -> None:
        super().__init__(variant.node_name, **kwargs)
        self.tasks = variant.tasks
        self._demo_checkpoint = demo_checkpoint(variant.demo_model)
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
        self._cameras: list = []
        self._queue: CameraQueue | None = None
        self._workers: list = []
        self._active = False
        # Workers publish only while this is set, checked under the lock: once _stop clears
        # it, no result leaves, even one computed before (its publishers may be going away).
        self._publish_lock = threading.Lock()
        self._publishing = False
        self._label_publishers: dict = {}
        self._subscriptions_made: list = []
        self._diagnostics_publisher = None
        self._diagnostics_timer = None
        self._last_reports: dict = {}
        self._tf = None  # (tf2_ros.Buffer, TransformListener) where TF gives poses
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
        self._label_publishers = {
            task: self.create_lifecycle_publisher(
                LabelInfo, conversions.LABEL_INFO_TOPICS[task], LATCHED_QOS)
            for task in self.tasks}
        reliability = (ReliabilityPolicy.RELIABLE if settings.qos_reliability == 'reliable'
                       else ReliabilityPolicy.BEST_EFFORT)
        input_qos = QoSProfile(depth=settings.qos_depth, reliability=reliability,
                               history=HistoryPolicy.KEEP_LAST)
        names = settings.cameras or ('',)
        detection = 'detection' in self.tasks
        tf_lookup = None
        if detection and settings.ground_projection and settings.pose_source != 'topic':
            try:
                tf_lookup = self._start_tf(settings)
            except ImportError:
                if settings.pose_source == 'tf':
                    self.get_logger().error('configure failed: pose_source tf needs tf2_ros, '
                                            'which is not installed; use pose_source topic')
                    return FAILURE
        self._cameras = []
        for index, name in enumerate(names):
            topic = input_topic(name, index, settings.camera_topics)
            camera = Camera(name, topic, PipelineStats(parent=self.stats))
            outputs = camera.output_topics(self.tasks)
            if detection:
                camera.world = WorldStats()
                if settings.tracking:
                    camera.tracker = ByteTracker(tracker_settings(settings))
                if settings.ground_projection:
                    outputs.append((GROUND_TOPIC, camera.prefix + GROUND_TOPIC))
                    self._add_geometry(camera, index, tf_lookup)
            camera.publishers = {
                key: self.create_lifecycle_publisher(
                    OUTPUT_TYPES[key], topic_name, OUTPUT_QOS)
                for key, topic_name in outputs}
            self._cameras.append(camera)
            self._subscriptions_made.append(self.create_subscription(
                Image, topic, partial(self._on_image, index), input_qos))
            if settings.use_compressed:
                # Follow image_transport's naming: the compressed stream hangs off the raw topic.
                compressed = self.resolve_topic_name(topic) + '/compressed'
                self._subscriptions_made.append(self.create_subscription(
                    CompressedImage, compressed, partial(self._on_compressed, index),
                    input_qos))
        self._diagnostics_publisher = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._diagnostics_timer = self.create_timer(settings.diagnostics_period,
                                                    self._publish_diagnostics)
        cameras = (', '.join(f'{camera.name} <- {self.resolve_topic_name(camera.input_topic)}'
                             for camera in self._cameras) if settings.cameras
                   else self.resolve_topic_name('image'))
        every = settings.segmentation_every if 'segmentation' in self.tasks else 1
        self.get_logger().info(
            f'configured: tasks {list(self.tasks)}, checkpoint {settings.checkpoint}, '
            f'backend {settings.backend} on {settings.device}, input QoS '
            f'{settings.qos_reliability} depth {settings.qos_depth}; camera(s) {cameras}'
            + (f'; max batch {settings.max_batch}' if len(self._cameras) > 1 else '')
            + (f'; mask every {every} frames' if every > 1 else '')
            + ('; tracking' if detection and settings.tracking else '')
            + (f'; ground positions in {settings.world_frame} from '
               f'{self._pose_description(settings, tf_lookup)}'
               if detection and settings.ground_projection else ''))
        return super().on_configure(state)

    def _start_tf(self, settings: NodeSettings):
        """Listen to TF; return ``(frame_id, stamp_ns) -> Pose`` (ImportError without tf2)."""
        import tf2_ros
        buffer = tf2_ros.Buffer()
        self._tf = (buffer, tf2_ros.TransformListener(buffer, self))
        world = settings.world_frame

        def lookup(frame_id: str, stamp: int) -> Pose:
            return Pose.from_transform(buffer.lookup_transform(
                world, frame_id, Time(nanoseconds=stamp)))
        return lookup

    def _pose_description(self, settings: NodeSettings, tf_lookup) -> str:
        sources = []
        if settings.pose_source != 'tf':
            sources.append('pose topics')
        if tf_lookup is not None:
            sources.append('TF')
        return ' or '.join(sources)

    def _add_geometry(self, camera: Camera, index: int, tf_lookup) -> None:
        """Subscribe the camera's camera_info (and pose) beside its image topic."""
        settings = self.settings
        # Beside the image topic as remapped (image_transport's pairing): remapping a camera's
        # image also moves its camera_info and pose.
        image = self.resolve_topic_name(camera.input_topic)
        info_topic, pose_topic = sibling_topic(image, 'camera_info'), sibling_topic(image, 'pose')
        camera.geometry = CameraGeometry(info_topic,
                                         pose_topic if settings.pose_source != 'tf' else 'TF',
                                         settings.max_pose_age, tf_lookup)
        self._subscriptions_made.append(self.create_subscription(
            CameraInfo, info_topic, camera.geometry.set_camera_info, GEOMETRY_QOS))
        if settings.pose_source != 'tf':
            self._subscriptions_made.append(self.create_subscription(
                PoseStamped, pose_topic, camera.geometry.add_pose, GEOMETRY_QOS))

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the model and start the inference worker; FAILURE if the model cannot load."""
        settings = self.settings
        threshold = settings.score_threshold
        if 'detection' in self.tasks and settings.tracking:
            threshold = min(threshold, settings.tracking_low_threshold)
        try:
            predictors = load_predictors(settings, threshold)
        except Exception as error:  # noqa: B902 (any load failure must fail the transition)
            self.get_logger().error(
                f'activate failed: cannot load checkpoint {settings.checkpoint} with backend '
                f'{settings.backend} on {settings.device}: {type(error).__name__}: {error}')
            return FAILURE
        predictor = predictors[0]
        missing = [task for task in self.tasks if task not in predictor.tasks]
        if missing:
            close_predictors(predictors)
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
            self._label_publishers[task].publish(
                conversions.label_info(task, predictor.class_names[task], threshold, header))
        self._queue, order = CameraQueue(len(self._cameras)), PublishOrder()
        with self._publish_lock:
            self._publishing = True
        self._workers = [threading.Thread(target=self._work, args=(self._queue, loaded, order),
                                          name=f'inference_{index}', daemon=True)
                         for index, loaded in enumerate(predictors)]
        for worker in self._workers:
            worker.start()
        self._active = True
        skip = ''
        if 'segmentation' in self.tasks and settings.segmentation_every > 1 \
                and 'detection' in self.tasks and not predictor.skips_segmentation:
            skip = ('; this export cannot skip the segmentation head (export it again): the '
                    'head runs on every frame, only the masks not due are left undecoded')
        copies = len({id(loaded) for loaded in predictors})
        sharing = 'sharing one model' if copies == 1 < len(predictors) else \
            f'{copies} model cop{"y" if copies == 1 else "ies"}'
        self.get_logger().info(
            f'active: {predictor.card.name} ({predictor.input_size} px input), '
            f'{len(predictors)} inference worker(s) {sharing}, '
            f'{settings.inference_threads or "default"} intra-op thread(s){skip}')
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
        if self._queue is not None:
            for index in self._queue.close():
                self._cameras[index].stats.frame_dropped()
        for worker in self._workers:
            worker.join()
        self._queue, self._workers = None, []
        if self._predictors:
            device = self.settings.device if self.settings else 'cpu'
            close_predictors(self._predictors)
            self._predictors = []
            if device.startswith('cuda'):
                import torch
                torch.cuda.empty_cache()

    def _destroy_endpoints(self) -> None:
        publishers = list(self._label_publishers.values())
        for camera in self._cameras:
            publishers += camera.publishers.values()
        for publisher in publishers:
            self.destroy_lifecycle_publisher(publisher)
        for subscription in self._subscriptions_made:
            self.destroy_subscription(subscription)
        if self._diagnostics_timer is not None:
            self.destroy_timer(self._diagnostics_timer)
        if self._diagnostics_publisher is not None:
            self.destroy_publisher(self._diagnostics_publisher)
        self._label_publishers, self._subscriptions_made, self._cameras = {}, [], []
        self._diagnostics_timer = self._diagnostics_publisher = None
        if self._tf is not None:
            self._tf[1].unregister()
            self._tf = None

    # Frames ----------------------------------------------------------------------------------

    def _on_image(self, camera: int, msg: Image) -> None:
        if not self._active:
            return
        received = time.monotonic()
        try:
            # The size is checked on width and height before the data is looked at.
            pixels = conversions.image_to_rgb(msg, self.settings.max_image_pixels)
        except conversions.ImageConversionError as error:
            self._reject(self._cameras[camera], error)
            return
        self._submit(Frame(msg.header, received, pixels, camera))

    def _on_compressed(self, camera: int, msg: CompressedImage) -> None:
        if self._active:
            # Decoding waits for the worker, so frames that get replaced are never decoded
            # (and an oversized one is refused from its header there).
            self._submit(Frame(msg.header, time.monotonic(), msg, camera))

    def _submit(self, frame: Frame) -> None:
        queue = self._queue
        if queue is None:
            return
        stats = self._cameras[frame.camera].stats
        stats.frame_received()
        if queue.put(frame.camera, frame):
            stats.frame_dropped()

    def _reject(self, camera: Camera, error: conversions.ImageConversionError,
                received: bool = False) -> None:
        camera.stats.input_rejected(received)
        suppressed = self._throttle.allow(error.reason)
        if suppressed is not None:
            note = f' ({suppressed} similar since the last report)' if suppressed else ''
            where = f' from camera {camera.name}' if camera.name else ''
            self.get_logger().error(f'rejected input image{where}: {error}{note}')

    def _work(self, queue: CameraQueue, predictor: Predictor, order: PublishOrder) -> None:
        while True:
            taken, ticket = order.take(queue, self.settings.max_batch)
            if not taken:
                if queue.closed:
                    return
                continue
            try:
                self._process(taken, predictor, lambda: order.wait_turn(ticket))
            except Exception as error:  # noqa: B902 (the stream must survive any one batch)
                self._log_failure('publishing', error)
            finally:
                order.done(ticket)

    def _log_failure(self, what: str, error: Exception) -> None:
        if self._throttle.allow(what) is not None:
            self.get_logger().error(f'{what} failed: {type(error).__name__}: {error}')

    def _process(self, taken: list, predictor: Predictor,
                 wait_turn: Callable[[], bool]) -> None:
        """Decode, run and publish one batch (frames of different cameras)."""
        run = []
        for entry in taken:
            frame, camera = entry.item, self._cameras[entry.camera]
            segment = self._mask_due(entry)
            if 'detection' not in self.tasks and not segment:
                camera.stats.frame_skipped()  # the node's only task is not due
                continue
            pixels = frame.image
            if isinstance(pixels, CompressedImage):
                try:
                    pixels = conversions.compressed_to_rgb(pixels,
                                                           self.settings.max_image_pixels)
                except conversions.ImageConversionError as error:
                    self._reject(camera, error, received=True)
                    continue
            run.append((frame, pixels, segment))
        if not run:
            return
        try:
            predictions = predictor.predict_batch([pixels for _, pixels, _ in run],
                                                  segmentation=[due for *_, due in run])
        except Exception as error:  # noqa: B902 (the stream must survive any one batch)
            for frame, *_ in run:
                self._cameras[frame.camera].stats.frame_failed()
            self._log_failure('inference', error)
            return
        # Publish only after every earlier batch: outputs leave in arrival order.
        wait_turn()
        with self._publish_lock:
            for (frame, pixels, _), prediction in zip(run, predictions):
                if not self._publishing:
                    # Stopping: the result is discarded (its publishers may be going away).
                    self._cameras[frame.camera].stats.frame_dropped()
                    continue
                self._publish(frame, pixels, prediction, predictor,
                              self.settings.publish_debug_images, batched=len(run) > 1)

    def _mask_due(self, entry: Taken) -> bool:
        """Whether this frame's mask is due: the 1st, N+1th, ... frame of its camera."""
        return ('segmentation' in self.tasks
                and entry.sequence % self.settings.segmentation_every == 0)

    def _publish(self, frame: Frame, pixels: np.ndarray, prediction, predictor: Predictor,
                 force: bool, batched: bool) -> None:
        camera = self._cameras[frame.camera]
        header, publishers = frame.header, camera.publishers
        if 'detection' in self.tasks:
            boxes, scores, labels = prediction.boxes, prediction.scores, prediction.labels
            ids = None
            if camera.tracker is not None:
                ids = self._track(camera, header, boxes, scores, labels)
            # The tracker saw detections down to its low threshold; publish the reported ones.
            keep = scores >= self.settings.score_threshold
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            ids = None if ids is None else [str(i) if i > 0 else '' for i in ids[keep]]
            names = predictor.class_names['detection']
            publishers['detections'].publish(conversions.detections_to_msg(
                boxes, scores, labels, names, header, ids))
            if GROUND_TOPIC in publishers:
                self._publish_ground(camera, header, boxes, scores, labels, ids, names)
            overlay = publishers['detections/overlay']
            if force or overlay.get_subscription_count() > 0:
                overlay.publish(conversions.rgb_to_image(draw_detections(
                    pixels, boxes, scores, labels, names), header))
        mask = prediction.mask if 'segmentation' in self.tasks else None
        if mask is not None:
            publishers['segmentation/mask'].publish(conversions.mask_to_image(mask, header))
            color = publishers['segmentation/color']
            if force or color.get_subscription_count() > 0:
                color.publish(conversions.rgb_to_image(colorize_mask(mask), header))
        camera.stats.frame_processed(sum(prediction.timings.values()),
                                     (time.monotonic() - frame.received) * 1000.0,
                                     mask=mask is not None, batched=batched)

    def _track(self, camera: Camera, header: Header, boxes: np.ndarray, scores: np.ndarray,
               labels: np.ndarray) -> np.ndarray:
        """Return the track id of each detection (0: none yet), in the frame's time."""
        stamp = stamp_ns(header.stamp) / 1e9
        tracker = camera.tracker
        if tracker.stamp is not None and stamp < tracker.stamp:
            # A replayed bag started over (or the clock jumped back): start the tracks anew.
            self.get_logger().info(
                f'camera {camera.name or "image"}: stamps went back by '
                f'{tracker.stamp - stamp:.3f} s; tracks reset')
            tracker.reset()
        ids = tracker.update(boxes, scores, labels, stamp)
        confirmed = [track.id for track in tracker.tracks if track.confirmed]
        camera.world.tracked(len(confirmed), max(confirmed, default=0))
        return ids

    def _publish_ground(self, camera: Camera, header: Header, boxes: np.ndarray,
                        scores: np.ndarray, labels: np.ndarray, ids, names) -> None:
        """Publish where the detections touch the ground, or count why it cannot."""
        settings = self.settings
        try:
            intrinsics, pose = camera.geometry.lookup(stamp_ns(header.stamp), header.frame_id)
        except GroundUnavailable as error:
            camera.world.unavailable(str(error))
            return
        # Boxes span pixel edges (pixel i covers [i, i + 1]); CameraInfo puts pixel i's centre
        # at i.
        pixels = contact_pixels(boxes - 0.5, intrinsics, pose, settings.ground_contact)
        points = project_to_ground(pixels, intrinsics, pose, settings.ground_height)
        finite = np.isfinite(points).all(axis=1)
        out = Header(stamp=header.stamp, frame_id=settings.world_frame)
        camera.publishers[GROUND_TOPIC].publish(conversions.detections3d_to_msg(
            out, points, ids if ids is not None else [''] * len(boxes),
            [names[label] for label in labels.tolist()], scores))
        camera.world.projected(int(finite.sum()), int((~finite).sum()))

    def _publish_diagnostics(self) -> None:
        state = 'active' if self._active else 'inactive'
        name = self.get_fully_qualified_name()
        worlds = [camera.world.snapshot() for camera in self._cameras
                  if camera.world is not None]
        sources = [(name, self.stats, combine(worlds) if worlds else None)]
        if self.settings.cameras:
            sources += [(f'{name}/{camera.name}', camera.stats,
                         camera.world.snapshot() if camera.world is not None else None)
                        for camera in self._cameras]
        statuses = []
        for status_name, stats, world in sources:
            snapshot = stats.snapshot()
            statuses.append(stats_status(
                snapshot, name=status_name,
                hardware_id=self.settings.device if self.settings else '', state=state,
                previous=self._last_reports.get(status_name), world=world,
                ground=bool(self.settings and self.settings.ground_projection)))
            self._last_reports[status_name] = snapshot
        message = DiagnosticArray(status=statuses)
        message.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_publisher.publish(message)
