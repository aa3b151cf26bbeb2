"""One run on several processes (train/distributed.py, train/launch.py): the same global batch, the
same gradients and metrics as one process; exact resume after a killed process; refusals.

Every multi-process test here runs CPU processes with the gloo backend, the code path NCCL runs on GPUs.
"""

from __future__ import annotations

import multiprocessing as mp
import re
import socket
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mrnet.core.errors import UserError
from mrnet.train import distributed, launch
from mrnet.train.loader import EpochBatches
from mrnet.train.loop import train
from mrnet.train.models.mrnet import MRNet, MRNetConfig
from mrnet.train.runs import RunFolder, load_checkpoint
from tests.train.conftest import small_config

TINY = dict(
    in_dim=8, num_layers=2, width=16, embed_dim=8, num_classes=3, dropout=0.0
)  # dropout draws differ per process


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
    ((mine, size, share),) = distributed.split_epoch([[(0, i) for i in range(8)]], y.tolist(), weights, False)
    idx = [i for _, i in mine]
    logits = distributed.training_logits(trainer, x[idx], y[idx])
    if share is None:
        loss = F.cross_entropy(logits, y[idx], weight=weights)
    else:
        loss = F.cross_entropy(logits, y[idx], weight=weights, reduction="sum") / share.total * share.world
    loss.backward()
    if rank == 0:
        torch.save(
            {"grads": {n: p.grad for n, p in model.named_parameters()}, "buffers": dict(model.named_buffers())}, out
        )
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


@pytest.mark.slow
def test_two_processes_compute_the_one_process_gradient_of_the_global_batch(tmp_path):
    """Shares of 4 + 4 items, class-weighted loss, BatchNorm over the global batch (gloo): every
    gradient and running statistic equals one process's on the batch of 8, to float rounding."""
    one, two = run_ranks(1, tmp_path / "one.pt"), run_ranks(2, tmp_path / "two.pt")
    for name, grad in one["grads"].items():
        assert torch.allclose(grad, two["grads"][name], rtol=1e-4, atol=1e-6), name
    for name, buf in one["buffers"].items():
        assert torch.allclose(buf.double(), two["buffers"][name].double(), rtol=1e-5, atol=1e-6), name


@pytest.mark.slow
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


# --- whole runs -----------------------------------------------------------------------------------

#: 3 epochs of 3 global batches of 4; no dropout (its draws are each process's own, see docs/training.md)
SCALE = dict(epochs=3, batch_size=4, dropout=0.0)
#: How close 2 processes come to 1 on the same global batch: the gradients agree to float rounding
#: (test above); over 9 AdamW steps on this tiny model rounding grows to these differences.
LOSS_TOLERANCE = 2e-3  # relative, on every training, validation and test loss of every epoch


def history(run) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in RunFolder(run).metrics()]


@pytest.fixture(scope="module")
def two_processes(mel_store, tmp_path_factory):
    return launch.train(small_config(mel_store, tmp_path_factory.mktemp("two") / "run", workers=2, **SCALE))


@pytest.mark.slow
def test_two_processes_train_what_one_process_trains(mel_store, two_processes, tmp_path):
    """Same global batches in the same order, so the same curve: accuracies equal, losses within LOSS_TOLERANCE."""
    one = train(small_config(mel_store, tmp_path / "one", **SCALE))
    h1, h2 = history(one), history(two_processes)
    assert len(h1) == len(h2) == 3
    for a, b in zip(h1, h2):
        assert a.keys() == b.keys()
        for key in a:
            if key.endswith("loss"):
                assert b[key] == pytest.approx(a[key], rel=LOSS_TOLERANCE), key
            else:
                assert a[key] == b[key], key
    r1, r2 = RunFolder(one).report(), RunFolder(two_processes).report()
    assert r1["test"]["confusion"] == r2["test"]["confusion"] and r1["selection"] == r2["selection"]
    files = {p.relative_to(two_processes).as_posix() for p in Path(two_processes).rglob("*") if p.is_file()}
    assert {
        "config.json",
        "store.json",
        "checkpoints/last.pt",
        "checkpoints/best.pt",
        "report.json",
        "report.md",
    } <= files
    assert len(load_checkpoint(RunFolder(two_processes).last)["rng_ranks"]) == 2


KILLED = """
import sys
from mrnet.train import launch
from tests.train.conftest import small_config
if __name__ == "__main__":
    launch.train(small_config(sys.argv[1], sys.argv[2], workers=2, epochs=3, batch_size=4, dropout=0.0))
"""


