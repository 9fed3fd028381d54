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
Copyright and license headers on every source file.

ament_copyright has no PyPI wheel, so its rule (a copyright line and an Apache-2.0 notice at the
top of each file) is checked here directly; package.xml names ament_copyright for colcon test.
"""

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

SOURCES = sorted(
    [REPO_ROOT / 'setup.py']
    + [path for folder in ('mtl_perception', 'test', 'launch')
       for path in (REPO_ROOT / folder).rglob('*.py')])


@pytest.mark.linter
@pytest.mark.parametrize('path', SOURCES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_apache_header(path):
    head = path.read_text(encoding='utf-8').splitlines()[:14]
    text = '\n'.join(head)
    assert head and head[0].startswith('# Copyright 20'), f'{path}: no copyright line first'
    assert 'Licensed under the Apache License, Version 2.0' in text, f'{path}: no license notice'
