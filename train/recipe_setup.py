"""What a ``Recipe`` reads before its first batch: the datasets and loaders of a split (``RecipeData``),
and, resuming, the model, optimizer, scheduler, RNGs and training state of ``last.pt`` (``restore``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from mrnet.store.reader import FeatureStore
from mrnet.train import distributed
from mrnet.train import state as keys
from mrnet.train.augment import Augment, PartAugment
from mrnet.train.augment import for_run as augmentation
from mrnet.train.config import TrainConfig, parse_eval_unit, required
from mrnet.train.crops import CropDataset, EvalUnit, TrackDataset, fragments, track_targets
from mrnet.train.loader import steps_per_epoch
from mrnet.train.reporter import Reporter
from mrnet.train.runs import RunFolder, load_checkpoint, load_weights, seed_everything, set_rng_state
from mrnet.train.setup import RunParts, crop_frames, eval_loader, make_optimizer, make_scheduler
from mrnet.train.state import TrainState


@dataclass
class RecipeData:
    """Random crops for training; for evaluation, what ``--eval-unit`` scores of each track (whole, a crop or chunks)."""

    targets: dict[str, list]  # each split's targets, by item ("train": the epoch's items)
    augment: Augment | PartAugment | None
    train_set: CropDataset
    evals: dict[str, Any]  # "valid", "test": their evaluation loaders
    steps: int  # batches per epoch

    @classmethod
    def build(cls, parts: RunParts, store: FeatureStore, model: torch.nn.Module, device: torch.device) -> RecipeData:
        cfg, location = parts.cfg, store.location
        crop = crop_frames(cfg, store.provenance.frame_rate, model)
        train = (
            fragments(parts.splits.train, crop) if cfg.epoch_mode == "fragments" else parts.splits.train
        )  # the epoch's items
        targets = {
            name: track_targets(part, parts.labels if parts.multilabel else None)
            for name, part in {**parts.splits.parts(), "train": train}.items()
        }
        augment = augmentation(cfg, store.provenance.feature, store.provenance.dim)
        kind, n = parse_eval_unit(required(cfg.eval_unit, "eval_unit"))
        eval_unit = EvalUnit(kind, crop=crop, chunks=n)
        train_set = CropDataset(
            location,
            train,
            parts.layer_positions,
            crop=crop,
            seed=cfg.seed,
            augment=augment,
            targets=targets["train"],
            check_reads=cfg.check_reads,
        )
        evals = {
            name: eval_loader(
                TrackDataset(
                    location,
                    part,
                    parts.layer_positions,
                    eval_unit=eval_unit,
                    targets=targets[name],
                    check_reads=cfg.check_reads,
                ),
                cfg,
                device,
            )
            for name, part in (("valid", parts.splits.valid), ("test", parts.splits.test))
        }
        return cls(targets, augment, train_set, evals, steps_per_epoch(len(train_set), cfg.batch_size))


def restore(
    cfg: TrainConfig, folder: RunFolder, model: torch.nn.Module, reporter: Reporter
) -> tuple[TrainState, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """The model, optimizer, scheduler and RNGs of ``last.pt`` (the model's loaded in place), and its training state."""
    ranks = distributed.ranks()
    ck = load_checkpoint(folder.last)  # on the CPU: RNG states must stay there; load_state_dict moves the rest
    load_weights(model, ck, folder.last, cfg)
    state = TrainState.from_checkpoint(ck)
    # the optimizer of the stage that wrote the checkpoint: the epoch under way, or the one just finished
    optimizer = make_optimizer(cfg, model, epoch=state.epoch if state.step else max(state.epoch - 1, 0))
    scheduler = make_scheduler(cfg, optimizer)
    optimizer.load_state_dict(ck[keys.OPTIMIZER])
    scheduler.load_state_dict(ck[keys.SCHEDULER])
    every = ck.get(keys.RNG_RANKS) or [ck[keys.RNG]]
    set_rng_state(every[ranks.rank] if len(every) == ranks.world else ck[keys.RNG])
    if len(every) != ranks.world:
        if ranks.rank:
            seed_everything(cfg.seed * 1_000_003 + ranks.rank + 7919 * state.epoch)
        reporter.note(
            f"the checkpoint was written by {len(every)} process(es), this run has {ranks.world}: it continues "
            "with the same data order, but dropout draws differ from an uninterrupted run"
        )
    if state.stopped is not None and cfg.epochs > state.epoch:
        reporter.note(f"{folder.path} stopped early at epoch {state.stopped} (--patience): it is not extended")
    reporter.note(f"resuming {folder.path} at epoch {state.epoch + 1}, batch {state.step}")
    return state, optimizer, scheduler


__all__ = ["RecipeData", "restore"]
