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
the client it serves. Each is :data:`ROUNDS` rounds of its sides run back to back; a ratio is taken
within a round and the median of the rounds' ratios is kept, with every round's (``combine``).
"""

from __future__ import annotations

import statistics
import time

from benchmarks.common import log, run_child
from benchmarks.growth_ops import store_cli
from mrnet.store.objects import CLIENT_ENV

TRACKS = 1000
DELAY = 0.02
EPOCHS = 3
LAYOUTS = ("pinned", "shared")
ROUNDS = 3


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


def run(
    work, save, tracks: int = TRACKS, part: dict | None = None, only: tuple[str, ...] = MEASURES, rounds: int = ROUNDS
) -> dict:
    """Measure into ``part`` (saved by ``save`` after each measurement); returns it. ``only``: those of
    :data:`MEASURES` (the server's own rate is always measured: it bounds the rest). The shared layout's
    measurements are at the part's top level, the pinned ones under ``part["pinned"]``."""
    part = {} if part is None else part
    for layout in LAYOUTS:
        _run(work, save, tracks, part if layout == "shared" else part.setdefault("pinned", {}), only, layout, rounds)
    return part


def _run(work, save, tracks: int, part: dict, only: tuple[str, ...], layout: str, rounds_of: int) -> dict:
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
        rounds=rounds_of,
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

        def both(name, target, local_args, remote_args, rate, before=None, s3fs=False, first=None):
            """:data:`ROUNDS` rounds of: local, S3 through the proxy, S3 directly, (``s3fs``: S3 through the proxy
            read by s3fs), local again (A/B/B'/A on a shared machine), combined by :func:`combine`. ``first``: the
            rate of a result's first epoch, for ``first_epoch_ratio``."""
            if name not in only:
                return
            sides = (
                ("local", local_args, None),
                ("s3", remote_args, s3.env),
                ("s3_direct", remote_args, s3.direct_env),
                *((("s3_s3fs", remote_args, {**s3.env, CLIENT_ENV: "s3fs"}),) if s3fs else ()),
                ("local_after", local_args, None),
            )
            rounds = []
            for number in range(rounds_of):
                out: dict = {}
                for side, args, env in sides:
                    if before:
                        before()
                    if callable(args):  # a destination of its own for each side and round (an upload must not
                        args = args(f"{side}-{number}")  # find the last one there and skip what it holds)
                    try:
                        out[side] = run_child(target, args, env=env, timeout=3600, cpus=client)
                        out[side]["rate"] = rate(out[side])
                    except Exception as err:  # noqa: BLE001 - recorded, the other measurements go on
                        out[side] = {"error": f"{type(err).__name__}: {err}"[-2000:]}
                rounds.append(one_round(out, first))
            part[name] = combine(rounds)
            if "ratio" in part[name]:
                log(
                    f"remote {name} ({layout}): {part[name]['ratio']:.2f} of local (rounds: "
                    f"{', '.join(f'{x:.2f}' for x in part[name]['rounds']['ratio'])}); "
                    f"{part[name].get('latency_ratio', float('nan')):.2f} of S3 without the latency"
                )
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
            first=lambda r: r["crops_per_s"][0],
        )
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
            lambda name: {"argv": ["cp", str(local), f"s3://{bucket}/copy-{name}.zarr"]},
            lambda r: size / r["seconds"] / 1e6,
            before=clear_copies,
        )
        shutil.rmtree(copies, ignore_errors=True)
        shutil.rmtree(runs, ignore_errors=True)
    return part


#: Each ratio of a round: (its name, the side measured, the side it is compared with).
RATIOS = (("ratio", "s3", "local"), ("latency_ratio", "s3", "s3_direct"), ("s3fs_ratio", "s3_s3fs", "local"))


def one_round(out: dict, first=None) -> dict:
    """One round's sides with its ratios: the local rate is the mean of the two local runs around the others
    (``rate_before``: the first one's); ``ratio`` is S3's rate through the proxy over it, ``latency_ratio`` S3's
    rate through the proxy over its rate without the added latency (1.0: the latency is hidden), ``s3fs_ratio``
    the s3fs side's rate over the local one; ``first_epoch_ratio`` (with ``first``) the same as ``ratio`` for
    the first epochs."""
    local, after = out.get("local", {}), out.get("local_after", {})
    if "rate" in local and "rate" in after:
        local["rate_before"] = local["rate"]
        local["rate"] = (local["rate"] + after["rate"]) / 2
    for name, measured, base in RATIOS:
        if "rate" in out.get(measured, {}) and "rate" in out.get(base, {}):
            out[name] = out[measured]["rate"] / out[base]["rate"]
    if first and "rate" in local and "rate" in out.get("s3", {}) and "rate" in after:
        out["first_epoch_ratio"] = first(out["s3"]) / ((first(local) + first(after)) / 2)
    return out


def combine(rounds: list[dict]) -> dict:
    """A measurement from its rounds: each side is its last round's result with ``rate`` the median of the
    rounds' rates, and each ratio the median of the rounds' own ratios (each round's sides ran back to back,
    so a ratio is taken within a round, never across rounds); ``rounds`` keeps every round's rates and ratios.

    >>> r = [{"local": {"rate": 10.0}, "s3": {"rate": 8.0}, "ratio": 0.8}, {"local": {"rate": 12.0}, "s3": {"rate": 12.0}, "ratio": 1.0}]
    >>> c = combine(r); c["ratio"], c["s3"]["rate"], c["rounds"]["ratio"]
    (0.9, 10.0, [0.8, 1.0])
    """
    out: dict = {side: dict(result) for side, result in rounds[-1].items() if isinstance(result, dict)}
    kept: dict = {}
    for side in out:
        rates = [r[side]["rate"] for r in rounds if "rate" in r.get(side, {})]
        if rates:
            out[side]["rate"] = statistics.median(rates)
            kept[side] = rates
    for name in [n for n, _, _ in RATIOS] + ["first_epoch_ratio"]:
        values = [r[name] for r in rounds if name in r]
        if values:
            out[name] = statistics.median(values)
            kept[name] = values
    out["rounds"] = kept
    return out


__all__ = ["run", "train_rate", "request_rate", "store_cli"]
