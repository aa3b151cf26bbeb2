"""What one training run does: the ``TrainConfig`` dataclass, recorded as ``config.json`` in its folder.

The named presets that fill it (``paper``, ``tiny``, each baseline's ``<model>-paper``) are in
``train/presets.py``. The model's input width is never here: it comes from the store's provenance
(``dim``, ``channels``, ``layers``) when the run starts. Nor is the task: a store holds genres
(single-label) or tags (multi-label), and the loss and metrics follow it.

>>> cfg = TrainConfig(store="store/gtzan.zarr", epochs=10)
>>> cfg.epochs, cfg.batch_size, cfg.lr, cfg.lr_min, cfg.model_options
(10, 48, 0.001, 0.0005, {})
>>> TrainConfig.from_json({"store": "s.zarr", "channels": 32, "drop_routes": ["H"]}).model_options   # an older config.json
{'width': 32, 'drop_routes': ('H',)}
>>> TrainConfig.from_json(cfg.to_json()) == cfg
True
>>> cfg.with_(fold=3).with_(fold=None).fold is None    # with_ sets any field, None included
True
>>> TrainConfig(store="s.zarr", schedule="stages", stages=((80, "sgd", 1e-3),)).stages
((80, 'sgd', 0.001),)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, TypeVar

from mrnet.core.errors import UserError
from mrnet.train.models import MODELS
from mrnet.train.normalize import MODES as NORMALIZE_MODES
from mrnet.train.ranges import problems
from mrnet.train.tasks import MULTI, SINGLE

#: Validation metrics that choose the checkpoint. ``loss``: the lowest validation loss; ``last``: the last
#: epoch's weights (a recipe that tests its last epoch; chosen without looking at test either way).
SELECT_METRICS = {SINGLE: ("accuracy", "macro_f1", "loss", "last"), MULTI: ("roc_auc", "pr_auc", "loss", "last")}
#: config.json keys of MRNet's options before every model's options were nested under ``model_options``
#: (old key -> option), read from a run folder of then for --resume, mrnet-report and mrnet-predict
LEGACY_MODEL_KEYS = {
    "channels": "width",
    "embed_dim": "embed_dim",
    "variant": "variant",
    "drop_routes": "drop_routes",
    "dropout": "dropout",
}
OPTIMIZERS = ("adamw", "adam", "sgd")
CLASS_WEIGHTS = ("balanced", "none")
EPOCH_MODES = ("crops", "fragments")
SCHEDULES = ("cosine", "constant", "stages")
T = TypeVar("T")


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
    # input normalisation (train/normalize.py MODES): instance | stored | global | none; None: the default for the
    # store's feature kind, made explicit when the run starts (a run folder from before this choice existed used instance)
    normalize: str | None = None
    # model (input width comes from the store)
    model: str = "mrnet"  # a name in mrnet.train.models.MODELS
    #: the model's own options (its registry entry's ``options``; the rest are its config's defaults):
    #: MRNet's width, embed_dim, variant, drop_routes, dropout (mrnet-train --width, --embed-dim, ...),
    #: any model's by --model-option KEY=VALUE
    model_options: dict[str, Any] = field(default_factory=dict)
    # optimisation
    epochs: int = 1000
    batch_size: int = 48
    crop_seconds: float = 6.0  # a model with a fixed input length (its config's crop_frames) ignores it
    optimizer: str = "adamw"  # adamw (amsgrad as set) | adam | sgd (momentum 0.9, Nesterov)
    lr: float = 1e-3
    schedule: str = "cosine"  # cosine: lr -> lr_min over the run; constant; stages (below)
    lr_min: float = 5e-4
    #: schedule "stages": (epoch, optimizer, lr) -- from that epoch on, a fresh optimizer of that kind at that
    #: lr, starting from the best checkpoint so far (Won et al.'s recipe for the tagging CNNs)
    stages: tuple[tuple[int, str, float], ...] = ()
    weight_decay: float = 1e-4
    amsgrad: bool = True
    pos_weight: bool = False  # multi-label: weigh each tag's positives by negatives / positives in training
    #: single-label loss: ``balanced`` weighs each class by max_count / count over the training split (MRNet's
    #: paper: "cross-entropy with class weights"); ``none``: plain cross-entropy (every baseline's paper and code)
    class_weights: str = "balanced"
    #: what one epoch is: ``crops``, one random crop per training track; ``fragments``, every non-overlapping
    #: crop of every training track once (MusicNeXt's ten fragments per clip), crop starts fixed, order shuffled
    epoch_mode: str = "crops"
    # feature-domain augmentation (stands in for the authors' waveform noise)
    augment: bool = True
    noise_p: float = 0.7  # probability of Gaussian feature noise per crop
    time_masks: int = 2  # up to this many time masks per crop
    time_mask_frac: float = 0.1  # each at most this fraction of the crop
    feature_masks: int = 2
    feature_mask_frac: float = 0.1
    time_flip: float = 0.0  # probability of playing a crop backwards (MusicNeXt's horizontal flip)
    #: on a ``wave+mfcc`` store, the waveform half's augmentation (``augment.Augment`` fields), the options above
    #: then acting on the MFCC half only (the NNET presets: NNET1's recipe on the samples); None: the options
    #: act on the whole frame
    wave_augment: dict[str, Any] | None = None
    # evaluation and selection
    select_metric: str | None = None  # on the validation split (SELECT_METRICS); None: accuracy, or ROC-AUC for tags
    patience: int = 0  # stop when the selection metric has not improved for this many evaluations (0: never)
    min_delta: float = 0.0  # what counts as an improvement for patience
    eval_unit: str | None = None  # whole | center | middle | chunks:N; None: the model's (its registry entry)
    eval_every: int = 1  # epochs between evaluations (the last epoch is always evaluated)
    test_curve: bool = True  # also evaluate test each time: the curve and the optimistic number
    eval_batch_size: int = 8  # whole tracks of equal length per batch
    # machinery
    check_reads: bool = False  # check each track's checksum on its first read in each process (docs/reliability.md)
    num_workers: int | None = (
        None  # None: threads of this process read ahead (data.Prefetcher); N: a DataLoader with N worker processes
    )
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    bf16: bool = True  # autocast to bfloat16 on CUDA (never on CPU)
    seed: int = 0
    #: several seeds of this configuration in one folder (train/seeds.py): seed-<s>/ each, mean and spread reported
    seeds: tuple[int, ...] = ()
    # scale (train/distributed.py, train/parallel.py): one run on N processes, or with --folds all N folds at once
    workers: int | None = None  # N CPU processes (gloo); with --folds all, N folds at once on a local Dask cluster
    gpus: tuple[int, ...] = ()  # one process per GPU (NCCL); with --folds all, one fold per GPU
    scheduler: str | None = None  # with --folds all: the folds are tasks on this Dask cluster (tcp://host:8786)
    sync_bn: bool = True  # several processes: BatchNorm statistics over the global batch (SyncBatchNorm)
    #: epochs the cosine schedule spans; None: --epochs. A finished run extended with --resume RUN --epochs N
    #: keeps its schedule (this is set to its old --epochs), and the added epochs run at lr_min.
    schedule_epochs: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "stages", tuple((int(e), str(o), float(lr)) for e, o, lr in self.stages))
        # lists from JSON become tuples, so a config read back compares equal
        object.__setattr__(
            self,
            "model_options",
            {k: tuple(v) if isinstance(v, list) else v for k, v in (self.model_options or {}).items()},
        )
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(int(x) for x in self.layers))
        object.__setattr__(self, "gpus", tuple(int(g) for g in self.gpus or ()))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds or ()))
        self.check()

    def check(self) -> None:
        """Raise ``UserError`` naming the first option that cannot work: first any number outside its
        declared range (train/ranges.py: NaN and infinity never are inside), then the combinations."""
        wrong = problems({f.name: getattr(self, f.name) for f in fields(self)}, self.model_options)
        if wrong:
            raise UserError(
                wrong[0] + (f" (and {len(wrong) - 1} more: {'; '.join(wrong[1:])})" if len(wrong) > 1 else "")
            )
        if self.model not in MODELS:
            raise UserError(f"--model {self.model!r}: choose one of {', '.join(MODELS)}")
        own = tuple(o for o in MODELS[self.model].options if o != "instance_norm")  # instance_norm follows --normalize
        unknown = sorted(set(self.model_options) - set(own))
        if unknown:
            raise UserError(
                f"--model {self.model} has no option(s) {', '.join(unknown)}; its options are {', '.join(own) or 'none'}"
            )
        if self.normalize is not None and self.normalize not in NORMALIZE_MODES:
            raise UserError(f"--normalize {self.normalize!r}: choose one of {', '.join(NORMALIZE_MODES)}")
        if self.normalize is not None and self.normalize not in MODELS[self.model].normalizations:
            raise UserError(
                f"--normalize {self.normalize}: --model {self.model} trains with {' or '.join(MODELS[self.model].normalizations)}"
            )
        every_metric = sorted({m for ms in SELECT_METRICS.values() for m in ms})
        if self.select_metric is not None and self.select_metric not in every_metric:
            raise UserError(f"--select-metric {self.select_metric!r}: choose one of {', '.join(every_metric)}")
        if self.optimizer not in OPTIMIZERS or any(o not in OPTIMIZERS for _, o, _ in self.stages):
            raise UserError(f"--optimizer / --stage: optimizers are {', '.join(OPTIMIZERS)}")
        if self.class_weights not in CLASS_WEIGHTS:
            raise UserError(f"--class-weights {self.class_weights!r}: choose one of {', '.join(CLASS_WEIGHTS)}")
        if self.epoch_mode not in EPOCH_MODES:
            raise UserError(f"--epoch-mode {self.epoch_mode!r}: choose one of {', '.join(EPOCH_MODES)}")
        if self.schedule not in SCHEDULES:
            raise UserError(f"--schedule {self.schedule!r}: choose one of {', '.join(SCHEDULES)}")
        if (self.schedule == "stages") != bool(self.stages):
            raise UserError(
                "--schedule stages needs --stage EPOCH:OPTIMIZER:LR (one or more), and --stage needs --schedule stages"
            )
        epochs = [e for e, _, _ in self.stages]
        if (
            epochs != sorted(set(epochs))
            or any(e < 1 for e in epochs)
            or any(not 0 < lr <= 10 for _, _, lr in self.stages)
        ):
            raise UserError(
                f"--stage: epochs must increase from 1 on, each with an lr in (0, 10]; got {list(self.stages)} "
                "(a stage at or after --epochs never begins)"
            )
        if self.eval_unit is not None:
            parse_eval_unit(self.eval_unit)
        if self.wave_augment is not None:
            allowed = {"noise_p", "time_masks", "time_mask_frac", "feature_masks", "feature_mask_frac"}
            if set(self.wave_augment) - allowed:
                raise UserError(f"wave_augment {self.wave_augment}: its keys are {', '.join(sorted(allowed))}")
        if self.fold is not None and self.all_folds:
            raise UserError("--fold and --folds all exclude each other: pick one fold, or all of them")
        if self.schedule == "cosine" and self.lr_min > self.lr:
            raise UserError(f"--lr {self.lr} and --lr-min {self.lr_min}: the cosine schedule needs lr-min <= lr")
        self.check_scale()

    def check_scale(self) -> None:
        """The scale options: ``--workers``, ``--gpus``, ``--scheduler`` (what this machine has is checked at launch)."""
        if self.workers is not None and self.gpus:
            raise UserError("--workers (CPU processes) and --gpus (one process per GPU) exclude each other: give one")
        if len(set(self.gpus)) != len(self.gpus) or any(g < 0 for g in self.gpus):
            raise UserError(
                f"--gpus {','.join(map(str, self.gpus))}: list each GPU once, by its number (e.g. --gpus 0,1)"
            )
        if len(set(self.seeds)) != len(self.seeds) or any(s < 0 for s in self.seeds):
            raise UserError(
                f"--seeds {','.join(map(str, self.seeds))}: list each seed once, 0 or more (e.g. --seeds 0,1,2)"
            )
        if self.scheduler is not None and not (self.all_folds or self.seeds):
            raise UserError(
                "--scheduler runs independent runs (--folds all) or seeds (--seeds) as tasks on a Dask cluster; one run's processes "
                "come from --workers, --gpus or torchrun (docs/training.md, Training at scale)"
            )
        if self.scheduler is not None and (self.workers is not None or self.gpus):
            raise UserError(
                "--scheduler sends the folds to that cluster's workers; drop --workers/--gpus (the cluster has its own)"
            )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["model_options"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.model_options.items()}
        data["stages"] = [list(s) for s in self.stages]
        data["layers"] = None if self.layers is None else list(self.layers)
        data["gpus"] = list(self.gpus)
        data["seeds"] = list(self.seeds)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainConfig:
        """A config.json, of today or of a run from before the model options were nested (mapped)."""
        known = {f.name for f in fields(cls)}
        data = {**data, "model_options": model_options_of(data)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def with_(self, **changes: Any) -> TrainConfig:
        """A copy with the given fields changed (checked like a new config)."""
        return replace(self, **changes)


def model_options_of(data: dict[str, Any]) -> dict[str, Any]:
    """The model options a config.json records: ``model_options``, with MRNet's from an older config.json's
    top-level keys (``LEGACY_MODEL_KEYS``; a model without those options never used them)."""
    name = data.get("model", "mrnet")
    own = MODELS[name].options if name in MODELS else ()
    legacy = {
        LEGACY_MODEL_KEYS[k]: v for k, v in data.items() if k in LEGACY_MODEL_KEYS and LEGACY_MODEL_KEYS[k] in own
    }
    return {**legacy, **(data.get("model_options") or {})}


def required(value: T | None, option: str) -> T:
    """A field settled before training reads it: ``select_metric`` and ``eval_unit`` (``setup.with_defaults``,
    from the store and the model), ``out`` (the run folder, once a run or a seed has one)."""
    if value is None:
        raise ValueError(f"TrainConfig.{option} is not settled yet (see config.required)")
    return value


def parse_eval_unit(text: str) -> tuple[str, int]:
    """``whole``, ``center``, ``middle`` or ``chunks:N`` -> (kind, N); N is 1 but for chunks.

    >>> parse_eval_unit("chunks:10"), parse_eval_unit("middle")
    (('chunks', 10), ('middle', 1))
    """
    kind, _, n = text.partition(":")
    if kind in ("whole", "center", "middle") and not n:
        return kind, 1
    if kind == "chunks" and n.isdigit() and int(n) >= 1:
        return kind, int(n)
    raise UserError(
        f"--eval-unit {text!r}: whole (the whole track), center (one crop centred on its middle), middle (one crop "
        "starting at its middle, NNET's test window) or chunks:N (N crops, probabilities averaged)"
    )
