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
Distributed training: two CPU processes (gloo) train what one process trains.

The tiny recipe runs once in this process (3 epochs) and once as two torchrun processes
(2 epochs, then ``--resume`` to 3), both with the global batch of 4 (2 images per process).
Augmentation stays on: it is seeded per sample, so it does not depend on which process loads
an image. Both runs draw the same global batches, normalise BatchNorm and the losses over the
global batch and average the loss weighting's gradients, so what differs is floating-point
rounding (batches of 2 and 4 sum in different orders), which the test must tolerate and
nothing more.

Tolerances, measured on this recipe (6 SGD steps):

- On the first batch the two-process gradient equals the one-process gradient to 1e-5
  (relative L2), the float32 error itself (both are 1e-5 from a float64 reference). The
  recipe trains contiguous, not channels-last: on this torch build's CPU kernels the
  channels-last float32 gradient of this network at batch 4 is 1.4e-2 off the float64 one in
  its worst tensor (1e-5 at batch 2 or contiguous), which would make the one-process run the
  inaccurate one.
- Rounding then grows by one discrete step: hard negative mining ranks near-equal background
  losses (flat synthetic backgrounds), and a rounding difference can swap which negatives
  are kept. At the small learning rate (2e-5, plain SGD: updates linear in the gradients)
  that moved the weight changes by 1e-2 (relative L2 of the change) in the runs measured,
  so the weight CHANGES must agree to 5e-2. What a real mismatch gives, measured by
  breaking one piece at a time: per-process BatchNorm 1.2, per-process loss normalisation
  0.46. The BatchNorm running statistics agree to 3e-5 (limit 1e-3; per-process BatchNorm
  3e-2), the learned loss weights to 5e-6 of their change (limit 1e-3; without averaging
  their gradients 4.5e-2) and the logged per-step losses to 4e-5 (limit 1e-3; per-process
  BatchNorm 5e-2 at step 1, per-process normalisation 5e-3 at step 3).
- Rank 0 evaluates the whole held-out set: its metrics equal a single-process evaluation of
  the saved weights (1e-9).

The CPU synchronised BatchNorm on its own is exact in float64, where rounding vanishes
(1e-10).

