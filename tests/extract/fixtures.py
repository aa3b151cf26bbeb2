"""Miniature copies of the real datasets, in their exact published layouts, for tests.

Each ``make_*`` writes into a folder (a pytest ``tmp_path``) and returns the dataset root to pass to
``mrnet.extract.datasets.scan``. Audio is a fraction of a second of seeded tones, so a whole fixture
takes milliseconds to write and to extract. The module-level tables (``FMA_TRACKS``, ``MELON_SONGS``)
say exactly what is in each fixture, so tests assert against them rather than against magic numbers.

Known bad files are reproduced where the real dataset has them:

- GTZAN ``genres_original/jazz/jazz.00054.wav`` does not start with ``RIFF`` (pass ``indices`` with 54).
- FMA ``098565`` is far too short, ``133297`` is a 1,752-byte file with no audio, ``000020`` is in
  the metadata with no audio file at all, ``000003`` is a byte-for-byte duplicate of ``000002``.
- Melon song ``6003`` has no ``.npy``; song ``1001``'s spectrogram is shorter than the rest.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import polars as pl
import soundfile as sf

from tests.helpers import tone

GTZAN_GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")


# -- GTZAN -----------------------------------------------------------------------------------------


def make_gtzan(
    root: Path,
    layout: str = "genres_original",
    *,
    per_genre: int = 2,
    seconds: float = 1.0,
    indices: Iterable[int] | None = None,
    genres: Iterable[str] = GTZAN_GENRES,
) -> Path:
    """GTZAN under ``root/<layout>/<genre>/<genre>.000NN.{au,wav}``; returns ``root``.

    ``layout`` is ``"genres"`` (original, 22,050 Hz mono 16-bit AU) or ``"genres_original"`` (WAV
    re-packaging). Clips are numbered ``indices`` (default ``range(per_genre)``). In the WAV layout,
    ``jazz/jazz.00054.wav`` is written corrupt (no RIFF header) when 54 is among the indices.
    """
    ext = {"genres": ".au", "genres_original": ".wav"}[layout]
    numbers = list(range(per_genre) if indices is None else indices)
    for g, genre in enumerate(genres):
        folder = Path(root) / layout / genre
        folder.mkdir(parents=True, exist_ok=True)
        for i in numbers:
            path = folder / f"{genre}.{i:05d}{ext}"
            if ext == ".wav" and genre == "jazz" and i == 54:
                path.write_bytes(b"\x00" * 4 + np.zeros(2048, np.uint8).tobytes())  # starts with zeros, not RIFF
                continue
            x = tone(seconds, 22050, freq=110.0 * (g + 1), seed=i)
            sf.write(path, x, 22050, format=ext[1:].upper(), subtype="PCM_16")
    return Path(root)


# -- FMA -------------------------------------------------------------------------------------------

#: tracks.csv columns, grouped and sorted exactly as in the real file (52 after the track_id index).
FMA_COLUMNS = {
    "album": (
        "comments",
        "date_created",
        "date_released",
        "engineer",
        "favorites",
        "id",
        "information",
        "listens",
        "producer",
        "tags",
        "title",
        "tracks",
        "type",
    ),
    "artist": (
        "active_year_begin",
        "active_year_end",
        "associated_labels",
        "bio",
        "comments",
        "date_created",
        "favorites",
        "id",
        "latitude",
        "location",
        "longitude",
        "members",
        "name",
        "related_projects",
        "tags",
        "website",
        "wikipedia_page",
    ),
    "set": ("split", "subset"),
    "track": (
        "bit_rate",
        "comments",
        "composer",
        "date_created",
        "date_recorded",
        "duration",
        "favorites",
        "genre_top",
        "genres",
        "genres_all",
        "information",
        "interest",
        "language_code",
        "license",
        "listens",
        "lyricist",
        "number",
        "publisher",
        "tags",
        "title",
    ),
}

#: genres.csv rows: genre_id, #tracks, parent, title, top_level.
FMA_GENRES = [
    (1, 8693, 38, "Avant-Garde", 38),
    (10, 13845, 0, "Pop", 10),
    (12, 32923, 0, "Rock", 12),
    (15, 34413, 0, "Electronic", 15),
    (17, 12706, 0, "Folk", 17),
    (21, 8389, 0, "Hip-Hop", 21),
    (25, 9261, 12, "Punk", 12),
    (38, 38154, 0, "Experimental", 38),
    (45, 3548, 12, "Loud-Rock", 12),
    (76, 2071, 10, "Experimental Pop", 10),
    (100, 1104, 21, "Alternative Hip-Hop", 21),
    (236, 1391, 15, "Ambient Electronic", 15),
]


class FmaTrack(NamedTuple):
    track_id: int
    subset: str  # small / medium / large
    split: str  # training / validation / test
    genre_top: str  # "" when the genres span several roots
    genres: list[int]
    genres_all: list[int]
    artist: int
    audio: str = "ok"  # ok / missing / short / silent (1,752 bytes, no audio) / duplicate (of 000002)


FMA_TRACKS = [
    FmaTrack(2, "small", "training", "Hip-Hop", [21], [21], 1),
    FmaTrack(3, "large", "training", "Hip-Hop", [21], [21], 1, audio="duplicate"),
    FmaTrack(5, "small", "training", "Hip-Hop", [21, 100], [21, 100], 1),
    FmaTrack(10, "small", "training", "Pop", [10], [10], 6),
    FmaTrack(20, "small", "training", "Pop", [76, 10], [10, 76], 6, audio="missing"),
    FmaTrack(134, "medium", "training", "Hip-Hop", [21], [21], 1),
    FmaTrack(140, "small", "validation", "Folk", [17], [17], 53),
    FmaTrack(141, "small", "test", "Folk", [17], [17], 54),
    FmaTrack(148, "small", "validation", "Experimental", [1], [1, 38], 55),
    FmaTrack(182, "small", "test", "Rock", [25], [12, 25], 63),
    FmaTrack(213, "medium", "validation", "Electronic", [236], [15, 236], 64),
    FmaTrack(255, "large", "test", "", [12, 21], [12, 21], 70),
    FmaTrack(256, "large", "training", "", [], [], 71),
    FmaTrack(98565, "small", "training", "Rock", [45], [12, 45], 9000, audio="short"),
    FmaTrack(133297, "small", "test", "Electronic", [15], [15], 9001, audio="silent"),
]

_BIO = '<p>A Way Of Life, A Collective of Hip-Hop from Queens, NY.\nWith members "Sajje", Brownbum, ZawidaGod,\r\nand more.</p>'


def _fma_row(t: FmaTrack) -> list[str]:
    """One tracks.csv data line: every column filled the way the real file fills it."""
    values = {
        "album": [
            "0",
            "2008-11-26 01:44:45",
            "2009-01-05 00:00:00",
            "",
            "4",
            str(t.track_id % 7 + 1),
            "<p></p>",
            "6073",
            "",
            "[]",
            "AWOL - A Way Of Life",
            "7",
            "Album",
        ],
        "artist": [
            "2006-01-01 00:00:00",
            "",
            "",
            _BIO if t.artist == 1 else "",
            "0",
            "2008-11-26 01:42:32",
            "9",
            str(t.artist),
            "40.0583238",
            "New Jersey",
            "-74.4056612",
            "Sajje Morocco,Brownbum,ZawidaGod",
            f"Artist {t.artist}",
            "",
            "['awol', \"rock'n'roll\"]",
            "http://www.AzillionRecords.blogspot.com",
            "",
        ],
        "set": [t.split, t.subset],
        "track": [
            "256000",
            "0",
            "",
            "2008-11-26 01:48:12",
            "2008-11-26 00:00:00",
            "168",
            "2",
            t.genre_top,
            str(t.genres),
            str(t.genres_all),
            "",
            "4656",
            "en",
            "Attribution-NonCommercial-ShareAlike 3.0 International",
            "1293",
            "",
            "3",
            "",
            "[]",
            f"Food, part {t.track_id}",
        ],
    }
    return [str(t.track_id)] + [v for group in FMA_COLUMNS for v in values[group]]


def fma_audio_path(track_id: int, subset: str) -> str:
    """``fma_<subset>/<first 3 digits>/<6-digit id>.mp3`` relative to the root."""
    tid = f"{track_id:06d}"
    return f"fma_{subset}/{tid[:3]}/{tid}.mp3"


def _silent_mp3(path: Path) -> None:
    """A 1,752-byte file with an ID3 tag and no audio frames, like 133297.mp3."""
    size = 1752 - 10
    header = b"ID3\x03\x00\x00" + bytes([0, 0, (size >> 7) & 0x7F, size & 0x7F])
    path.write_bytes(header + bytes(size))


def make_fma(
    root: Path, subset: str = "small", *, seconds: float = 0.25, sample_rate: int = 44100, channels: int = 2
) -> Path:
    """FMA metadata for all of :data:`FMA_TRACKS` plus ``fma_<subset>/`` audio for that subset; returns ``root``.

    The audio folder holds every track of ``subset`` and the smaller ones (subsets are nested), as
    ``seconds`` of stereo 44.1 kHz MP3, except the known bad files described in the module docstring.
    """
    root = Path(root)
    meta = root / "fma_metadata"
    meta.mkdir(parents=True, exist_ok=True)
    with (meta / "tracks.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["", *(g for g, subs in FMA_COLUMNS.items() for _ in subs)])
        writer.writerow(["", *(s for subs in FMA_COLUMNS.values() for s in subs)])
        writer.writerow(["track_id"] + [""] * sum(map(len, FMA_COLUMNS.values())))
        writer.writerows(_fma_row(t) for t in FMA_TRACKS)
    with (meta / "genres.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["genre_id", "#tracks", "parent", "title", "top_level"])
        writer.writerows(FMA_GENRES)
    levels = ("small", "medium", "large")
    for t in FMA_TRACKS:
        if levels.index(t.subset) > levels.index(subset) or t.audio == "missing":
            continue
        path = root / fma_audio_path(t.track_id, subset)
        path.parent.mkdir(parents=True, exist_ok=True)
        if t.audio == "silent":
            _silent_mp3(path)
            continue
        length = 0.03 if t.audio == "short" else seconds
        seed = 2 if t.audio == "duplicate" else t.track_id
        sf.write(
            path,
            tone(length, sample_rate, freq=220.0 + t.track_id % 500, channels=channels, seed=seed),
            sample_rate,
            format="MP3",
        )
    if levels.index(subset) == 2:  # the duplicate is byte-identical to 000002
        (root / fma_audio_path(3, subset)).write_bytes((root / fma_audio_path(2, subset)).read_bytes())
    return root


# -- Melon -----------------------------------------------------------------------------------------


class MelonSong(NamedTuple):
    id: int
    major: list[str]  # song_gn_gnr_basket
    detail: list[str]  # song_gn_dtl_gnr_basket
    artists: list[int]  # artist_id_basket
    npy: str = "ok"  # ok / missing / short


MELON_SONGS = [
    MelonSong(0, ["GN0100"], ["GN0101", "GN0103"], [2727]),
    MelonSong(1, ["GN0100"], ["GN0101"], [2727, 100]),
    MelonSong(2, ["GN0200"], ["GN0201"], [100]),
    MelonSong(1000, ["GN0200"], ["GN0201"], [101]),
    MelonSong(1001, ["GN0300"], ["GN0301"], [102], npy="short"),
    MelonSong(2500, ["GN0100", "GN0200"], ["GN0101", "GN0201"], [103]),
    MelonSong(3000, [], [], [104]),
    MelonSong(4001, ["GN0100"], [], []),
    MelonSong(5002, ["GN0200"], ["GN0201"], [2727]),
    MelonSong(6003, ["GN0300"], ["GN0301"], [105], npy="missing"),
    MelonSong(707988, ["GN0300"], ["GN0302"], [106]),
]

MELON_GENRE_NAMES = {
    "GN0100": "발라드",
    "GN0101": "세부장르전체",
    "GN0103": "'00",
    "GN0200": "댄스",
    "GN0201": "세부장르전체",
    "GN0300": "랩/힙합",
    "GN0301": "세부장르전체",
    "GN0302": "국내랩/힙합",
}


def make_melon(root: Path, *, frames: int = 64, dtype: str = "float32") -> Path:
    """Melon Playlist Dataset miniature: song_meta.json, genre_gn_all.json, arena_mel/<id // 1000>/<id>.npy.

    Spectrograms are ``(48, frames)`` (``frames // 2`` for the short one); returns ``root``.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    meta = [
        {
            "song_gn_dtl_gnr_basket": s.detail,
            "issue_date": "20140512",
            "album_name": f"앨범 {s.id}",
            "album_id": 2255639 + s.id,
            "id": s.id,
            "artist_name_basket": [f"가수 {a}" for a in s.artists],
            "song_name": f"노래 {s.id}",
            "song_gn_gnr_basket": s.major,
            "artist_id_basket": s.artists,
        }
        for s in MELON_SONGS
    ]
    (root / "song_meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    (root / "genre_gn_all.json").write_text(
        json.dumps(MELON_GENRE_NAMES, ensure_ascii=False, indent=1), encoding="utf-8"
    )
    rng = np.random.default_rng(0)
    for s in MELON_SONGS:
        if s.npy == "missing":
            continue
        path = root / "arena_mel" / str(s.id // 1000) / f"{s.id}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        n = frames // 2 if s.npy == "short" else frames
        np.save(path, rng.uniform(-10, 10, size=(48, n)).astype(dtype))
    return root


# -- folder ----------------------------------------------------------------------------------------


class FolderFixture(NamedTuple):
    root: Path
    labels: Path | None  # the labels table, when one was asked for
    paths: list[str]  # every audio file written, relative to root


_FORMATS = ((".wav", "WAV"), (".flac", "FLAC"), (".ogg", "OGG"), (".mp3", "MP3"), (".AU", "AU"))


def make_folder(
    root: Path,
    *,
    genres: tuple[str, ...] = ("calm", "loud", "mid"),
    per_genre: int = 4,
    seconds: float = 0.2,
    sample_rate: int = 16000,
    labels: str | None = None,
    artists: bool = True,
    split: bool = False,
    missing: int = 0,
) -> FolderFixture:
    """A folder of audio, one sub-folder per genre, cycling through every supported format.

    ``labels="csv"`` or ``"parquet"`` also writes ``root/labels.<fmt>`` (path, genre, plus artist when
    ``artists`` - two tracks per artist - and split when ``split``: the first track of each genre is
    test, the second valid, the rest train). ``missing`` extra rows in the table name files that do
    not exist. One file per genre sits one folder deeper (``<genre>/live/...``).
    """
    root = Path(root)
    rows, paths = [], []
    for g, genre in enumerate(genres):
        for i in range(per_genre):
            ext, fmt = _FORMATS[(g + i) % len(_FORMATS)]
            rel = f"{genre}/live/{genre}_{i}{ext}" if i == per_genre - 1 else f"{genre}/{genre}_{i}{ext}"
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, tone(seconds, sample_rate, freq=200.0 * (g + 1), seed=i), sample_rate, format=fmt)
            paths.append(rel)
            rows.append(
                {
                    "path": rel,
                    "genre": genre,
                    "artist": f"{genre}-artist-{i // 2}",
                    "split": ("test", "valid")[i] if i < 2 else "train",
                }
            )
    for j in range(missing):
        rows.append({"path": f"{genres[0]}/gone_{j}.wav", "genre": genres[0], "artist": "gone", "split": "train"})
    table = None
    if labels is not None:
        keep = ["path", "genre"] + (["artist"] if artists else []) + (["split"] if split else [])
        frame = pl.DataFrame(rows).select(keep)
        table = root / f"labels.{labels}"
        frame.write_csv(table) if labels == "csv" else frame.write_parquet(table)
    return FolderFixture(root, table, paths)


