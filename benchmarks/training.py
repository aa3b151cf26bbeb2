"""Figure 5, training: streaming crops from the store against computing WavLM on the fly from audio.

Three fresh processes train the same MRNet (the ``paper`` preset: C = 512, AdamW, bf16 autocast on
CUDA) at the same batch size on the same kind of input, ``(B, 1, 13, ~300, 768)``:

- **store**: ``mrnet.train.loop.train`` itself, the real loader (``CropDataset`` through the preset's
  loader, reading threads by default, augmentation on) over a WavLM-shaped store. Step times are
  the intervals between the loop's ``Reporter.batch`` calls (the loop calls ``loss.item()`` every
  step, so each interval ends with the GPU idle);
- **in memory**: the same model, optimizer and step code (``mrnet.train.setup.build_run``,
  ``mrnet.train.loop.train_step``), on batches collated beforehand from the same
  dataset and kept in (pinned) host memory: the loop with a loader that costs nothing;
- **on the fly** (the authors' approach): each step takes random 6 s crops of decoded audio (the MP3
  clips of figure 1, already decoded and resampled in memory), runs frozen WavLM (same precision as
  extraction) to get the 13 hidden states, then the same MRNet step.

Also measured: how many crops per second one reader produces (``CropDataset`` items, augmentation
drawn and not, in this process), how many crops per second each way of loading delivers into the
training loop (the default reading threads, a DataLoader with worker processes), and what
``Augment.apply`` costs per crop on the training device, where it runs inside the step.

The first ``train_warmup`` steps of each are dropped (worker start-up, allocator, autotuning); time per
epoch is steps per epoch x the median step time. Stopping after a few steps uses the loop's own
``should_stop``; evaluation never runs inside the timed steps.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from benchmarks.common import CACHE, Context, log, median, run_child
from benchmarks.data import dataset_files, feature_store, mp3_dataset
from benchmarks.models import engine, wavlm_base_random

TARGET_GPU_LOADER = 0.95


def _cfg(store: str, out: str, batch: int, device: str, **overrides):
    from mrnet.train.presets import paper

    # many epochs and evaluation only at the last one: the timed steps never include an evaluation
    return paper(store, out=out, batch_size=batch, device=device, epochs=1000, eval_every=1000, **overrides)


def _step_times(stamps: list[float], warmup: int) -> list[float]:
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    return gaps[max(0, warmup - 1) :]


# --- children -----------------------------------------------------------------------------------------
def store_steps(
    store: str, out: str, batch: int, steps: int, warmup: int, device: str, num_workers: int | None = None
) -> dict:
    """The real training loop over the store, stopped after ``warmup + steps`` batches."""
    import torch

    from mrnet.core.machine import pick_device
    from mrnet.train.loader import loader_threads
    from mrnet.train.loop import Interrupted, Reporter, train

    stamps: list[float] = []

    class Timer(Reporter):
        def start(self, **kw):
            stamps.append(time.perf_counter())

        def batch(self, **kw):
            stamps.append(time.perf_counter())

    overrides = {} if num_workers is None else {"num_workers": num_workers}
    cfg = _cfg(store, out, batch, device, **overrides)
    try:
        train(cfg, reporter=Timer(), should_stop=lambda epoch, step: len(stamps) - 1 >= warmup + steps)
    except Interrupted:
        pass
    times = _step_times(stamps, warmup + 1)  # the first gap is start -> first batch (workers starting)
    loader = (
        f"{cfg.num_workers} DataLoader workers"
        if cfg.num_workers is not None
        else f"{loader_threads(pick_device(cfg.device))} reading threads"
    )
    return {
        "step_s": times,
        "first_step_s": stamps[1] - stamps[0] if len(stamps) > 1 else None,
        "loader": loader,
        "num_workers": cfg.num_workers,
        "device": device,
        "torch_threads": torch.get_num_threads(),
    }


class _Run:
    """What a benchmark's own training loop needs, built as ``mrnet.train.loop.fit`` builds it."""

    def __init__(self, store: str, batch: int, device: str):
        from mrnet.core.machine import pick_device
        from mrnet.train.augment import Augment
        from mrnet.train.setup import build_run, model_input, open_store
        from mrnet.train.splits import split_tracks

        self.store = open_store(store)
        self.cfg = cfg = _cfg(store, "unused", batch, device)
        self.device = pick_device(cfg.device)
        self.splits = split_tracks(self.store.tracks, fold=cfg.fold, where=self.store.location.url)
        self.positions = self.store.layer_positions(cfg.layers)
        self.classes = self.store.genres.height
        inputs = model_input(self.store.provenance, len(self.positions), self.classes)
        self.setup = build_run(cfg, inputs, self.splits.train, self.device)
        self.augment = (
            Augment(cfg.noise_p, cfg.time_masks, cfg.time_mask_frac, cfg.feature_masks, cfg.feature_mask_frac)
            if cfg.augment
            else None
        )
        self.bf16 = cfg.bf16 and self.device.type == "cuda"

    def step(self, x, y, plan=None) -> float:
        """One training step, exactly ``fit``'s (``mrnet.train.loop.train_step``)."""
        from mrnet.train.loop import train_step

        s = self.setup
        augment = self.augment if plan is not None else None
        return train_step(s.model, s.optimizer, s.class_weights, x, y, self.device, self.bf16, augment, plan)[0]


