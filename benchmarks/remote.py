"""Training, verifying and copying from object storage against the same store on local disk.

The store is the growth benchmark's Mel store of :data:`TRACKS` 1 s tracks (``benchmarks.growth_data``),
put on the local S3 server (moto) unchanged; every measured client reaches it through the latency
proxy (``benchmarks.s3local``: :data:`DELAY` added to every request, no faults), with the settings a
user gets by default (reads in flight sized from the measured round trip, ``Location.concurrency``).
Each measurement is a fresh child process, local and remote alike:

- **training**: ``mrnet-train --preset tiny`` (batch 16, 1 s crops, :data:`EPOCHS` epochs, fold 0, one torch thread)
  from the start of each epoch to its last batch; the first epoch opens every track (its array
  metadata and shard index: three requests per crop on S3), later ones read one range per crop.
- **verify**: ``mrnet-store verify`` tracks per second.
- **cp**: ``mrnet-store cp`` bytes per second, S3 to local disk and local disk to S3, against local
  to local.
- **the server's own ceiling**: small GETs per second the local S3 server answers with 64 in flight,
  directly and through the proxy.

Reads from S3 go through obstore where a location's settings map onto it (``store/objects.py``); training
and ``verify`` are also measured through the proxy with s3fs (``MRNET_S3_CLIENT=s3fs``), the client every
read used before.

Each measurement is taken twice over: the S3 server and the proxy on a core of their own and every
client (local runs included) on the others (``pinned``, as an object store runs on machines of its
own), and everything on every core (``shared``), where the server (moto, in Python) takes cores from
the client it serves.
"""

from __future__ import annotations

import time

from benchmarks.common import log, run_child
from benchmarks.growth_ops import store_cli
from mrnet.store.objects import CLIENT_ENV

TRACKS = 1000
DELAY = 0.02
EPOCHS = 3
LAYOUTS = ("pinned", "shared")


def cores(layout: str) -> tuple[set[int] | None, set[int] | None]:
    """(the client's cores, the server's) for ``layout``: pinned puts the server and proxy on the last core."""
    import os

    mine = sorted(os.sched_getaffinity(0))
    if layout == "shared" or len(mine) < 2:
        return None, None
    return set(mine[:-1]), {mine[-1]}


def train_rate(store: str, out: str, epochs: int = EPOCHS, batch: int = 16) -> dict:
    """Crops per second of each epoch of a tiny run (start of the epoch to its last batch)."""
    began = time.perf_counter()
    import torch

    from mrnet.store.location import Location
    from mrnet.train.loader import loader_threads, reading_plan
    from mrnet.train.loop import Reporter, train
    from mrnet.train.presets import preset

    torch.set_num_threads(1)  # a two-thread step stalls whenever other work on a shared machine takes one core
    marks: list[tuple[int, int, float]] = []

    class Clock(Reporter):  # what it does not define (evaluation progress, ...) does nothing, as Reporter's
        def note(self, text):
            pass

        def start(self, **kw):
            marks.append((-1, 0, time.perf_counter()))

        def batch(self, *, epoch, step, steps, loss):
            marks.append((epoch, step, time.perf_counter()))

        def epoch(self, record):
            pass

        def end(self):
            pass

    cfg = preset(
        "tiny",
        store,
        out=out,
        batch_size=batch,
        epochs=epochs,
        device="cpu",
        crop_seconds=1.0,
        eval_every=1000,
        test_curve=False,
    )
    train(cfg, reporter=Clock())
    rates, previous = [], marks[0][2]
    for e in range(epochs):
        mine = [m for m in marks if m[0] == e]
        rates.append(len(mine) * batch / (mine[-1][2] - previous))
        previous = mine[-1][2]
    plan = reading_plan(Location.parse(store), loader_threads(torch.device("cpu")), batch)
    return {
        "seconds": time.perf_counter() - began,
        "crops_per_s": rates,
        "steps_per_epoch": len([m for m in marks if m[0] == 0]),
        "reading": plan,
    }


