"""What one training run does: the ``TrainConfig`` dataclass and the named presets ``paper`` and ``tiny``.

A preset is a plain function returning a config; every field can be overridden by keyword (the CLI
passes the options a user gave). The model's input width is never here: it comes from the store's
provenance (``dim``, ``channels``, ``layers``) when the run starts.

>>> cfg = paper("store/gtzan.zarr", epochs=10)
>>> cfg.epochs, cfg.batch_size, cfg.lr, cfg.lr_min, cfg.channels
(10, 48, 0.001, 0.0005, 512)
>>> tiny("store/demo.zarr").channels
32
>>> TrainConfig.from_json(cfg.to_json()) == cfg
True
>>> cfg.with_(fold=3).with_(fold=None).fold is None    # with_ sets any field, None included
True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Callable

from mrnet.core.errors import UserError
from mrnet.train.models import MODELS
from mrnet.train.models.mrnet import ROUTES, VARIANTS

SELECT_METRICS = ("accuracy", "macro_f1")
NORMALIZE_MODES = ("instance", "stored", "global", "none")  # train/normalize.py


@dataclass(frozen=True)
class TrainConfig:
    """Everything that fixes a training run, recorded as ``config.json`` in the run folder.

    Defaults are the authors' recipe (see docs/training.md for the source of each value).
    """

    store: str  # path or URL of the feature store
    out: str | None = None  # run folder; None: runs/<store name>-<YYYYmmdd-HHMMSS>
    preset: str = "paper"
    # which data: the official split (fold None), one fold, or every fold
    fold: int | None = None
    all_folds: bool = False
    layers: tuple[int, ...] | None = None  # stored layer numbers (WavLM 0..12) to feed; None: all
    # input normalisation (train/normalize.py): instance | stored | none; None: the default for the
    # store's feature kind, made explicit when the run starts (a run folder from before this choice existed used instance)
    normalize: str | None = None
    # model (input width comes from the store)
    model: str = "mrnet"  # a name in mrnet.train.models.MODELS
    variant: str = "paper"
    drop_routes: tuple[str, ...] = ()
    channels: int = 512  # C
    embed_dim: int = 128
    dropout: float = 0.5
    # optimisation
    epochs: int = 1000
    batch_size: int = 48
    crop_seconds: float = 6.0
    lr: float = 1e-3
    lr_min: float = 5e-4  # cosine from lr to lr_min over the run
    weight_decay: float = 1e-4
    amsgrad: bool = True
    # feature-domain augmentation (stands in for the authors' waveform noise)
    augment: bool = True
    noise_p: float = 0.7  # probability of Gaussian feature noise per crop
    time_masks: int = 2  # up to this many time masks per crop
    time_mask_frac: float = 0.1  # each at most this fraction of the crop
    feature_masks: int = 2
    feature_mask_frac: float = 0.1
    # evaluation and selection
    select_metric: str = "accuracy"  # on the validation split; ties go to the lower validation loss
    eval_every: int = 1  # epochs between evaluations (the last epoch is always evaluated)
    test_curve: bool = True  # also evaluate test each time: the curve and the optimistic number
    eval_batch_size: int = 8  # whole tracks of equal length per batch
    # machinery
    num_workers: int | None = None  # None: threads of this process read ahead (data.Prefetcher); N: a DataLoader with N worker processes
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    bf16: bool = True  # autocast to bfloat16 on CUDA (never on CPU)
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "drop_routes", tuple(self.drop_routes))
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(int(x) for x in self.layers))
        self.check()

    def check(self) -> None:
        """Raise ``UserError`` naming the first option that cannot work."""
        if self.model not in MODELS:
            raise UserError(f"--model {self.model!r}: choose one of {', '.join(MODELS)}")
        if self.variant not in VARIANTS:
            raise UserError(f"--variant {self.variant!r}: choose one of {', '.join(VARIANTS)}")
        unknown = [r for r in self.drop_routes if r not in ROUTES]
        if unknown:
            raise UserError(f"--drop-route {', '.join(unknown)}: routes are named {', '.join(ROUTES)}")
        if len(set(self.drop_routes)) >= len(ROUTES):
            raise UserError("--drop-route drops every route; keep at least one")
        if self.normalize is not None and self.normalize not in NORMALIZE_MODES:
            raise UserError(f"--normalize {self.normalize!r}: choose one of {', '.join(NORMALIZE_MODES)}")
        if self.normalize is not None and self.normalize not in MODELS[self.model].normalizations:
            raise UserError(f"--normalize {self.normalize}: --model {self.model} trains with {' or '.join(MODELS[self.model].normalizations)}")
        if self.select_metric not in SELECT_METRICS:
            raise UserError(f"--select-metric {self.select_metric!r}: choose one of {', '.join(SELECT_METRICS)}")
        if self.fold is not None and self.all_folds:
            raise UserError("--fold and --folds all exclude each other: pick one fold, or all of them")
        if self.fold is not None and self.fold < 0:
            raise UserError(f"--fold {self.fold}: folds are numbered from 0")
        positive = ("channels", "embed_dim", "epochs", "batch_size", "eval_every", "eval_batch_size")
        for name in positive:
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.crop_seconds <= 0:
            raise UserError(f"--crop-seconds must be positive, got {self.crop_seconds}")
        if not 0 <= self.dropout < 1:
            raise UserError(f"--dropout must be in [0, 1), got {self.dropout}")
        if self.lr <= 0 or self.lr_min < 0 or self.lr_min > self.lr:
            raise UserError(f"--lr {self.lr} and --lr-min {self.lr_min}: need 0 <= lr-min <= lr and lr > 0")
        if self.num_workers is not None and self.num_workers < 0:
            raise UserError(f"--num-workers must be 0 or more, got {self.num_workers}")
        for name in ("noise_p", "time_mask_frac", "feature_mask_frac"):
            if not 0 <= getattr(self, name) <= 1:
                raise UserError(f"--{name.replace('_', '-')} must be in [0, 1], got {getattr(self, name)}")
        for name in ("time_masks", "feature_masks"):
            if getattr(self, name) < 0:
                raise UserError(f"--{name.replace('_', '-')} must be 0 or more, got {getattr(self, name)}")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["drop_routes"] = list(self.drop_routes)
        data["layers"] = None if self.layers is None else list(self.layers)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def with_(self, **changes: Any) -> "TrainConfig":
        """A copy with the given fields changed (checked like a new config)."""
        return replace(self, **changes)


#: The regularisation of the CPU presets (tiny, small): see ``tiny``.
LIGHT: dict[str, Any] = {"dropout": 0.1, "noise_p": 0.3, "time_masks": 1, "feature_masks": 1}

# --- presets ------------------------------------------------------------------------------------


def paper(store: str, **overrides: Any) -> TrainConfig:
    """The authors' recipe: C = 512, batch 48, 6 s crops, AdamW 1e-3 -> 5e-4 cosine, 1000 epochs."""
    return TrainConfig(store=store, preset="paper").with_(**overrides)