def memory_steps(store: str, batch: int, steps: int, warmup: int, device: str, distinct: int = 4) -> dict:
    """The same steps on batches collated beforehand (``distinct`` of them, cycled), in host memory."""
    import torch

    from mrnet.train.crops import CropDataset
    from mrnet.train.loader import EpochBatches, collate
    from mrnet.train.loop import crop_frames

    run = _Run(store, batch, device)
    cfg, dev = run.cfg, run.device
    crop = crop_frames(cfg, run.store.provenance.frame_rate)
    data = CropDataset(
        run.store.location, run.splits.train, run.positions, crop=crop, seed=cfg.seed, augment=run.augment
    )
    order = list(EpochBatches(len(data), cfg.batch_size, seed=cfg.seed, epoch=0))[:distinct]
    ready = []
    for items in order:
        x, y, plan = collate([data[i] for i in items])
        ready.append((x.pin_memory(), y.pin_memory(), plan) if dev.type == "cuda" else (x, y, plan))
    run.setup.model.train()
    times = []
    for k in range(warmup + steps):
        x, y, plan = ready[k % len(ready)]
        began = time.perf_counter()
        run.step(x, y, plan)
        times.append(time.perf_counter() - began)
    return {"step_s": times[warmup:], "device": dev.type, "torch_threads": torch.get_num_threads()}


def on_the_fly_steps(
    store: str, audio_root: str, model: str, batch: int, steps: int, warmup: int, device: str, seed: int = 0
) -> dict:
    """The authors' approach: WavLM on random 6 s audio crops every step, then the same MRNet step.

    WavLM runs as the extraction engine runs it (its network, precision and layers), on crops of
    decoded audio held in memory."""
    import numpy as np
    import torch

    run = _Run(store, batch, device)
    dev = run.device
    eng = engine(model=model, device=str(dev))
    waves = [eng.load(p)[0][0] for p in dataset_files(Path(audio_root))]  # decoded, 16 kHz mono, in memory
    n = int(round(run.cfg.crop_seconds * eng.sample_rate))
    rng = np.random.default_rng(seed)
    autocast = dict(device_type=dev.type, dtype=eng._dtype, enabled=eng._dtype is not None)
    run.setup.model.train()
    times, wavlm = [], []
    for _ in range(warmup + steps):
        began = time.perf_counter()
        picks = [waves[int(rng.integers(len(waves)))] for _ in range(batch)]
        crops = np.stack([w[s : s + n] for w in picks for s in [int(rng.integers(0, len(w) - n + 1))]])
        x = torch.from_numpy(crops).to(dev)
        with torch.no_grad(), torch.autocast(**autocast):
            hidden = eng._net(x, output_hidden_states=True).hidden_states
            feats = torch.stack([hidden[layer] for layer in eng.layers], dim=1).unsqueeze(1)  # (B, 1, 13, T, 768)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        mid = time.perf_counter()
        y = torch.from_numpy(rng.integers(0, run.classes, batch)).long()
        run.step(feats.float() if not run.bf16 else feats, y)
        times.append(time.perf_counter() - began)
        wavlm.append(mid - began)
    return {
        "step_s": times[warmup:],
        "wavlm_s": wavlm[warmup:],
        "frames": int(feats.shape[3]),
        "device": dev.type,
        "precision": eng.describe()["extraction"]["precision"],
        "torch_threads": torch.get_num_threads(),
    }


