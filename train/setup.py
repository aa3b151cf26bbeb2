"""What a run is built from: its store, its model and its optimisation, in one place.

``open_store`` refuses a store that cannot train; ``model_input`` reads the frame layout a store gives
a model; ``build_model`` makes the run's model (``mrnet-predict`` rebuilds it the same way);
``assemble`` builds what a run starts from once (``RunParts``: split, normalisation, model), and
``RunParts.on`` adds the class weights, the optimizer and the schedule on the run's device
(``build_run`` does both, for the benchmarks). ``store_record`` and ``check_same_store`` tie a run folder to the store it trains on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import polars as pl
import psutil
import torch

from mrnet.core.errors import UserError
from mrnet.manifests.schema import class_weights, tag_table
from mrnet.store.format import Provenance
from mrnet.store.reader import FeatureStore
from mrnet.train import distributed, normalize
from mrnet.train.config import SELECT_METRICS, TrainConfig
from mrnet.train.crops import TrackDataset
from mrnet.train.loader import length_batches, make_loader
from mrnet.train.models import PROBE, ModelInput, get
from mrnet.train.runs import RunFolder, load_checkpoint, load_weights, seed_everything
from mrnet.train.splits import Splits
from mrnet.train.tasks import HEADLINE, MULTI

#: Provenance fields that change what the model sees; a resumed run refuses a store that differs.
MODEL_INPUT_FIELDS = ("feature", "layers", "dim", "channels", "frame_rate", "sample_rate", "model", "model_revision")


@dataclass
class RunSetup:
    """The parts of one run that training updates or uses every step."""

    model: torch.nn.Module
    #: single-label: max_count / count per class over the training split; multi-label: each tag's
    #: negatives / positives there with --pos-weight, else None; on the run's device
    class_weights: torch.Tensor | None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler


@dataclass
class RunParts:
    """What one run (one split) is built from, built once: by ``loop.prepare`` for a new run, which
    hands it to training, or by ``loop.fit`` itself for a resumed run, a fold or a process of a group."""

    cfg: TrainConfig  # with the store's and the model's defaults made explicit (``with_defaults``)
    splits: Splits
    labels: list[str]  # the store's genres, or a multi-label store's tags
    layer_positions: list[int]  # the stored layers fed, by their position in the store
    norm: dict  # the input normalisation's record (train/normalize.py), as written to the run folder
    inputs: ModelInput
    model: torch.nn.Module  # on the CPU, initialised from cfg.seed; ``on`` moves it
    device: torch.device | None = None
    built: RunSetup | None = None  # ``on``: model, class weights, optimizer and schedule on ``device``

    @property
    def multilabel(self) -> bool:
        return self.inputs.task == MULTI

    @property
    def bf16(self) -> bool:
        return self.cfg.bf16 and self.device is not None and self.device.type == "cuda"

    @property
    def placed(self) -> tuple[RunSetup, torch.device]:
        """What ``on`` built, and the device it is on."""
        if self.built is None or self.device is None:
            raise ValueError("RunParts.on(device) builds the model's optimizer and weights first")
        return self.built, self.device

    def on(self, device: torch.device) -> RunParts:
        """The model on ``device`` with its class weights, first optimizer and schedule."""
        model = self.model.to(device)
        optimizer = make_optimizer(self.cfg, model, epoch=0)
        weights = label_weights(self.cfg, self.inputs, self.splits.train, device, self.labels)
        self.device, self.built = device, RunSetup(model, weights, optimizer, make_scheduler(self.cfg, optimizer))
        return self


def assemble(cfg: TrainConfig, store: FeatureStore, splits: Splits, norm: dict | None = None) -> RunParts:
    """Build a run's parts: its normalisation (``norm``: the run folder's record when it resumes; None:
    computed on the training split, refusing a store without the statistics it needs) and its model,
    seeded by ``cfg.seed`` so a run starts the same way every time. ``cfg``: with ``with_defaults``."""
    layer_positions = store.layer_positions(cfg.layers)
    labels = store.genres["name"].to_list()
    norm = (
        norm
        if norm is not None
        else normalize.for_run(cfg.normalize or "instance", store, splits.train, layer_positions)
    )
    inputs = model_input(store.provenance, len(layer_positions), len(labels))
    check_fits(cfg, inputs)
    seed_everything(cfg.seed)
    return RunParts(cfg, splits, labels, layer_positions, norm, inputs, build_model(cfg, inputs, norm))


def open_store(location: str) -> FeatureStore:
    """Open a store for training, refusing one whose extraction has not finished."""
    store = FeatureStore.open(location)
    if not store.finalized:
        raise UserError(
            f"{store.location.url}: its extraction has not finished (no manifest/tracks.parquet). Run mrnet-extract again to finish it."
        )
    return store


def model_input(prov: Provenance, num_layers: int, num_classes: int) -> ModelInput:
    """What a store with provenance ``prov`` gives a model that reads ``num_layers`` of its layers."""
    return ModelInput(
        feature=prov.feature,
        channels=prov.channels,
        num_layers=num_layers,
        dim=prov.dim,
        frame_rate=prov.frame_rate,
        num_classes=num_classes,
        extraction=dict(prov.extraction),
        task=prov.task,
    )


def build_model(cfg: TrainConfig, inputs: ModelInput, norm: dict | None = None) -> torch.nn.Module:
    """The run's model: ``cfg.model`` with the options of its config that ``cfg`` sets, normalising its
    input as ``cfg.normalize`` says (``norm``: the run's record from ``normalize.for_run``; without
    it a ``stored`` model gets identity statistics, to be loaded from a checkpoint)."""
    entry = get(cfg.model)
    if entry.features is not None and inputs.feature not in entry.features:
        wanted = " or ".join(entry.features)
        raise UserError(
            f"--model {entry.name} reads {wanted} features, and this store holds {inputs.feature}. Make a store of "
            f"them from the same dataset: mrnet-extract DATASET --features {entry.features[0]} --out store/NAME-{entry.features[0]}.zarr"
        )
    if inputs.task not in entry.tasks:
        raise UserError(
            f"--model {entry.name} cannot learn a {inputs.task} store ({entry.name} trains {' or '.join(entry.tasks)} only); "
            f"choose another --model, for example " + ("musicnext-softmax" if entry.name == "musicnext" else "mrnet")
        )
    mode = cfg.normalize or "instance"  # None: a run folder from before the choice existed
    if mode not in entry.normalizations:
        raise UserError(f"--normalize {mode}: --model {cfg.model} trains with {' or '.join(entry.normalizations)}")
    own_instance_norm = "instance_norm" in entry.options
    model = entry.build(inputs, **build_options(cfg))
    if mode in ("stored", "global"):
        shape = (inputs.channels, inputs.num_layers, inputs.dim)
        norm = norm or {"mode": "stored", "mean": torch.zeros(shape).tolist(), "std": torch.ones(shape).tolist()}
        normalize.attach(model, normalize.module(norm))
    elif mode == "instance" and not own_instance_norm:
        normalize.attach(model, normalize.InputNorm("instance"))
    return model


def build_options(cfg: TrainConfig) -> dict:
    """The options ``cfg.model``'s builder takes: the config's, and its own instance norm from --normalize."""
    options = dict(cfg.model_options)
    if "instance_norm" in get(cfg.model).options:
        options["instance_norm"] = (cfg.normalize or "instance") == "instance"
    return options


def check_fits(cfg: TrainConfig, inputs: ModelInput) -> None:
    """Refuse a model (``--width`` ...) whose parameters, gradients and two optimizer moments alone
    (4 x 4 bytes a parameter) exceed this machine's available memory, before allocating any of it.
    Counted on PyTorch's meta device: no memory, no random draws."""
    try:
        with torch.device("meta"):
            count = sum(p.numel() for p in get(cfg.model).build(inputs, **build_options(cfg)).parameters())
    except Exception:  # noqa: BLE001 - a layout the model refuses is named when it is built for real
        return
    need, have = 16 * count, psutil.virtual_memory().available
    if need > have:
        options = ", ".join(f"{k}={v}" for k, v in cfg.model_options.items()) or "its preset's options"
        raise UserError(
            f"--model {cfg.model} with {options} has {count:,} parameters: training needs at least {need / 2**30:,.1f} GiB "
            f"for them, their gradients and the optimizer's state (more for activations), and this machine has "
            f"{have / 2**30:,.1f} GiB available. Give a smaller --width (or model option)."
        )


