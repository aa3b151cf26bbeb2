"""Settings of one extraction run, as the CLI builds them and the pipeline (and Dask workers) use them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from mrnet.extract.engines import DEFAULT_MODEL
from mrnet.store.errors import UserError
from mrnet.store.format import CODECS, DTYPES, FEATURE_KINDS


@dataclass(frozen=True)
class ExtractConfig:
    dataset: str
    root: Path | None = None
    out: str | None = None  # store path or URL; default store/<dataset>.zarr
    manifests_dir: Path = Path("manifests")
    features: str = "wavlm"  # wavlm | mel
    model: str = DEFAULT_MODEL
    revision: str | None = None
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
    limit: int | None = None  # only the first N tracks (trials)
    overwrite: bool = False
    retry_failed: bool = False
    storage_options: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.features not in FEATURE_KINDS:
            raise UserError(f"--features {self.features!r}: choose one of {', '.join(FEATURE_KINDS)}")
        if self.dtype not in DTYPES:
            raise UserError(f"--dtype {self.dtype!r}: choose one of {', '.join(DTYPES)}")
        if self.codec not in CODECS:
            raise UserError(f"--codec {self.codec!r}: choose one of {', '.join(CODECS)}")
        if self.channels not in (1, 2):
            raise UserError("--channels: choose mono or stereo")
        if self.io_threads < 0:
            raise UserError(f"--io-threads must be 0 (automatic) or more, got {self.io_threads}")
        for name in ("batch_size", "unit_size", "chunk_frames"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1")
        if self.window_seconds <= 0:
            raise UserError("--window-seconds must be positive")

    @property
    def store(self) -> str:
        return self.out or str(Path("store") / f"{self.dataset}.zarr")

    def to_json(self) -> dict:
        data = asdict(self)
        return {k: (str(v) if isinstance(v, Path) else [str(x) for x in v] if k == "fold_files" else v) for k, v in data.items()}
