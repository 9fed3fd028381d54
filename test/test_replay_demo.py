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

"""The demo's flight bag cache: reused while it matches the request, rebuilt otherwise."""

import json

from mtl_perception.cli.demo import flight_bag
from mtl_perception.replay.bag_io import BagWriter, open_bag
from mtl_perception.replay.flight import CUSTOM_DATA_KEY, IMAGE_TOPIC, OBJECTS_TOPIC
from mtl_perception.replay.messages import IMAGE, make_image
import numpy as np
import pytest


def _frames_and_seed(path):
    with open_bag(path) as bag:
        description = json.loads(bag.custom_data[CUSTOM_DATA_KEY])
        return bag.topics()[IMAGE_TOPIC].count, description['seed']


def test_flight_bag_is_cached_per_seed_and_rebuilt_when_the_request_changes(tmp_path):
    path = flight_bag(tmp_path, frames=2, seed=4, progress=False)
    assert _frames_and_seed(path) == (2, 4)
    written = (path / 'metadata.yaml').stat().st_mtime_ns
    assert flight_bag(tmp_path, frames=2, seed=4, progress=False) == path
    assert (path / 'metadata.yaml').stat().st_mtime_ns == written  # reused, not rewritten
    assert _frames_and_seed(flight_bag(tmp_path, frames=3, seed=4, progress=False)) == (3, 4)
    # A damaged cache (metadata gone) is rebuilt, not trusted.
    (path / 'metadata.yaml').unlink()
    assert _frames_and_seed(flight_bag(tmp_path, frames=3, seed=4, progress=False)) == (3, 4)
    with pytest.raises(ValueError, match='frames'):
        flight_bag(tmp_path, frames=1, seed=4)


def test_cached_flight_of_an_older_ground_truth_is_rebuilt(tmp_path):
    # A bag as version 1 wrote it: the same request, but no ground_truth_version (and no
    # camera topics, ids or world positions).
    path = tmp_path / 'synthetic_flight_seed4'
    description = {'seed': 4, 'frames': 2, 'rate': 10.0, 'size': [640, 480]}
    with BagWriter(path, custom_data={CUSTOM_DATA_KEY: json.dumps(description)}) as bag:
        bag.add_topic(IMAGE_TOPIC, IMAGE)
        for k in range(2):
            bag.write(IMAGE_TOPIC, k + 1, make_image(np.zeros((4, 4, 3), np.uint8), k + 1,
                                                     'camera'))
    assert flight_bag(tmp_path, frames=2, seed=4, progress=False) == path
    with open_bag(path) as bag:
        assert bag.topics()[OBJECTS_TOPIC].count == 2
        assert json.loads(bag.custom_data[CUSTOM_DATA_KEY])['ground_truth_version'] == 2