def check_crop(cfg: TrainConfig, crop: int, model: torch.nn.Module, train: pl.DataFrame, frame_rate: float) -> None:
    """Refuse a --crop-seconds longer than the longest training track (a model's own input length is its recipe;
    a closed-form model reads whole tracks)."""
    longest = cast("int | None", train["frames"].max()) if len(train) else None  # polars types max() as any literal
    fixed = getattr(getattr(model, "cfg", None), "crop_frames", None)
    if fixed or get(cfg.model).fitting == PROBE or longest is None or crop <= longest:
        return
    raise UserError(
        f"--crop-seconds {cfg.crop_seconds:g} is longer than the longest training track ({longest / frame_rate:.3g} s, "
        f"{longest} frames): give at most {longest / frame_rate:.3g}"
    )


def build_run(
    cfg: TrainConfig,
    inputs: ModelInput,
    train_tracks: pl.DataFrame,
    device: torch.device,
    norm: dict | None = None,
    labels: list[str] | None = None,
) -> RunSetup:
    """Model, class (or tag) weights, the first optimizer and the schedule, seeded by ``cfg.seed`` so a
    run starts the same way every time. ``labels``: the store's label names (a multi-label store's tags)."""
    seed_everything(cfg.seed)
    model = build_model(cfg, inputs, norm).to(device)
    optimizer = make_optimizer(cfg, model, epoch=0)
    return RunSetup(
        model, label_weights(cfg, inputs, train_tracks, device, labels), optimizer, make_scheduler(cfg, optimizer)
    )


