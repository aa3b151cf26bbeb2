"""One run on several processes (train/distributed.py, train/launch.py): the same global batch, the
same gradients and metrics as one process; exact resume after a killed process; refusals.

Every multi-process test here runs CPU processes with the gloo backend, the code path NCCL runs on GPUs.
"""

from __future__ import annotations

import multiprocessing as mp
import socket
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mrnet.core.errors import UserError
from mrnet.train import distributed
from mrnet.train.loader import EpochBatches
from mrnet.train.models.mrnet import MRNet, MRNetConfig

TINY = dict(in_dim=8, num_layers=2, channels=16, embed_dim=8, num_classes=3, dropout=0.0)  # dropout draws differ per process


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_step(rank: int, world: int, address: str | None, out: str, sync_bn: bool = True) -> None:
    """One training step of a tiny MRNet on a fixed global batch of 8 with class weights, as rank
    ``rank`` of ``world`` (world 1: no process group); saves the gradients and BatchNorm buffers."""
    torch.set_num_threads(1)
    if world > 1:
        distributed.init("cpu", rank=rank, world=world, address=address)
    torch.manual_seed(0)
    model = MRNet(MRNetConfig(**TINY))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 1, 2, 20, 8, generator=g)
    y = torch.tensor([0, 1, 2, 0, 0, 1, 2, 0])
    weights = torch.tensor([1.0, 2.0, 3.0])
    trainer = distributed.wrap(model, torch.device("cpu"), sync_bn=sync_bn)
    (mine, size, share), = distributed.split_epoch([[(0, i) for i in range(8)]], y.tolist(), weights, False)
    idx = [i for _, i in mine]
    logits = distributed.training_logits(trainer, x[idx], y[idx])
    if share is None:
        loss = F.cross_entropy(logits, y[idx], weight=weights)
    else:
        loss = F.cross_entropy(logits, y[idx], weight=weights, reduction="sum") / share.total * share.world
    loss.backward()
    if rank == 0:
        torch.save({"grads": {n: p.grad for n, p in model.named_parameters()}, "buffers": dict(model.named_buffers())}, out)
    distributed.close()


def run_ranks(world: int, out: Path, **kw) -> dict:
    if world == 1:
        one_step(0, 1, None, str(out), **kw)
    else:
        address = f"tcp://127.0.0.1:{_port()}"
        ctx = mp.get_context("spawn")
        procs = [ctx.Process(target=one_step, args=(r, world, address, str(out)), kwargs=kw) for r in range(world)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
        assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    return torch.load(out)


def test_two_processes_compute_the_one_process_gradient_of_the_global_batch(tmp_path):
    """Shares of 4 + 4 items, class-weighted loss, BatchNorm over the global batch (gloo): every
    gradient and running statistic equals one process's on the batch of 8, to float rounding."""
    one, two = run_ranks(1, tmp_path / "one.pt"), run_ranks(2, tmp_path / "two.pt")
    for name, grad in one["grads"].items():
        assert torch.allclose(grad, two["grads"][name], rtol=1e-4, atol=1e-6), name
    for name, buf in one["buffers"].items():
        assert torch.allclose(buf.double(), two["buffers"][name].double(), rtol=1e-5, atol=1e-6), name


def test_per_rank_batchnorm_gives_another_gradient(tmp_path):
    """The control: with per-rank statistics (--no-sync-bn) the gradients differ, so the test above can fail."""
    one, two = run_ranks(1, tmp_path / "one.pt"), run_ranks(2, tmp_path / "two.pt", sync_bn=False)
    assert any(not torch.allclose(g, two["grads"][n], rtol=1e-3, atol=1e-5) for n, g in one["grads"].items())


def test_each_rank_takes_its_contiguous_share_of_every_global_batch():
    batches = EpochBatches(20, 6, seed=3, epoch=1)
    for b in batches:
        parts = [distributed.share(b, rank=r, world=4) for r in range(4)]
        assert sum(parts, []) == list(b)
        assert [len(p) for p in parts] == [2, 2, 1, 1]
