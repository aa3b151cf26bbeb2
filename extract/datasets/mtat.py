"""MagnaTagATune (MTAT): 25,863 clips of about 29 s, each with any number of 188 tags, as it ships.

```
ROOT/annotations_final.csv   tab-separated: "clip_id", 188 tag columns (0 or 1), "mp3_path"
ROOT/0/ ... ROOT/f/          the MP3s, e.g. f/american_bach_soloists-j_s__bach_solo_cantatas-01-bwv54__i_aria-30-59.mp3
```

A multi-label task. The protocol is the usual one for MTAT tagging (Choi et al. 2016; the splits
of Lee et al. that minzwon/sota-music-tagging-models publishes):

- **Tags:** the 50 most frequent by default (``--tags N`` for another number, ``--tags FILE`` for a
  list of tag names, one per line, as they appear in the header). No synonyms are merged.
- **Split:** by the folder's hex digit: ``0``-``b`` train, ``c`` valid, ``d``-``f`` test.
- **Clips with none of the kept tags** are left out by default, as the published split lists do (a
  note counts them); ``--keep-untagged`` keeps them as clips with no positive tag, as the split of
  Pons et al. (musicnn-training) does. Those lists also leave out clips shorter than 29.1 s of audio;
  the store keeps them, with their decoded duration in the manifest.
- **Known broken MP3s** (clip ids 35644, 55753, 57881: empty or corrupt files of the release) are
  recorded as failed without being decoded.

``track_id`` is the clip id; ``artist`` is the file name's first field; ``genres_all`` holds every
one of the 188 tags the clip has.

>>> split_of("c/x.mp3"), split_of("0/x.mp3"), split_of("f/x.mp3")
('valid', 'train', 'test')
"""

from __future__ import annotations

import csv
from pathlib import Path

import polars as pl

from mrnet.core.errors import UserError

from .base import Scan, make_scan, mark_missing, require_file, tracks_frame
from .registry import ReaderOptions, reader

#: Clip ids of the release's empty or corrupt MP3s (listed by musicnn-training's partition script).
KNOWN_BAD = {
    "35644": "6/norine_braun-now_and_zen-08-gently-117-146.mp3",
    "55753": "8/jacob_heringman-josquin_des_prez_lute_settings-19-gintzler__pater_noster-204-233.mp3",
    "57881": "9/american_baroque-dances_and_suites_of_rameau_and_couperin-25-le_petit_rien_xiveme_ordre_couperin-88-117.mp3",
}
_EXPECTED = (
    "expected the MagnaTagATune layout ROOT/annotations_final.csv (tab-separated: clip_id, 188 tags, mp3_path) and the "
    "MP3 folders ROOT/0 ... ROOT/f; pass --root pointing at the folder that holds annotations_final.csv"
)


def split_of(mp3_path: str) -> str:
    """The split of a clip from its folder's hex digit: 0-b train, c valid, d-f test."""
    digit = int(mp3_path[0], 16)
    return "train" if digit < 12 else "valid" if digit == 12 else "test"


