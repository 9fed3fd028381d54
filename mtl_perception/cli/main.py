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
The `mtl-perception` command: one subcommand per tool, each in its own module.

A subcommand module defines `add_arguments(parser)` (its own options) and `main(args) -> int`, and
is listed in SUBCOMMANDS; modules are imported only when their subcommand runs, so `--help` stays
fast and a tool's heavy imports (torch, rclpy) load only when needed.
"""

import argparse
import importlib
import logging
import sys
from typing import List, Optional

# name -> (module under mtl_perception.cli, one-line help)
SUBCOMMANDS = {
    'benchmark': ('benchmark', 'compare the multitask network with the single-task pair'),
    'train': ('train', 'train a network from a YAML recipe'),
    'evaluate': ('evaluate', 'measure a checkpoint with the standard metrics'),
    'export': ('export', 'export a checkpoint to ONNX or a TensorRT engine'),
    'synth': ('synth', 'generate the synthetic aerial data set or flight bag'),
    'replay': ('replay', 'replay a bag through the nodes and score the run'),
    'demo': ('demo', 'the main job: multitask versus baseline on a synthetic flight'),
}


def _load(name: str):
    module_name, _ = SUBCOMMANDS[name]
    return importlib.import_module(f'mtl_perception.cli.{module_name}')


def build_parser(argv: List[str]) -> argparse.ArgumentParser:
    """Build the parser; only the subcommand named in `argv` has its options loaded."""
    parser = argparse.ArgumentParser(
        prog='mtl-perception', description='Multitask UAV perception tools.')
    parser.add_argument('--log-level', default='INFO',
                        choices=['DEBUG', 'INFO', 'WARNING', 'ERROR'])
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    chosen = next((arg for arg in argv if arg in SUBCOMMANDS), None)
    for name, (_, summary) in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=summary, description=summary)
        if name == chosen:
            _load(name).add_arguments(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run the `mtl-perception` command line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    logging.basicConfig(level=args.log_level, format='%(levelname)s %(name)s: %(message)s')
    try:
        return int(_load(args.command).main(args) or 0)
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError) as error:
        # Bad input from the user: one clear line, no traceback.
        print(f'mtl-perception {args.command}: error: {error}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
