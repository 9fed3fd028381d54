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

"""Docstring style: ament_pep257 with ament's own configuration."""

from pathlib import Path

from ament_pep257.main import main
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.linter
def test_pep257(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    rc = main(argv=['mtl_perception', 'test', 'launch', 'setup.py'])
    assert rc == 0, 'Found docstring style errors (see the output above)'