def label_weights(
    cfg: TrainConfig,
    inputs: ModelInput,
    train_tracks: pl.DataFrame,
    device: torch.device,
    labels: list[str] | None = None,
) -> torch.Tensor | None:
    """Single-label: each class's weight in the loss, ``max_count / count`` over the training split
    (``--class-weights balanced``; ``none``: every weight 1, plain cross-entropy).
    Multi-label: with ``--pos-weight``, each tag's negatives per positive there (BCE's ``pos_weight``,
    for the tags ``labels`` in their order), else None."""
    if inputs.task == MULTI:
        if not cfg.pos_weight:
            return None
        if labels is None:
            raise ValueError("--pos-weight weighs the store's tags: pass them (labels)")
        per_tag = dict(tag_table(train_tracks, labels).select("name", "weight").iter_rows())
        return torch.tensor([per_tag[t] for t in labels], dtype=torch.float32, device=device)
    weights = torch.tensor(class_weights(train_tracks, inputs.num_classes), dtype=torch.float32, device=device)
    if cfg.class_weights == "none":  # a class without training tracks keeps weight 0 (warn_unlearnable names it)
        weights = (weights > 0).float()
    return weights


def stage(cfg: TrainConfig, epoch: int) -> tuple[str, float]:
    """The optimizer and learning rate of epoch ``epoch`` (0-based): the last ``--stage`` that has begun.

    >>> from mrnet.train.config import TrainConfig
    >>> cfg = TrainConfig(store="s", schedule="stages", stages=((80, "sgd", 1e-3), (100, "sgd", 1e-4)))
    >>> stage(cfg, 79), stage(cfg, 80), stage(cfg, 150)
    (('adamw', 0.001), ('sgd', 0.001), ('sgd', 0.0001))
    """
    current = (cfg.optimizer, cfg.lr)
    for start, name, lr in cfg.stages:
        if epoch >= start:
            current = (name, lr)
    return current


def make_optimizer(cfg: TrainConfig, model: torch.nn.Module, *, epoch: int) -> torch.optim.Optimizer:
    """The optimizer of epoch ``epoch``'s stage: AdamW (amsgrad as set), Adam (weight decay as an L2
    term, as ``torch.optim.Adam`` and the baselines' code have it) or SGD (momentum 0.9, Nesterov)."""
    name, lr = stage(cfg, epoch)
    params = model.parameters()
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay, amsgrad=cfg.amsgrad)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)


def make_scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    """Stepped once per epoch: cosine from ``lr`` to ``lr_min`` over the run, or a constant rate (the
    ``stages`` schedule changes the rate by changing the optimizer, see ``loop.fit``)."""
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs, eta_min=cfg.lr_min)
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


def store_record(store: FeatureStore, cfg: TrainConfig, *, description: str, sizes: dict | None = None) -> dict:
    """What store.json holds: where the store is, what it is, and what this run took from it."""
    layer_positions = store.layer_positions(cfg.layers)
    return {
        "url": store.location.url,
        "provenance": store.provenance.to_json(),
        "genres": store.genres["name"].to_list(),
        "layers": [store.provenance.layers[i] for i in layer_positions],
        "layer_positions": layer_positions,
        "split": description,
        "sizes": sizes or {},
    }


def check_same_store(run: RunFolder, store: FeatureStore) -> None:
    """Refuse to resume against a store whose features or genres differ from the run's."""
    recorded = run.store_info()
    now = store.provenance.to_json()
    reasons = [
        f"{name}: run has {recorded['provenance'].get(name)!r}, store has {now.get(name)!r}"
        for name in MODEL_INPUT_FIELDS
        if recorded["provenance"].get(name) != now.get(name)
    ]
    if recorded["genres"] != store.genres["name"].to_list():
        reasons.append(f"genres: run has {recorded['genres']}, store has {store.genres['name'].to_list()}")
    if reasons:
        raise UserError(
            f"{store.location.url} is not the store run {run.path} was trained on:\n  - "
            + "\n  - ".join(reasons)
            + f"\nPoint --store at the original store (the run used {recorded['url']}), or start a new run."
        )


