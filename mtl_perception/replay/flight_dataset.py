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
A recorded flight bag with ground truth, read as a data set (offline evaluation).

``mtl-perception evaluate --data BAG`` scores a checkpoint on the frames of a bag that carries
ground truth beside its images (the synthetic flights of :mod:`.flight`, or any bag with the
same topics), without nodes: the same frames the replay scores through the nodes, so the two
can be compared (for instance at the nodes' score threshold and at the evaluation's).
"""

import json
from pathlib import Path

from mtl_perception.replay.bag_io import BagError, open_bag
from mtl_perception.replay.flight import (CUSTOM_DATA_KEY, DETECTIONS_TOPIC, IMAGE_TOPIC,
                                          MASK_TOPIC, read_flight_cameras)
from mtl_perception.replay.messages import (detection_array_to_numpy, image_to_array,
                                            stamp_to_ns)
import numpy as np

__all__ = ['FlightBagDataset', 'is_flight_bag']


def is_flight_bag(path: str | Path) -> bool:
    """Return whether ``path`` is a bag folder whose metadata describes a synthetic flight."""
    path = Path(path)
    if not (path / 'metadata.yaml').is_file():
        return False
    try:
        with open_bag(path) as bag:
            return CUSTOM_DATA_KEY in bag.custom_data
    except (BagError, OSError):
        return False


class FlightBagDataset:
    """
    The frames of one camera of a flight bag with their ground-truth boxes and masks.

    Frames are those with an image and both ground-truth messages at the same stamp, in
    stamp order; they are decoded once, when the data set is built. Samples follow the data
    contract (``image_id`` is the stamp in nanoseconds).

    :param path: the bag folder.
    :param camera: camera name of a multi-camera flight (default: its first camera, or the
        single camera).
    """

    def __init__(self, path: str | Path, camera: str | None = None) -> None:
        with open_bag(path) as bag:
            custom = bag.custom_data
            description = json.loads(custom.get(CUSTOM_DATA_KEY) or '{}')
            cameras = read_flight_cameras(custom)
            if cameras:
                chosen = cameras[0] if camera is None else \
                    next((c for c in cameras if c.name == camera), None)
                if chosen is None:
                    raise ValueError(f'{path}: no camera {camera!r}; the flight has '
                                     f'{[c.name for c in cameras]}')
                topics = (chosen.image_topic, chosen.detections_topic, chosen.mask_topic)
            else:
                if camera is not None:
                    raise ValueError(f'{path} is a single-camera flight; drop the camera name')
                topics = (IMAGE_TOPIC, DETECTIONS_TOPIC, MASK_TOPIC)
            self.detection_classes = list(description.get('detection_classes') or []) or None
            self.segmentation_classes = \
                list(description.get('segmentation_classes') or []) or None
            if not self.detection_classes or not self.segmentation_classes:
                raise ValueError(f'{path}: the flight metadata names no class lists')
            frames: dict = {}
            for topic, _, msg in bag.messages(topics):
                stamp = stamp_to_ns(msg.header.stamp)
                frames.setdefault(stamp, {})[topics.index(topic)] = msg
        self.samples = []
        for stamp in sorted(frames):
            parts = frames[stamp]
            if len(parts) < 3:
                continue
            boxes, names, _ = detection_array_to_numpy(parts[1])
            unknown = sorted(set(names) - set(self.detection_classes))
            if unknown:
                raise ValueError(f'{path}: ground truth at {stamp} names classes {unknown} '
                                 f'outside {self.detection_classes}')
            labels = np.array([self.detection_classes.index(n) for n in names], np.int64)
            self.samples.append({'image': image_to_array(parts[0]), 'boxes': boxes,
                                 'labels': labels,
                                 'difficult': np.zeros(len(labels), np.bool_),
                                 'mask': image_to_array(parts[2]), 'image_id': str(stamp)})
        if not self.samples:
            raise ValueError(f'{path}: no frame has an image and ground truth on {topics}')

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        return self.samples[index]
