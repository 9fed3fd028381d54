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
`mtl-perception synth`: write the synthetic aerial data set or a synthetic flight bag.

Two modes:

* ``--out DIR --images N --seed S [--size WxH] [--resize WxH]`` renders N independent scenes
  (:class:`~mtl_perception.data.SyntheticAerialDataset`) into DIR in the COCO-format folder
  layout (``annotations/instances_<split>.json``, ``images/``, ``masks/``) that
  :class:`~mtl_perception.data.CocoFolderDataset` and ``mtl-perception evaluate`` read.
  ``--resize`` renders at ``--size`` and stores the images resized (masks nearest, boxes
  scaled): the same scenes as a camera of ``--size`` sees them, in smaller files.
  ``--style flight`` writes views cut from large worlds the way flights render them
  (:class:`~mtl_perception.data.SyntheticFlightViews`) instead of upright stills.
* ``--bag PATH --frames N [--rate HZ] [--seed S] [--storage mcap|sqlite3] [--cameras K]``
  writes a flight over one world as a rosbag2 bag with ground truth
  (:func:`mtl_perception.replay.flight.write_flight_bag`); ``--cameras K`` >= 2 flies a rig of
  K cameras over it, each with its own image and ground-truth topics (``/cam<k>/...``).
"""

import argparse
from pathlib import Path


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``'WxH'`` into ``(W, H)``; raise ValueError naming the text."""
    parts = str(text).lower().split('x')
    try:
        width, height = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f'size must look like 640x480, got {text!r}') from None
    if width < 16 or height < 16:
        raise ValueError(f'size must be at least 16x16, got {text!r}')
    return width, height


class _Resized:
    """A data set view whose samples are resized to ``size`` (W, H)."""

    def __init__(self, dataset, size: tuple[int, int]) -> None:
        from mtl_perception.data import Resize
        self.dataset, self.resize = dataset, Resize(size)
        self.detection_classes = dataset.detection_classes
        self.segmentation_classes = dataset.segmentation_classes

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        return self.resize(self.dataset[index])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the synth options to ``parser``."""
    folder = parser.add_argument_group('data set folder')
    folder.add_argument('--out', type=Path, metavar='DIR',
                        help='write a COCO-format folder of independent scenes to DIR')
    folder.add_argument('--images', type=int, default=100,
                        help='number of images (default: %(default)s)')
    folder.add_argument('--size', default='640x480',
                        help='rendered image size WxH (default: %(default)s)')
    folder.add_argument('--resize', default=None, metavar='WxH',
                        help='store the images resized to WxH (default: as rendered)')
    folder.add_argument('--split', default='train',
                        help='annotation split name (default: %(default)s)')
    folder.add_argument('--style', default='stills', choices=['stills', 'flight'],
                        help='stills: one upright scene per image; flight: views cut from '
                        'large worlds at random headings and altitudes with in-flight '
                        'camera effects, as flights render them (default: %(default)s)')
    folder.add_argument('--format', default='png', choices=['png', 'jpg'],
                        help='image file format (default: %(default)s)')
    bag = parser.add_argument_group('flight bag')
    bag.add_argument('--bag', type=Path, metavar='PATH', help='write a flight bag to PATH')
    bag.add_argument('--frames', type=int, default=300,
                     help='number of frames (default: %(default)s)')
    bag.add_argument('--rate', type=float, default=10.0,
                     help='frame rate in Hz (default: %(default)s)')
    bag.add_argument('--storage', default='mcap', choices=['mcap', 'sqlite3'],
                     help='bag storage plugin (default: %(default)s)')
    bag.add_argument('--cameras', type=int, default=1,
                     help='cameras of the rig, each with its own /cam<k>/ topics (default: '
                     '%(default)s, the single /camera/image_raw flight)')
    bag.add_argument('--world-size', default=None, metavar='WxH',
                     help='size of the flown-over world in pixels (default: 4000x3000)')
    bag.add_argument('--overwrite', action='store_true', help='replace an existing bag')
    parser.add_argument('--seed', type=int, default=0, help='random seed (default: 0)')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')


def main(args: argparse.Namespace) -> int:
    """Write the data set folder or the flight bag."""
    if (args.out is None) == (args.bag is None):
        raise ValueError('give exactly one of --out DIR (data set) or --bag PATH (flight)')
    if args.seed < 0:
        raise ValueError(f'--seed must be >= 0, got {args.seed}')
    if args.bag is not None:
        from mtl_perception.replay.flight import write_flight_bag
        if args.frames < 1 or args.rate <= 0:
            raise ValueError('--frames must be >= 1 and --rate > 0')
        if args.cameras < 1:
            raise ValueError(f'--cameras must be >= 1, got {args.cameras}')
        options = {'world_size': parse_size(args.world_size)} if args.world_size else {}
        flight = write_flight_bag(args.bag, frames=args.frames, rate=args.rate,
                                  seed=args.seed, size=parse_size(args.size),
                                  storage=args.storage, cameras=args.cameras,
                                  overwrite=args.overwrite, progress=not args.quiet, **options)
        cameras = '' if len(flight.cameras) < 2 else \
            f' from {len(flight.cameras)} cameras ({", ".join(c.name for c in flight.cameras)})'
        print(f'wrote {flight.frames} frames at {flight.rate:g} Hz{cameras} to {flight.path}')
        return 0
    from mtl_perception.data import (SyntheticAerialDataset, SyntheticFlightViews,
                                     write_coco_folder)
    if args.images < 1:
        raise ValueError(f'--images must be >= 1, got {args.images}')
    kind = SyntheticFlightViews if args.style == 'flight' else SyntheticAerialDataset
    dataset = kind(args.images, seed=args.seed, size=parse_size(args.size))
    if args.resize:
        dataset = _Resized(dataset, parse_size(args.resize))
    path = write_coco_folder(args.out, dataset, split=args.split, image_format=args.format,
                             progress=not args.quiet)
    print(f'wrote {len(dataset)} images to {args.out} ({path.name})')
    return 0