# -- MagnaTagATune ----------------------------------------------------------------------------------

#: The 188 tag columns of annotations_final.csv, in the release's order.
MTAT_TAGS = (
    "no voice",
    "singer",
    "duet",
    "plucking",
    "hard rock",
    "world",
    "bongos",
    "harpsichord",
    "female singing",
    "clasical",
    "sitar",
    "chorus",
    "female opera",
    "male vocal",
    "vocals",
    "clarinet",
    "heavy",
    "silence",
    "beats",
    "men",
    "woodwind",
    "funky",
    "no strings",
    "chimes",
    "foreign",
    "no piano",
    "horns",
    "classical",
    "female",
    "no voices",
    "soft rock",
    "eerie",
    "spacey",
    "jazz",
    "guitar",
    "quiet",
    "no beat",
    "banjo",
    "electric",
    "solo",
    "violins",
    "folk",
    "female voice",
    "wind",
    "happy",
    "ambient",
    "new age",
    "synth",
    "funk",
    "no singing",
    "middle eastern",
    "trumpet",
    "percussion",
    "drum",
    "airy",
    "voice",
    "repetitive",
    "birds",
    "space",
    "strings",
    "bass",
    "harpsicord",
    "medieval",
    "male voice",
    "girl",
    "keyboard",
    "acoustic",
    "loud",
    "classic",
    "string",
    "drums",
    "electronic",
    "not classical",
    "chanting",
    "no violin",
    "not rock",
    "no guitar",
    "organ",
    "no vocal",
    "talking",
    "choral",
    "weird",
    "opera",
    "soprano",
    "fast",
    "acoustic guitar",
    "electric guitar",
    "male singer",
    "man singing",
    "classical guitar",
    "country",
    "violin",
    "electro",
    "reggae",
    "tribal",
    "dark",
    "male opera",
    "no vocals",
    "irish",
    "electronica",
    "horn",
    "operatic",
    "arabic",
    "lol",
    "low",
    "instrumental",
    "trance",
    "chant",
    "strange",
    "drone",
    "synthesizer",
    "heavy metal",
    "modern",
    "disco",
    "bells",
    "man",
    "deep",
    "fast beat",
    "industrial",
    "hard",
    "harp",
    "no flute",
    "jungle",
    "pop",
    "lute",
    "female vocal",
    "oboe",
    "mellow",
    "orchestral",
    "viola",
    "light",
    "echo",
    "piano",
    "celtic",
    "male vocals",
    "orchestra",
    "eastern",
    "old",
    "flutes",
    "punk",
    "spanish",
    "sad",
    "sax",
    "slow",
    "male",
    "blues",
    "vocal",
    "indian",
    "no singer",
    "scary",
    "india",
    "woman",
    "woman singing",
    "rock",
    "dance",
    "piano solo",
    "guitars",
    "no drums",
    "jazzy",
    "singing",
    "cello",
    "calm",
    "female vocals",
    "voices",
    "different",
    "techno",
    "clapping",
    "house",
    "monks",
    "flute",
    "not opera",
    "not english",
    "oriental",
    "beat",
    "upbeat",
    "soft",
    "noise",
    "choir",
    "female singer",
    "rap",
    "metal",
    "hip hop",
    "quick",
    "water",
    "baroque",
    "women",
    "fiddle",
    "english",
)
#: Four styles, each a sound and the tags it carries: what a tagger can learn from the miniature.
MTAT_STYLES = {
    "strings": (440.0, ("classical", "strings", "violin", "slow")),
    "techno": (1800.0, ("techno", "electronic", "beat", "fast")),
    "rock": (150.0, ("rock", "guitar", "loud", "drums")),
    "ambient": (800.0, ("ambient", "quiet", "synth", "soft")),
}


