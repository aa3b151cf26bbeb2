"""What bounds extraction on this machine besides the pipeline: the model's arithmetic and the CPU stages.

- **Model FLOP utilisation**: WavLM's FLOPs per audio second (``torch.utils.flop_counter``) against
  this device's matrix-multiply peak timed in the same run; with figure 1's throughputs, the share of
  the peak the bare forward and ``mrnet-extract`` reach, and audio hours per device-minute.
- **Decode and write limits**: decoding MP3 and writing 13-layer float16 shards on a pool of n
  threads, the pipeline's two CPU stages (its I/O pool runs them in threads), in audio seconds per
  second.
"""

from __future__ import annotations

import time
from pathlib import Path

from benchmarks.common import Context, log, run_child
from benchmarks.data import dataset_files
from benchmarks.models import engine, wavlm_base_random
from mrnet.core.machine import available_cores


# --- children -----------------------------------------------------------------------------------------
def model_utilisation(model: str, seconds: float, repeat: int = 5) -> dict:
    """What model FLOP utilisation is measured against: WavLM's FLOPs per audio second, counted by
    ``torch.utils.flop_counter`` over one window of ``seconds`` (convolutions, linear layers and
    attention products; attention grows with the window), and this device's matrix-multiply peak in the
    engine's precision, timed in the same run (bf16 8192^3 on CUDA, fp32 2048^3 on a CPU; best of
    ``repeat``): the achievable peak, not the data-sheet one."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    eng = engine(model=model)
    device, dtype = eng.device, eng._dtype
    counter = FlopCounterMode(display=False)
    x = torch.randn(1, int(seconds * 16000), device=device)
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None), counter:
        eng._net(
            x, output_hidden_states=True
        )  # no inference_mode: weight-norm parametrisations break the counter under it
    by_op = {str(op): int(n) for op, n in counter.get_flop_counts()["Global"].items()}
    total = counter.get_total_flops()
    n, mm_dtype = (8192, dtype or torch.float32) if device.type == "cuda" else (2048, torch.float32)
    a, b = torch.randn(n, n, device=device, dtype=mm_dtype), torch.randn(n, n, device=device, dtype=mm_dtype)
    times = []
    for i in range(repeat + 2):
        if device.type == "cuda":
            torch.cuda.synchronize()
        began = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - began)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {
        "flops_per_audio_s": total / seconds,
        "window_s": seconds,
        "flops_by_op": by_op,
        "device": device.type,
        "device_name": name,
        "peak_flops": 2 * n**3 / min(times),
        "peak_matmul": f"{n}^3 {str(mm_dtype).removeprefix('torch.')}",
        "torch_threads": torch.get_num_threads(),
    }


def io_scaling(root: str, work: str, threads: list[int], write_tracks: int = 16) -> dict:
    """How decoding and writing scale with threads on this machine's cores (the pipeline's two CPU
    stages; its I/O pool runs them in threads). Decoding: every MP3 under ``root`` (MP3 44.1 kHz stereo
    to 16 kHz mono) on a pool of n threads. Writing: ``write_tracks`` 30 s tracks of 13 x 768 float16
    through ``StoreWriter.write_track`` (codec none, page cache) on a pool of n threads. Audio s/s each."""
    import shutil
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from mrnet.store import Location, Provenance, StoreWriter

    files = dataset_files(Path(root))
    eng = engine("mel")  # decoding is the same for every feature kind (engines share AudioInput.load)
    audio_s = sum(eng.load(f)[0].shape[1] for f in files) / eng.sample_rate  # also warms the page cache
    prov = Provenance(
        feature="wavlm",
        layers=list(range(13)),
        dim=768,
        frame_rate=50.0,
        channels=1,
        dtype="float16",
        extraction={"chunk_frames": 150, "codec": "none"},
    )
    track = np.random.default_rng(0).standard_normal((1, 13, 1499, 768), dtype=np.float32).astype(np.float16)
    out = {"decode": {}, "write": {}, "decode_audio_s": audio_s, "write_audio_s": write_tracks * 1499 / 50.0}
    for n in threads:
        with ThreadPoolExecutor(n) as pool:
            began = time.perf_counter()
            list(pool.map(eng.load, files))
            out["decode"][str(n)] = audio_s / (time.perf_counter() - began)
            root_w = Path(work) / f"io-scaling-{n}.zarr"
            writer = StoreWriter.open(Location.parse(root_w), prov, overwrite=True)
            began = time.perf_counter()
            list(pool.map(lambda i, writer=writer: writer.write_track(f"t{i:03d}", track), range(write_tracks)))
            out["write"][str(n)] = out["write_audio_s"] / (time.perf_counter() - began)
            writer.close()
            shutil.rmtree(root_w, ignore_errors=True)
    return out


# --- the figure's parts ------------------------------------------------------------------------------
def utilisation(ctx: Context, bare: dict, steady: float) -> dict:
    """Model FLOP utilisation and audio hours per device-minute, bare and end to end (steady state)."""
    u = run_child(
        "benchmarks.limits:model_utilisation",
        {"model": wavlm_base_random(), "seconds": min(ctx.profile.clip_seconds, 40.0)},
    )
    u.update(
        {
            "bare_mfu": bare["throughput"] * u["flops_per_audio_s"] / u["peak_flops"],
            "steady_mfu": steady * u["flops_per_audio_s"] / u["peak_flops"],
            "audio_hours_per_device_minute": {"bare": bare["throughput"] / 60, "steady": steady / 60},
        }
    )
    log(
        f"  model FLOPs {u['flops_per_audio_s'] / 1e9:.1f} G per audio s; matmul peak {u['peak_flops'] / 1e12:.2f} TFLOP/s "
        f"({u['peak_matmul']}); MFU bare {100 * u['bare_mfu']:.1f} %, end to end {100 * u['steady_mfu']:.1f} %"
    )
    return u


def io_scaling_figure(ctx: Context, root: Path) -> dict:
    """Decode and write limits: how the pipeline's two CPU stages scale with threads on this machine's cores."""
    cpus = available_cores()
    counts = sorted({1, 2, 4, 8, 16, cpus} & set(range(1, cpus + 1)))
    out = run_child("benchmarks.limits:io_scaling", {"root": str(root), "work": str(ctx.work), "threads": counts})
    log(
        "  decode audio-s/s by threads: "
        + ", ".join(f"{k}: {v:.0f}" for k, v in out["decode"].items())
        + "; write: "
        + ", ".join(f"{k}: {v:.0f}" for k, v in out["write"].items())
    )
    return out
