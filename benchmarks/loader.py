"""Figure 4, loader efficiency: random 6 s crops per second from the store over the same crops from an
uncompressed NumPy memmap of the same data.

The store is WavLM-shaped (13 layers x 768, float16, 50 frames/s, 30 s tracks, the default layout:
inner chunks of 100 frames, no codec) and the memmap holds the very same arrays, ``(tracks, 1, 13,
1500, 768)``. Both are read warm (they fit in the page cache; the store is read once before timing),
so this measures the software path, not the disk. Crops are 300 frames at a random start, either all
13 layers or one random layer, and every method reads the same list of crops; the methods alternate
within each of ``loader_repeat`` passes and the fastest pass of each is kept. Each pass is also timed in
the process's CPU time (``cpu_crops_per_s``): on a machine shared with other jobs, wall time also counts
the time the process waited for a core, CPU time mostly not (memory bandwidth is still shared).

Methods: ``memmap`` (``np.array(mm[i, :, layers, s:s+300])``) and ``store`` (``FeatureStore.read``,
what ``CropDataset`` calls; for an uncompressed local store that is the fused, memory-mapped read of
``store/shardread.py``). For reference, ``zarr`` times the same crops through Zarr's own chunk-by-chunk
path (what ``FeatureStore.read`` does for compressed or unrecognised arrays), on fewer crops.

Read amplification is bytes taken from storage per byte of crop returned. The fused read copies only
the crop's frames out of the mapped shard (1.0, like the memmap; the kernel still pages in whole 4 kB
pages); Zarr's path fetches whole inner chunks, counted on its store interface.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.common import CACHE, Context, log
from benchmarks.data import feature_store

TARGET = 0.7
CROP = 300


def _picks(n_tracks: int, frames: int, layers: int, count: int, width: int, seed: int) -> list[tuple[int, int, int]]:
    rng = np.random.default_rng(seed)
    return [
        (int(rng.integers(n_tracks)), int(rng.integers(0, frames - CROP + 1)), int(rng.integers(0, layers - width + 1)))
        for _ in range(count)
    ]


def amplification_shipped(root, keys: list[str], picks, width: int) -> dict:
    """Bytes and requests Zarr fetches for the crops, through the shipped read path's Zarr calls."""
    import zarr

    from benchmarks.store_layout import CountingStore

    store = CountingStore(zarr.storage.LocalStore(str(root), read_only=True))
    arrays = {}
    for t, _, _ in picks:
        key = keys[t]
        if key not in arrays:
            arrays[key] = zarr.open_array(store, path=f"features/{key}", mode="r")
    store.requests = store.bytes = 0
    used = 0
    for t, s, first in picks:
        used += arrays[keys[t]][:, first : first + width, s : s + CROP, :].nbytes
    return {"amplification": store.bytes / used, "requests_per_crop": store.requests / len(picks)}


def run(ctx: Context) -> dict:
    import zarr

    from mrnet.store.reader import FeatureStore

    p = ctx.profile
    n = p.loader_tracks
    root = CACHE / "stores" / f"wavlm-{n}.zarr"
    mpath = CACHE / "stores" / f"wavlm-{n}.npy"
    log(f"loader: {n} tracks of 30 s (13 x 768 float16) as a store and as a memmap")
    feature_store(root, n, memmap=mpath)
    mm = np.load(mpath, mmap_mode="r")
    frames, layers = mm.shape[3], mm.shape[2]
    shipped = FeatureStore.open(str(root))
    keys = shipped.tracks.sort("key")["key"].to_list()

    plain = {
        k: zarr.open_array(zarr.storage.LocalStore(str(root), read_only=True), path=f"features/{k}", mode="r")
        for k in keys
    }
    for k in keys:  # warm: page cache, array metadata, shard indexes and maps
        shipped.read(k, 0, frames)
        np.asarray(mm[keys.index(k)]).sum()
    out: dict = {"tracks": n, "frames": frames, "crop_frames": CROP, "repeat": p.loader_repeat, "target": TARGET}
    for width, count in ((layers, p.loader_crops), (1, 3 * p.loader_crops)):
        picks = _picks(n, frames, layers, count, width, seed=width)
        methods = {  # each reads t's layers first..first+width-1 and frames s..s+CROP-1
            "memmap": lambda t, s, first, width=width: np.array(mm[t, :, first : first + width, s : s + CROP]),
            "store": lambda t, s, first, width=width: shipped.read(keys[t], s, s + CROP, range(first, first + width)),
            "zarr": lambda t, s, first, width=width: plain[keys[t]][:, first : first + width, s : s + CROP, :],
        }
        t0, s0, l0 = picks[0]
        ref = methods["memmap"](t0, s0, l0)
        assert all(np.array_equal(m(t0, s0, l0), ref) for m in methods.values()), "methods disagree"
        timings: dict[str, list[float]] = {m: [] for m in methods}
        cpu: dict[str, list[float]] = {m: [] for m in methods}
        zarr_count = max(20, count // 10)  # Zarr's chunk-by-chunk path is ~50x slower: fewer crops keep the pass short
        for _ in range(p.loader_repeat):
            for name, fn in methods.items():
                sel = picks[:zarr_count] if name == "zarr" else picks
                began, cpu_began = time.perf_counter(), time.process_time()
                for t, s, first in sel:
                    fn(t, s, first)
                timings[name].append(len(sel) / (time.perf_counter() - began))
                cpu[name].append(len(sel) / max(1e-9, time.process_time() - cpu_began))
        chunk = shipped.provenance.extraction.get("chunk_frames")
        amp = {
            "memmap": {"amplification": 1.0, "requests_per_crop": None},
            "store": {
                "amplification": 1.0,
                "requests_per_crop": None,
                "note": "fused read: one mapped shard, the crop's frames copied (whole 4 kB pages paged in)",
            },
            "zarr": amplification_shipped(root, keys, picks[:zarr_count], width),
        }
        rates = {m: max(v) for m, v in timings.items()}
        out[f"layers_{width}"] = {
            "crops": count,
            "crops_per_s": rates,
            "passes": timings,
            "cpu_crops_per_s": {m: max(v) for m, v in cpu.items()},  # crops per second of this process's CPU time
            "cpu_passes": cpu,
            "efficiency": {m: rates[m] / rates["memmap"] for m in ("store", "zarr")},
            "chunk_frames": chunk,
            "read": amp,
            "MBps": {m: rates[m] * CROP * width * 768 * 2 / 1e6 for m in rates},
        }
        log(
            f"  {width} layer(s): "
            + ", ".join(f"{m} {r:.0f}/s" for m, r in rates.items())
            + f"; store/memmap {rates['store'] / rates['memmap']:.3f}"
        )
    return out
