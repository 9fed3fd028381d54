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

from mtl_perception.engine.evaluation import evaluate_predictor, predictor_for_model
from mtl_perception.engine.metric_log import MetricLogger
from mtl_perception.engine.optim import build_optimizer, build_scheduler
from mtl_perception.engine.state import load_training_state, save_training_state
from mtl_perception.engine.trainer import seed_everything, Trainer

__all__ = ['MetricLogger', 'Trainer', 'build_optimizer', 'build_scheduler',
           'evaluate_predictor', 'load_training_state', 'predictor_for_model',
           'save_training_state', 'seed_everything']
