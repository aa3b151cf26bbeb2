"""Training: ``train(cfg)`` starts a run, ``resume(run_dir)`` continues one exactly where it stopped.

One run trains its model on random crops of the training split, evaluates whole tracks of the
validation split (and, for the curve and the optimistic number only, the test split) each
``eval_every`` epochs, keeps the model of the best validation epoch, and writes the final report
from that model's test metrics. ``--folds all`` runs every fold in ``fold-<k>/`` and aggregates.

Exactness: model, optimizer, scheduler and every RNG state go into ``checkpoints/last.pt`` after
each epoch, and on Ctrl-C after the current batch. Crops and augmentation are seeded by (seed,
epoch, track) and the batch order by (seed, epoch), so a resumed run (on the same device and
worker-independent) produces the same parameters and metrics as one that never stopped.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from mrnet.core.errors import UserError
from mrnet.core.interrupt import ctrl_c_flag
from mrnet.store.reader import FeatureStore
from mrnet.train import distributed, normalize, probe
from mrnet.train import report as reports
from mrnet.train.augment import Augment
from mrnet.train.config import TrainConfig, parse_eval_unit
from mrnet.train.datasets import CropDataset, EvalUnit, TrackDataset, track_targets
from mrnet.train.evaluate import Stopped, autocast, evaluate
from mrnet.train.events import EventLog
from mrnet.train.loader import EpochBatches, make_loader, steps_per_epoch
from mrnet.train.runs import RunFolder, default_run_dir, load_checkpoint, rng_state, save_checkpoint, seed_everything, set_rng_state, write_json
from mrnet.train.selection import Patience, improves
from mrnet.train.setup import (build_model, build_run, check_same_store, crop_frames, eval_loader, make_optimizer, make_scheduler, model_input,
                               next_stage, open_store, store_record, warn_unlearnable, with_defaults)
from mrnet.train.splits import fold_count, has_official_split, split_tracks, usable
from mrnet.train.tasks import HEADLINE, MULTI


class Interrupted(Exception):
    """Training stopped (Ctrl-C) after saving a checkpoint it can resume from."""

    def __init__(self, run: Path, epoch: int, step: int):
        super().__init__(f"stopped in epoch {epoch + 1} after {step} batch{'' if step == 1 else 'es'}; checkpoint saved in {run}")
        self.run, self.epoch, self.step = run, epoch, step


class Reporter:
    """What training tells its caller; the CLI shows it with rich, library callers may ignore it."""

    def note(self, text: str) -> None: ...
    def start(self, *, run: Path, description: str, epochs: int, done: int, steps: int) -> None: ...
    def batch(self, *, epoch: int, step: int, steps: int, loss: float) -> None: ...
    def epoch(self, record: dict) -> None: ...
    def end(self) -> None: ...


StopCheck = Callable[[int, int], bool]  # (epoch, finished batches in it) -> stop now?


# --- entry points -------------------------------------------------------------------------------


def train(cfg: TrainConfig, *, reporter: Reporter | None = None, should_stop: StopCheck | None = None) -> Path:
    """Start a run in a new folder (``cfg.out`` or ``runs/<store>-<time>``); returns the folder. In a
    process group (train/distributed.py) every rank calls it, with the same ``cfg.out``."""
    reporter = reporter or Reporter()
    cfg, run, store = prepare(cfg, reporter)
    return _run(cfg, run, store, resume=False, reporter=reporter, should_stop=should_stop)


def start(cfg: TrainConfig, *, reporter: Reporter | None = None) -> Path:
    """Train a run that ``prepare`` checked (its config.json written): what each process of a group
    started by ``launch.spawn`` runs."""
    return _run(cfg, RunFolder(Path(cfg.out)), open_store(cfg.store), resume=False, reporter=reporter or Reporter(), should_stop=None)


def prepare(cfg: TrainConfig, reporter: Reporter) -> tuple[TrainConfig, RunFolder, FeatureStore]:
    """Check a new run against its store and write its config.json (rank 0): everything that can fail
    on this store and config fails here, before training starts."""
    run = RunFolder(Path(cfg.out) if cfg.out else default_run_dir(cfg.store))
    if distributed.agree(distributed.ranks().main and run.config_file.exists()):
        raise UserError(f"{run.path} already holds a run. Continue it with mrnet-train --resume {run.path}, or pass another --out.")
    store = open_store(cfg.store)
    if cfg.fold is None and not cfg.all_folds and not has_official_split(usable(store.tracks)) and fold_count(usable(store.tracks)):
        cfg = cfg.with_(fold=0)
        reporter.note(f"{store.location.url} has folds and no official split: training fold 0 (--fold K for another, --folds all for every one).")
    cfg = cfg.with_(out=str(run.path))
    # everything that can fail on this store and config fails here, before the run folder exists
    if cfg.all_folds and not fold_count(usable(store.tracks)):
        raise UserError(f"{store.location.url} has no folds (only an official split); drop --folds all.")
    cfg = with_defaults(cfg, store)
    splits = split_tracks(store.tracks, fold=0 if cfg.all_folds else cfg.fold, where=store.location.url)
    normalize.for_run(cfg.normalize, store, splits.train, store.layer_positions(cfg.layers))  # refuses a store without statistics now
    model = build_model(cfg, model_input(store.provenance, len(store.layer_positions(cfg.layers)), store.genres.height))
    crop_frames(cfg, store.provenance.frame_rate, model)
    if distributed.ranks().main:
        write_json(run.config_file, cfg.to_json())
    distributed.barrier()
    return cfg, run, store


def resume(run_dir: Path, *, reporter: Reporter | None = None, should_stop: StopCheck | None = None, **changes) -> Path:
    """Continue the run in ``run_dir`` from its last checkpoint. ``changes`` (None: unchanged): ``store``
    (the store moved), the machine (``num_workers``, ``device``, ``workers``, ``gpus``, ``scheduler``),
    ``epochs`` (more than the run's: a finished run is extended, see ``resumed_config``). A run stopped
    before its first checkpoint starts again from the beginning, with its own config."""
    run = RunFolder(Path(run_dir))
    cfg = resumed_config(run, **changes)
    return _run(cfg, run, open_store(cfg.store), resume=True, reporter=reporter or Reporter(), should_stop=should_stop)


def resumed_config(run: RunFolder, **changes) -> TrainConfig:
    """A run's config with the allowed changes. More ``epochs`` extends it: the cosine schedule keeps
    the span it was planned over (``schedule_epochs``) and the added epochs run at ``lr_min``; a
    constant or staged schedule goes on as it is (a stage that now falls inside the run begins)."""
    cfg = run.config()
    epochs = changes.pop("epochs", None)
    cfg = cfg.with_(**{k: v for k, v in changes.items() if v is not None})
    if epochs is not None and epochs != cfg.epochs:
        if epochs < cfg.epochs:
            raise UserError(f"--epochs {epochs}: {run.path} is a run of {cfg.epochs} epochs; a run can be extended, not shortened")
        cfg = cfg.with_(epochs=epochs, schedule_epochs=cfg.schedule_epochs or cfg.epochs)
    return cfg


def _run(cfg: TrainConfig, run: RunFolder, store: FeatureStore, *, resume: bool, reporter: Reporter, should_stop) -> Path:
    if not cfg.all_folds:
        fit(cfg, run, store, resume=resume, reporter=reporter, should_stop=should_stop)
        return run.path
    for k, sub_cfg in fold_configs(cfg, run, store).items():
        fit(sub_cfg, run.fold(k), store, resume=run.fold(k).last.exists(), reporter=reporter, should_stop=should_stop)
    distributed.barrier()  # every fold's report written
    if distributed.ranks().main:
        reports.write_aggregate(run, [run.fold(k).report() for k in range(fold_count(usable(store.tracks)))])
    return run.path


def fold_configs(cfg: TrainConfig, run: RunFolder, store: FeatureStore) -> dict[int, TrainConfig]:
    """The folds of a ``--folds all`` run still to train (unfinished, or finished with fewer epochs
    than an extended run has), each a one-fold config of its own ``fold-<k>/`` folder, in one process."""
    main = distributed.ranks().main
    if not run.store_file.exists() and main:
        write_json(run.store_file, store_record(store, cfg, description="every fold"))
    distributed.barrier()
    check_same_store(run, store)
    if cfg.epochs != run.config().epochs and main:  # extended
        write_json(run.config_file, cfg.to_json())
    todo = {}
    for k in range(fold_count(usable(store.tracks))):
        sub = run.fold(k)
        if not (sub.finished and sub.config().epochs >= cfg.epochs):
            todo[k] = TrainConfig.from_json({**cfg.to_json(), "fold": k, "all_folds": False, "out": str(sub.path),
                                             "workers": None, "gpus": [], "scheduler": None})
    return todo


# --- one split ----------------------------------------------------------------------------------


def train_step(model, optimizer, weights, x, y, device, bf16: bool, augment: Augment | None = None,
               plan: dict | None = None, multilabel: bool = False, share: distributed.Share | None = None) -> tuple[float, int]:
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


def fit(cfg: TrainConfig, run: RunFolder, store: FeatureStore, *, resume: bool = False, reporter: Reporter | None = None,
        should_stop: StopCheck | None = None) -> dict:
    """Train one split (official or one fold) in ``run``; returns the final report. In a process group
    every rank calls it; rank 0 writes the run folder (train/distributed.py)."""
    ranks = distributed.ranks()
    main = ranks.main
    reporter = reporter if reporter is not None and main else Reporter()
    cfg = with_defaults(cfg, store)  # a run folder from before a choice was recorded
    splits = split_tracks(store.tracks, fold=cfg.fold, where=store.location.url)
    labels = store.genres["name"].to_list()  # genres, or a multi-label store's tags
    multilabel = store.provenance.task == MULTI
    positions = store.layer_positions(cfg.layers)
    if ranks.many and cfg.model == "linear":
        raise UserError("--model linear is fitted by scikit-learn in one process; drop --workers/--gpus (or torchrun) for it")
    if resume and run.store_file.exists():
        check_same_store(run, store)
        if run.config_file.exists() and cfg.epochs > run.config().epochs and main:  # extended (resumed_config)
            write_json(run.config_file, cfg.to_json())
            run.report_file.unlink(missing_ok=True)  # finished again when the added epochs are
    elif main:
        if not run.config_file.exists():  # train() wrote it; a fold of --folds all writes its own here
            write_json(run.config_file, cfg.to_json())
        write_json(run.store_file, store_record(store, cfg, description=splits.description, sizes=splits.sizes()))
    distributed.barrier()
    if resume and not run.last.exists():
        if run.finished or len(run.metrics()) > 1:  # best.pt and one metrics line alone: killed as its first checkpoint was written
            raise UserError(f"{run.last} is missing, but the run has evaluated epochs (metrics.jsonl or report.json say so): "
                            f"the run folder is damaged. Restore last.pt from a backup, or start a new run with another --out.")
        reporter.note(f"{run.path} stopped before its first checkpoint: starting it again from the beginning")
        resume = False  # it runs from the start, as it would have
    device = distributed.device(cfg.device)
    bf16 = cfg.bf16 and device.type == "cuda"

    # input normalisation (recorded in the run folder), model, class weights, optimizer, schedule
    if resume:
        norm = normalize.read(run.path, cfg.normalize or "instance")
    else:
        norm = normalize.for_run(cfg.normalize or "instance", store, splits.train, positions)
        if main:
            normalize.write(run.path, norm)
    setup = build_run(cfg, model_input(store.provenance, len(positions), len(labels)), splits.train, device, norm, labels)
    model, weights, optimizer, scheduler = setup.model, setup.class_weights, setup.optimizer, setup.scheduler
    if ranks.rank:  # the same initial model everywhere; dropout draws of its own on every rank
        seed_everything(cfg.seed * 1_000_003 + ranks.rank)
    warn_unlearnable(reporter, labels, splits.train, weights, multilabel)
    targets = {name: track_targets(part, labels if multilabel else None)
               for name, part in (("train", splits.train), ("valid", splits.valid), ("test", splits.test))}
    if cfg.model == "linear":  # fitted for each C of a grid, not by epochs (train/probe.py); resuming fits it again
        cpu = torch.device("cpu")
        evals = {name: eval_loader(TrackDataset(store.location, part, positions, check_reads=cfg.check_reads), cfg, cpu)
                 for name, part in (("train", splits.train), ("valid", splits.valid), ("test", splits.test))}
        run.rewrite_metrics([])
        return probe.fit(cfg, run, store, splits, positions, model.cpu(), weights.cpu(), evals, labels, reporter)
    state = {"epoch": 0, "step": 0, "sums": [0.0, 0, 0], "best": None, "history": [], "patience": None, "stopped": None}
    if resume:
        ck = load_checkpoint(run.last)  # on the CPU: RNG states must stay there; load_state_dict moves the rest
        model.load_state_dict(ck["model"])
        state = {k: ck.get(k, state[k]) for k in state}
        # the optimizer of the stage that wrote the checkpoint: the epoch under way, or the one just finished
        optimizer = make_optimizer(cfg, model, epoch=state["epoch"] if state["step"] else max(state["epoch"] - 1, 0))
        scheduler = make_scheduler(cfg, optimizer)
        optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["scheduler"])
        every = ck.get("rng_ranks") or [ck["rng"]]
        set_rng_state(every[ranks.rank] if len(every) == ranks.world else ck["rng"])
        if len(every) != ranks.world:
            if ranks.rank:
                seed_everything(cfg.seed * 1_000_003 + ranks.rank + 7919 * state["epoch"])
            reporter.note(f"the checkpoint was written by {len(every)} process(es), this run has {ranks.world}: it continues "
                          "with the same data order, but dropout draws differ from an uninterrupted run")
        if state["stopped"] is not None and cfg.epochs > state["epoch"]:
            reporter.note(f"{run.path} stopped early at epoch {state['stopped']} (--patience): it is not extended")
        reporter.note(f"resuming {run.path} at epoch {state['epoch'] + 1}, batch {state['step']}")
    patience = Patience(cfg.select_metric, cfg.patience, cfg.min_delta)
    if state["patience"]:
        patience.best, patience.stale = state["patience"]["best"], state["patience"]["stale"]
    if main:
        run.rewrite_metrics(state["history"])
    trainer = distributed.wrap(model, device, sync_bn=cfg.sync_bn)  # the model itself in one process

    # data: random crops for training; for evaluation, each track's unit (whole, centre crop or chunks)
    location = store.location
    augment = Augment(cfg.noise_p, cfg.time_masks, cfg.time_mask_frac, cfg.feature_masks, cfg.feature_mask_frac,
                      time_flip=cfg.time_flip) if cfg.augment else None
    crop = crop_frames(cfg, store.provenance.frame_rate, model)
    kind, n = parse_eval_unit(cfg.eval_unit)
    unit = EvalUnit(kind, crop=crop, chunks=n)
    train_set = CropDataset(location, splits.train, positions, crop=crop, seed=cfg.seed, augment=augment, targets=targets["train"],
                             check_reads=cfg.check_reads)
    evals = {name: eval_loader(TrackDataset(location, part, positions, unit=unit, targets=targets[name], check_reads=cfg.check_reads), cfg, device)
             for name, part in (("valid", splits.valid), ("test", splits.test))}
    steps = steps_per_epoch(len(train_set), cfg.batch_size)
    events = EventLog(run.path / "tensorboard" if main else None, steps_per_epoch=steps, start_step=state["epoch"] * steps + state["step"])
    if events.missing:
        reporter.note(events.missing)
    scores = ("loss", *HEADLINE[MULTI], "macro_f1", "precision", "recall", "threshold") if multilabel else ("loss", "accuracy", "macro_f1")

    def judge(part: str, threshold: float | None = None) -> dict:  # sharded over the ranks, gathered in one-process order
        if not cfg.sync_bn:
            distributed.broadcast_buffers(model)
        return evaluate(model, evals[part], num_classes=len(labels), device=device, class_weights=weights, multilabel=multilabel,
                        threshold=threshold, bf16=bf16, stop=None if ranks.many else ctrl_c, gather=distributed.gather_batches)

    def save_last() -> None:  # every rank's RNG state: each rank's dropout resumes exactly
        if not cfg.sync_bn:
            distributed.broadcast_buffers(model)
        rngs = distributed.gather(rng_state())
        if main:
            save_checkpoint(run.last, {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                                       "rng": rngs[0], **({"rng_ranks": rngs} if ranks.many else {}), **state, "patience": patience.state()})
        distributed.barrier()  # on disk before any rank reads it (a new stage, the final report)

    reporter.start(run=run.path, description=splits.description, epochs=cfg.epochs, done=state["epoch"], steps=steps)
    with ctrl_c_flag() as ctrl_c:
        try:
            while state["epoch"] < cfg.epochs and state["stopped"] is None:
                epoch, began = state["epoch"], time.time()
                if state["step"] == 0 and epoch in {e for e, _, _ in cfg.stages}:
                    optimizer, scheduler = next_stage(cfg, model, run, epoch, reporter)
                model.train()
                batches = EpochBatches(len(train_set), cfg.batch_size, seed=cfg.seed, epoch=epoch, skip=state["step"])
                parts = distributed.split_epoch(batches, targets["train"], weights, multilabel)  # this rank's share of each batch
                loader = make_loader(train_set, [mine for mine, _, _ in parts], num_workers=cfg.num_workers, device=device, seed=epoch)
                for (x, y, plan), (_, size, part) in zip(loader, parts):
                    value, correct = train_step(trainer, optimizer, weights, x, y, device, bf16, augment, plan, multilabel, part)
                    state["step"] += 1
                    stop = ctrl_c() or bool(should_stop and should_stop(epoch, state["step"]))
                    total, correct, count, stop = distributed.reduce_step(value, size, correct, len(y), stop)  # over the ranks
                    sums = state["sums"]
                    sums[0] += total
                    sums[1] += correct
                    sums[2] += count
                    value = value if part is None else total / size
                    reporter.batch(epoch=epoch, step=state["step"], steps=steps, loss=value)
                    events.batch(epoch, state["step"], value)
                    if stop:
                        raise Stopped
                record = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], "train_loss": state["sums"][0] / max(state["sums"][2], 1)}
                if not multilabel:
                    record["train_accuracy"] = state["sums"][1] / max(state["sums"][2], 1)
                if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
                    valid = judge("valid")
                    record.update({f"valid_{k}": valid[k] for k in scores if k in valid})
                    if cfg.test_curve:  # at the threshold validation chose
                        test = judge("test", valid.get("threshold"))
                        record.update({f"test_{k}": test[k] for k in scores if k in test and k != "threshold"})
                    record["best"] = improves(record, state["best"], cfg.select_metric)
                    if record["best"]:
                        metric = "loss" if cfg.select_metric == "last" else cfg.select_metric
                        state["best"] = {"epoch": epoch + 1, "metric": record[f"valid_{metric}"], "loss": record["valid_loss"]}
                    if record["best"] and main:
                        save_checkpoint(run.best, {"model": model.state_dict(), "epoch": epoch + 1,
                                                   "valid": {k: v for k, v in record.items() if k.startswith("valid_")}})
                    if patience.update(record) and epoch + 1 < cfg.epochs:
                        state["stopped"] = epoch + 1
                        reporter.note(f"stopped early after epoch {epoch + 1}: validation {patience.metric if cfg.select_metric != 'last' else 'loss'} "
                                      f"has not improved by more than {cfg.min_delta:g} for {cfg.patience} evaluations (--patience)")
                record["seconds"] = round(time.time() - began, 3)
                if epoch + 1 <= (cfg.schedule_epochs or cfg.epochs):  # an extended run's added epochs stay at lr_min
                    with warnings.catch_warnings():  # resumed after the epoch's last batch: no optimizer.step() in this process yet
                        warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step\\(\\)` before")
                        scheduler.step()
                state.update(epoch=epoch + 1, step=0, sums=[0.0, 0, 0])
                state["history"].append(record)
                if main:
                    run.append_metrics(record)
                save_last()
                reporter.epoch(record)
                events.epoch(record)
                stop = ctrl_c() or bool(should_stop and should_stop(state["epoch"], 0))
                if state["epoch"] < cfg.epochs and state["stopped"] is None and distributed.agree(stop):
                    raise Interrupted(run.path, state["epoch"], 0)
        except Stopped:
            save_last()
            raise Interrupted(run.path, state["epoch"], state["step"]) from None
        finally:
            reporter.end()
            events.close()

    # final report: the validation-selected model on the test split, at the threshold validation chose
    best = load_checkpoint(run.best)
    model.load_state_dict(best["model"])
    test = evaluate(model, evals["test"], num_classes=len(labels), device=device, class_weights=weights, multilabel=multilabel,
                    threshold=best["valid"].get("valid_threshold"), bf16=bf16, gather=distributed.gather_batches)
    if not main:
        return {}
    result = reports.build(cfg=cfg, run=run, store=run.store_info(), history=state["history"], best=best, test=test,
                           model=model, class_weights=None if weights is None else weights.tolist(), stopped=state["stopped"])
    reports.write(run, result)
    return result


__all__ = ["Interrupted", "Reporter", "fit", "prepare", "resume", "start", "train"]
