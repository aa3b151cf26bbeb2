"""What ``FeatureStore(check_reads=True)`` (``mrnet-train --check-reads``) costs the loader.

The loader benchmark's ``store`` method (``FeatureStore.read`` of random 6 s crops from a WavLM-shaped
store, benchmarks/loader.py) timed with and without read-time checksums. Unlike the loader benchmark,
each pass opens a fresh ``FeatureStore``, so every track's first read (when its checksum is checked)
falls inside the timed pass: the figure is the cost over a pass that reads each track ``crops / tracks``
times, as one process does over that many epochs. The page cache is warm (a full read of every track first).

    python -m benchmarks.read_checks [--tracks 8] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import time

from benchmarks.common import CACHE, log
from benchmarks.data import feature_store
from benchmarks.loader import CROP, _picks


def run(tracks: int = 8, repeat: int = 3) -> dict:
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
        passes: dict[str, list[float]] = {"unchecked": [], "checked": []}
        for _ in range(repeat):
            for name in passes:
                store = FeatureStore.open(str(root), check_reads=name == "checked")
                began = time.perf_counter()
                for t, s, first in picks:
                    store.read(keys[t], s, s + CROP, range(first, first + width))
                passes[name].append(count / (time.perf_counter() - began))
        best = {name: max(rates) for name, rates in passes.items()}
        out[f"layers_{width}"] = {
            "crops": count,
            "crops_per_track": count // tracks,
            "crops_per_s": best,
            "passes": passes,
            "checked_over_unchecked": best["checked"] / best["unchecked"],
        }
        log(
            f"  {width} layer(s), {count // tracks} crops per track: unchecked {best['unchecked']:.0f}/s, "
            f"checked {best['checked']:.0f}/s ({best['checked'] / best['unchecked']:.2f})"
        )
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(run(args.tracks, args.repeat), indent=2))
