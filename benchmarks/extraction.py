"""Figure 1, extraction efficiency: ``mrnet-extract`` end to end on MP3 over the bare WavLM forward.

Two fresh processes on the same MP3 folder dataset, same batch size, precision and dtype:

- **bare**: the audio is decoded first (timed on its own: the decoding rate of one thread), then only
  ``WavLMModel(x, output_hidden_states=True)`` is timed, on exactly the batches the engine forms
  (``extract.windows.run_windowed``), after one short warm-up call;
- **end to end**: ``mrnet.extract.pipeline.run`` (what ``mrnet-extract folder`` calls) from scan to the
  finalized store: decoding, resampling, the model, stacking and casting the layers, writing shards,
  journal and manifests. Time spent decoding, in the model and writing is summed per category by
  wrapping those functions, so the report shows how much of it overlapped.

Efficiency = end-to-end audio seconds per second / bare audio seconds per second. ``setup`` (scan,
model load, store creation: a fixed cost that does not grow with the dataset) is reported apart, and
the steady-state efficiency leaves it out.

Also measured here: WavLM's FLOPs per audio second against the device's matrix-multiply peak and how
decoding and writing scale with threads (``benchmarks.limits``), and the pipeline's own ceiling, the
same end-to-end run with the model replaced by ``benchmarks.models.StubEngine``.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from benchmarks import limits
from benchmarks.common import Context, log, run_child
from benchmarks.data import dataset_files, mp3_dataset
from benchmarks.models import STUB, engine, register_stub, wavlm_base_random
from mrnet.core.machine import available_cores

TARGET = 0.9


# --- children -----------------------------------------------------------------------------------------
class _Busy:
    """Seconds spent inside wrapped methods, per category, summed over threads.

    Wrapping replaces a public method on its class for the rest of this process: only in a
    benchmark's own child process, where nothing else runs."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def wrap(self, owner, name: str, category: str) -> None:
        original = getattr(owner, name)

        def wrapped(*args, **kwargs):
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                took = time.perf_counter() - began
                with self._lock:
                    self.seconds[category] = self.seconds.get(category, 0.0) + took
                    self.calls[category] = self.calls.get(category, 0) + 1

        setattr(owner, name, wrapped)


def _config(
    root: str,
    out: str,
    manifests: str,
    model: str,
    batch_size: int,
    unit_size: int,
    dtype: str = "float16",
    codec: str = "none",
    layers: list[int] | None = None,
    features: str = "wavlm",
):
    from mrnet.extract.config import ExtractConfig

    return ExtractConfig(
        dataset="folder",
        root=Path(root),
        out=out,
        manifests_dir=Path(manifests),
        features=features,
        model=model,
        batch_size=batch_size,
        unit_size=unit_size,
        dtype=dtype,
        codec=codec,
        layers=tuple(layers) if layers else None,
        folds=2,
        overwrite=True,
    )


def end_to_end(
    root: str,
    out: str,
    manifests: str,
    model: str,
    batch_size: int,
    unit_size: int,
    dtype: str = "float16",
    codec: str = "none",
    layers: list[int] | None = None,
    features: str = "wavlm",
) -> dict:
    """One ``pipeline.run`` (child process). ``features="stub"``: the model stubbed (``benchmarks.models``).

    Seconds inside the engine's ``load`` (decoding), its ``extract`` (the model, windowing and
    stitching) and ``StoreWriter.write_track`` are summed per category over the unit threads."""
    import torch

    from mrnet.extract import pipeline
    from mrnet.extract.engines import FEATURES
    from mrnet.store.writer import StoreWriter

    if features == STUB:
        register_stub()
    busy = _Busy()
    busy.wrap(FEATURES[features], "load", "decode")
    busy.wrap(FEATURES[features], "extract", "model")
    busy.wrap(StoreWriter, "write_track", "write")
    cfg = _config(root, out, manifests, model, batch_size, unit_size, dtype, codec, layers, features)
    marks: dict[str, float] = {}
    units: list[float] = []
    began = time.perf_counter()
    summary = pipeline.run(
        cfg,
        on_start=lambda done, todo: marks.setdefault("start", time.perf_counter()),
        on_unit=lambda r: units.append(time.perf_counter()),
    )
    ended = time.perf_counter()
    start = marks.get("start", began)
    return {
        "features": features,
        "audio_s": summary.audio_seconds,
        "tracks": summary.tracks.height,
        "failed": summary.failed.height,
        "bytes_written": summary.bytes_written,
        "run_s": ended - began,
        "setup_s": start - began,
        "work_s": ended - start,
        "last_unit_s": (units[-1] - start) if units else None,
        "busy_s": busy.seconds,
        "calls": busy.calls,
        "torch_threads": torch.get_num_threads(),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
    }


