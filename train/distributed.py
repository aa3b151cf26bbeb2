"""One run on several processes: PyTorch's distributed data parallel (DDP), as ``loop.fit`` uses it.

Every process (a *rank*) runs the same ``fit``; they differ in what they read and what they write:

- **Data.** ``--batch-size`` is the global batch. Every rank draws the same seeded epoch order
  (``loader.EpochBatches``) and takes its contiguous share of each global batch (``share``): with 2
  ranks and batch 48, rank 0 trains on items 0-23 of each batch and rank 1 on 24-47, the same 48
  items one process takes. The loss of a share is its sum over the global batch's normaliser
  (``Share``), so the averaged gradient is the one-process gradient of the global batch, whatever
  the class weights. The learning rate is not scaled: the global batch, and so the recipe, is the same.
- **BatchNorm.** By default every BatchNorm layer normalises over the global batch (``sync_batchnorm``:
  ``torch.nn.SyncBatchNorm`` on CUDA; on CPU, where PyTorch's refuses to run, ``GlooSyncBatchNorm``
  here), so N processes train the model one process trains. ``--no-sync-bn`` keeps per-rank
  statistics (cheaper; the recipe then depends on the number of processes) with rank 0's running
  statistics broadcast, as DDP does.
- **Evaluation** is sharded: rank r scores evaluation batches r, r + N, ...; ``gather_batches``
  puts the per-batch results back in one-process order, so the metrics are the one-process metrics.
- **Writes** (run folder, checkpoints, metrics, report, plots, TensorBoard) happen on rank 0 only.

Without a process group (one process) every helper here is a no-op and ``ranks()`` is rank 0 of 1.

>>> share([10, 11, 12, 13, 14], rank=1, world=2)
[13, 14]
>>> [share(list(range(5)), rank=r, world=3) for r in range(3)]
[[0, 1], [2, 3], [4]]
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

#: Variables torchrun (and SLURM/Kubernetes launchers following it) set in every process.
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Ranks:
    """This process's place in the run: rank ``rank`` of ``world`` processes."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes the run folder and reports progress."""
        return self.rank == 0

    @property
    def many(self) -> bool:
        return self.world > 1


def ranks() -> Ranks:
    """The current process group's rank and size, or rank 0 of 1 without one."""
    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size())
    return Ranks()


def under_torchrun() -> bool:
    """Started by torchrun (or a launcher that sets its variables) with more than one process."""
    return all(k in os.environ for k in TORCHRUN_ENV) and int(os.environ["WORLD_SIZE"]) > 1


def torchrun_device(option: str | None = "auto") -> str:
    """The device of a torchrun process: ``cuda:LOCAL_RANK`` when this machine has GPUs (and ``--device``
    is not ``cpu``), else the CPU."""
    return f"cuda:{int(os.environ['LOCAL_RANK'])}" if torch.cuda.is_available() and option != "cpu" else "cpu"


def init(
    device: str | torch.device, *, rank: int | None = None, world: int | None = None, address: str | None = None
) -> Ranks:
    """Join the process group: NCCL on CUDA, gloo on CPU. Given ``rank``/``world``/``address``
    (``tcp://host:port``) the group is that one; without them torchrun's environment says."""
    device = torch.device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if rank is None:
        dist.init_process_group(backend)
    else:
        dist.init_process_group(backend, init_method=address, rank=rank, world_size=-1 if world is None else world)
    return ranks()


def device(name: str | None):
    """This rank's device: in an NCCL group, the GPU ``init`` set; in a gloo group, the CPU; alone,
    ``--device`` as ``core.machine.pick_device`` reads it."""
    from mrnet.core.machine import pick_device

    if dist.is_available() and dist.is_initialized():
        return (
            torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
        )
    return pick_device(name)


