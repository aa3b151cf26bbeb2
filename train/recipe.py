"""One split's training, as steps a reader can name: ``Recipe(...).run()`` trains epoch after epoch
(``train_epoch``), evaluates and keeps the best model (``evaluate_and_select``), checkpoints
(``save_last``) and writes the final report (``final_report``). ``loop.fit`` builds it from the run's
``RunParts`` (``setup.assemble``) and hands a closed-form model (the linear probe) to ``probe.fit``.

Exactness: model, optimizer, scheduler, every rank's RNG state and the :class:`~mrnet.train.state.TrainState`
go into ``checkpoints/last.pt`` after each epoch, and on Ctrl-C after the current batch. Crops and
augmentation are seeded by (seed, epoch, track) and the batch order by (seed, epoch), so a resumed run
(on the same device) produces the same parameters and metrics as one that never stopped.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch.nn.functional as F

from mrnet.core.errors import UserError
from mrnet.core.interrupt import ctrl_c_flag
from mrnet.store.reader import FeatureStore
from mrnet.train import distributed, predictions
from mrnet.train import events as tensorboard
from mrnet.train import report as reports
from mrnet.train import state as keys
from mrnet.train.augment import Augment, PartAugment
from mrnet.train.augment import for_run as augmentation
from mrnet.train.config import parse_eval_unit
from mrnet.train.crops import CropDataset, EvalUnit, TrackDataset, fragments, track_targets
from mrnet.train.estimate import StepTimer
from mrnet.train.evaluate import Stopped, autocast, evaluate
from mrnet.train.events import EventLog
from mrnet.train.loader import EpochBatches, make_loader, steps_per_epoch
from mrnet.train.runs import (
    RunFolder,
    load_checkpoint,
    load_weights,
    rng_state,
    save_checkpoint,
    seed_everything,
    set_rng_state,
)
from mrnet.train.selection import Patience, improves
from mrnet.train.setup import RunParts, crop_frames, eval_loader, make_optimizer, make_scheduler, next_stage
from mrnet.train.state import TrainState
from mrnet.train.tasks import HEADLINE, MULTI

StopCheck = Callable[[int, int], bool]  # (epoch, finished batches in it) -> stop now?


class Interrupted(Exception):
    """Training stopped (Ctrl-C) after saving a checkpoint it can resume from."""

    def __init__(self, run: Path, epoch: int, step: int):
        super().__init__(
            f"stopped in epoch {epoch + 1} after {step} batch{'' if step == 1 else 'es'}; checkpoint saved in {run}"
        )
        self.run, self.epoch, self.step = run, epoch, step


def train_step(
    model,
    optimizer,
    weights,
    x,
    y,
    device,
    bf16: bool,
    augment: Augment | PartAugment | None = None,
    plan: dict | None = None,
    multilabel: bool = False,
    share: distributed.Share | None = None,
) -> tuple[float, int]:
    """One optimisation step on a batch: (loss, correct predictions; 0 for tags).

    Single-label: class-weighted cross-entropy. Multi-label: binary cross-entropy per tag (``weights``,
    if any, weigh each tag's positives). A model with ``training_logits`` (MusicNeXt's L-softmax) gives
    its training logits from the labels. The batch arrives as stored (float16 by default) and becomes
    float32 on ``device``, where the augmentation drawn by the loader (``plan``) is applied: on a GPU
    beside the model, instead of ~30 ms of CPU per crop in the loader (docs/performance.md, T1).
    In a process group, ``model`` is the DDP-wrapped model, the batch is this rank's share of the
    global batch and ``share`` says how it enters the loss; the loss returned is the share's part of
    the global batch's loss (the ranks' parts add up to it).
    """
    x, y = x.to(device, non_blocking=True).float(), y.to(device, non_blocking=True)
    if augment is not None and plan is not None:
        x = augment.apply(x, plan)
    with autocast(device, bf16):
        logits = distributed.training_logits(model, x, y)
    reduction = "mean" if share is None else "sum"
    if multilabel:
        loss = F.binary_cross_entropy_with_logits(logits.float(), y, pos_weight=weights, reduction=reduction)
    else:
        loss = F.cross_entropy(logits.float(), y, weight=weights, reduction=reduction)
    if share is not None:
        loss = loss / share.total
    optimizer.zero_grad(set_to_none=True)
    (loss if share is None else loss * share.world).backward()  # DDP averages the ranks' gradients
    optimizer.step()
    return loss.item(), 0 if multilabel else int((logits.argmax(1) == y).sum())


class Shown:
    """An evaluation loader whose batches are reported to the reporter as they are scored (0 at the start)."""

    def __init__(self, loader, part: str, reporter):
        self.loader, self.part, self.reporter = loader, part, reporter
        self.dataset = getattr(loader, "dataset", None)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        total = len(self.loader)
        self.reporter.evaluation(part=self.part, done=0, total=total)
        for done, batch in enumerate(self.loader, 1):
            yield batch
            self.reporter.evaluation(part=self.part, done=done, total=total)


class Recipe:
    """Gradient training of one split in ``run`` from what ``parts`` built; in a process group every
    rank makes one, and rank 0 writes the run folder (train/distributed.py)."""

    def __init__(
        self,
        parts: RunParts,
        run: RunFolder,
        store: FeatureStore,
        *,
        resume: bool,
        reporter,
        should_stop: StopCheck | None,
    ):
        self.parts, self.cfg, self.folder, self.reporter, self.should_stop = (
            parts,
            parts.cfg,
            run,
            reporter,
            should_stop,
        )
        self.ranks = distributed.ranks()
        built = parts.built
        self.model, self.weights, self.optimizer, self.scheduler = (
            built.model,
            built.class_weights,
            built.optimizer,
            built.scheduler,
        )
        self.device, self.bf16, self.multilabel = parts.device, parts.bf16, parts.multilabel
        self.state = self._restore() if resume else TrainState()
        self.patience = Patience(self.cfg.select_metric, self.cfg.patience, self.cfg.min_delta)
        if self.state.patience:
            self.patience.best, self.patience.stale = self.state.patience["best"], self.state.patience["stale"]
        if self.ranks.main:
            run.rewrite_metrics(self.state.history)
        self.trainer = distributed.wrap(
            self.model, self.device, sync_bn=self.cfg.sync_bn
        )  # the model itself in one process
        self._data(store)
        self.scores = (
            ("loss", *HEADLINE[MULTI], "macro_f1", "precision", "recall", "threshold")
            if self.multilabel
            else ("loss", "accuracy", "macro_f1")
        )

    def _restore(self) -> TrainState:
        """The model, optimizer, scheduler and RNGs of ``last.pt``, and its training state."""
        cfg, ranks, reporter = self.cfg, self.ranks, self.reporter
        ck = load_checkpoint(self.folder.last)  # on the CPU: RNG states must stay there; load_state_dict moves the rest
        load_weights(self.model, ck, self.folder.last, cfg)
        state = TrainState.from_checkpoint(ck)
        # the optimizer of the stage that wrote the checkpoint: the epoch under way, or the one just finished
        self.optimizer = make_optimizer(cfg, self.model, epoch=state.epoch if state.step else max(state.epoch - 1, 0))
        self.scheduler = make_scheduler(cfg, self.optimizer)
        self.optimizer.load_state_dict(ck[keys.OPTIMIZER])
        self.scheduler.load_state_dict(ck[keys.SCHEDULER])
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
            reporter.note(f"{self.folder.path} stopped early at epoch {state.stopped} (--patience): it is not extended")
        reporter.note(f"resuming {self.folder.path} at epoch {state.epoch + 1}, batch {state.step}")
        return state

    def _data(self, store: FeatureStore) -> None:
        """Random crops for training; for evaluation, each track's unit (whole, centre crop or chunks)."""
        cfg, parts, location = self.cfg, self.parts, store.location
        crop = crop_frames(cfg, store.provenance.frame_rate, self.model)
        train = (
            fragments(parts.splits.train, crop) if cfg.epoch_mode == "fragments" else parts.splits.train
        )  # the epoch's items
        self.targets = {
            name: track_targets(part, parts.labels if self.multilabel else None)
            for name, part in {**parts.splits.parts(), "train": train}.items()
        }
        self.augment = augmentation(cfg, store.provenance.feature, store.provenance.dim)
        kind, n = parse_eval_unit(cfg.eval_unit)
        unit = EvalUnit(kind, crop=crop, chunks=n)
        self.train_set = CropDataset(
            location,
            train,
            parts.positions,
            crop=crop,
            seed=cfg.seed,
            augment=self.augment,
            targets=self.targets["train"],
            check_reads=cfg.check_reads,
        )
        self.evals = {
            name: eval_loader(
                TrackDataset(
                    location, part, parts.positions, unit=unit, targets=self.targets[name], check_reads=cfg.check_reads
                ),
                cfg,
                self.device,
            )
            for name, part in (("valid", parts.splits.valid), ("test", parts.splits.test))
        }
        self.steps = steps_per_epoch(len(self.train_set), cfg.batch_size)
        self.events = EventLog(
            tensorboard.folder_of(self.folder.path) if self.ranks.main else None,
            steps_per_epoch=self.steps,
            start_step=self.state.epoch * self.steps + self.state.step,
        )
        if self.events.missing:
            self.reporter.note(self.events.missing)

    # --- the run, top to bottom --------------------------------------------------------------------

    def run(self) -> dict:
        """Train the epochs still to go, then report the validation-selected model on test."""
        cfg, state = self.cfg, self.state
        self.reporter.start(
            run=self.folder.path,
            description=self.parts.splits.description,
            epochs=cfg.epochs,
            done=state.epoch,
            steps=self.steps,
        )
        with ctrl_c_flag() as self.ctrl_c:
            try:
                while state.epoch < cfg.epochs and state.stopped is None:
                    began = time.time()
                    record = self.train_epoch()
                    if (state.epoch + 1) % cfg.eval_every == 0 or state.epoch + 1 == cfg.epochs:
                        self.evaluate_and_select(record)
                    record["seconds"] = round(time.time() - began, 3)
                    self.end_epoch(record)
                    stop = self.ctrl_c() or bool(self.should_stop and self.should_stop(state.epoch, 0))
                    if state.epoch < cfg.epochs and state.stopped is None and distributed.agree(stop):
                        raise Interrupted(self.folder.path, state.epoch, 0)
            except Stopped:
                self.save_last()
                raise Interrupted(self.folder.path, state.epoch, state.step) from None
            finally:
                self.reporter.end()
                self.events.close()
        return self.final_report()

    def train_epoch(self) -> dict:
        """The batches of the epoch under way still to go (all of them, unless it resumes part-way);
        returns the epoch's record so far: its learning rate and training loss (and accuracy)."""
        cfg, state = self.cfg, self.state
        epoch = state.epoch
        if state.step == 0 and epoch in {e for e, _, _ in cfg.stages}:
            self.optimizer, self.scheduler = next_stage(cfg, self.model, self.folder, epoch, self.reporter)
        self.model.train()
        timer = (
            StepTimer(steps=self.steps, epochs=cfg.epochs, model=cfg.model)
            if epoch == 0 and state.step == 0 and self.device.type == "cpu" and self.ranks.main
            else None
        )
        batches = EpochBatches(len(self.train_set), cfg.batch_size, seed=cfg.seed, epoch=epoch, skip=state.step)
        parts = distributed.split_epoch(
            batches, self.targets["train"], self.weights, self.multilabel
        )  # this rank's share of each batch
        loader = make_loader(
            self.train_set, [mine for mine, _, _ in parts], num_workers=cfg.num_workers, device=self.device, seed=epoch
        )
        for (x, y, plan), (_, size, part) in zip(loader, parts):
            value, correct = train_step(
                self.trainer,
                self.optimizer,
                self.weights,
                x,
                y,
                self.device,
                self.bf16,
                self.augment,
                plan,
                self.multilabel,
                part,
            )
            stop = self.ctrl_c() or bool(self.should_stop and self.should_stop(epoch, state.step + 1))
            total, correct, count, stop = distributed.reduce_step(value, size, correct, len(y), stop)  # over the ranks
            if not math.isfinite(total):
                raise self.diverged(epoch, state.step + 1, total)
            state.count(total, correct, count)
            value = value if part is None else total / size
            self.reporter.batch(epoch=epoch, step=state.step, steps=self.steps, loss=value)
            self.events.batch(epoch, state.step, value)
            note = timer.tick(state.step) if timer is not None else None
            if note:
                self.reporter.note(note)
            if stop:
                raise Stopped
        record = {
            "epoch": epoch + 1,
            "lr": self.optimizer.param_groups[0]["lr"],
            "train_loss": state.loss_sum / max(state.seen, 1),
        }
        if not self.multilabel:
            record["train_accuracy"] = state.correct / max(state.seen, 1)
        return record

    def diverged(self, epoch: int, step: int, loss: float) -> UserError:
        """The run stops at a non-finite loss: its weights are spoiled, so nothing of this epoch is saved,
        and what was written before (metrics.jsonl, the last end-of-epoch checkpoint, best.pt) stays."""
        cfg = self.cfg
        rates = (
            f"--lr {cfg.lr:g}"
            + (f", --lr-min {cfg.lr_min:g}" if cfg.schedule == "cosine" else "")
            + (f", --stage {' '.join(f'{e}:{o}:{lr:g}' for e, o, lr in cfg.stages)}" if cfg.stages else "")
        )
        kept = (
            f"epochs 1-{epoch} and their checkpoint are kept in {self.folder.path}"
            if epoch
            else f"nothing was checkpointed in {self.folder.path}"
        )
        return UserError(
            f"training diverged: the loss of batch {step} of epoch {epoch + 1} is {loss} (not a finite number); {kept}. "
            f"The usual cause is a learning rate too high ({rates}): start a new run with a lower --lr "
            f"(resuming would diverge again). Features that are not finite would do it too: mrnet-store verify {cfg.store}"
        )

    def shown(self, part: str) -> Shown:
        """The evaluation batches of split ``part``, each reported as it is scored (the display's progress)."""
        return Shown(self.evals[part], part, self.reporter)

    def judge(self, part: str, threshold: float | None = None) -> dict:
        """Metrics of split ``part``, sharded over the ranks and gathered in one-process order."""
        if not self.cfg.sync_bn:
            distributed.broadcast_buffers(self.model)
        return evaluate(
            self.model,
            self.shown(part),
            num_classes=len(self.parts.labels),
            device=self.device,
            class_weights=self.weights,
            multilabel=self.multilabel,
            threshold=threshold,
            bf16=self.bf16,
            stop=None if self.ranks.many else self.ctrl_c,
            gather=distributed.gather_batches,
        )

    def evaluate_and_select(self, record: dict) -> None:
        """Validation (and the test curve) into ``record``; a better model is kept as best.pt, and
        ``--patience`` may stop the run."""
        cfg, state, epoch = self.cfg, self.state, self.state.epoch
        valid = self.judge("valid")
        record.update({f"valid_{k}": valid[k] for k in self.scores if k in valid})
        if cfg.test_curve:  # at the threshold validation chose
            test = self.judge("test", valid.get("threshold"))
            record.update({f"test_{k}": test[k] for k in self.scores if k in test and k != "threshold"})
        record["best"] = improves(record, state.best, cfg.select_metric)
        if record["best"]:
            metric = "loss" if cfg.select_metric == "last" else cfg.select_metric
            state.best = {"epoch": epoch + 1, "metric": record[f"valid_{metric}"], "loss": record["valid_loss"]}
        if record["best"] and self.ranks.main:
            save_checkpoint(
                self.folder.best,
                {
                    keys.MODEL: self.model.state_dict(),
                    keys.MODEL_NAME: cfg.model,
                    keys.EPOCH: epoch + 1,
                    keys.VALID: {k: v for k, v in record.items() if k.startswith("valid_")},
                },
            )
        if self.patience.update(record) and epoch + 1 < cfg.epochs:
            state.stopped = epoch + 1
            watched = self.patience.metric if cfg.select_metric != "last" else "loss"
            self.reporter.note(
                f"stopped early after epoch {epoch + 1}: validation {watched} has not improved by more than "
                f"{cfg.min_delta:g} for {cfg.patience} evaluations (--patience)"
            )

    def end_epoch(self, record: dict) -> None:
        """Step the schedule, record the epoch (metrics.jsonl) and checkpoint it."""
        cfg, epoch = self.cfg, self.state.epoch
        if epoch + 1 <= (cfg.schedule_epochs or cfg.epochs):  # an extended run's added epochs stay at lr_min
            with (
                warnings.catch_warnings()
            ):  # resumed after the epoch's last batch: no optimizer.step() in this process yet
                warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step\\(\\)` before")
                self.scheduler.step()
        self.state.end_epoch(record)
        if self.ranks.main:
            self.folder.append_metrics(record)
        self.save_last()
        self.reporter.epoch(record)
        self.events.epoch(record)

    def save_last(self) -> None:
        """checkpoints/last.pt, with every rank's RNG state: each rank's dropout resumes exactly."""
        if not self.cfg.sync_bn:
            distributed.broadcast_buffers(self.model)
        rngs = distributed.gather(rng_state())
        if self.ranks.main:
            self.state.patience = self.patience.state()
            save_checkpoint(
                self.folder.last,
                {
                    keys.MODEL: self.model.state_dict(),
                    keys.MODEL_NAME: self.cfg.model,
                    keys.OPTIMIZER: self.optimizer.state_dict(),
                    keys.SCHEDULER: self.scheduler.state_dict(),
                    keys.RNG: rngs[0],
                    **({keys.RNG_RANKS: rngs} if self.ranks.many else {}),
                    **self.state.to_checkpoint(),
                },
            )
        distributed.barrier()  # on disk before any rank reads it (a new stage, the final report)

    def final_report(self) -> dict:
        """The validation-selected model on the test split, at the threshold validation chose."""
        best = load_checkpoint(self.folder.best)
        load_weights(self.model, best, self.folder.best, self.cfg)
        threshold = best[keys.VALID].get("valid_threshold")
        kept = {
            part: evaluate(
                self.model,
                self.shown(part),
                num_classes=len(self.parts.labels),
                device=self.device,
                class_weights=self.weights,
                multilabel=self.multilabel,
                threshold=threshold,
                bf16=self.bf16,
                gather=distributed.gather_batches,
                keep=True,
            )
            for part in ("valid", "test")
        }
        test = kept["test"]
        if not self.ranks.main:
            return {}
        splits = self.parts.splits
        predictions.write(
            self.folder.path / predictions.FILE,
            predictions.of_run(
                kept,
                self.evals,
                {"valid": splits.valid, "test": splits.test},
                batch_size=self.cfg.eval_batch_size,
                fold=self.cfg.fold,
                seed=self.cfg.seed,
                labels=self.parts.labels,
                threshold=threshold,
            ),
        )
        weights = None if self.weights is None else self.weights.tolist()
        result = reports.build(
            cfg=self.cfg,
            run=self.folder,
            store=self.folder.store_info(),
            history=self.state.history,
            best=best,
            test=test,
            model=self.model,
            class_weights=weights,
            stopped=self.state.stopped,
        )
        reports.write(self.folder, result)
        tensorboard.log_result(self.folder.path, result, step=self.state.epoch * self.steps)
        return result


__all__ = ["Interrupted", "Recipe", "StopCheck", "train_step"]