def tiny(store: str, **overrides: Any) -> TrainConfig:
    """What a CPU user runs first (minutes): C = 32, batch 16, 3 s crops, 40 epochs, light regularisation.

    Dropout 0.1 and one mask of each kind with noise on 30 % of the crops, not the paper's 0.5 and
    2 + 2 masks on 70 %: those are for 13 x 768 WavLM features and 1000 epochs, and on 48 Mel bands
    they kept a small model from learning real music (docs/results.md).
    """
    base = TrainConfig(
        store=store, preset="tiny", channels=32, embed_dim=32, epochs=40, batch_size=16, crop_seconds=3.0,
        eval_batch_size=16, **LIGHT,
    )
    return base.with_(**overrides)


def small(store: str, **overrides: Any) -> TrainConfig:
    """A few hundred real tracks on a CPU: C = 48, embedding 64, 60 epochs of 3 s crops, light
    regularisation, no test curve (half the evaluation time). 60 epochs, not 30: the better mean
    validation accuracy on the real-music benchmark (docs/results.md), about 10 minutes there."""
    base = TrainConfig(
        store=store, preset="small", channels=48, embed_dim=64, epochs=60, batch_size=16, crop_seconds=3.0,
        eval_batch_size=16, test_curve=False, **LIGHT,
    )
    return base.with_(**overrides)


#: What ``--model linear`` changes in any preset (an option given still wins): the probe is fitted by
#: logistic regression for each C of a grid, chosen on validation (train/probe.py), not by epochs.
PROBE: dict[str, Any] = {"augment": False}

PRESETS: dict[str, Callable[..., TrainConfig]] = {"paper": paper, "tiny": tiny, "small": small}


def preset(name: str, store: str, **overrides: Any) -> TrainConfig:
    """Build the named preset, or fail naming the ones there are.

    >>> preset("huge", "s.zarr")
    Traceback (most recent call last):
    ...
    mrnet.core.errors.UserError: --preset 'huge': choose one of paper, tiny, small
    """
    if name not in PRESETS:
        raise UserError(f"--preset {name!r}: choose one of {', '.join(PRESETS)}")
    if overrides.get("model") == "linear":
        overrides = {**PROBE, **overrides}
    return PRESETS[name](store, **overrides)