def request_rate(url: str, requests: int = 400, in_flight: int = 64) -> dict:
    """Small GETs per second (the store's root zarr.json) with ``in_flight`` threads."""
    from concurrent.futures import ThreadPoolExecutor

    from mrnet.store.location import Location

    loc = Location.parse(url)
    rtt = loc.round_trip(tries=5)
    began = time.perf_counter()
    with ThreadPoolExecutor(in_flight) as pool:
        list(pool.map(lambda _: loc.read_bytes("zarr.json"), range(requests)))  # through the client reads use
    seconds = time.perf_counter() - began
    return {
        "seconds": seconds,
        "requests_per_s": requests / seconds,
        "round_trip_s": rtt,
        "client": "s3fs" if loc.objects is None else "obstore",
    }


def _du(path) -> int:
    import os

    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


MEASURES = ("train", "verify", "cp-download", "cp-upload")


def run(work, save, tracks: int = TRACKS, part: dict | None = None, only: tuple[str, ...] = MEASURES) -> dict:
    """Measure into ``part`` (saved by ``save`` after each measurement); returns it. ``only``: those of
    :data:`MEASURES` (the server's own rate is always measured: it bounds the rest). The shared layout's
    measurements are at the part's top level, the pinned ones under ``part["pinned"]``."""
    part = {} if part is None else part
    for layout in LAYOUTS:
        _run(work, save, tracks, part if layout == "shared" else part.setdefault("pinned", {}), only, layout)
    return part


