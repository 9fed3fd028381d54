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

"""package.xml and the other XML files: well formed and following package format 3."""

from pathlib import Path
import xml.etree.ElementTree as ET

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

PACKAGE_FILES = [REPO_ROOT / 'package.xml', REPO_ROOT / 'interfaces/vision_msgs/package.xml']
XML_FILES = PACKAGE_FILES + sorted((REPO_ROOT / 'config').glob('*.xml'))
# Format 3 order of the leading elements (REP 149).
LEADING = ['name', 'version', 'description', 'maintainer']


@pytest.mark.linter
@pytest.mark.parametrize('path', XML_FILES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_well_formed(path):
    ET.parse(path)


@pytest.mark.linter
@pytest.mark.parametrize('path', PACKAGE_FILES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_package_format_3(path):
    root = ET.parse(path).getroot()
    assert root.tag == 'package' and root.get('format') == '3'
    tags = [child.tag for child in root]
    assert tags[:len(LEADING)] == LEADING, f'{path}: elements must start with {LEADING}'
    assert root.findtext('license'), 'a license is required'
    assert root.find('maintainer').get('email'), 'the maintainer needs an email'
    assert root.find('export/build_type') is not None


def test_package_declares_ros_dependencies():
    root = ET.parse(REPO_ROOT / 'package.xml').getroot()
    declared = {child.text for child in root
                if child.tag in ('depend', 'exec_depend', 'build_depend')}
    tests = {child.text for child in root if child.tag == 'test_depend'}
    for key in ('rclpy', 'sensor_msgs', 'std_msgs', 'geometry_msgs', 'vision_msgs',
                'diagnostic_msgs', 'launch', 'launch_ros', 'python3-numpy', 'python3-yaml',
                'python3-torch', 'python3-torchvision'):
        assert key in declared, key
    for key in ('launch_testing', 'launch_testing_ros', 'ament_flake8', 'ament_pep257',
                'ament_copyright', 'python3-pytest'):
        assert key in tests, key
    assert root.findtext('export/build_type') == 'ament_python'