def bare_forward(
    root: str,
    model: str,
    batch_size: int,
    window_seconds: float = 40.0,
    save_dir: str | None = None,
    save_tracks: int = 0,
    sweep: list[int] | None = None,
) -> dict:
    """Decode everything first, then time only the WavLM forward calls on the engine's own batches.
    ``sweep``: batch sizes to time the same way afterwards, in this process (``{batch: audio s/s}``)."""
    import numpy as np

    eng = engine(model=model, batch_size=batch_size)
    files = dataset_files(Path(root))
    t = time.perf_counter()
    waves = [eng.load(p)[0] for p in files]
    decode_s = time.perf_counter() - t
    keep = save_tracks > 0 and save_dir is not None
    spent, feats = _timed_forward(eng, waves, batch_size, keep=keep)
    saved = []
    if keep:
        Path(save_dir).mkdir(parents=True, exist_ok=True)
        for i, f in enumerate(feats[:save_tracks]):
            path = Path(save_dir) / f"track{i:03d}.npy"
            np.save(path, f)  # (channels, 13, frames, 768) float32
            saved.append(str(path))
    audio_s = (
        sum(f.shape[2] for f in feats) / eng.frame_rate
    )  # the tracks' frames (windows may overlap at a track's end)
    decoded_s = sum(w.shape[1] for w in waves) / eng.sample_rate
    result = {
        "audio_s": audio_s,
        "forward_s": spent["forward"],
        "calls": spent["calls"],
        "batch_sizes": sorted(set(spent["batch_sizes"])),
        "decode_s": decode_s,
        "decode_rate": decoded_s / decode_s if decode_s else None,
        "precision": eng.describe()["extraction"]["precision"],
        "device": eng.device.type,
        "torch_threads": _torch_threads(),
        "saved": saved,
    }
    if sweep:
        result["sweep"] = {}
        for size in sweep:
            timed, out = _timed_forward(eng, waves, size, keep=False)
            result["sweep"][str(size)] = sum(f.shape[2] for f in out) / eng.frame_rate / timed["forward"]
    return result


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _timed_forward(eng, waves: list, batch_size: int, *, keep: bool) -> tuple[dict, list]:
    """Run the engine's windowing over ``waves`` at ``batch_size``, timing only the forward calls
    (synchronised on CUDA) after one short warm-up call. Returns the timings and, with ``keep``, the features."""
    import numpy as np
    import torch

    from mrnet.extract.windows import run_windowed

    device = eng.device

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    autocast = dict(device_type=device.type, dtype=eng._dtype, enabled=eng._dtype is not None)
    with torch.inference_mode(), torch.autocast(**autocast):  # warm-up: one short call
        eng._net(torch.zeros(1, 32000, device=device), output_hidden_states=True)
    sync()
    spent = {"forward": 0.0, "calls": 0, "frames": 0, "batch_sizes": []}

    def forward(wave: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(wave).to(device)
        if eng.normalize:
            x = (x - x.mean(dim=1, keepdim=True)) / torch.sqrt(x.var(dim=1, keepdim=True) + 1e-7)
        sync()
        began = time.perf_counter()
        with torch.inference_mode(), torch.autocast(**autocast):
            hidden = eng._net(x, output_hidden_states=True).hidden_states
        sync()
        spent["forward"] += time.perf_counter() - began
        spent["calls"] += 1
        spent["batch_sizes"].append(int(x.shape[0]))
        frames = hidden[0].shape[1]
        spent["frames"] += frames * x.shape[0]
        if keep:
            return torch.stack([hidden[layer] for layer in eng.layers], dim=1).float().cpu().numpy()
        return np.zeros((x.shape[0], 1, frames, 1), np.float32)

    feats = run_windowed(waves, forward, geometry=eng.geometry, window=eng.window_frames, batch_size=batch_size)
    return spent, feats


# --- the figure ---------------------------------------------------------------------------------------
def e2e_run(ctx: Context, root: Path, batch_size: int, unit_size: int, tag: str, features: str = "wavlm", **kw) -> dict:
    out = ctx.work / f"extract-{tag}.zarr"
    res = run_child(
        "benchmarks.extraction:end_to_end",
        {
            "root": str(root),
            "out": str(out),
            "manifests": str(ctx.work / "manifests"),
            "model": wavlm_base_random(),
            "batch_size": batch_size,
            "unit_size": unit_size,
            "features": features,
            **kw,
        },
    )
    res["throughput"] = res["audio_s"] / res["run_s"]
    res["steady_throughput"] = res["audio_s"] / res["work_s"]
    return res


def bare_run(ctx: Context, root: Path, batch_size: int, save: bool, sweep: list[int] | None = None) -> dict:
    res = run_child(
        "benchmarks.extraction:bare_forward",
        {
            "root": str(root),
            "model": wavlm_base_random(),
            "batch_size": batch_size,
            "save_dir": str(ctx.work / "features") if save else None,
            "save_tracks": 8 if save else 0,
            "sweep": sweep,
        },
    )
    res["throughput"] = res["audio_s"] / res["forward_s"]
    return res


def best(runs: list[dict], key: str = "throughput") -> dict:
    return max(runs, key=lambda r: r[key])


def cpu_share(res: dict, cpus: int) -> float:
    """CPU seconds the child used over (its wall time x usable CPUs): below ~0.8 on an otherwise idle
    machine means something else was running, and its timings are pessimistic."""
    used = res["child"]["cpu_user_s"] + res["child"]["cpu_sys_s"]
    return used / (res["process_wall_s"] * cpus)


def run(ctx: Context) -> dict:
    p = ctx.profile
    root, source = mp3_dataset(p.extract_clips, p.clip_seconds)
    ctx.shared["music_source"] = source
    result, steady = _efficiency(ctx, root, source)
    result["utilisation"] = limits.utilisation(ctx, result["bare"], steady)
    croot, _ = mp3_dataset(p.ceiling_clips, 30.0)
    result["io_scaling"] = limits.io_scaling_figure(ctx, croot)
    result["ceiling"] = _ceiling(ctx, croot)
    return result


def _efficiency(ctx: Context, root: Path, source: str) -> tuple[dict, float]:
    """Bare forward against end to end, interleaved rounds, the best of each side; and the best
    steady-state throughput end to end."""
    p = ctx.profile
    cpus = available_cores()
    log(
        f"extraction: {p.extract_clips} MP3 clips of {p.clip_seconds:g} s, batch {p.batch_size}, unit {p.unit_size}, "
        f"{p.rounds} interleaved rounds"
    )
    bares, e2es = [], []
    for r in range(p.rounds):  # interleaved, best of each: a burst of load elsewhere hits one round, not one side
        bares.append(bare_run(ctx, root, p.batch_size, save=(r == 0)))
        log(f"  round {r + 1}: bare forward {bares[-1]['throughput']:.2f} audio-s/s ({bares[-1]['forward_s']:.1f} s)")
        e2es.append(e2e_run(ctx, root, p.batch_size, p.unit_size, "batched"))
        log(
            f"  round {r + 1}: end to end {e2es[-1]['throughput']:.2f} audio-s/s ({e2es[-1]['run_s']:.1f} s, "
            f"steady {e2es[-1]['steady_throughput']:.2f})"
        )
    for res in bares + e2es:
        res["cpu_share"] = cpu_share(res, cpus)
    bare, e2e, steady = best(bares), best(e2es), best(e2es, "steady_throughput")
    ctx.shared["features"] = bares[0]["saved"]
    ctx.shared["e2e_batched"] = e2e
    return {
        "dataset": {
            "clips": p.extract_clips,
            "clip_seconds": p.clip_seconds,
            "source": source,
            "format": "MP3 44.1 kHz stereo, decoded and resampled to 16 kHz mono",
        },
        "settings": {
            "batch_size": p.batch_size,
            "unit_size": p.unit_size,
            "dtype": "float16",
            "layers": 13,
            "codec": "none",
            "model": "WavLM-base architecture, random weights (seed 0)",
            "rounds": p.rounds,
        },
        "bare": bare,
        "end_to_end": e2e,
        "rounds": {
            "bare": [r["throughput"] for r in bares],
            "end_to_end": [r["throughput"] for r in e2es],
            "end_to_end_steady": [r["steady_throughput"] for r in e2es],
            "cpu_share": {"bare": [r["cpu_share"] for r in bares], "end_to_end": [r["cpu_share"] for r in e2es]},
        },
        "efficiency": e2e["throughput"] / bare["throughput"],
        "steady_efficiency": steady["steady_throughput"] / bare["throughput"],
        "target": TARGET,
    }, steady["steady_throughput"]


def _ceiling(ctx: Context, root: Path) -> dict:
    """The pipeline's own ceiling: end to end with the model stubbed (``benchmarks.models.StubEngine``).

    Recorded as the variant ``stub-model``, the name results have always used for it (results of the
    code up to commit 03a1d36 also hold variants that put back the code as it was before W2 and IO1)."""
    p = ctx.profile
    cpus = available_cores()
    log(f"  pipeline ceiling: {p.ceiling_clips} clips of 30 s, batch 8, unit 16, model stubbed")
    runs = []
    for _ in range(p.rounds):
        res = e2e_run(ctx, root, 8, 16, "ceiling", features=STUB)
        res["cpu_share"] = cpu_share(res, cpus)
        runs.append(res)
        log(f"    {res['steady_throughput']:.0f} audio-s/s steady")
    cpu_ms = [1e3 * (x["child"]["cpu_user_s"] + x["child"]["cpu_sys_s"]) / x["audio_s"] for x in runs]
    return {
        "clips": p.ceiling_clips,
        "clip_seconds": 30.0,
        "batch_size": 8,
        "unit_size": 16,
        "variants": {
            "stub-model": {
                "best": best(runs, "steady_throughput"),
                "rounds": [x["steady_throughput"] for x in runs],
                "cpu_ms_per_audio_s": cpu_ms,
            }
        },
    }