def read_annotations(path: Path) -> tuple[list[str], pl.DataFrame]:
    """The tag names and a frame of clip_id, mp3_path and one 0/1 Int8 column per tag."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    if not rows or len(rows[0]) < 3 or rows[0][0] != "clip_id" or rows[0][-1] != "mp3_path":
        raise UserError(f"{path} does not start with the header clip_id, <tags>, mp3_path: {_EXPECTED}")
    header, body = rows[0], [r for r in rows[1:] if r]
    short = [i + 2 for i, r in enumerate(body) if len(r) != len(header)]
    if short:
        raise UserError(
            f"{path}: {len(short)} lines do not have the header's {len(header)} fields (first: line {short[0]})"
        )
    tags = header[1:-1]
    columns: list[tuple[str, ...]] = list(zip(*body)) if body else [() for _ in header]
    frame = pl.DataFrame(
        {"clip_id": list(columns[0]), "mp3_path": list(columns[-1])}
        | {tag: list(col) for tag, col in zip(tags, columns[1:-1])}
    )
    try:
        frame = frame.with_columns(pl.col(tags).cast(pl.Int8))
    except pl.exceptions.PolarsError as err:
        raise UserError(f"{path}: tag columns must hold 0 or 1 ({err})") from err
    odd = frame.filter(~pl.col("mp3_path").str.contains(r"^[0-9a-f]/[^/]+\.mp3$"))
    if odd.height:
        raise UserError(
            f"{path}: {odd.height} mp3_path values are not <hex digit>/<name>.mp3, e.g. {odd['mp3_path'][0]!r}"
        )
    return tags, frame


def kept_tags(tags: list[str], frame: pl.DataFrame, choice: str | None) -> tuple[list[str], str]:
    """The tags the task keeps, and the labeling name: the ``N`` most frequent (ties in header order),
    or those a list file names."""
    if choice is None or choice.isdigit():
        n = int(choice or 50)
        if not 1 <= n <= len(tags):
            raise UserError(f"--tags {n}: choose between 1 and the {len(tags)} tags of the annotations")
        counts = frame.select(pl.col(tags).sum()).row(0)
        ranked = sorted(range(len(tags)), key=lambda i: (-counts[i], i))
        return [tags[i] for i in ranked[:n]], f"top{n}"
    listed = [
        line.strip()
        for line in require_file(Path(choice), "--tags: give a number or a file of tag names, one per line")
        .read_text(encoding="utf-8")
        .splitlines()
        if line.strip() and not line.startswith("#")
    ]
    unknown = [t for t in listed if t not in tags]
    if unknown or not listed:
        raise UserError(
            f"--tags {choice}: {f'tags not in the annotations: {unknown[:5]}' if unknown else 'lists no tag'}"
        )
    return list(dict.fromkeys(listed)), f"tags:{Path(choice).name}"


@reader("mtat", labelings=("top50",), takes=("tags",))  # the labeling is set by --tags: topN, or tags:<list file>
def read(root: Path, options: ReaderOptions) -> Scan:
    """Scan a MagnaTagATune copy into a multi-label manifest with the hex-folder split."""
    tags, keep_untagged = options.tags, options.keep_untagged
    header_tags, frame = read_annotations(require_file(root / "annotations_final.csv", _EXPECTED))
    keep, labeling = kept_tags(header_tags, frame, tags)
    positives = lambda names: pl.concat_list([pl.when(pl.col(t) == 1).then(pl.lit(t)) for t in names]).list.drop_nulls()  # noqa: E731
    frame = frame.with_columns(tags=positives(keep), genres_all=positives(header_tags))
    notes = []
    untagged = frame.filter(pl.col("tags").list.len() == 0).height
    if untagged and not keep_untagged:
        frame = frame.filter(pl.col("tags").list.len() > 0)
        notes.append(
            f"{untagged} clips have none of the {len(keep)} kept tags and are left out (--keep-untagged keeps them)"
        )
    reader = frame.select(
        track_id=pl.col("clip_id"),
        path=pl.col("mp3_path"),
        tags="tags",
        genres_all="genres_all",
        artist=pl.col("mp3_path").str.extract(r"^[0-9a-f]/([^-]+)", 1),
        split=pl.col("mp3_path").map_elements(split_of, return_dtype=pl.String),
    )
    tracks = mark_missing(tracks_frame(reader), root)
    bad = pl.col("track_id").is_in(list(KNOWN_BAD))
    tracks = tracks.with_columns(
        status=pl.when(bad).then(pl.lit("failed")).otherwise(pl.col("status")),
        error=pl.when(bad)
        .then(pl.lit("a known broken MP3 of the MagnaTagATune release (empty or corrupt): ") + pl.col("path"))
        .otherwise(pl.col("error")),
    )
    present = tracks.filter(bad).height
    if present:
        notes.append(
            f"{present} known broken MP3s of the release are recorded as failed (clip ids {', '.join(KNOWN_BAD)})"
        )
    return make_scan(
        "mtat",
        root,
        source="audio",
        labeling=labeling,
        tracks=tracks.sort("track_id"),
        notes=notes,
        task="multi-label",
        tags=keep,
    )
