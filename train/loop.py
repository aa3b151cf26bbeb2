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

from pathlib import Path

import torch

from mrnet.core.errors import UserError
from mrnet.store.reader import FeatureStore
from mrnet.train import distributed, normalize, probe
from mrnet.train import report as reports
from mrnet.train.config import TrainConfig, required
from mrnet.train.crops import TrackDataset
from mrnet.train.models import PROBE, get
from mrnet.train.recipe import Interrupted, Recipe, StopCheck, train_step
from mrnet.train.reporter import Reporter
from mrnet.train.runs import RunFolder, default_run_dir, seed_everything, write_json
from mrnet.train.setup import (
    RunParts,
    assemble,
    check_crop,
    check_same_store,
    crop_frames,
    eval_loader,
    open_store,
    store_record,
    warn_unlearnable,
    with_defaults,
)
from mrnet.train.splits import Splits, fold_count, has_official_split, split_tracks, usable

# --- entry points -------------------------------------------------------------------------------


def train(cfg: TrainConfig, *, reporter: Reporter | None = None, should_stop: StopCheck | None = None) -> Path:
    """Start a run in a new folder (``cfg.out`` or ``runs/<store>-<time>``); returns the folder. In a
    process group (train/distributed.py) every rank calls it, with the same ``cfg.out``."""
    reporter = reporter or Reporter()
    cfg, run, store, parts = prepare(cfg, reporter)
    return _run(cfg, run, store, resume=False, reporter=reporter, should_stop=should_stop, parts=parts)


def start(cfg: TrainConfig, *, reporter: Reporter | None = None) -> Path:
    """Train a run that ``prepare`` checked (its config.json written): what each process of a group
    started by ``launch.spawn`` runs."""
    return _run(
        cfg,
        RunFolder(Path(required(cfg.out, "out"))),
        open_store(cfg.store),
        resume=False,
        reporter=reporter or Reporter(),
        should_stop=None,
    )


def prepare(cfg: TrainConfig, reporter: Reporter) -> tuple[TrainConfig, RunFolder, FeatureStore, RunParts]:
    """Check a new run against its store and write its config.json (rank 0): everything that can fail
    on this store and config fails here, before training starts. Returns what it built on the way
    (``RunParts``: split, normalisation, model; of fold 0 with ``--folds all``, where each fold builds its own)."""
    run = RunFolder(Path(cfg.out) if cfg.out else default_run_dir(cfg.store))
    if distributed.agree(distributed.ranks().main and run.config_file.exists()):
        raise UserError(
            f"{run.path} already holds a run. Continue it with mrnet-train --resume {run.path}, or pass another --out."
        )
    store = open_store(cfg.store)
    if (
        cfg.fold is None
        and not cfg.all_folds
        and not has_official_split(usable(store.tracks))
        and fold_count(usable(store.tracks))
    ):
        cfg = cfg.with_(fold=0)
        reporter.note(
            f"{store.location.url} has folds and no official split: training fold 0 (--fold K for another, --folds all for every one)."
        )
    cfg = cfg.with_(out=str(run.path))
    # everything that can fail on this store and config fails here, before the run folder exists
    if cfg.all_folds and not fold_count(usable(store.tracks)):
        raise UserError(f"{store.location.url} has no folds (only an official split); drop --folds all.")
    cfg = with_defaults(cfg, store)
    splits = split_tracks(store.tracks, fold=0 if cfg.all_folds else cfg.fold, where=store.location.url)
    parts = assemble(
        cfg, store, splits
    )  # refuses a store without the statistics --normalize needs, a model the store cannot feed
    check_crop(
        cfg,
        crop_frames(cfg, store.provenance.frame_rate, parts.model),
        parts.model,
        splits.train,
        store.provenance.frame_rate,
    )
    if distributed.ranks().main:
        write_json(run.config_file, cfg.to_json())
    distributed.barrier()
    return cfg, run, store, parts


def resume(run_dir: Path, *, reporter: Reporter | None = None, should_stop: StopCheck | None = None, **changes) -> Path:
    """Continue the run in ``run_dir`` from its last checkpoint. ``changes`` (None: unchanged): ``store``
    (the store moved), the machine (``num_workers``, ``device``, ``workers``, ``gpus``, ``scheduler``),
    ``epochs`` (more than the run's: a finished run is extended, see ``resumed_config``). A run stopped
    before its first checkpoint starts again from the beginning, with its own config."""
    run, reporter = RunFolder(Path(run_dir)), reporter or Reporter()
    cfg = resumed_config(run, **changes)
    if distributed.ranks().main:  # the temporary files of writes cut short (a kill, a full disk) go
        for folder in [run, *(RunFolder(p) for p in sorted(run.path.glob("fold-*")) if p.is_dir())]:
            for left in folder.clean_temporary():
                reporter.note(f"removed {left}, left by a write that was cut short")
    return _run(cfg, run, open_store(cfg.store), resume=True, reporter=reporter, should_stop=should_stop)


