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

"""Training and evaluation loops."""

import importlib

# name -> submodule defining it, loaded on first use (PEP 562): the evaluation loop runs on
# the deployment runtime without torch, which only training needs.
_EXPORTS = {
    'evaluate_predictor': 'evaluation', 'predictor_for_model': 'evaluation',
    'MetricLogger': 'metric_log', 'build_optimizer': 'optim', 'build_scheduler': 'optim',
    'load_training_state': 'state', 'save_training_state': 'state',
    'seed_everything': 'trainer', 'Trainer': 'trainer',
}


def __getattr__(name: str):
    """Import the submodule that defines ``name`` on first use."""
    if name not in _EXPORTS:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    return getattr(importlib.import_module(f'{__name__}.{_EXPORTS[name]}'), name)


__all__ = ['MetricLogger', 'Trainer', 'build_optimizer', 'build_scheduler',
           'evaluate_predictor', 'load_training_state', 'predictor_for_model',
           'save_training_state', 'seed_everything']