Network safety: the processes run under ``mtl_perception.engine.launch`` (torchrun
``--standalone`` whose stores listen on 127.0.0.1 only; plain torchrun's listen on ``::``)
and every socket of the process tree, sampled while it runs, must be loopback.
"""

import ipaddress
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
THIS = Path(__file__).resolve()
RUN_TIMEOUT = 300  # seconds per torchrun launch (about 30 on two idle cores)
TOLERANCE = {'weight_change': 5e-2, 'running_stats': 1e-3, 'loss_weights': 1e-3, 'loss': 1e-3,
             'metric': 1e-9, 'bn_float64': 1e-10}
RECIPE = {
    'name': 'tiny',
    'tasks': ['detection', 'segmentation'],
    'model': {'arch': 'mobilenet_v3_large_ssdlite_fcn', 'input_size': 96,
              'kwargs': {'min_scale': 0.15, 'max_scale': 0.8, 'first_scale': 0.08}},
    'data': {'train': {'type': 'synthetic', 'images': 8, 'seed': 3, 'size': [128, 96]},
             'val': {'type': 'synthetic', 'images': 2, 'seed': 11, 'size': [128, 96]},
             'augment': 'light'},
    'training': {'epochs': 3, 'batch_size': 4, 'optimizer': 'sgd', 'lr': 2e-5,
                 'momentum': 0.9, 'weight_decay': 0.0, 'schedule': 'constant',
                 'warmup_iters': 0, 'weighting': 'uncertainty', 'eval_interval': 3,
                 'threads': 1, 'seed': 5, 'channels_last': False, 'device': 'cpu'},
}


# ---------------------------------------------------------------- worker side (subprocesses)
def _audited_train(audit_prefix: str, argv: list) -> int:
    """Run ``mtl-perception`` recording every file this process writes in the output."""
    output = os.path.abspath(argv[argv.index('--output') + 1])
    log = open(f'{audit_prefix}.rank{os.environ["RANK"]}', 'w', encoding='utf-8')

    def inside(path) -> bool:
        if isinstance(path, int) or path is None:
            return False
        path = os.path.abspath(os.fsdecode(path))
        return path == output or path.startswith(output + os.sep)

    def hook(event, args):
        writes = {'os.rename': args[:2], 'os.mkdir': args[:1], 'os.remove': args[:1]}.get(
            event, ())
        if event == 'open':
            mode, flags = args[1], args[2] or 0
            if (mode and any(c in mode for c in 'wax+')) or (
                    mode is None and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)):
                writes = args[:1]
        for path in writes:
            if inside(path):
                log.write(f'{event} {os.fsdecode(path)}\n')
                log.flush()

    sys.addaudithook(hook)
    from mtl_perception.cli.main import main
    return main(argv)


def _sync_batchnorm_worker(rank: int, store: str, result: str) -> int:
    """Rank ``rank`` of 2: its half of a batch through CpuSyncBatchNorm in float64."""
    import torch
    import torch.distributed as dist
    from mtl_perception.engine.sync_batchnorm import convert_batchnorm

    dist.init_process_group('gloo', init_method=f'file://{store}', rank=rank, world_size=2)
    try:
        net, images, target = _batchnorm_case()
        convert_batchnorm(net, torch.device('cpu'))
        half = slice(3 * rank, 3 * rank + 3)
        # This process's part of the mean over the whole batch, times the world size (DDP
        # averages gradients).
        loss = ((net(images[half]) - target[half]) ** 2).sum() * 2 / target.numel()
        loss.backward()
        grads = torch.cat([p.grad.reshape(-1) for p in net.parameters()])
        dist.all_reduce(grads)
        if rank == 0:
            stats = torch.cat([b.reshape(-1).double() for b in net.buffers()])
            torch.save({'grads': grads / 2, 'stats': stats}, result)
    finally:
        dist.destroy_process_group()
    return 0


def _batchnorm_case():
    import torch
    from torch import nn
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.Conv2d(8, 4, 3, stride=2), nn.BatchNorm2d(4, momentum=None)).double()
    return net, torch.randn(6, 3, 9, 9, dtype=torch.float64), \
        torch.randn(6, 4, 3, 3, dtype=torch.float64)


# ---------------------------------------------------------------- test side
def _env() -> dict:
    env = dict(os.environ, MASTER_ADDR='127.0.0.1', GLOO_SOCKET_IFNAME='lo',
               OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    env.pop('WORLD_SIZE', None)
    return env


def _loopback(address) -> bool:
    return not address or ipaddress.ip_address(address.ip.split('%')[0]).is_loopback \
        or address.ip.startswith('::ffff:127.')


def _run_watched(command: list, log: Path, timeout: float = RUN_TIMEOUT) -> tuple:
    """Run ``command`` (output to ``log``); sample its process tree's sockets until it exits."""
    import psutil
    with open(log, 'w', encoding='utf-8') as stream:
        process = subprocess.Popen(command, env=_env(), cwd=str(REPO_ROOT), stdout=stream,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    sockets, deadline = set(), time.monotonic() + timeout
    try:
        while process.poll() is None:
            if time.monotonic() > deadline:
                os.killpg(process.pid, signal.SIGKILL)
                pytest.fail(f'{command[:6]} ran past {timeout} s')
            try:
                tree = [psutil.Process(process.pid)]
                tree += tree[0].children(recursive=True)
            except psutil.NoSuchProcess:
                break
            for member in tree:
                try:
                    for conn in member.net_connections(kind='inet'):
                        sockets.add((conn.status, conn.laddr, conn.raddr))
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
            time.sleep(0.2)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode, log.read_text(), sorted(sockets, key=str)


def _torchrun(output: Path, audit: str, *extra) -> tuple[str, list]:
    command = [sys.executable, '-m', 'mtl_perception.engine.launch', '--nproc_per_node=2',
               str(THIS), 'train', audit, '--log-level', 'WARNING', 'train', '--config',
               str(output.parent / 'recipe.yaml'), '--output', str(output), '--no-progress',
               *extra]
    code, text, sockets = _run_watched(command, Path(audit + '.out'))
    assert code == 0, text[-4000:]
    return text, sockets


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """Train the tiny recipe in one process and in two (2 epochs, resumed to 3)."""
    import yaml
    from mtl_perception.cli.main import main as cli_main
    from safetensors.torch import load_file

    root = tmp_path_factory.mktemp('distributed')
    (root / 'recipe.yaml').write_text(yaml.safe_dump(RECIPE))
    single = root / 'single'
    assert cli_main(['--log-level', 'WARNING', 'train', '--config', str(root / 'recipe.yaml'),
                     '--output', str(single), '--no-progress']) == 0
    distributed = root / 'ddp'
    first_out, first_sockets = _torchrun(distributed, str(root / 'audit-first'),
                                         '--set', 'training.epochs=2')
    after_two = load_file(str(distributed / 'tiny.safetensors'))
    resumed_out, resumed_sockets = _torchrun(distributed, str(root / 'audit-resume'),
                                             '--resume')
    return {'root': root, 'single': single, 'ddp': distributed, 'after_two': after_two,
            'outputs': (first_out, resumed_out), 'sockets': first_sockets + resumed_sockets}


def _initial_weights(root: Path) -> dict:
    from mtl_perception.cli.recipe import load_recipe
    from mtl_perception.cli.train import build_run
    trainer = build_run(load_recipe(root / 'recipe.yaml'), root / 'unused', progress=False)
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def _relative(a: dict, b: dict, keys) -> float:
    """Return ||a - b|| / ||b|| over ``keys`` of two dicts of tensors."""
    diff = sum(float((a[k].double() - b[k].double()).pow(2).sum()) for k in keys)
    norm = sum(float(b[k].double().pow(2).sum()) for k in keys)
    return (diff / norm) ** 0.5


def test_two_processes_train_the_single_process_network(runs):
    from mtl_perception.engine.state import load_training_state
    from safetensors.torch import load_file
    start = _initial_weights(runs['root'])
    single = load_file(str(runs['single'] / 'tiny.safetensors'))
    distributed = load_file(str(runs['ddp'] / 'tiny.safetensors'))
    change_single = {k: single[k] - start[k] for k in single}
    change_distributed = {k: distributed[k] - start[k] for k in single}
    floats = [k for k in single if single[k].is_floating_point()]
    weights = [k for k in floats if '.running_' not in k]
    stats = [k for k in floats if '.running_' in k]
    assert _relative(single, start, weights) > 1e-5  # training moved the weights
    assert _relative(change_distributed, change_single, weights) < TOLERANCE['weight_change']
    assert _relative(change_distributed, change_single, stats) < TOLERANCE['running_stats']
    # the learned loss weights (uncertainty weighting, outside DDP) start at 0
    key = 'weighting.log_vars'
    learned = {name: {key: load_training_state(runs[name] / 'tiny')['criterion'][key]}
               for name in ('single', 'ddp')}
    assert float(learned['single'][key].abs().max()) > 0.0
    assert _relative(learned['ddp'], learned['single'], [key]) < TOLERANCE['loss_weights']


def test_logged_losses_are_the_global_batch_losses(runs):
    from mtl_perception.engine.metric_log import read_log

    def losses(output):
        rows = [r for r in read_log(output / 'train_log.csv')
                if r['phase'] == 'train' and r['name'].startswith('loss/')]
        keys = [(r['step'], r['name']) for r in rows]
        assert len(keys) == len(set(keys)), 'a step was logged twice'
        return {key: r['value'] for key, r in zip(keys, rows)}

    single, distributed = losses(runs['single']), losses(runs['ddp'])
    assert sorted(distributed) == sorted(single)
    assert sorted({step for step, _ in single}) == [1, 2, 3, 4, 5, 6]
    for key, value in single.items():
        assert distributed[key] == pytest.approx(value, rel=TOLERANCE['loss']), key


def test_metrics_are_the_single_process_evaluation(runs):
    from mtl_perception.cli.datasets import build_source
    from mtl_perception.engine.evaluation import evaluate_predictor, predictor_for_model
    from mtl_perception.inference.checkpoint import load_checkpoint
    model, card = load_checkpoint(runs['ddp'] / 'tiny')
    val = build_source(RECIPE['data']['val'], card.tasks)
    again = evaluate_predictor(predictor_for_model(model, card), val)
    assert card.metrics['images'] == again['images'] == len(val) == 2
    for task in ('detection', 'segmentation'):
        for key, value in again[task].items():
            if isinstance(value, float):
                assert card.metrics[task][key] == pytest.approx(value, abs=TOLERANCE['metric'])


def test_only_rank_zero_writes_files(runs):
    root = runs['root']
    for run in ('audit-first', 'audit-resume'):
        assert (root / f'{run}.rank1').read_text() == ''
        written = (root / f'{run}.rank0').read_text()
        for name in ('tiny.safetensors', 'tiny.yaml', 'tiny.state.json',
                     'tiny.state.safetensors', 'train_log.csv', 'recipe.yaml'):
            assert name in written, (run, name, written)
    names = {p.name for p in runs['ddp'].iterdir()}
    assert names - {'tensorboard'} == {'recipe.yaml', 'tiny.safetensors', 'tiny.yaml',
                                       'tiny.state.json', 'tiny.state.safetensors',
                                       'train_log.csv'}
    first, resumed = runs['outputs']
    assert first.count('trained 2 epochs') == 1 and resumed.count('trained 3 epochs') == 1


def test_two_processes_resume_from_the_saved_epoch(runs):
    from mtl_perception.engine.state import load_training_state
    from safetensors.torch import load_file
    state = load_training_state(runs['ddp'] / 'tiny')
    assert state['epoch'] == 3 and state['step'] == 6
    final = load_file(str(runs['ddp'] / 'tiny.safetensors'))
    assert any(not (final[k] == v).all() for k, v in runs['after_two'].items())
    # the epoch losses of the resumed epoch follow on from the first run's
    from mtl_perception.engine.metric_log import read_log
    epochs = [r['epoch'] for r in read_log(runs['ddp'] / 'train_log.csv')
              if r['phase'] == 'epoch' and r['name'] == 'loss/total']
    assert epochs == [1, 2, 3]


def test_every_socket_stays_on_loopback(runs):
    sockets = runs['sockets']
    assert any(status == 'LISTEN' for status, _, _ in sockets), 'no socket seen: vacuous'
    outside = [s for s in sockets if not (_loopback(s[1]) and _loopback(s[2]))]
    assert outside == []


def test_cpu_sync_batchnorm_is_exact_in_float64(tmp_path):
    import torch
    store, result = tmp_path / 'store', tmp_path / 'result.pt'
    workers = [subprocess.Popen([sys.executable, str(THIS), 'batchnorm', str(rank), str(store),
                                 str(result)], env=_env(), start_new_session=True)
               for rank in range(2)]
    try:
        assert [w.wait(timeout=120) for w in workers] == [0, 0]
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
    net, images, target = _batchnorm_case()
    ((net(images) - target) ** 2).mean().backward()
    grads = torch.cat([p.grad.reshape(-1) for p in net.parameters()])
    stats = torch.cat([b.reshape(-1).double() for b in net.buffers()])
    got = torch.load(str(result))
    torch.testing.assert_close(got['grads'], grads, rtol=TOLERANCE['bn_float64'], atol=1e-12)
    torch.testing.assert_close(got['stats'], stats, rtol=TOLERANCE['bn_float64'], atol=1e-12)


def test_sharded_batches_are_the_single_process_batches():
    import torch
    from mtl_perception.engine.distributed import ShardedBatchSampler
    for size, drop_last in ((10, True), (7, False)):
        def batches():
            sampler = torch.utils.data.RandomSampler(
                range(size), generator=torch.Generator().manual_seed(3))
            return torch.utils.data.BatchSampler(sampler, 4, drop_last)
        shards = [list(ShardedBatchSampler(batches(), rank, 2)) for rank in range(2)]
        assert len(ShardedBatchSampler(batches(), 0, 2)) == len(batches())
        merged = [sorted(a + b) for a, b in zip(*shards)]
        assert merged == [sorted(batch) for batch in batches()]
    with pytest.raises(ValueError, match='global batch: 4 does not divide evenly among 3'):
        ShardedBatchSampler(batches(), 0, 3)
    sampler = torch.utils.data.SequentialSampler(range(5))
    with pytest.raises(ValueError, match='last batch of 1 images cannot be shared'):
        ShardedBatchSampler(torch.utils.data.BatchSampler(sampler, 4, False), 0, 2)


def test_without_torchrun_training_is_one_process():
    import torch
    import torch.distributed as dist
    from mtl_perception.engine.distributed import init_distributed
    context = init_distributed(torch.device('cpu'), environ={})
    assert (context.rank, context.world_size, context.enabled) == (0, 1, False)
    assert not dist.is_initialized()
    with pytest.raises(ValueError, match='MASTER_ADDR, MASTER_PORT not set'):
        init_distributed(torch.device('cpu'),
                         environ={'WORLD_SIZE': '2', 'RANK': '0', 'LOCAL_RANK': '0'})


def test_loopback_launcher_refuses_several_machines(capsys):
    from mtl_perception.engine.launch import main as launch
    assert launch(['--nnodes=2', '--nproc_per_node=1', 'train.py']) == 2
    assert launch(['--rdzv-endpoint=10.0.0.1:29400', 'train.py']) == 2
    assert 'one machine only' in capsys.readouterr().err


def test_gradnorm_is_refused_with_several_processes(tmp_path):
    import torch
    from mtl_perception.cli.recipe import load_recipe
    from mtl_perception.cli.train import build_run
    from mtl_perception.engine.distributed import DistributedContext
    import yaml
    recipe = dict(RECIPE, training={**RECIPE['training'], 'weighting': 'gradnorm'})
    (tmp_path / 'recipe.yaml').write_text(yaml.safe_dump(recipe))
    several = DistributedContext(rank=0, world_size=2, device=torch.device('cpu'))
    with pytest.raises(ValueError, match='gradnorm cannot train distributed'):
        build_run(load_recipe(tmp_path / 'recipe.yaml'), tmp_path / 'out', progress=False,
                  distributed=several)


if __name__ == '__main__':
    # Worker entry points for the subprocesses the tests start.
    if sys.argv[1] == 'train':
        sys.exit(_audited_train(sys.argv[2], sys.argv[3:]))
    sys.exit(_sync_batchnorm_worker(int(sys.argv[2]), sys.argv[3], sys.argv[4]))