def resumed_config(run: RunFolder, **changes) -> TrainConfig:
    """A run's config with the allowed changes. More ``epochs`` extends it: the cosine schedule keeps
    the span it was planned over (``schedule_epochs``) and the added epochs run at ``lr_min``; a
    constant or staged schedule goes on as it is (a stage that now falls inside the run begins)."""
    cfg = run.config()
    epochs = changes.pop("epochs", None)
    cfg = cfg.with_(**{k: v for k, v in changes.items() if v is not None})
    if epochs is not None and epochs != cfg.epochs:
        if epochs < cfg.epochs:
            raise UserError(
                f"--epochs {epochs}: {run.path} is a run of {cfg.epochs} epochs; a run can be extended, not shortened"
            )
        cfg = cfg.with_(epochs=epochs, schedule_epochs=cfg.schedule_epochs or cfg.epochs)
    return cfg


def _run(
    cfg: TrainConfig,
    run: RunFolder,
    store: FeatureStore,
    *,
    resume: bool,
    reporter: Reporter,
    should_stop,
    parts: RunParts | None = None,
) -> Path:
    if not cfg.all_folds:
        fit(cfg, run, store, resume=resume, reporter=reporter, should_stop=should_stop, parts=parts)
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
            todo[k] = TrainConfig.from_json(
                {
                    **cfg.to_json(),
                    "fold": k,
                    "all_folds": False,
                    "out": str(sub.path),
                    "workers": None,
                    "gpus": [],
                    "scheduler": None,
                }
            )
    return todo


# --- one split ----------------------------------------------------------------------------------


def fit(
    cfg: TrainConfig,
    run: RunFolder,
    store: FeatureStore,
    *,
    resume: bool = False,
    reporter: Reporter | None = None,
    should_stop: StopCheck | None = None,
    parts: RunParts | None = None,
) -> dict:
    """Train one split (official or one fold) in ``run``; returns the final report. ``parts``: what
    ``prepare`` built for this new run (None: built here). In a process group every rank calls it;
    rank 0 writes the run folder (train/distributed.py)."""
    ranks = distributed.ranks()
    reporter = reporter if reporter is not None and ranks.main else Reporter()
    cfg = (
        parts.cfg if parts else with_defaults(cfg, store)
    )  # with_defaults: a run folder from before a choice was recorded
    splits = parts.splits if parts else split_tracks(store.tracks, fold=cfg.fold, where=store.location.url)
    entry = get(cfg.model)
    if ranks.many and entry.fitting == PROBE:
        raise UserError(
            f"--model {cfg.model} is fitted by scikit-learn in one process; drop --workers/--gpus (or torchrun) for it"
        )
    resume = record_run(cfg, run, store, splits, resume=resume, reporter=reporter)
    if parts is None:
        parts = assemble(cfg, store, splits, normalize.read(run.path, cfg.normalize or "instance") if resume else None)
    if not resume and ranks.main:
        normalize.write(run.path, parts.norm)
    parts.on(distributed.device(cfg.device))
    if ranks.rank:  # the same initial model everywhere; dropout draws of its own on every rank
        seed_everything(cfg.seed * 1_000_003 + ranks.rank)
    warn_unlearnable(reporter, parts.labels, splits.train, parts.placed[0].class_weights, parts.multilabel)
    if entry.fitting == PROBE:  # fitted for each C of a grid, not by epochs (train/probe.py); resuming fits it again
        return fit_probe(parts, run, store, reporter)
    return Recipe(parts, run, store, resume=resume, reporter=reporter, should_stop=should_stop).run()


def record_run(
    cfg: TrainConfig, run: RunFolder, store: FeatureStore, splits: Splits, *, resume: bool, reporter: Reporter
) -> bool:
    """Write (or, resuming, check) the run's config.json and store.json; returns whether the run resumes
    (a run stopped before its first checkpoint starts again from the beginning)."""
    main = distributed.ranks().main
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
        if (
            run.finished or len(run.metrics()) > 1
        ):  # best.pt and one metrics line alone: killed as its first checkpoint was written
            raise UserError(
                f"{run.last} is missing, but the run has evaluated epochs (metrics.jsonl or report.json say so): "
                f"the run folder is damaged. Restore last.pt from a backup, or start a new run with another --out."
            )
        reporter.note(f"{run.path} stopped before its first checkpoint: starting it again from the beginning")
        return False  # it runs from the start, as it would have
    return resume


def fit_probe(parts: RunParts, run: RunFolder, store: FeatureStore, reporter: Reporter) -> dict:
    """A closed-form model (the linear probe): whole tracks on the CPU, one fit per value of its grid."""
    cpu = torch.device("cpu")
    evals = {
        name: eval_loader(
            TrackDataset(store.location, part, parts.layer_positions, check_reads=parts.cfg.check_reads), parts.cfg, cpu
        )
        for name, part in parts.splits.parts().items()
    }
    run.rewrite_metrics([])
    built = parts.placed[0]
    assert built.class_weights is not None, "the probe is single-label: every class has a weight"
    return probe.fit(
        parts.cfg,
        run,
        store,
        parts.splits,
        parts.layer_positions,
        built.model.cpu(),
        built.class_weights.cpu(),
        evals,
        parts.labels,
        reporter,
    )


__all__ = ["Interrupted", "Reporter", "fit", "prepare", "resume", "start", "train", "train_step"]