@pytest.mark.slow
def test_kill_9_of_one_process_then_resume_equals_the_uninterrupted_run(mel_store, two_processes, tmp_path):
    """SIGKILL of rank 1 after the first epoch: the launcher stops rank 0 and exits with an error
    naming the process; --resume continues on 2 processes and ends bit-identical to a run that never stopped."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import psutil

    run = tmp_path / "killed"
    script = tmp_path / "killed.py"
    script.write_text(KILLED)
    parent = subprocess.Popen(
        [sys.executable, str(script), str(mel_store), str(run)],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.time() + 300
        while not RunFolder(run).last.exists() and parent.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        ranks = [p for p in psutil.Process(parent.pid).children() if "resource_tracker" not in " ".join(p.cmdline())]
        assert len(ranks) == 2 and RunFolder(run).last.exists(), (
            "the run never wrote its first checkpoint on 2 processes"
        )
        victim = max(ranks, key=lambda p: p.create_time())  # rank 1, started last
        os.kill(victim.pid, signal.SIGKILL)
        output, _ = parent.communicate(timeout=120)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert parent.returncode != 0 and "killed by signal 9" in output and "--resume" in output, output
    assert not RunFolder(run).finished
    resumed = launch.resume(run)
    assert history(resumed) == history(two_processes)
    a, b = load_checkpoint(RunFolder(two_processes).last), load_checkpoint(RunFolder(resumed).last)
    assert all(torch.equal(a["model"][name], b["model"][name]) for name in a["model"])
    assert RunFolder(resumed).report()["test"] == RunFolder(two_processes).report()["test"]


# --- refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(workers=0), "--workers 0: give a whole number, 1 <= x <= 1024"),
        (dict(workers=2, gpus=(0,)), "exclude each other"),
        (dict(gpus=(0, 0)), "list each GPU once"),
        (dict(scheduler="tcp://localhost:8786"), "--scheduler runs independent runs (--folds all)"),
    ],
)
def test_scale_options_that_cannot_work_are_refused(mel_store, tmp_path, options, message):
    with pytest.raises(UserError, match=re.escape(message)):
        small_config(mel_store, tmp_path / "r", **options)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_gpus_without_cuda_are_refused_before_anything_starts(mel_store, tmp_path):
    with pytest.raises(UserError, match="no CUDA device"):
        launch.train(small_config(mel_store, tmp_path / "r", gpus=(0, 1)))
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(workers=2, model="linear"), "--model linear is fitted by scikit-learn in one process"),
        (dict(workers=3, batch_size=2), "--batch-size 2 is the global batch, shared by 3 processes"),
        (dict(workers=2, batch_size=3, sync_bn=False), "per-rank BatchNorm needs 2 items per process"),
    ],
)
def test_runs_a_process_group_cannot_train_are_refused(mel_store, tmp_path, options, message):
    with pytest.raises(UserError, match=re.escape(message)):
        launch.train(small_config(mel_store, tmp_path / "r", **options))
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_ctrl_c_stops_every_process_after_the_same_batch_and_resume_is_exact(mel_store, two_processes, tmp_path):
    """mrnet-train --workers 2, SIGINT to it during the second epoch: exit 130 with the resume command,
    a mid-run checkpoint; --resume continues on 2 processes to the uninterrupted run's result."""
    import os
    import signal
    import subprocess
    import sys
    import time

    run = tmp_path / "stopped"
    cli = Path(sys.executable).parent / "mrnet-train"
    args = [
        "--store",
        mel_store,
        "--out",
        run,
        "--preset",
        "tiny",
        "--width",
        "16",
        "--embed-dim",
        "16",
        "--epochs",
        "3",
        "--batch-size",
        "4",
        "--crop-seconds",
        "1",
        "--eval-batch-size",
        "8",
        "--num-workers",
        "0",
        "--device",
        "cpu",
        "--dropout",
        "0",
        "--workers",
        "2",
    ]
    parent = subprocess.Popen([str(cli), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 300
        while not RunFolder(run).metrics() and parent.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert RunFolder(run).metrics(), "the run never finished its first epoch"
        os.kill(parent.pid, signal.SIGINT)
        output, _ = parent.communicate(timeout=120)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert parent.returncode == 130 and f"mrnet-train --resume {run}" in " ".join(output.split()), output
    stopped = load_checkpoint(RunFolder(run).last)
    assert (stopped["epoch"], stopped["step"]) != (3, 0) and not RunFolder(run).finished
    resumed = launch.resume(run)
    assert history(resumed) == history(two_processes)
    a, b = load_checkpoint(RunFolder(two_processes).last), load_checkpoint(RunFolder(resumed).last)
    assert all(torch.equal(a["model"][name], b["model"][name]) for name in a["model"])


def test_a_run_killed_while_writing_its_first_checkpoint_starts_again(trained_run, tmp_path):
    """Epoch 1 wrote best.pt and its metrics line, the kill came before last.pt (on several processes the
    ranks first gather their random states): --resume starts from the beginning and ends as the run did.
    With more epochs on record and no last.pt, the folder is damaged and refused."""
    import shutil

    from mrnet.train.loop import resume

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    folder = RunFolder(run)
    folder.last.unlink()
    folder.report_file.unlink()
    with pytest.raises(UserError, match="the run folder is damaged"):
        resume(run)
    folder.rewrite_metrics(folder.metrics()[:1])
    resume(run)
    assert history(run) == history(trained_run)
    assert RunFolder(run).report()["test"] == RunFolder(trained_run).report()["test"]
