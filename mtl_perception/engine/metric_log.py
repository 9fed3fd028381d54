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
Training logs: one CSV always, TensorBoard scalars when the tensorboard package is installed.

The CSV is long format, one row per value (``step, epoch, phase, name, value``), so rows
with different metrics never need a shared header and a resumed run simply appends.
"""

import csv
import math
import os
from pathlib import Path

CSV_FIELDS = ('step', 'epoch', 'phase', 'name', 'value')


class MetricLogger:
    """
    Append scalar metrics to ``<directory>/train_log.csv`` and, if possible, TensorBoard.

    :param directory: output folder (created).
    :param tensorboard: write TensorBoard events under ``<directory>/tensorboard`` when the
        ``tensorboard`` package is importable; silently CSV-only otherwise.
    """

    def __init__(self, directory: str | os.PathLike, tensorboard: bool = True) -> None:
        """Open (append to) the CSV and the optional TensorBoard writer."""
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.directory / 'train_log.csv'
        new = not self.csv_path.is_file() or self.csv_path.stat().st_size == 0
        self._file = open(self.csv_path, 'a', newline='', encoding='utf-8')
        self._csv = csv.writer(self._file)
        if new:
            self._csv.writerow(CSV_FIELDS)
        self._writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is an optional extra
                SummaryWriter = None
            if SummaryWriter is not None:
                self._writer = SummaryWriter(str(self.directory / 'tensorboard'))

    @property
    def tensorboard_enabled(self) -> bool:
        """Return whether TensorBoard events are written."""
        return self._writer is not None

    def log(self, step: int, epoch: int, phase: str, values: dict) -> None:
        """Write the finite scalar ``values`` ({name: number}) for ``phase`` at ``step``."""
        for name, value in values.items():
            value = float(value)
            if not math.isfinite(value):
                continue
            self._csv.writerow((int(step), int(epoch), phase, name, f'{value:.6g}'))
            if self._writer is not None:
                self._writer.add_scalar(f'{phase}/{name}', value, int(step))
        self._file.flush()

    def close(self) -> None:
        """Flush and close the files (idempotent)."""
        if not self._file.closed:
            self._file.close()
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def read_log(path: str | os.PathLike) -> list[dict]:
    """Read a ``train_log.csv`` into rows with int step/epoch and float value."""
    with open(path, newline='', encoding='utf-8') as stream:
        return [{'step': int(r['step']), 'epoch': int(r['epoch']), 'phase': r['phase'],
                 'name': r['name'], 'value': float(r['value'])}
                for r in csv.DictReader(stream)]
