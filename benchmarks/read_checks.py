"""What ``FeatureStore(check_reads=True)`` (``mrnet-train --check-reads``) costs the loader.

The loader benchmark's ``store`` method (``FeatureStore.read`` of random 6 s crops from a WavLM-shaped
store, benchmarks/loader.py) timed with and without read-time checksums. Unlike the loader benchmark,
each pass opens a fresh ``FeatureStore``, so every track's first read (when its checksum is checked)
falls inside the timed pass: the figure is the cost over a pass that reads each track ``crops / tracks``
times, as one process does over that many epochs. The page cache is warm (a full read of every track first).
The two run in turn, unchecked then checked, ``repeat`` times in one process: each rate is given as the
median and range of its passes, with the checked/unchecked ratio pass pair by pass pair, and the cost
of one track's check (its whole read and CRC-32) in milliseconds, from the medians; each by the wall
clock and by the process's CPU time.

    python -m benchmarks.read_checks [--tracks 8] [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from benchmarks.common import CACHE, log
from benchmarks.data import feature_store
from benchmarks.loader import CROP, _picks

#: Each pass timed by the wall clock and by this process's CPU time (which mostly leaves out the time a
#: busy machine made the process wait for a core).
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def run(tracks: int = 8, repeat: int = 7) -> dict:
    from mrnet.store.reader import FeatureStore

    root = CACHE / "stores" / f"wavlm-{tracks}.zarr"
    feature_store(root, tracks)
    warm = FeatureStore.open(str(root))
    keys = warm.tracks.sort("key")["key"].to_list()
    for key in keys:
        warm.read(key)
    frames, layers = warm.frames(keys[0]), len(warm.provenance.layers)
    out: dict = {"tracks": tracks, "frames": frames, "crop_frames": CROP}
    for width, count in ((layers, 25 * tracks), (1, 75 * tracks)):
        picks = _picks(tracks, frames, layers, count, width, seed=width)
        passes: dict[str, dict[str, list[float]]] = {clock: {"unchecked": [], "checked": []} for clock in CLOCKS}
        for _ in range(repeat):
            for name in ("unchecked", "checked"):
                store = FeatureStore.open(str(root), check_reads=name == "checked")
                began = {clock: now() for clock, now in CLOCKS.items()}
                for t, s, first in picks:
                    store.read(keys[t], s, s + CROP, range(first, first + width))
                for clock, now in CLOCKS.items():
                    passes[clock][name].append(count / max(1e-9, now() - began[clock]))
        block: dict = {"crops": count, "crops_per_track": count // tracks}
        for clock, rates in passes.items():
            median = {name: statistics.median(r) for name, r in rates.items()}
            ratios = [c / u for u, c in zip(rates["unchecked"], rates["checked"])]
            block[clock] = {
                "crops_per_s": median,
                "range": {name: [min(r), max(r)] for name, r in rates.items()},
                "passes": rates,
                "checked_over_unchecked": median["checked"] / median["unchecked"],
                "pair_ratios": ratios,
                "check_ms_per_track": 1e3 * (count / median["checked"] - count / median["unchecked"]) / tracks,
            }
            log(
                f"  {width} layer(s), {count // tracks} crops per track, median of {repeat}, {clock}: unchecked "
                f"{median['unchecked']:.0f}/s [{min(rates['unchecked']):.0f}-{max(rates['unchecked']):.0f}], checked "
                f"{median['checked']:.0f}/s [{min(rates['checked']):.0f}-{max(rates['checked']):.0f}], ratio "
                f"{block[clock]['checked_over_unchecked']:.2f} (pairs {min(ratios):.2f}-{max(ratios):.2f}); "
                f"a track's check {block[clock]['check_ms_per_track']:.0f} ms"
            )
        out[f"layers_{width}"] = block
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print(json.dumps(run(args.tracks, args.repeat), indent=2))