def loader_rate(store: str, device: str, batch: int, passes: int = 5) -> dict:
    """Crops per second one DataLoader worker can produce (``CropDataset`` items: store read plus the
    augmentation draw, and without the draw), best of ``passes``; and the milliseconds per crop that
    ``Augment.apply`` adds to a training step on ``device`` (a batch of ``batch`` crops)."""
    import torch

    from mrnet.core.machine import pick_device
    from mrnet.store.reader import FeatureStore
    from mrnet.train.augment import Augment
    from mrnet.train.crops import CropDataset
    from mrnet.train.loader import collate
    from mrnet.train.splits import split_tracks

    st = FeatureStore.open(store)
    train = split_tracks(st.tracks).train
    positions = st.layer_positions(None)
    crop = int(round(6.0 * st.provenance.frame_rate))
    sets = {
        name: CropDataset(st.location, train, positions, crop=crop, seed=0, augment=aug)
        for name, aug in (("augment", Augment()), ("no_augment", None))
    }
    for i in range(len(sets["augment"])):  # warm: page cache
        sets["augment"][(0, i)]
    rates: dict[str, list[float]] = {name: [] for name in sets}
    epoch = 0
    for _ in range(passes):  # alternating, each pass on its own epoch: crops at positions no pass has read
        for name, ds in sets.items():
            epoch += 1
            began = time.perf_counter()
            for i in range(len(ds)):
                ds[(epoch, i)]
            rates[name].append(len(ds) / (time.perf_counter() - began))
    out = {name: max(r) for name, r in rates.items()}
    out["rounds"] = rates
    dev = pick_device(device)
    aug = Augment(noise_p=1.0)  # every crop noised: the most a step can pay
    ds = CropDataset(st.location, train, positions, crop=crop, seed=0, augment=aug)
    x, _, plan = collate([ds[(0, i % len(ds))] for i in range(batch)])
    x = x.to(dev).float()
    times = []
    for _ in range(passes + 1):
        began = time.perf_counter()
        aug.apply(x, plan)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - began)
    out["apply_ms_per_crop"] = min(times[1:]) / batch * 1e3
    out["apply_device"] = dev.type
    out["apply_threads"] = torch.get_num_threads()
    return out


def feed_rate(
    store: str, device: str, batch: int, threads: list[int], workers: list[int], epochs: int = 6, passes: int = 2
) -> dict:
    """Crops per second each way of loading delivers to the training loop, as ``fit`` builds it, over
    several epochs after the first batch (start-up left out), best of ``passes``, alternating:

    - ``threads``: the default, ``Prefetcher`` (threads of the training process read each batch in place);
    - ``workers``: ``--num-workers N``, a DataLoader with N processes, batches read in place into shared memory.

    Augmentation is drawn (and, like the model, applied later in the step); on CUDA batches are pinned."""
    from torch.utils.data import DataLoader

    from mrnet.core.machine import pick_device
    from mrnet.store.reader import FeatureStore
    from mrnet.train.augment import Augment
    from mrnet.train.crops import CropDataset
    from mrnet.train.loader import EpochBatches, Prefetcher, collate, loader_threads, worker_init
    from mrnet.train.splits import split_tracks

    st = FeatureStore.open(store)
    train = split_tracks(st.tracks).train
    crop = int(round(6.0 * st.provenance.frame_rate))
    ds = CropDataset(st.location, train, st.layer_positions(None), crop=crop, seed=0, augment=Augment())
    pin = device == "cuda"

    def dataloader(n):
        return lambda batches: DataLoader(
            ds,
            batch_sampler=batches,
            collate_fn=collate,
            num_workers=n,
            worker_init_fn=worker_init if n else None,
            pin_memory=pin,
        )

    ways = [("threads", n, lambda batches, n=n: Prefetcher(ds, batches, threads=n, pin=pin)) for n in threads]
    ways += [("workers", n, dataloader(n)) for n in workers]
    out = {
        "auto_threads": loader_threads(pick_device(device)),
        "batch": min(batch, len(ds)),
        "threads": {},
        "workers": {},
    }
    for rep in range(passes):
        for kind, n, make in ways:
            batches = [b for e in range(epochs) for b in EpochBatches(len(ds), batch, seed=0, epoch=100 * rep + e)]
            it = iter(make(batches))
            next(it)
            count, began = 0, time.perf_counter()
            for x, _, _ in it:
                count += x.shape[0]
            rate = count / (time.perf_counter() - began)
            out[kind][str(n)] = max(rate, out[kind].get(str(n), 0.0))
    return out


