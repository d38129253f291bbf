"""ReWA under DDP and FSDP2 (``fully_shard``, DTensor parameters): two gloo processes on CPU
end with the weights of one process that sees the whole batch."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import rewa

pytestmark = [
    pytest.mark.skipif(
        not dist.is_available() or not dist.is_gloo_available(), reason="torch.distributed with gloo is not available"
    ),
    # Two spawned processes import torch each: ~8 s per test on a quiet 2-core machine.
    pytest.mark.slow,
]

# Two half-batch gradients averaged by all-reduce equal the whole-batch gradient to rounding.
TOLERANCE = dict(rtol=1e-5, atol=1e-6)


def _data():
    gen = torch.Generator().manual_seed(1)
    return torch.randn(8, 16, generator=gen), torch.randn(8, 4, generator=gen)


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 4))


def _optimizer(params, foreach):
    warnings.simplefilter("ignore", rewa.SparsityConfigWarning)
    return rewa.ReWA(params, lr=0.1, K=3, M=2, weight_decay=0.01, momentum=0.9, foreach=foreach)


def _train(model, opt, x, y, steps=3):
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()


def _worker(rank, world, kind, foreach, rendezvous, out):
    # a file rendezvous: a port picked free beforehand could be taken by another test's process
    # before the workers bind it (seen once under pytest-xdist)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    x, y = (t.chunk(world)[rank] for t in _data())
    model = _model()
    if kind == "ddp":
        model = torch.nn.parallel.DistributedDataParallel(model)
    else:
        from torch.distributed.fsdp import fully_shard

        for layer in model:
            if isinstance(layer, torch.nn.Linear):
                fully_shard(layer)
        fully_shard(model)
    opt = _optimizer(model.parameters(), foreach)
    _train(model, opt, x, y)
    if kind == "fsdp":
        assert all(type(p).__name__ == "DTensor" for p in model.parameters())
        assert all(type(opt.state[p]["y"]).__name__ == "DTensor" for p in model.parameters())
        weights = [p.full_tensor().detach().clone() for p in model.parameters()]
    else:
        weights = [p.detach().clone() for p in model.parameters()]
    if rank == 0:
        torch.save(weights, out)
    # both ranks are past their last collective before either tears gloo down: a rank that
    # destroyed its group while the peer's last message was in flight aborted (SIGABRT) once in CI
    dist.barrier()
    dist.destroy_process_group()


@pytest.mark.parametrize("kind,foreach", [("ddp", False), ("fsdp", True)])
def test_two_processes_equal_one(kind, foreach, tmp_path):
    out = str(tmp_path / "weights.pt")
    mp.spawn(_worker, args=(2, kind, foreach, str(tmp_path / "rendezvous"), out), nprocs=2)
    model = _model()
    _train(model, _optimizer(model.parameters(), foreach), *_data())
    for expected, got in zip(model.parameters(), torch.load(out)):
        torch.testing.assert_close(got, expected.detach(), **TOLERANCE)
