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
The node's /diagnostics statuses built from pipeline counters (no rclpy needed).

A node reports one status named after the node (its totals); a node with ``cameras`` adds
one status per camera, named ``<node>/<camera>``, with the same keys.

Keys of the DiagnosticStatus values (all numbers as decimal strings):
  input_rate_hz, processed_rate_hz   frames accepted / results published per second (recent)
  frames_received, frames_processed  totals since the node started
  frames_dropped                     frames replaced by a newer one before inference
  frames_skipped                     frames not run because no task was due (segmentation_node
                                     with segmentation_every > 1)
  masks_published                    frames whose segmentation mask was published
  frames_batched                     frames run in one batch with other cameras' frames
  frames_pending                     frames taken in and not finished yet (waiting or running)
  inputs_rejected                    messages that were not a valid image, or larger than
                                     max_image_pixels (refused before decoding)
  inference_failures                 frames whose inference raised
  inference_ms, end_to_end_ms        mean recent predictor time, and receive-to-publish time
Detection nodes add (see ``world_state.WorldStats``):
  tracks_active, tracks_started      confirmed tracks now, identities handed out (tracking)
  ground_frames, ground_points       frames with a detections_3d message, positions in them
  ground_above_horizon               detections whose ray misses the ground (no position)
  ground_unavailable                 frames without detections_3d (no intrinsics or pose)
  ground_status                      'ok', or why there are no positions (the status is WARN
                                     then, once frames arrive, with ground_projection on)
"""

from typing import Optional

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from mtl_perception.ros.pipeline import StatsSnapshot
from mtl_perception.ros.world_state import WorldSnapshot


def stats_status(snapshot: StatsSnapshot, *, name: str, hardware_id: str, state: str,
                 previous: Optional[StatsSnapshot] = None,
                 world: Optional[WorldSnapshot] = None, ground: bool = False
                 ) -> DiagnosticStatus:
    """
    Return a DiagnosticStatus for the node.

    :param snapshot: current counters.
    :param name: status name (the node's fully qualified name).
    :param hardware_id: the inference device.
    :param state: lifecycle state label ('active', 'inactive', ...).
    :param previous: the snapshot of the last report; rejected inputs or failures since then
        raise the level to WARN.
    :param world: track and ground counters (detection nodes), or None.
    :param ground: ground positions are on: a frame without them raises the level to WARN.
    """
    level, problems = DiagnosticStatus.OK, []
    if previous is not None:
        if snapshot.rejected > previous.rejected:
            problems.append(f'{snapshot.rejected - previous.rejected} inputs rejected')
        if snapshot.failed > previous.failed:
            problems.append(f'{snapshot.failed - previous.failed} inference failures')
    if world is not None and ground and snapshot.processed and world.ground_status != 'ok':
        problems.append(f'no ground positions: {world.ground_status}')
    if problems:
        level = DiagnosticStatus.WARN
    message = (f'{state}: {snapshot.input_rate_hz:.1f} Hz in, '
               f'{snapshot.processed_rate_hz:.1f} Hz out')
    if problems:
        message += '; ' + ', '.join(problems)
    values = {
        'input_rate_hz': f'{snapshot.input_rate_hz:.2f}',
        'processed_rate_hz': f'{snapshot.processed_rate_hz:.2f}',
        'frames_received': str(snapshot.received),
        'frames_processed': str(snapshot.processed),
        'frames_dropped': str(snapshot.dropped),
        'frames_skipped': str(snapshot.skipped),
        'masks_published': str(snapshot.masks),
        'frames_batched': str(snapshot.batched),
        'frames_pending': str(snapshot.pending),
        'inputs_rejected': str(snapshot.rejected),
        'inference_failures': str(snapshot.failed),
        'inference_ms': f'{snapshot.inference_ms:.1f}',
        'end_to_end_ms': f'{snapshot.end_to_end_ms:.1f}',
    }
    if world is not None:
        values.update({
            'tracks_active': str(world.tracks_active),
            'tracks_started': str(world.tracks_started),
            'ground_frames': str(world.ground_frames),
            'ground_points': str(world.ground_points),
            'ground_above_horizon': str(world.above_horizon),
            'ground_unavailable': str(world.ground_unavailable),
            'ground_status': world.ground_status if ground else 'off',
        })
    return DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id,
                            values=[KeyValue(key=k, value=v) for k, v in values.items()])