# --- the figure ---------------------------------------------------------------------------------------
def training_store(tracks: int) -> Path:
    return feature_store(CACHE / "stores" / f"train-{tracks}.zarr", tracks, seconds=30.0)


def run(ctx: Context) -> dict:
    from mrnet.core.machine import pick_device
    from mrnet.store.reader import FeatureStore
    from mrnet.train.loader import loader_threads, steps_per_epoch
    from mrnet.train.splits import split_tracks

    p = ctx.profile
    store = training_store(p.train_tracks)
    audio, source = mp3_dataset(p.extract_clips, 30.0)
    train_n = split_tracks(FeatureStore.open(str(store)).tracks).train.height
    per_epoch = steps_per_epoch(train_n, p.train_batch)
    log(
        f"training: MRNet paper preset, batch {p.train_batch}, {p.train_steps} timed steps after {p.train_warmup} warm-up; "
        f"{train_n} training tracks = {per_epoch} steps per epoch"
    )
    common = {
        "store": str(store),
        "batch": p.train_batch,
        "steps": p.train_steps,
        "warmup": p.train_warmup,
        "device": p.device,
    }
    rounds: dict[str, list[dict]] = {"store": [], "memory": [], "on_the_fly": []}
    for r in range(p.rounds):  # interleaved rounds; per approach the round with the lowest median step is kept
        out = ctx.work / "runs" / f"store-{time.time():.0f}-{r}"
        rounds["store"].append(run_child("benchmarks.training:store_steps", {**common, "out": str(out)}))
        shutil.rmtree(out, ignore_errors=True)  # its checkpoint is not needed
        rounds["memory"].append(run_child("benchmarks.training:memory_steps", common))
        rounds["on_the_fly"].append(
            run_child(
                "benchmarks.training:on_the_fly_steps",
                {**common, "audio_root": str(audio), "model": wavlm_base_random()},
            )
        )
        log(
            f"  round {r + 1}: median step "
            + ", ".join(f"{k} {median(v[-1]['step_s']):.2f} s" for k, v in rounds.items())
        )
    runs = {k: min(v, key=lambda x: median(x["step_s"])) for k, v in rounds.items()}
    rate = run_child(
        "benchmarks.training:loader_rate", {"store": str(store), "device": p.device, "batch": p.train_batch}
    )
    auto = loader_threads(pick_device(p.device))
    feed = run_child(
        "benchmarks.training:feed_rate",
        {
            "store": str(store),
            "device": p.device,
            "batch": p.train_batch,
            "threads": sorted({1, 2, auto}),
            "workers": sorted({0, 2, auto}),
        },
    )
    log(
        "  feed: "
        + "; ".join(
            f"{kind} " + ", ".join(f"{k}: {v:.0f}" for k, v in feed[kind].items()) for kind in ("threads", "workers")
        )
        + " crops/s"
    )
    workers = 2  # the item-rate bound below is for the DataLoader default before T1: 2 worker processes
    log(
        f"  one loader worker: {rate['augment']:.0f} crops/s with the augmentation draw, {rate['no_augment']:.0f} without; "
        f"Augment.apply {rate['apply_ms_per_crop']:.1f} ms per crop on {rate['apply_device']}"
    )
    step = {k: median(v["step_s"]) for k, v in runs.items()}
    return {
        "model": "MRNet, paper preset (C = 512, embedding 128), 13 layers x 768 in, 3 classes",
        "batch": p.train_batch,
        "train_tracks": train_n,
        "steps_per_epoch": per_epoch,
        "timed_steps": p.train_steps,
        "warmup_steps": p.train_warmup,
        "audio_source": source,
        "runs": runs,
        "rounds_median_step_s": {k: [median(x["step_s"]) for x in v] for k, v in rounds.items()},
        "median_step_s": step,
        "epoch_s": {k: v * per_epoch for k, v in step.items()},
        "speedup_store_vs_on_the_fly": step["on_the_fly"] / step["store"],
        "loader_efficiency": step["memory"] / step["store"],
        "wavlm_share_on_the_fly": median(runs["on_the_fly"]["wavlm_s"]) / step["on_the_fly"],
        "target_gpu_loader": TARGET_GPU_LOADER,
        "feed_rate": feed,
        "loader_rate": {
            **rate,
            "workers": workers,
            "max_steps_per_s": workers * rate["augment"] / p.train_batch,
            "paper_batch_max_steps_per_s": workers * rate["augment"] / 48,
        },
        "device": p.device,
    }
