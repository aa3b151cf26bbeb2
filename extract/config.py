"""Settings of one extraction run: what the CLI builds, what ``pipeline.run`` and every worker receive.

The config travels to Dask workers as it is (a frozen dataclass) and into logs and reports as JSON;
``to_json`` and ``from_json`` are each other's inverse.

>>> cfg = ExtractConfig(dataset="melon", root=Path("/data/melon"))
>>> cfg.features, cfg.store                      # Melon ships Mel only: that is its default
('mel', 'store/melon.zarr')
>>> ExtractConfig(dataset="folder", root=Path("/data/my_music/")).store
'store/my_music.zarr'
>>> ExtractConfig(dataset="hf", root=Path("marsyas/gtzan")).store   # a Hugging Face dataset: its name
'store/gtzan.zarr'
>>> ExtractConfig.from_json(cfg.to_json()) == cfg
True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from mrnet.core.errors import UserError
from mrnet.extract.datasets import DATASET_NAMES, default_features
from mrnet.extract.engines import DEFAULT_MODEL, FEATURES, PRECISIONS
from mrnet.store.format import CODECS, DTYPES

_PATHS = ("root", "labels", "split_files", "manifests_dir")

#: The range of each numeric option, (least, most): the command line shows them in --help and refuses
#: a value outside at parse time; ``ExtractConfig`` checks them again for callers of the library.
RANGES: dict[str, tuple[float, float]] = {
    "folds": (2, 100),
    "seed": (0, 2**32 - 1),
    "limit": (0, 10**9),
    "window_seconds": (1.0, 120.0),  # WavLM attends over a whole window: 120 s is 6,000 frames
    "batch_size": (1, 1024),
    "chunk_frames": (1, 100_000),
    "unit_size": (1, 100_000),
    "workers": (0, 256),
    "threads": (0, 256),
    "io_threads": (0, 256),
}


def manifest_folder(cfg: ExtractConfig) -> Path:
    """Where a run's manifests go: ``manifests/<store name>/``, so two stores of one dataset (another
    --out, another feature kind) never overwrite each other's manifests."""
    return cfg.manifests_dir / cfg.store_name


_TUPLES = ("layers", "gpus", "fold_files")


@dataclass(frozen=True)
class ExtractConfig:
    dataset: str
    root: Path | None = None
    out: str | None = None  # store path or URL; default store/<dataset>.zarr
    manifests_dir: Path = Path("manifests")
    features: str | None = None  # a key of engines.FEATURES; None: the dataset's default (mel for demo and melon)
    model: str = DEFAULT_MODEL
    revision: str | None = None
    trust_remote_code: bool = False  # ssl: run the code a model brings with its weights (MERT); recorded in the store
    layers: tuple[int, ...] | None = None  # None: all hidden states
    dtype: str = "float16"
    channels: int = 1
    batch_size: int = 8
    window_seconds: float = 40.0
    precision: str = "auto"
    normalize: bool | None = None
    codec: str = "none"
    chunk_frames: int = 150
    unit_size: int = 16  # tracks per work unit: the grain of the queue and of resume
    gpus: tuple[int, ...] = ()
    workers: int = 0  # CPU workers on a local Dask cluster; 0 = in this process
    scheduler: str | None = None  # address of an existing Dask cluster (tcp://host:8786)
    threads: int = 0  # torch threads per worker; 0 = automatic. Equal counts give bitwise-equal features
    io_threads: int = 0  # decoding and writing threads per worker process; 0 = its share of the cores
    labels: Path | None = None
    labeling: str | None = None
    folds: int = 10
    seed: int = 0
    split_files: Path | None = None
    fold_files: tuple[Path, ...] = ()
    tags: str | None = None  # mtat: keep the N most frequent tags ("50") or the tags a file names
    keep_untagged: bool = False  # mtat: keep clips with none of the kept tags
    label_column: str | None = None  # hf: the dataset column that holds the labels
    limit: int | None = None  # only the first N tracks (trials)
    overwrite: bool = False
    retry_failed: bool = False
    storage_options: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.dataset not in DATASET_NAMES:
            raise UserError(f"unknown dataset {self.dataset!r}: choose one of {', '.join(DATASET_NAMES)}")
        if self.features is None:
            object.__setattr__(self, "features", default_features(self.dataset))
        if self.features not in FEATURES:
            raise UserError(f"--features {self.features!r}: choose one of {', '.join(FEATURES)}")
        if self.dtype not in DTYPES:
            raise UserError(f"--dtype {self.dtype!r}: choose one of {', '.join(DTYPES)}")
        if self.codec not in CODECS:
            raise UserError(f"--codec {self.codec!r}: choose one of {', '.join(CODECS)}")
        if self.precision not in PRECISIONS:
            raise UserError(f"--precision {self.precision!r}: choose one of {', '.join(PRECISIONS)}")
        if self.channels not in (1, 2):
            raise UserError("--channels: choose mono or stereo")
        for name, (least, most) in RANGES.items():
            value = getattr(self, name)
            if value is not None and not least <= value <= most:  # a NaN is in no range
                raise UserError(f"--{name.replace('_', '-')} {value}: choose a value from {least} to {most}")
        if self.layers is not None and not self.layers:
            raise UserError(
                "--layers names no layer: give numbers like 0,6,12 or a range like 0-12 (or leave it out for all)"
            )

    @property
    def store(self) -> str:
        """``--out``, or ``store/<name>.zarr``: the dataset's name, or for a folder dataset its root
        folder's (``--root ~/my_music``: ``store/my_music.zarr``), so two folders get two stores; for
        ``hf`` the Hugging Face dataset's own (``--root marsyas/gtzan`` or a local copy ``gtzan/``: ``store/gtzan.zarr``)."""
        return self.out or str(Path("store") / f"{self.default_name}.zarr")

    @property
    def default_name(self) -> str:
        if self.dataset == "folder" and self.root is not None:
            return Path(self.root).expanduser().absolute().resolve().name or self.dataset
        if self.dataset == "hf" and self.root is not None:
            from mrnet.extract.datasets.hf import store_name

            return store_name(self.root)
        return self.dataset

    @property
    def store_name(self) -> str:
        """The store's name without ``.zarr`` (``fma_small-mel`` for ``s3://b/fma_small-mel.zarr``)."""
        return self.store.rstrip("/").rsplit("/", 1)[-1].removesuffix(".zarr") or self.dataset

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values: paths as strings, tuples as lists."""
        data = asdict(self)
        for key in _PATHS:
            data[key] = None if data[key] is None else str(data[key])
        for key in _TUPLES:
            data[key] = None if data[key] is None else [str(v) if isinstance(v, Path) else v for v in data[key]]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExtractConfig:
        """The config ``to_json`` wrote (unknown keys from another version are refused by name)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"extraction config has unknown settings {unknown}: written by another mrnet version?")
        data = dict(data)
        for key in _PATHS:
            if data.get(key) is not None:
                data[key] = Path(data[key])
        if data.get("layers") is not None:
            data["layers"] = tuple(data["layers"])
        data["gpus"] = tuple(data.get("gpus") or ())
        data["fold_files"] = tuple(Path(p) for p in data.get("fold_files") or ())
        return cls(**data)
