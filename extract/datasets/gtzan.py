"""GTZAN: 10 genres x 100 clips of ~30 s, in either of its two published layouts.

```
ROOT/genres/<genre>/<genre>.000NN.au               original release (22,050 Hz mono 16-bit AU)
ROOT/genres_original/<genre>/<genre>.000NN.wav     the widely used re-packaging (same clips as WAV)
```

``ROOT`` may be the folder that holds ``genres``/``genres_original`` or that folder itself. Track ids
are the file stems (``blues.00000``); GTZAN has no artist metadata. The default protocol is the
MRNet authors': seeded stratified 10-fold cross-validation (10 clips per genre in each fold).

Known bad file: ``genres_original/jazz/jazz.00054.wav`` in the re-packaging is not a WAV file (it does
not start with ``RIFF``). The scan lists it like any other clip and says so in a note; it cannot be
decoded, so extraction records that one track as failed and goes on.

>>> _clip("blues.00042.wav"), _clip("blues.42.wav")
('blues', None)
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from mrnet.core.errors import UserError

from .base import Scan, make_scan, tracks_frame
from .folds import assign_folds
from .registry import ReaderOptions, reader

GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
#: Layout folder -> extension of its clips.
LAYOUTS = {"genres": ".au", "genres_original": ".wav"}
#: Known bad clips of the WAV re-packaging (genres_original/), by track id.
KNOWN_BAD = {"jazz.00054": "not a WAV file: it does not start with RIFF"}

_CLIP = re.compile(r"^(?P<genre>[a-z]+)\.(?P<number>\d{5})\.(?:au|wav)$", re.IGNORECASE)
_EXPECTED = (
    "expected the GTZAN layout ROOT/genres/<genre>/<genre>.000NN.au or ROOT/genres_original/<genre>/<genre>.000NN.wav "
    "with the 10 genre folders (blues ... rock); pass --root pointing at the folder that contains genres or genres_original"
)


def _clip(name: str) -> str | None:
    """The genre a GTZAN clip's file name declares, or None when it is not a clip name."""
    match = _CLIP.match(name)
    return match["genre"].lower() if match else None


def _base(root: Path) -> tuple[Path, list[str]]:
    """The folder holding the genre folders, and notes about the choice."""
    found = [name for name in LAYOUTS if (root / name).is_dir()]
    if len(found) == 2:
        return root / "genres", ["both genres/ and genres_original/ exist; reading the original genres/ (.au)"]
    if found:
        return root / found[0], []
    if any((root / genre).is_dir() for genre in GENRES):
        return root, []
    raise UserError(f"no genres or genres_original folder under {root}: {_EXPECTED}")


@reader("gtzan")
def read(root: Path, options: ReaderOptions) -> Scan:
    """Scan a GTZAN copy into a manifest with a seeded stratified ``options.folds``-fold column.

    Clips are what is on disk: a genre folder with fewer than 100 clips gives fewer rows.
    """
    base, notes = _base(root)
    prefix = base.relative_to(root).as_posix()
    prefix = "" if prefix == "." else prefix + "/"
    rows, ignored = [], 0
    for genre in GENRES:
        folder = base / genre
        if not folder.is_dir():
            notes.append(f"no {genre} folder in {base}")
            continue
        try:
            names = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        except OSError as err:  # no permission, or an I/O error: the other genres are read
            notes.append(f"cannot read the folder {folder} ({err.strerror or err}); its clips are left out")
            continue
        for name in names:
            if _clip(name) != genre:
                ignored += 1
                continue
            rows.append({"track_id": name.rsplit(".", 1)[0], "path": f"{prefix}{genre}/{name}", "genre": genre})
    if not rows:
        raise UserError(f"no GTZAN clips under {base}: {_EXPECTED}")
    if ignored:
        notes.append(
            f"{ignored} files in the genre folders are not GTZAN clip names (<genre>.000NN.au|wav) and are ignored"
        )
    notes += [
        f"{row['path']} is a known bad file ({KNOWN_BAD[row['track_id']]}); it cannot be decoded and extraction records it as failed"
        for row in rows
        if row["track_id"] in KNOWN_BAD and row["path"].endswith(".wav")
    ]
    tracks = assign_folds(tracks_frame(pl.DataFrame(rows)), k=options.folds, seed=options.seed, group=None)
    return make_scan("gtzan", root, source="audio", labeling="genre", tracks=tracks.sort("path"), notes=notes)