def close() -> None:
    """Leave the process group (if any)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


# --- data ---------------------------------------------------------------------------------------


def share(batch: Sequence, *, rank: int, world: int) -> list:
    """Rank ``rank``'s contiguous part of a global batch; sizes differ by at most one, earlier ranks larger."""
    n = len(batch)
    start = rank * (n // world) + min(rank, n % world)
    return list(batch[start : start + n // world + (1 if rank < n % world else 0)])


@dataclass(frozen=True)
class Share:
    """How a rank's part of a global batch enters the loss: its summed loss divided by ``total`` (the
    global batch's normaliser: the sum of its items' class weights, or its count of loss terms), times
    ``world`` because DDP averages the ranks' gradients."""

    total: float
    world: int


def split_epoch(
    batches: Iterable[Sequence[tuple[int, int]]], targets: Sequence, weights: torch.Tensor | None, multilabel: bool
) -> list[tuple[list, int, Share | None]]:
    """For each global batch of ``(epoch, index)`` items: this rank's share, the global batch's size and
    how the share enters the loss (None in one process, where the share is the batch)."""
    r = ranks()
    if not r.many:
        return [(list(b), len(b), None) for b in batches]
    w = None if weights is None else weights.detach().cpu()
    return [
        (
            share(b, rank=r.rank, world=r.world),
            len(b),
            Share(normaliser([i for _, i in b], targets, w, multilabel), r.world),
        )
        for b in batches
    ]


def normaliser(items: Sequence[int], targets: Sequence, weights: torch.Tensor | None, multilabel: bool) -> float:
    """What one process divides a global batch's summed loss by: the sum of the items' class weights
    (cross-entropy's weighted mean), their count without weights, or items x tags (binary cross-entropy's mean).

    >>> normaliser([0, 2], [1, 0, 1], torch.tensor([1.0, 3.0]), False), normaliser([0, 2], [1, 0, 1], None, False)
    (6.0, 2.0)
    """
    if multilabel:
        return float(len(items) * len(targets[items[0]]))
    if weights is None:
        return float(len(items))
    return float(sum(float(weights[int(targets[i])]) for i in items))


# --- the model ----------------------------------------------------------------------------------


class TrainingForward(nn.Module):
    """What DDP wraps: its forward is the training forward, so a model whose training logits come
    from its own method (MusicNeXt's L-softmax ``training_logits``) still goes through DDP's forward,
    which is what makes its gradients synchronise."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return training_logits(self.model, x, y)


def training_logits(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """A model's training logits: ``model.training_logits`` on its normalised input when it has one, else its forward."""
    if isinstance(model, (TrainingForward, nn.parallel.DistributedDataParallel)):
        return model(x, y)
    if hasattr(model, "training_logits"):  # its own forward path: apply the run's input normalisation here
        own: Any = model  # the model class's own methods, which nn.Module's attribute typing cannot see
        return own.training_logits(own.input_norm(x) if hasattr(model, "input_norm") else x, y)
    return model(x)


def wrap(model: nn.Module, device: torch.device, *, sync_bn: bool) -> nn.Module:
    """``model`` itself in one process; in a group, DDP around its training forward (BatchNorm made
    global first when ``sync_bn``). ``model`` stays the module to evaluate, save and report."""
    if not ranks().many:
        return model
    if sync_bn:
        sync_batchnorm(model, device)
    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    # per-rank BatchNorm: rank 0's running statistics go to every rank before each forward (DDP's default)
    return nn.parallel.DistributedDataParallel(TrainingForward(model), device_ids=ids, broadcast_buffers=not sync_bn)


def sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm layer of ``model``, in place, normalising over the global batch: PyTorch's
    ``SyncBatchNorm`` on CUDA, ``GlooSyncBatchNorm`` on CPU. Parameter and buffer names stay."""
    for name, child in list(model.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(
            child, (nn.SyncBatchNorm, GlooSyncBatchNorm)
        ):
            new = (
                nn.SyncBatchNorm.convert_sync_batchnorm(child)
                if device.type == "cuda"
                else GlooSyncBatchNorm.like(child)
            )
            setattr(model, name, new)
        else:
            sync_batchnorm(child, device)
    return model


class GlooSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the global batch on CPU processes (gloo), where ``torch.nn.SyncBatchNorm`` refuses
    to run. In training, the mean and then the variance are summed over the ranks with autograd-aware
    all-reduces (two passes, as exact as one process's); in evaluation it is a plain BatchNorm."""

    @classmethod
    def like(cls, bn: nn.modules.batchnorm._BatchNorm) -> GlooSyncBatchNorm:
        """The same layer, its parameters and buffers the very tensors of ``bn`` (an optimizer built on them still holds them)."""
        new = cls(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
        new.weight, new.bias = bn.weight, bn.bias
        new.running_mean, new.running_var, new.num_batches_tracked = (
            bn.running_mean,
            bn.running_var,
            bn.num_batches_tracked,
        )
        new.train(bn.training)
        return new

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and ranks().many):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = all_reduce(torch.tensor([float(x.numel() // x.shape[1])], dtype=x.dtype)).detach()
        mean = all_reduce(x.sum(dims)) / count
        centred = x - mean.view(shape)
        var = all_reduce(centred.square().sum(dims)) / count
        if (
            self.track_running_stats
            and self.running_mean is not None
            and self.running_var is not None
            and self.num_batches_tracked is not None
        ):
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                n = float(count)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * (n / max(n - 1, 1)), alpha=m)
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


def broadcast_buffers(model: nn.Module) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank: what evaluation and the
    checkpoint see with per-rank BatchNorm. A no-op in one process."""
    if ranks().many:
        for buffer in model.buffers():
            dist.broadcast(buffer.data, src=0)


# --- collectives ----------------------------------------------------------------------------------


def reduce_step(loss_share: float, batch: int, correct: int, count: int, stop: bool) -> tuple[float, int, int, bool]:
    """One step's numbers summed over the ranks: (global batch loss times its size, correct
    predictions, items, whether any rank wants to stop). In one process, ``loss_share * batch`` and the rest as given."""
    if not ranks().many:
        return loss_share * batch, correct, count, stop
    t = torch.tensor([loss_share * batch, correct, count, float(stop)], dtype=torch.float64, device=_wire())
    dist.all_reduce(t)
    t = t.cpu()
    return float(t[0]), int(t[1]), int(t[2]), bool(t[3] > 0)


def agree(flag: bool) -> bool:
    """True on every rank when it is true on any (a stop request): ranks stop at the same batch."""
    if not ranks().many:
        return flag
    t = torch.tensor([float(flag)], device=_wire())
    dist.all_reduce(t)
    return bool(t.cpu()[0] > 0)


def _wire() -> torch.device:
    """Where a collective's tensors must be: the GPU in an NCCL group, the CPU with gloo."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def barrier() -> None:
    if ranks().many:
        dist.barrier()


def gather_batches(parts: list) -> list:
    """Every rank's per-batch results in one-process order: rank r held batches r, r + N, r + 2N, ..."""
    r = ranks()
    if not r.many:
        return parts
    every: list = [None] * r.world
    dist.all_gather_object(every, parts)
    return [every[k][j] for j in range(max(len(p) for p in every)) for k in range(r.world) if j < len(every[k])]


def gather(value):
    """``[value of rank 0, value of rank 1, ...]`` on every rank (``[value]`` in one process)."""
    r = ranks()
    if not r.many:
        return [value]
    every: list = [None] * r.world
    dist.all_gather_object(every, value)
    return every


def strided(batches: list, r: Ranks | None = None) -> list:
    """Rank r's evaluation batches: r, r + N, r + 2N, ... (``gather_batches`` undoes it)."""
    r = r or ranks()
    return batches[r.rank :: r.world]


def broadcast(value):
    """Rank 0's ``value`` on every rank (``value`` in one process)."""
    if not ranks().many:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
