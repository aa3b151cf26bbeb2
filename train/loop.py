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

import signal
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from mrnet.core.errors import UserError
from mrnet.core.machine import pick_device
from mrnet.store.reader import FeatureStore
from mrnet.train import normalize, probe
from mrnet.train import report as reports
from mrnet.train.augment import Augment
from mrnet.train.config import TrainConfig
from mrnet.train.config import SELECT_METRICS, parse_eval_unit
from mrnet.train.datasets import CropDataset, EvalUnit, TrackDataset, track_targets
from mrnet.train.evaluate import Stopped, autocast, evaluate
from mrnet.train.events import EventLog
from mrnet.train.models import get
from mrnet.train.loader import EpochBatches, length_batches, make_loader, steps_per_epoch
from mrnet.train.runs import RunFolder, default_run_dir, load_checkpoint, rng_state, save_checkpoint, set_rng_state, write_json
from mrnet.train.selection import Patience, improves
from mrnet.train.setup import build_model, build_run, check_same_store, make_optimizer, make_scheduler, model_input, open_store, stage, store_record
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
    """Start a run in a new folder (``cfg.out`` or ``runs/<store>-<time>``); returns the folder."""
    reporter = reporter or Reporter()
    run = RunFolder(Path(cfg.out) if cfg.out else default_run_dir(cfg.store))
    if run.config_file.exists():
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
    write_json(run.config_file, cfg.to_json())
    return _run(cfg, run, store, resume=False, reporter=reporter, should_stop=should_stop)


def with_defaults(cfg: TrainConfig, store: FeatureStore) -> TrainConfig:
    """The choices left to the store and the model, made explicit (recorded in config.json): the input
    normalisation, the selection metric of the store's task and the model's evaluation unit."""
    entry, task = get(cfg.model), store.provenance.task
    if cfg.normalize is None:
        cfg = cfg.with_(normalize=normalize.default_for(store.provenance.feature, entry.normalizations))
    if cfg.select_metric is None:
        cfg = cfg.with_(select_metric=HEADLINE[task][0])
    if cfg.select_metric not in SELECT_METRICS[task]:
        raise UserError(f"--select-metric {cfg.select_metric}: a {task} store is scored by {', '.join(SELECT_METRICS[task])}")
    if cfg.eval_unit is None:
        cfg = cfg.with_(eval_unit=entry.evaluation)
    if cfg.model == "linear" and task == MULTI:
        raise UserError(f"--model linear fits one multi-class logistic regression; {store.location.url} holds tags (multi-label). "
                        "Train a network on it (--model mrnet, fcn5, msecnn, ...).")
    return cfg


def resume(run_dir: Path, *, store: str | None = None, num_workers: int | None = None, device: str | None = None,
           reporter: Reporter | None = None, should_stop: StopCheck | None = None) -> Path:
    """Continue the run in ``run_dir`` from its last checkpoint (``store``: the store moved elsewhere).
    A run stopped before its first checkpoint starts again from the beginning, with its own config."""
    run = RunFolder(Path(run_dir))
    changes = {"num_workers": num_workers, "device": device, "store": store}
    cfg = run.config().with_(**{k: v for k, v in changes.items() if v is not None})
    return _run(cfg, run, open_store(cfg.store), resume=True, reporter=reporter or Reporter(), should_stop=should_stop)


def _run(cfg: TrainConfig, run: RunFolder, store: FeatureStore, *, resume: bool, reporter: Reporter, should_stop) -> Path:
    if not cfg.all_folds:
        fit(cfg, run, store, resume=resume, reporter=reporter, should_stop=should_stop)
        return run.path
    if not run.store_file.exists():
        write_json(run.store_file, store_record(store, cfg, description="every fold"))
    check_same_store(run, store)
    folds = fold_count(usable(store.tracks))
    for k in range(folds):
        sub = run.fold(k)
        if sub.finished:
            continue
        sub_cfg = TrainConfig.from_json({**cfg.to_json(), "fold": k, "all_folds": False, "out": str(sub.path)})
        fit(sub_cfg, sub, store, resume=sub.last.exists(), reporter=reporter, should_stop=should_stop)
    reports.write_aggregate(run, [run.fold(k).report() for k in range(folds)])
    return run.path


