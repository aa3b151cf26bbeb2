"""Figure 7, each model's training step: every registered network on its own input, beside MRNet's.

One fresh process per model times what ``mrnet.train.loop.train_step`` does per batch (forward,
loss, backward, optimizer step) with the model, optimizer and input normalisation a run builds
(``mrnet.train.setup.build_model``, ``make_optimizer``) from the model's recipe (``--preset
<model>-paper``; MRNet: its CPU preset ``small``), on one batch of the shape its store gives: the
recipe's batch size, the model's fixed crop (MusicNeXt 256 frames of ``mel128``, NNET 256 frames of
1,024 samples = 2^18 at 44.1 kHz, FCN 1,366 frames of ``mel96``) or the preset's crop seconds
(MRNet, on ``mel``), 14 classes (the real-music benchmark's). The batch is random values of the
stored dtype (float16), already in memory: reading and augmentation are not part of the step
(figure 5 measures the loader). One torch thread, as the real-music comparison trains
(``python -m benchmarks.zoo``); the first ``WARMUP`` steps are dropped and the median of the next
``STEPS`` is kept. The linear probe has no step: it is fitted by logistic regression
(``train/probe.py``).
"""

from __future__ import annotations

import time

from benchmarks.common import Context, log, median, run_child

WARMUP, STEPS, QUICK_STEPS = 1, 3, 2
CLASSES = 14

#: (label, model, preset, feature profile): each network on its recipe's input. MRNet's ``paper`` preset (C = 512,
#: batch 48) is left out: on one CPU thread its child had not finished four steps after four minutes.
CASES = (
    ("mrnet (small)", "mrnet", "small", "mel"),
    ("musicnext", "musicnext", "musicnext-paper", "mel128"),
    ("musicnext-softmax", "musicnext-softmax", "musicnext-softmax-paper", "mel128"),
    ("nnet1", "nnet1", "nnet1-paper", "wave"),
    ("nnet2", "nnet2", "nnet2-paper", "mfcc"),
    ("mixnet", "mixnet", "mixnet-paper", "wave+mfcc"),
    ("fcn5", "fcn5", "fcn5-paper", "mel96"),
    ("msecnn", "msecnn", "msecnn-paper", "mel96"),
)


def model_input(feature: str, classes: int = CLASSES):
    """The ``ModelInput`` a mono store of ``feature`` (an ``mrnet-extract --features`` profile) gives a model."""
    from mrnet.extract.engines import FEATURES
    from mrnet.extract.engines.mel import PROFILES, MelEngine
    from mrnet.train.models import ModelInput

    engine = MelEngine(feature=feature, params=PROFILES[feature]) if feature in PROFILES else FEATURES[feature]()
    return ModelInput(
        feature=feature,
        channels=1,
        num_layers=1,
        dim=engine.dim,
        frame_rate=engine.frame_rate,
        num_classes=classes,
        extraction=engine.describe().get("extraction", {}) if hasattr(engine, "describe") else {},
    )


def step_child(model: str, preset: str, feature: str, warmup: int, steps: int, threads: int = 1) -> dict:
    """Time ``warmup + steps`` training steps of ``model`` on a random batch in memory (runs in a fresh process)."""
    import torch

    torch.set_num_threads(threads)
    from mrnet.train.loop import crop_frames, train_step
    from mrnet.train.models import count_parameters
    from mrnet.train.presets import preset as make_preset
    from mrnet.train.setup import build_model, make_optimizer

    inputs = model_input(feature)
    cfg = make_preset(preset, "memory", model=model, device="cpu")
    if cfg.normalize is None:
        from mrnet.train import normalize
        from mrnet.train.models import get

        cfg = cfg.with_(normalize=normalize.default_for(feature, get(model).normalizations))
    torch.manual_seed(0)
    net = build_model(cfg, inputs)
    optimizer = make_optimizer(cfg, net, epoch=0)
    frames = crop_frames(cfg, inputs.frame_rate, net)
    x = torch.randn(cfg.batch_size, 1, 1, frames, inputs.dim).to(torch.float16)
    y = torch.randint(0, CLASSES, (cfg.batch_size,))
    net.train()
    times = []
    for _ in range(warmup + steps):
        began = time.perf_counter()
        train_step(net, optimizer, None, x, y, torch.device("cpu"), False)
        times.append(time.perf_counter() - began)
    return {
        "step_s": times[warmup:],
        "batch": cfg.batch_size,
        "frames": frames,
        "dim": inputs.dim,
        "seconds": frames / inputs.frame_rate,
        "parameters": count_parameters(net),
        "optimizer": cfg.optimizer,
        "normalize": cfg.normalize,
        "threads": torch.get_num_threads(),
    }


def run(ctx: Context) -> dict:
    quick = ctx.profile.name.endswith("quick")
    steps = QUICK_STEPS if quick else STEPS
    rows = []
    for label, model, preset, feature in CASES:
        log(f"steps: {label} ({preset} on {feature})")
        out = run_child(
            "benchmarks.steps:step_child",
            {"model": model, "preset": preset, "feature": feature, "warmup": WARMUP, "steps": steps},
        )
        step = median(out["step_s"])
        rows.append(
            {
                "label": label,
                "model": model,
                "preset": preset,
                "feature": feature,
                **{
                    k: out[k]
                    for k in (
                        "batch",
                        "frames",
                        "dim",
                        "seconds",
                        "parameters",
                        "optimizer",
                        "normalize",
                        "threads",
                        "step_s",
                    )
                },
                "median_step_s": step,
                "ms_per_example": 1000 * step / out["batch"],
                "peak_pss_mb": out["memory"]["peak_pss_mb"],
            }
        )
    reference = next(r for r in rows if r["label"] == "mrnet (small)")
    for r in rows:
        r["vs_mrnet_small"] = r["ms_per_example"] / reference["ms_per_example"]
    return {
        "rows": rows,
        "warmup_steps": WARMUP,
        "timed_steps": steps,
        "classes": CLASSES,
        "device": "cpu",
        "reference": reference["label"],
    }
