"""Named presets (``mrnet-train --preset NAME``): plain functions returning a ``TrainConfig``.

MRNet's: ``paper`` (the authors' recipe), ``tiny`` (what a CPU user runs first) and ``small`` (a few
hundred real tracks on a CPU). Each baseline's: ``<model>-paper``, its paper's recipe as far as the
paper and its code state it, with the gaps filled as docs/models.md says, model by model. Every field
can be overridden by keyword (the CLI passes the options a user gave); the shared honest rules hold
for every preset: the checkpoint is chosen on validation, never on test.

>>> cfg = paper("store/gtzan.zarr", epochs=10)
>>> cfg.epochs, cfg.batch_size, cfg.lr, cfg.lr_min, cfg.model_options
(10, 48, 0.001, 0.0005, {})
>>> tiny("store/demo.zarr").model_options
{'width': 32, 'embed_dim': 32, 'dropout': 0.1}
>>> tiny("store/demo.zarr", model="fcn5", model_options={}).model_options   # MRNet's size is MRNet's only
{}
>>> fcn = preset("fcn5-paper", "store/mtat.zarr")
>>> fcn.model, fcn.optimizer, fcn.lr, fcn.schedule, fcn.stages[0], fcn.select_metric
('fcn5', 'adam', 0.0001, 'stages', (80, 'sgd', 0.001), 'loss')
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mrnet.core.errors import UserError
from mrnet.train.config import TrainConfig
from mrnet.train.models import PROBE, get

#: The regularisation of the CPU presets (tiny, small): see ``tiny`` (MRNet's dropout is in its options below).
LIGHT: dict[str, Any] = {"noise_p": 0.3, "time_masks": 1, "feature_masks": 1}
#: MRNet's options in the CPU presets; another model keeps its own defaults there.
TINY_MRNET: dict[str, Any] = {"width": 32, "embed_dim": 32, "dropout": 0.1}
SMALL_MRNET: dict[str, Any] = {"width": 48, "embed_dim": 64, "dropout": 0.1}


def _with(base: TrainConfig, overrides: dict[str, Any], mrnet_options: dict[str, Any]) -> TrainConfig:
    """``base`` with ``overrides``; the preset's MRNet options when the model is MRNet, the options given
    (``model_options``) over them."""
    model = overrides.get("model", base.model)
    options = {**(mrnet_options if model == "mrnet" else {}), **(overrides.get("model_options") or {})}
    return base.with_(**{**overrides, "model_options": options})


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
        store=store, preset="tiny", epochs=40, batch_size=16, crop_seconds=3.0, eval_batch_size=16, **LIGHT
    )
    return _with(base, overrides, TINY_MRNET)


def small(store: str, **overrides: Any) -> TrainConfig:
    """A few hundred real tracks on a CPU: C = 48, embedding 64, 60 epochs of 3 s crops, light
    regularisation, no test curve (half the evaluation time). 60 epochs, not 30: the better mean
    validation accuracy on the real-music benchmark (docs/results.md), about 10 minutes there."""
    base = TrainConfig(
        store=store,
        preset="small",
        epochs=60,
        batch_size=16,
        crop_seconds=3.0,
        eval_batch_size=16,
        test_curve=False,
        **LIGHT,
    )
    return _with(base, overrides, SMALL_MRNET)


# --- the baselines' recipes (docs/models.md: the source of every value, and what was filled in) ----

NO_NOISE_OR_MASKS: dict[str, Any] = {"noise_p": 0.0, "time_masks": 0, "feature_masks": 0}

#: MusicNeXt (Meng et al., 2024): Adam, batch 50, 50 epochs, random horizontal flip (time reversal) of
#: the fragment; lr 1e-4 constant and no weight decay (not stated); one global z-score of the training
#: set; the epoch-50 weights (no validation rule stated); a clip scored by its ten fragments.
#: An epoch is every fragment of every training clip (``epoch_mode="fragments"``: ~160 steps on GTZAN,
#: so the step-counted L-softmax lambda anneals as in the paper); the loss is unweighted.
MUSICNEXT: dict[str, Any] = dict(
    optimizer="adam",
    lr=1e-4,
    weight_decay=0.0,
    schedule="constant",
    batch_size=50,
    epochs=50,
    augment=True,
    time_flip=0.5,
    **NO_NOISE_OR_MASKS,
    normalize="global",
    select_metric="last",
    epoch_mode="fragments",
    class_weights="none",
)

#: NNET1/NNET2/MixNet (Bonato et al.; their code's values, which produced their logs): Adam, batch 64
#: (MixNet 32), lr 1e-4 / 5e-5 / 5e-5, weight decay 0.005 / 0.005 / 0, at most 100 epochs with early
#: stopping on validation loss (patience 20, min delta 0.01); training windows anywhere, the test
#: window starting at the track's midpoint (``eval_unit="middle"``, their ``audio[len/2 : len/2 + 2^18]``);
#: an unweighted loss. Their waveform noise and masks are approximated in the feature domain; MixNet
#: (and NNET2 on a wave+mfcc store) masks only the MFCC half of each frame (``augment.Augment.feature_span``).
NNET: dict[str, Any] = dict(
    optimizer="adam",
    schedule="constant",
    batch_size=64,
    epochs=100,
    select_metric="loss",
    patience=20,
    min_delta=0.01,
    augment=True,
    noise_p=0.5,
    feature_masks=0,
    eval_unit="middle",
    class_weights="none",
)
#: NNET1's augmentation of the waveform (noise on half the windows, one time mask of at most 15 %)
NNET1_WAVE: dict[str, Any] = dict(noise_p=0.5, time_masks=1, time_mask_frac=0.15, feature_masks=0)
NNET1: dict[str, Any] = dict(NNET, model="nnet1", lr=1e-4, weight_decay=0.005, **NNET1_WAVE)
#: NNET2's masks: up to 30 of the 256 frames and up to 2 of the 20 coefficients; on a wave+mfcc store on
#: the MFCC half only, the waveform half getting NNET1's augmentation (MixNet's two inputs)
NNET2: dict[str, Any] = dict(
    NNET,
    model="nnet2",
    lr=5e-5,
    weight_decay=0.005,
    time_masks=1,
    time_mask_frac=30 / 256,
    feature_masks=1,
    feature_mask_frac=2 / 20,
    wave_augment=NNET1_WAVE,
)
MIXNET: dict[str, Any] = dict(NNET2, model="mixnet", batch_size=32, weight_decay=0.0)

#: FCN-5 and MsE-CNN (Won et al.'s PyTorch recipe for the tagging CNNs; the MsE-CNN paper gives none):
#: batch 16, Adam 1e-4 with weight decay 1e-4, then after 80 epochs SGD (Nesterov, momentum 0.9) at
#: 1e-3, 1e-4 after 20 more, 1e-5 after 20 more, each stage starting from the best checkpoint; at most
#: 200 epochs; the checkpoint with the lowest validation loss; no augmentation; one 29.12 s clip; BCE
#: without tag weights (tags: --pos-weight off) and, on a genre store, an unweighted loss.
FCN: dict[str, Any] = dict(
    optimizer="adam",
    lr=1e-4,
    weight_decay=1e-4,
    batch_size=16,
    epochs=200,
    schedule="stages",
    stages=((80, "sgd", 1e-3), (100, "sgd", 1e-4), (120, "sgd", 1e-5)),
    select_metric="loss",
    augment=False,
    class_weights="none",
)

RECIPES: dict[str, dict[str, Any]] = {
    "musicnext": dict(MUSICNEXT, model="musicnext"),
    "musicnext-softmax": dict(MUSICNEXT, model="musicnext-softmax"),
    "nnet1": NNET1,
    "nnet2": NNET2,
    "mixnet": MIXNET,
    "fcn5": dict(FCN, model="fcn5"),
    "msecnn": dict(FCN, model="msecnn"),
}


def _recipe(name: str) -> Callable[..., TrainConfig]:
    def build(store: str, **overrides: Any) -> TrainConfig:
        return TrainConfig(store=store, preset=f"{name}-paper", **RECIPES[name]).with_(**overrides)

    build.__doc__ = f"{name}'s paper recipe (train/presets.py RECIPES, docs/models.md)."
    return build


PRESETS: dict[str, Callable[..., TrainConfig]] = {
    "paper": paper,
    "tiny": tiny,
    "small": small,
    **{f"{name}-paper": _recipe(name) for name in RECIPES},
}


def default_preset(model: str | None) -> str:
    """The preset a run of ``model`` (None: MRNet) starts from when none is named: the one its registry
    entry declares, else ``paper``."""
    return (get(model).preset if model else None) or "paper"


def another_models_recipe(cfg: TrainConfig) -> str | None:
    """What to say when ``cfg`` trains its model with another model's published recipe (``paper`` or
    ``<model>-paper``; the CPU presets ``tiny`` and ``small`` are any model's), else None.

    >>> another_models_recipe(preset("paper", "s.zarr", model="msecnn"))
    'msecnn trains with the recipe of --preset paper (recorded in config.json), not its own msecnn-paper'
    """
    own = default_preset(cfg.model)
    published = cfg.preset == "paper" or cfg.preset.endswith("-paper")
    if not published or cfg.preset == own or get(cfg.model).fitting == PROBE:
        return None
    return f"{cfg.model} trains with the recipe of --preset {cfg.preset} (recorded in config.json), not its own {own}"


def preset(name: str, store: str, **overrides: Any) -> TrainConfig:
    """Build the named preset, or fail naming the ones there are.

    >>> preset("huge", "s.zarr")
    Traceback (most recent call last):
    ...
    mrnet.core.errors.UserError: --preset 'huge': choose one of paper, tiny, small, musicnext-paper, musicnext-softmax-paper, nnet1-paper, nnet2-paper, mixnet-paper, fcn5-paper, msecnn-paper
    """
    if name not in PRESETS:
        raise UserError(f"--preset {name!r}: choose one of {', '.join(PRESETS)}")
    if (
        overrides.get("model") is not None
    ):  # what the model's registry entry changes in any preset (e.g. the probe: no augmentation)
        overrides = {**get(overrides["model"]).preset_changes, **overrides}
    return PRESETS[name](store, **overrides)