# --- one split ----------------------------------------------------------------------------------


def train_step(model, optimizer, weights, x, y, device, bf16: bool, augment: Augment | None = None,
               plan: dict | None = None, multilabel: bool = False) -> tuple[float, int]:
    """One optimisation step on a batch: (loss, correct predictions; 0 for tags).

    Single-label: class-weighted cross-entropy. Multi-label: binary cross-entropy per tag (``weights``,
    if any, weigh each tag's positives). A model with ``training_logits`` (MusicNeXt's L-softmax) gives
    its training logits from the labels. The batch arrives as stored (float16 by default) and becomes
    float32 on ``device``, where the augmentation drawn by the loader (``plan``) is applied: on a GPU
    beside the model, instead of ~30 ms of CPU per crop in the loader (docs/performance.md, T1).
    """
    x, y = x.to(device, non_blocking=True).float(), y.to(device, non_blocking=True)
    if augment is not None and plan is not None:
        x = augment.apply(x, plan)
    with autocast(device, bf16):
        if hasattr(model, "training_logits"):  # its own forward path: apply the run's input normalisation here
            logits = model.training_logits(model.input_norm(x) if hasattr(model, "input_norm") else x, y)
        else:
            logits = model(x)
    if multilabel:
        loss = F.binary_cross_entropy_with_logits(logits.float(), y, pos_weight=weights)
    else:
        loss = F.cross_entropy(logits.float(), y, weight=weights)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item(), 0 if multilabel else int((logits.argmax(1) == y).sum())


