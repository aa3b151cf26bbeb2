"""Figure 6, memory: peak resident memory of extraction and of training at two dataset sizes.

Each configuration runs in a fresh process that the parent samples every 0.1 s (RSS summed over the
process and its children, e.g. DataLoader workers; PSS every 0.3 s so pages shared by forked workers
count once); the child also reports the kernel's exact peak RSS of its main process (``VmHWM``).

- **Extraction**: ``pipeline.run`` (as figure 1) on MP3 datasets of two sizes, with a unit size
  small enough that both sizes span many units: memory must follow the units in flight, not the
  number of tracks. The smaller size is already past the first few units, during which glibc's
  allocator settles (its mmap threshold rises after the first large ``free``, and later feature
  arrays come from the heap, which keeps its freed space): measured separately, anonymous memory
  rises by 0.1-0.4 GB over the first ~10 units and then stays put (24 and 48 clips of 10 s: 1.14 and
  1.15 GB).
- **Training**: ``mrnet.train.loop.train`` for one whole epoch, evaluation of the validation and test
  splits included (whole tracks, the larger batches), on WavLM-shaped stores of two sizes (10 s
  tracks, so the stores stay small), with the default loader (``Prefetcher``: reading threads of the
  training process, two batches ahead per loader), so memory rises with the dataset until every
  loader's read-ahead is full; the smaller store is big enough to fill them (at least 5 batches in
  every split), and from there memory must stay flat. On a CPU the model is the ``tiny`` preset
  (C = 32) with 6 s crops, batches of 4 and evaluation batches of 2, so an epoch takes seconds; the
  data path, the part that could grow with the dataset, is the paper preset's. On a GPU the paper
  preset runs as it is.

Growth compares anonymous memory (``Pss_Anon``: heap and tensors, shared copy-on-write pages split
between the processes). The fused reader memory-maps up to 128 recently used shards per process, so
RSS and PSS also count the mapped pages of features it read: page cache the kernel drops under
pressure, reported apart so it is not mistaken for a leak.
"""

from __future__ import annotations

import shutil
import time

from benchmarks.common import CACHE, Context, log, run_child
from benchmarks.data import feature_store, mp3_dataset
from benchmarks.extraction import e2e_run


def train_epoch(store: str, out: str, device: str, preset: str) -> dict:
    from mrnet.train.loop import train
    from mrnet.train.presets import preset as make

    overrides = {"epochs": 1, "device": device, "out": out, "crop_seconds": 6.0}  # the default loader (reading threads)
    if preset == "tiny":  # small batches, so the smaller store already fills every prefetch queue
        overrides.update(batch_size=4, eval_batch_size=2)
    cfg = make(preset, store, **overrides)
    began = time.perf_counter()
    train(cfg)
    return {
        "seconds": time.perf_counter() - began,
        "preset": preset,
        "batch": cfg.batch_size,
        "eval_batch": cfg.eval_batch_size,
        "loader": "reading threads" if cfg.num_workers is None else f"{cfg.num_workers} DataLoader workers",
    }


def run(ctx: Context) -> dict:
    p = ctx.profile
    out: dict = {"extraction": [], "training": []}
    for clips in p.memory_extract_clips:
        root, source = mp3_dataset(clips, p.memory_clip_seconds)
        res = e2e_run(ctx, root, p.memory_unit_size, p.memory_unit_size, f"memory-{clips}")
        out["extraction"].append(
            {
                "clips": clips,
                "clip_seconds": p.memory_clip_seconds,
                "audio_s": res["audio_s"],
                "units": -(-clips // p.memory_unit_size),
                "unit_size": p.memory_unit_size,
                "batch_size": p.memory_unit_size,
                "memory": res["memory"],
                "run_s": res["run_s"],
            }
        )
        log(
            f"memory: extraction of {clips} clips: peak RSS {res['memory']['peak_rss_mb']:.0f} MB, "
            f"main process peak {res['memory']['maxrss_mb']:.0f} MB, anonymous PSS {res['memory']['peak_pss_anon_mb']:.0f} MB"
        )
    preset = "paper" if ctx.device == "cuda" else "tiny"
    for tracks in p.memory_train_tracks:
        store = feature_store(CACHE / "stores" / f"memory-{tracks}.zarr", tracks, seconds=10.0)
        out_dir = ctx.work / "runs" / f"mem-{tracks}-{time.time():.0f}"
        res = run_child(
            "benchmarks.memory:train_epoch",
            {"store": str(store), "out": str(out_dir), "device": ctx.device, "preset": preset},
        )
        shutil.rmtree(out_dir, ignore_errors=True)
        out["training"].append(
            {"tracks": tracks, "track_seconds": 10.0, "store_gb": tracks * 500 * 13 * 768 * 2 / 1e9, **res}
        )
        log(
            f"memory: training one epoch on {tracks} tracks: peak RSS (process tree) {res['memory']['peak_rss_mb']:.0f} MB, "
            f"PSS {res['memory']['peak_pss_mb']:.0f} MB, anonymous PSS {res['memory']['peak_pss_anon_mb']:.0f} MB"
        )
    for kind in ("extraction", "training"):
        a, b = out[kind][0]["memory"], out[kind][-1]["memory"]
        key = "peak_pss_anon_mb"
        out[f"{kind}_growth"] = b[key] / a[key] if a[key] else None
    out["music_source"] = source
    return out