def make_mtat(root: Path, *, per_folder: int = 3, seconds: float = 1.0, broken: bool = True) -> Path:
    """A miniature MagnaTagATune: the real 188-column tab-separated header, clips in the hex folders
    0-f (``per_folder`` each, 16 kHz MP3 as released), tags by style, one clip with no tag of the
    styles (and only the rare tag 'lol'), and the release's broken MP3 6/norine_braun-... (empty)."""
    root = Path(root)
    rows = []
    styles = list(MTAT_STYLES)
    for folder in "0123456789abcdef":
        for i in range(per_folder):
            clip = int(folder, 16) * 100 + i
            style = styles[(int(folder, 16) + i) % 4]
            freq, style_tags = MTAT_STYLES[style]
            rel = f"{folder}/artist{clip % 7}-album-{i:02d}-{style}_{clip}-0-29.mp3"
            (root / folder).mkdir(parents=True, exist_ok=True)
            sf.write(root / rel, tone(seconds, 16000, freq=freq, seed=clip), 16000, format="MP3")
            rows.append((str(clip), set(style_tags) | ({"male"} if i == 0 else set()), rel))
    sf.write(root / "a" / "nobody-x-01-untagged_9999-0-29.mp3", tone(seconds, 16000, freq=300.0), 16000, format="MP3")
    rows.append(("9999", {"lol"}, "a/nobody-x-01-untagged_9999-0-29.mp3"))
    if broken:
        rel = "6/norine_braun-now_and_zen-08-gently-117-146.mp3"
        (root / rel).write_bytes(b"")
        rows.append(("35644", {"female", "slow"}, rel))
    with (root / "annotations_final.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerow(["clip_id", *MTAT_TAGS, "mp3_path"])
        writer.writerows([clip, *(int(t in tags) for t in MTAT_TAGS), rel] for clip, tags, rel in rows)
    return root