def _run(work, save, tracks: int, part: dict, only: tuple[str, ...], layout: str) -> dict:
    import shutil

    from benchmarks.growth_data import folder_dataset
    from benchmarks.s3local import local_s3

    folder = folder_dataset(work, tracks)
    local = work / f"remote-{tracks}" / "folder.zarr"
    if not (local / "manifest" / "tracks.parquet").exists():
        shutil.rmtree(local.parent, ignore_errors=True)
        run_child(
            "benchmarks.growth_data:extract_store",
            {"dataset": str(folder), "out": str(local), "manifests": str(work / "manifests-remote")},
        )
    size = _du(local)
    client, server = cores(layout)
    part.update(
        tracks=tracks,
        delay_s=DELAY,
        store_bytes=size,
        layout=layout,
        cores={"client": sorted(client or []), "server": sorted(server or [])},
    )
    with local_s3(delay=DELAY, cpus=server) as s3:
        bucket = s3.bucket()
        url = f"s3://{bucket}/folder.zarr"
        run_child(
            "benchmarks.growth_ops:store_cli", {"argv": ["cp", str(local), url]}, env=s3.direct_env
        )  # setup, not timed
        part["server"] = {
            "direct": run_child("benchmarks.remote:request_rate", {"url": url}, env=s3.direct_env, cpus=client),
            "proxy": run_child("benchmarks.remote:request_rate", {"url": url}, env=s3.env, cpus=client),
        }
        log(
            f"remote ({layout}): the S3 server answers {part['server']['direct']['requests_per_s']:.0f} small GETs/s directly, "
            f"{part['server']['proxy']['requests_per_s']:.0f} through the proxy (round trip {part['server']['proxy']['round_trip_s'] * 1e3:.0f} ms)"
        )
        save()

        def both(name, target, local_args, remote_args, rate, before=None, s3fs=False):
            """Local, S3 through the proxy, S3 directly, (``s3fs``: S3 through the proxy read by s3fs), local again
            (A/B/B'/A on a shared machine): the ratio is S3's rate through the proxy over the mean of the two local
            ones around it; ``latency_ratio`` is S3's rate through the proxy over its rate without the added latency
            (1.0: the latency is hidden); ``s3fs_ratio`` the s3fs side's rate over the local one."""
            if name not in only:
                return
            out: dict = {}
            sides = (
                ("local", local_args, None),
                ("s3", remote_args, s3.env),
                ("s3_direct", remote_args, s3.direct_env),
                *((("s3_s3fs", remote_args, {**s3.env, CLIENT_ENV: "s3fs"}),) if s3fs else ()),
                ("local_after", local_args, None),
            )
            for side, args, env in sides:
                if before:
                    before()
                if callable(args):  # a destination of its own for each side (an upload must not find the last one)
                    args = args(side)
                try:
                    out[side] = run_child(target, args, env=env, timeout=3600, cpus=client)
                    out[side]["rate"] = rate(out[side])
                except Exception as err:  # noqa: BLE001 - recorded, the other measurements go on
                    out[side] = {"error": f"{type(err).__name__}: {err}"[-2000:]}
            if "rate" in out["local"] and "rate" in out["local_after"]:
                out["local"]["rate_before"] = out["local"]["rate"]
                out["local"]["rate"] = (out["local"]["rate"] + out["local_after"]["rate"]) / 2
            if "rate" in out["s3"] and "rate" in out["s3_direct"]:
                out["latency_ratio"] = out["s3"]["rate"] / out["s3_direct"]["rate"]
            if "rate" in out["local"] and "rate" in out.get("s3_s3fs", {}):
                out["s3fs_ratio"] = out["s3_s3fs"]["rate"] / out["local"]["rate"]
            if "rate" in out["local"] and "rate" in out["s3"]:
                out["ratio"] = out["s3"]["rate"] / out["local"]["rate"]
                log(
                    f"remote {name} ({layout}): local {out['local']['rate']:.1f}, S3 {out['s3']['rate']:.1f} "
                    f"= {out['ratio']:.2f} of local; {out.get('latency_ratio', float('nan')):.2f} of S3 without the latency"
                )
            part[name] = out
            save()

        runs = work / "remote-runs"

        def clear_runs() -> None:
            shutil.rmtree(runs, ignore_errors=True)

        clear_runs()

        def steady(r: dict) -> float:
            """The median rate past the first epoch (which warms caches), or the only one."""
            rates = r["crops_per_s"]
            return sorted(rates[1:])[len(rates[1:]) // 2] if len(rates) > 1 else rates[0]

        both(
            "train",
            "benchmarks.remote:train_rate",
            {"store": str(local), "out": str(runs / "local")},
            {"store": url, "out": str(runs / "s3")},
            steady,
            before=clear_runs,
            s3fs=True,
        )
        if "train" in part:
            part["train"]["first_epoch_ratio"] = _ratio(part["train"], lambda r: r["crops_per_s"][0])
        both(
            "verify",
            "benchmarks.growth_ops:store_cli",
            {"argv": ["verify", str(local)]},
            {"argv": ["verify", url]},
            lambda r: tracks / r["seconds"],
            s3fs=True,
        )
        copies = work / "remote-copies"
        clear_copies = lambda: shutil.rmtree(copies, ignore_errors=True)  # noqa: E731
        clear_copies()
        both(
            "cp-download",
            "benchmarks.growth_ops:store_cli",
            {"argv": ["cp", str(local), str(copies / "a.zarr")]},
            {"argv": ["cp", url, str(copies / "b.zarr")]},
            lambda r: size / r["seconds"] / 1e6,
            before=clear_copies,
        )
        both(
            "cp-upload",
            "benchmarks.growth_ops:store_cli",
            {"argv": ["cp", str(local), str(copies / "c.zarr")]},
            lambda side: {"argv": ["cp", str(local), f"s3://{bucket}/copy-{side}.zarr"]},
            lambda r: size / r["seconds"] / 1e6,
            before=clear_copies,
        )
        shutil.rmtree(copies, ignore_errors=True)
        shutil.rmtree(runs, ignore_errors=True)
    return part


def _ratio(out: dict, rate) -> float | None:
    try:
        return rate(out["s3"]) / rate(out["local"])
    except (KeyError, ZeroDivisionError, IndexError):
        return None


__all__ = ["run", "train_rate", "request_rate", "store_cli"]
