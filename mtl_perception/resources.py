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

"""Find the files the package installs (config, launch, models) in a workspace or a source tree."""

from functools import lru_cache
from pathlib import Path

PACKAGE_NAME = 'mtl_perception'
_SOURCE_ROOT = Path(__file__).resolve().parent.parent


@lru_cache(maxsize=1)
def share_directory() -> Path:
    """
    Return the directory holding config/, launch/ and models/.

    In a colcon workspace that is the ament share directory; in a source checkout (editable
    install, tests) it is the repository root, whose files are always the current ones.
    """
    if (_SOURCE_ROOT / 'package.xml').is_file() and (_SOURCE_ROOT / 'config').is_dir():
        return _SOURCE_ROOT
    try:
        from ament_index_python.packages import get_package_share_directory
        return Path(get_package_share_directory(PACKAGE_NAME))
    except (ImportError, LookupError, ValueError) as error:
        raise FileNotFoundError(
            f'cannot find the {PACKAGE_NAME} share directory: not a source checkout and the '
            f'ament index has no {PACKAGE_NAME} ({error}); source your workspace') from error


def config_file(name: str) -> Path:
    """Return the path of a file in the package's config/ directory."""
    return share_directory() / 'config' / name


def model_file(name: str) -> Path:
    """Return the path of a shipped model's weights (models/<name>.safetensors)."""
    return share_directory() / 'models' / f'{name}.safetensors'