# --- choices a run makes when it starts ----------------------------------------------------------


def with_defaults(cfg: TrainConfig, store: FeatureStore) -> TrainConfig:
    """The choices left to the store and the model, made explicit (recorded in config.json): the input
    normalisation, the selection metric of the store's task and the model's evaluation unit."""
    entry, task = get(cfg.model), store.provenance.task
    if cfg.normalize is None:
        cfg = cfg.with_(normalize=normalize.default_for(store.provenance.feature, entry.normalizations))
    if cfg.select_metric is None:
        cfg = cfg.with_(select_metric=HEADLINE[task][0])
    if cfg.select_metric not in SELECT_METRICS[task]:
        raise UserError(
            f"--select-metric {cfg.select_metric}: a {task} store is scored by {', '.join(SELECT_METRICS[task])}"
        )
    if cfg.eval_unit is None:
        cfg = cfg.with_(eval_unit=entry.evaluation)
    if entry.fitting == PROBE and task == MULTI:
        raise UserError(
            f"--model {entry.name} fits one multi-class logistic regression; {store.location.url} holds tags (multi-label). "
            "Train a network on it (--model mrnet, fcn5, msecnn, ...)."
        )
    return cfg


def resolved(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` as the run will use it (``mrnet-train --show-config``): ``with_defaults`` on its store; a
    store that cannot be opened (not made yet, elsewhere) leaves the store's choices (normalisation,
    selection metric) unset and sets the model's evaluation unit."""
    try:
        store = open_store(cfg.store)
    except UserError:
        return cfg if cfg.eval_unit is not None else cfg.with_(eval_unit=get(cfg.model).evaluation)
    return with_defaults(cfg, store)


def next_stage(cfg: TrainConfig, model, run: RunFolder, epoch: int, reporter):
    """The ``stages`` schedule at the start of a stage: the best checkpoint's weights, a fresh optimizer."""
    name, lr = stage(cfg, epoch)
    note = f"epoch {epoch + 1}: a new stage, {name} at lr {lr:g}"
    if run.best.exists():
        best = load_checkpoint(run.best)
        load_weights(model, best, run.best, cfg)
        note += f", from the best checkpoint so far (epoch {best['epoch']})"
    reporter.note(note)
    optimizer = make_optimizer(cfg, model, epoch=epoch)
    return optimizer, make_scheduler(cfg, optimizer)


def warn_unlearnable(reporter, labels: list[str], train, weights, multilabel: bool) -> None:
    """Name the genres (or tags) the training split gives no example of."""
    if multilabel:
        seen = {t for ts in train["tags"].to_list() for t in ts or ()}
        missing = [t for t in labels if t not in seen]
        what = "tag(s) have no positive training track"
    else:
        missing = [g for g, w in zip(labels, weights.tolist()) if w == 0]
        what = "genre(s) have no training track"
    if missing:
        reporter.note(
            f"{len(missing)} {what} ({', '.join(missing[:8])}): the model cannot learn them, and their test tracks count "
            f"against it. Re-extract with a split or folds that put them in training."
        )


def crop_frames(cfg: TrainConfig, frame_rate: float, model: torch.nn.Module | None = None) -> int:
    """Frames in a training crop (and in each evaluation crop): the model's own input length when its
    recipe fixes one (``model.cfg.crop_frames``), else ``--crop-seconds``; at least 2 (a one-frame crop
    normalises to zeros, see the model tests)."""
    fixed = getattr(getattr(model, "cfg", None), "crop_frames", None)
    if fixed:
        return int(fixed)
    crop = int(round(cfg.crop_seconds * frame_rate))
    if crop < 2:
        raise UserError(
            f"--crop-seconds {cfg.crop_seconds} gives {crop} frame(s) at the store's {frame_rate:g} frames/s; "
            f"give at least {2 / frame_rate:.3g} s"
        )
    return crop


def eval_loader(dataset: TrackDataset, cfg: TrainConfig, device: torch.device):
    batches = distributed.strided(length_batches(dataset.lengths, cfg.eval_batch_size))  # all of them in one process
    return make_loader(dataset, batches, num_workers=cfg.num_workers, device=device, seed=0, persistent=True)
