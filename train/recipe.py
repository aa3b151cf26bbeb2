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

import torch
from torch import nn

from mrnet.core.interrupt import ctrl_c_flag
from mrnet.store.reader import FeatureStore
from mrnet.train import distributed, predictions
from mrnet.train import events as tensorboard
from mrnet.train import report as reports
from mrnet.train import state as keys
from mrnet.train.config import required
from mrnet.train.estimate import StepTimer
from mrnet.train.evaluate import Stopped, evaluate
from mrnet.train.events import EventLog
from mrnet.train.loader import EpochBatches, make_loader
from mrnet.train.recipe_setup import RecipeData, restore
from mrnet.train.reporter import Reporter
from mrnet.train.runs import RunFolder, load_checkpoint, load_weights, rng_state, save_checkpoint
from mrnet.train.selection import Patience, improves
from mrnet.train.setup import RunParts, next_stage
from mrnet.train.state import TrainState
from mrnet.train.step import Shown, diverged, train_step
from mrnet.train.tasks import HEADLINE, MULTI

StopCheck = Callable[[int, int], bool]  # (epoch, finished batches in it) -> stop now?


class Interrupted(Exception):
    """Training stopped (Ctrl-C) after saving a checkpoint it can resume from."""

    def __init__(self, run: Path, epoch: int, step: int):
        super().__init__(
            f"stopped in epoch {epoch + 1} after {step} batch{'' if step == 1 else 'es'}; checkpoint saved in {run}"
        )
        self.run, self.epoch, self.step = run, epoch, step


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
        reporter: Reporter,
        should_stop: StopCheck | None,
    ):
        self.parts, self.cfg, self.folder, self.reporter, self.should_stop = (
            parts,
            parts.cfg,
            run,
            reporter,
            should_stop,
        )
        self.select_metric: str = required(self.cfg.select_metric, "select_metric")
        self.ranks = distributed.ranks()
        built, self.device = parts.placed
        self.model: nn.Module = built.model
        self.weights: torch.Tensor | None = built.class_weights
        self.optimizer: torch.optim.Optimizer = built.optimizer
        self.scheduler: torch.optim.lr_scheduler.LRScheduler = built.scheduler
        self.bf16, self.multilabel = parts.bf16, parts.multilabel
        if resume:
            self.state, self.optimizer, self.scheduler = restore(self.cfg, run, self.model, reporter)
        else:
            self.state = TrainState()
        self.patience = Patience(self.select_metric, self.cfg.patience, self.cfg.min_delta)
        if self.state.patience:
            self.patience.best, self.patience.stale = self.state.patience["best"], self.state.patience["stale"]
        if self.ranks.main:
            run.rewrite_metrics(self.state.history)
        self.trainer = distributed.wrap(
            self.model, self.device, sync_bn=self.cfg.sync_bn
        )  # the model itself in one process
        data = RecipeData.build(parts, store, self.model, self.device)
        self.targets, self.augment, self.train_set, self.evals, self.steps = (
            data.targets,
            data.augment,
            data.train_set,
            data.evals,
            data.steps,
        )
        self.events = EventLog(
            tensorboard.folder_of(run.path) if self.ranks.main else None,
            steps_per_epoch=self.steps,
            start_step=self.state.epoch * self.steps + self.state.step,
        )
        if self.events.missing:
            reporter.note(self.events.missing)
        self.scores = (
            ("loss", *HEADLINE[MULTI], "macro_f1", "precision", "recall", "threshold")
            if self.multilabel
            else ("loss", "accuracy", "macro_f1")
        )

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
                raise diverged(cfg, self.folder.path, epoch, state.step + 1, total)
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
        record["best"] = improves(record, state.best, self.select_metric)
        if record["best"]:
            metric = "loss" if self.select_metric == "last" else self.select_metric
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
            watched = self.patience.metric if self.select_metric != "last" else "loss"
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


__all__ = ["Interrupted", "Recipe", "StopCheck", "train_step"]  # train_step: from train/step.py, for loop.py