def fit(cfg: TrainConfig, run: RunFolder, store: FeatureStore, *, resume: bool = False, reporter: Reporter | None = None,
        should_stop: StopCheck | None = None) -> dict:
    """Train one split (official or one fold) in ``run``; returns the final report."""
    reporter = reporter or Reporter()
    cfg = with_defaults(cfg, store)  # a run folder from before a choice was recorded
    splits = split_tracks(store.tracks, fold=cfg.fold, where=store.location.url)
    labels = store.genres["name"].to_list()  # genres, or a multi-label store's tags
    multilabel = store.provenance.task == MULTI
    positions = store.layer_positions(cfg.layers)
    if resume and run.store_file.exists():
        check_same_store(run, store)
    else:
        write_json(run.config_file, cfg.to_json())
        write_json(run.store_file, store_record(store, cfg, description=splits.description, sizes=splits.sizes()))
    if resume and not run.last.exists():
        if run.best.exists() or run.finished:
            raise UserError(f"{run.last} is missing, but the run has evaluated epochs ({run.best.name} or report.json exist): "
                            f"the run folder is damaged. Restore last.pt from a backup, or start a new run with another --out.")
        reporter.note(f"{run.path} stopped before its first checkpoint: starting it again from the beginning")
        resume = False  # it runs from the start, as it would have
    device = pick_device(cfg.device)
    bf16 = cfg.bf16 and device.type == "cuda"

    # input normalisation (recorded in the run folder), model, class weights, optimizer, schedule
    if resume:
        norm = normalize.read(run.path, cfg.normalize or "instance")
    else:
        norm = normalize.for_run(cfg.normalize or "instance", store, splits.train, positions)
        normalize.write(run.path, norm)
    setup = build_run(cfg, model_input(store.provenance, len(positions), len(labels)), splits.train, device, norm, labels)
    model, weights, optimizer, scheduler = setup.model, setup.class_weights, setup.optimizer, setup.scheduler
    _warn_unlearnable(reporter, labels, splits.train, weights, multilabel)
    targets = {name: track_targets(part, labels if multilabel else None)
               for name, part in (("train", splits.train), ("valid", splits.valid), ("test", splits.test))}
    if cfg.model == "linear":  # fitted for each C of a grid, not by epochs (train/probe.py); resuming fits it again
        cpu = torch.device("cpu")
        evals = {name: _eval_loader(TrackDataset(store.location, part, positions), cfg, cpu)
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
        set_rng_state(ck["rng"])
        reporter.note(f"resuming {run.path} at epoch {state['epoch'] + 1}, batch {state['step']}")
    patience = Patience(cfg.select_metric, cfg.patience, cfg.min_delta)
    if state["patience"]:
        patience.best, patience.stale = state["patience"]["best"], state["patience"]["stale"]
    run.rewrite_metrics(state["history"])

    # data: random crops for training; for evaluation, each track's unit (whole, centre crop or chunks)
    location = store.location
    augment = Augment(cfg.noise_p, cfg.time_masks, cfg.time_mask_frac, cfg.feature_masks, cfg.feature_mask_frac,
                      time_flip=cfg.time_flip) if cfg.augment else None
    crop = crop_frames(cfg, store.provenance.frame_rate, model)
    kind, n = parse_eval_unit(cfg.eval_unit)
    unit = EvalUnit(kind, crop=crop, chunks=n)
    train_set = CropDataset(location, splits.train, positions, crop=crop, seed=cfg.seed, augment=augment, targets=targets["train"])
    evals = {name: _eval_loader(TrackDataset(location, part, positions, unit=unit, targets=targets[name]), cfg, device)
             for name, part in (("valid", splits.valid), ("test", splits.test))}
    steps = steps_per_epoch(len(train_set), cfg.batch_size)
    events = EventLog(run.path / "tensorboard", steps_per_epoch=steps, start_step=state["epoch"] * steps + state["step"])
    if events.missing:
        reporter.note(events.missing)
    scores = ("loss", *HEADLINE[MULTI], "macro_f1", "precision", "recall", "threshold") if multilabel else ("loss", "accuracy", "macro_f1")

    def judge(part: str, threshold: float | None = None) -> dict:
        return evaluate(model, evals[part], num_classes=len(labels), device=device, class_weights=weights, multilabel=multilabel,
                        threshold=threshold, bf16=bf16, stop=ctrl_c)

    def save_last() -> None:
        save_checkpoint(run.last, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                   "scheduler": scheduler.state_dict(), "rng": rng_state(), **state, "patience": patience.state()})

    reporter.start(run=run.path, description=splits.description, epochs=cfg.epochs, done=state["epoch"], steps=steps)
    with _ctrl_c_flag() as ctrl_c:
        try:
            while state["epoch"] < cfg.epochs and state["stopped"] is None:
                epoch, began = state["epoch"], time.time()
                if state["step"] == 0 and epoch in {e for e, _, _ in cfg.stages}:
                    optimizer, scheduler = _next_stage(cfg, model, run, epoch, reporter)
                model.train()
                batches = EpochBatches(len(train_set), cfg.batch_size, seed=cfg.seed, epoch=epoch, skip=state["step"])
                for x, y, plan in make_loader(train_set, batches, num_workers=cfg.num_workers, device=device, seed=epoch):
                    value, correct = train_step(model, optimizer, weights, x, y, device, bf16, augment, plan, multilabel)
                    state["step"] += 1
                    sums = state["sums"]
                    sums[0] += value * len(y)
                    sums[1] += correct
                    sums[2] += len(y)
                    reporter.batch(epoch=epoch, step=state["step"], steps=steps, loss=value)
                    events.batch(epoch, state["step"], value)
                    if ctrl_c() or (should_stop and should_stop(epoch, state["step"])):
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
                        save_checkpoint(run.best, {"model": model.state_dict(), "epoch": epoch + 1,
                                                   "valid": {k: v for k, v in record.items() if k.startswith("valid_")}})
                    if patience.update(record) and epoch + 1 < cfg.epochs:
                        state["stopped"] = epoch + 1
                        reporter.note(f"stopped early after epoch {epoch + 1}: validation {patience.metric if cfg.select_metric != 'last' else 'loss'} "
                                      f"has not improved by more than {cfg.min_delta:g} for {cfg.patience} evaluations (--patience)")
                record["seconds"] = round(time.time() - began, 3)
                with warnings.catch_warnings():  # resumed after the epoch's last batch: no optimizer.step() in this process yet
                    warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step\\(\\)` before")
                    scheduler.step()
                state.update(epoch=epoch + 1, step=0, sums=[0.0, 0, 0])
                state["history"].append(record)
                run.append_metrics(record)
                save_last()
                reporter.epoch(record)
                events.epoch(record)
                if state["epoch"] < cfg.epochs and state["stopped"] is None and (ctrl_c() or (should_stop and should_stop(state["epoch"], 0))):
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
                    threshold=best["valid"].get("valid_threshold"), bf16=bf16)
    result = reports.build(cfg=cfg, run=run, store=run.store_info(), history=state["history"], best=best, test=test,
                           model=model, class_weights=None if weights is None else weights.tolist(), stopped=state["stopped"])
    reports.write(run, result)
    return result


def _next_stage(cfg: TrainConfig, model, run: RunFolder, epoch: int, reporter: Reporter):
    """The ``stages`` schedule at the start of a stage: the best checkpoint's weights, a fresh optimizer."""
    name, lr = stage(cfg, epoch)
    note = f"epoch {epoch + 1}: a new stage, {name} at lr {lr:g}"
    if run.best.exists():
        best = load_checkpoint(run.best)
        model.load_state_dict(best["model"])
        note += f", from the best checkpoint so far (epoch {best['epoch']})"
    reporter.note(note)
    optimizer = make_optimizer(cfg, model, epoch=epoch)
    return optimizer, make_scheduler(cfg, optimizer)


def _warn_unlearnable(reporter: Reporter, labels: list[str], train, weights, multilabel: bool) -> None:
    """Name the genres (or tags) the training split gives no example of."""
    if multilabel:
        seen = {t for ts in train["tags"].to_list() for t in ts or ()}
        missing = [t for t in labels if t not in seen]
        what = "tag(s) have no positive training track"
    else:
        missing = [g for g, w in zip(labels, weights.tolist()) if w == 0]
        what = "genre(s) have no training track"
    if missing:
        reporter.note(f"{len(missing)} {what} ({', '.join(missing[:8])}): the model cannot learn them, and their test tracks count "
                      f"against it. Re-extract with a split or folds that put them in training.")


def crop_frames(cfg: TrainConfig, frame_rate: float, model: torch.nn.Module | None = None) -> int:
    """Frames in a training crop (and in each evaluation crop): the model's own input length when its
    recipe fixes one (``model.cfg.crop_frames``), else ``--crop-seconds``; at least 2 (a one-frame crop
    normalises to zeros, see the model tests)."""
    fixed = getattr(getattr(model, "cfg", None), "crop_frames", None)
    if fixed:
        return int(fixed)
    crop = int(round(cfg.crop_seconds * frame_rate))
    if crop < 2:
        raise UserError(f"--crop-seconds {cfg.crop_seconds} gives {crop} frame(s) at the store's {frame_rate:g} frames/s; "
                        f"give at least {2 / frame_rate:.3g} s")
    return crop


def _eval_loader(dataset: TrackDataset, cfg: TrainConfig, device: torch.device):
    return make_loader(dataset, length_batches(dataset.lengths, cfg.eval_batch_size), num_workers=cfg.num_workers, device=device,
                       seed=0, persistent=True)


@contextmanager
def _ctrl_c_flag() -> Iterator[Callable[[], bool]]:
    """While active, the first Ctrl-C only sets a flag the loop checks (a second one stops at once)."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    flag = threading.Event()

    def handler(signum, frame):
        if flag.is_set():
            raise KeyboardInterrupt
        flag.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag.is_set
    finally:
        signal.signal(signal.SIGINT, previous)


__all__ = ["Interrupted", "Reporter", "fit", "resume", "train"]
