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
``torchrun --standalone`` for one machine, with every socket on loopback.

``python -m mtl_perception.engine.launch --nproc_per_node=N $(which mtl-perception) train
--config RECIPE`` takes torchrun's options and runs it as ``--standalone``. Plain torchrun's
rendezvous connects over localhost, but its key-value stores (c10d ``TCPStore``) LISTEN on
every interface (``::``), reachable from the network for the whole run. Here each store the
launcher hosts listens on a socket bound to 127.0.0.1 instead (``master_listen_fd``), and the
workers find ``MASTER_ADDR=localhost``, so :func:`~mtl_perception.engine.distributed.
init_distributed` keeps gloo and NCCL on the loopback interface too. Several machines need
plain torchrun (``--nnodes``, ``--rdzv-endpoint``); this launcher refuses them.
"""

import socket
import sys

import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError


def _loopback_store_factory(tcp_store):
    """Wrap the ``TCPStore`` constructor: a server store listens on 127.0.0.1 only."""
    def create(host_name, port, world_size=None, is_master=False, *args, **kwargs):
        if is_master and kwargs.get('master_listen_fd') is None:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(('127.0.0.1', int(port)))
            listener.listen(128)
            port = listener.getsockname()[1]
            kwargs['master_listen_fd'] = listener.detach()  # the store owns it now
        return tcp_store(host_name, port, world_size, is_master, *args, **kwargs)
    return create


def main(argv: list[str] | None = None) -> int:
    """Run torchrun's command line (``argv``) standalone with loopback-only stores."""
    argv = list(sys.argv[1:] if argv is None else argv)
    from torch.distributed import run as torchrun

    args = torchrun.parse_args(argv)
    _, max_nodes = torchrun.parse_min_max_nnodes(args.nnodes)
    local = args.master_addr in ('127.0.0.1', 'localhost')
    if max_nodes != 1 or args.rdzv_endpoint or not local:
        print('mtl_perception.engine.launch runs on one machine only; use torchrun with '
              '--nnodes/--rdzv-endpoint for several', file=sys.stderr)
        return 2
    args.standalone = True
    store = _loopback_store_factory(dist.TCPStore)
    # The elastic agent looks the class up at call time, some modules by their own name.
    for module in list(sys.modules.values()):
        if getattr(module, '__name__', '').startswith('torch.distributed') \
                and getattr(module, 'TCPStore', None) is dist.TCPStore:
            module.TCPStore = store
    dist.TCPStore = store
    try:
        torchrun.run(args)
    except ChildFailedError as error:  # torchrun has printed the workers' failures
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
