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

"""Code style: ament_flake8 with ament's own configuration (single quotes, Google imports)."""

from pathlib import Path

from ament_flake8.main import main_with_errors
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

CHECKED = ['mtl_perception', 'test', 'launch', 'setup.py']


@pytest.mark.linter
def test_flake8(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    rc, errors = main_with_errors(argv=CHECKED)
    assert rc == 0, f'Found {len(errors)} code style errors / warnings:\n' + '\n'.join(errors)
