"""What every feature engine is: the one interface the extraction pipeline and ``mrnet-predict`` use.

An engine turns one dataset file into its input (``load``: decoded audio, or an array a dataset
ships), turns a batch of inputs into features ``(channels, layers, frames, dim)`` (``extract``), and
says what it computes (``describe``), which the store records as its provenance. The pipeline has
one path for every kind: load on the I/O threads, extract in groups, write.

Every engine subclasses :class:`EngineBase`, which writes ``describe`` once from what the engine
says about its weights (``weights``) and its parameters (``parameters``). Audio engines add
:class:`AudioInput` (decode, mix to mono or stereo, resample to the engine's rate); an engine over
shipped arrays writes its own ``load``.

Each engine file declares itself once: ``@computes("mel", "mel128")`` registers a kind computed from
audio in :data:`FEATURES` (the class has ``from_config`` for a new store and ``from_provenance`` for
new files of a store's model), ``@ships("melon")`` an engine over a dataset's shipped arrays in
:data:`SHIPPED` (keyed by the reader's ``Scan.source``). ``from_provenance`` reads the store's
recorded parameters with :func:`stored_params`, which refuses what this mrnet cannot reproduce.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np

from mrnet.core.errors import UserError
from mrnet.extract import audio

if TYPE_CHECKING:
    import torch

    from mrnet.store.format import Provenance


@dataclass(frozen=True)
class SourceInfo:
    """What a dataset file was, for the manifest: seconds, its own sample rate and channel count."""

    duration: float
    sample_rate: int
    channels: int
    warning: str | None = None  # e.g. decoded far shorter than the file declares: kept, but marked


class Engine(Protocol):
    """One feature kind. Attributes are what a store of it holds per track."""

    # Read-only: an engine may hold them as fields, class attributes or properties of its parameters.
    @property
    def feature(self) -> str:
        """provenance.feature: "wavlm", "mel", ..."""
        ...

    @property
    def layers(self) -> list[int]:
        """Stored layer numbers (WavLM hidden states; ``[0]`` for single-layer kinds)."""
        ...

    @property
    def dim(self) -> int:
        """Values per frame and channel."""
        ...

    @property
    def frame_rate(self) -> float:
        """Frames per second."""
        ...

    @property
    def channels(self) -> int:
        """1 mono, 2 stereo."""
        ...

    @property
    def sample_rate(self) -> int:
        """Of the audio the features are computed from."""
        ...

    def load(self, path: Path) -> tuple[np.ndarray, SourceInfo]:
        """The engine's input for one file, and what the file was; ``audio.AudioError`` naming a bad file."""
        ...

    def probe(self, path: Path) -> float:
        """Seconds of audio in a file, read cheaply (headers only): sizes a ``--dry-run``."""
        ...

    def seconds(self, item: np.ndarray) -> float:
        """Seconds of audio a loaded input holds: bounds how much a worker holds at once."""
        ...

    def extract(self, items: list[np.ndarray]) -> list[np.ndarray]:
        """Features ``(channels, layers, frames, dim)`` float for each loaded input; ``ValueError``
        for an input too short for one frame."""
        ...

    def describe(self) -> dict[str, Any]:
        """``{"model", "model_revision", "extraction": {...}}``: what the store records about the engine."""
        ...


class AudioEngine(Engine, Protocol):
    """A kind computed from audio: built for a new store, or rebuilt from a store's provenance."""

    @classmethod
    def from_config(cls, cfg: Any, device: torch.device) -> AudioEngine:
        """The engine an extraction run's ``ExtractConfig`` asks for (``mrnet.extract.config`` imports
        the registry, so the type is not named here)."""
        ...

    @classmethod
    def from_provenance(cls, prov: Provenance, device: torch.device) -> AudioEngine:
        """The engine a store was written with (``mrnet-predict``); ``UserError`` naming a recorded
        parameter this mrnet cannot reproduce."""
        ...


#: Feature kinds computed from audio: ``--features`` name -> engine class. Filled by :func:`computes`.
FEATURES: dict[str, type[AudioEngine]] = {}
#: Datasets that ship features instead of audio: ``Scan.source`` -> engine class. Filled by :func:`ships`.
SHIPPED: dict[str, type[Engine]] = {}

A = TypeVar("A", bound="type[AudioEngine]")
S = TypeVar("S", bound="type[Engine]")


def computes(*names: str) -> Callable[[A], A]:
    """Class decorator: register an engine under the ``--features`` names it computes."""

    def register(cls: A) -> A:
        for name in names:
            if _taken(FEATURES.get(name), cls):
                raise ValueError(
                    f"feature kind {name!r} is registered twice ({FEATURES[name].__name__}, {cls.__name__})"
                )
            FEATURES.setdefault(name, cls)
        return cls

    return register


def ships(source: str) -> Callable[[S], S]:
    """Class decorator: register the engine that takes a dataset's shipped arrays (``Scan.source``)."""

    def register(cls: S) -> S:
        if _taken(SHIPPED.get(source), cls):
            raise ValueError(
                f"shipped source {source!r} is registered twice ({SHIPPED[source].__name__}, {cls.__name__})"
            )
        SHIPPED.setdefault(source, cls)
        return cls

    return register


def _taken(registered: type | None, cls: type) -> bool:
    """Whether a name is held by another engine. The same class imported again under a second module
    name (pytest's doctest collection imports ``extract/engines/mel.py`` as its own module) keeps the first."""
    return registered is not None and registered.__qualname__ != cls.__qualname__


class EngineBase:
    """``describe`` written once: the store records ``weights`` and ``parameters``."""

    def weights(self) -> tuple[str | None, str | None]:
        """The model and revision of the engine's weights; ``(None, None)`` for a kind computed without any."""
        return None, None

    def parameters(self) -> dict[str, Any]:
        """What fixes the features, recorded as the provenance's ``extraction``."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        model, revision = self.weights()
        return {"model": model, "model_revision": revision, "extraction": self.parameters()}


P = TypeVar("P")


def stored_params(prov: Provenance, key: str, params: Callable[..., P], *, what: str) -> P:
    """The parameters a store recorded as ``extraction[key]`` (absent: the defaults), as ``params``
    (a dataclass). ``UserError`` naming the parameter when the record holds one this mrnet does not
    know, or a value of the wrong type: the features cannot be made again for new files."""
    stored = prov.extraction.get(key, {})
    fix = (
        "Predict with the mrnet version that wrote the store (its provenance records it: mrnet-store info), "
        "or extract the training data again with this one."
    )
    if not isinstance(stored, dict):
        raise UserError(
            f"the store records {what} parameters extraction.{key} = {stored!r}, not a table of parameters; "
            f"they cannot be made again for new files. {fix}"
        )
    known = {f.name: f for f in fields(params)}  # type: ignore[arg-type]
    for name, value in stored.items():
        if name not in known:
            raise UserError(
                f"the store records {what} parameter extraction.{key}.{name} = {value!r}, which this mrnet "
                f"does not know ({', '.join(known)}), so it cannot make the same features. {fix}"
            )
        default = known[name].default
        kinds = (
            (int, float)
            if isinstance(default, float)
            else (type(default),)
            if default is not None
            else (str, int, float)
        )
        if value is not None and (isinstance(value, bool) != isinstance(default, bool) or not isinstance(value, kinds)):
            raise UserError(
                f"the store records {what} parameter extraction.{key}.{name} = {value!r}, where this mrnet "
                f"expects a {type(default).__name__} like {default!r}. {fix}"
            )
    return params(**stored)


def check_rebuilt(engine: Engine, prov: Provenance) -> None:
    """``UserError`` when an engine rebuilt from a store's provenance would not write what the store
    holds per track, naming the first attribute that differs."""
    for name in ("feature", "dim", "frame_rate", "sample_rate", "channels", "layers"):
        mine, stored = getattr(engine, name), getattr(prov, name)
        if (list(mine) if name == "layers" else mine) != (list(stored) if name == "layers" else stored):
            raise UserError(
                f"the store records {name} = {stored!r}, but the {prov.feature} engine rebuilt from its parameters "
                f"gives {mine!r}: its provenance does not describe features this mrnet makes. Predict with the "
                "mrnet version that wrote the store, or extract the training data again with this one."
            )


class _HopParams(Protocol):
    @property
    def sample_rate(self) -> int: ...

    @property
    def hop_length(self) -> int: ...


class HopFrames:
    """``sample_rate`` and ``frame_rate`` of an engine whose ``params`` take one frame every ``hop_length``
    samples of ``sample_rate`` audio (the spectrogram kinds: mel, mfcc)."""

    if TYPE_CHECKING:
        params: _HopParams

    @property
    def sample_rate(self) -> int:
        return self.params.sample_rate

    @property
    def frame_rate(self) -> float:
        return self.params.sample_rate / self.params.hop_length


class AudioInput:
    """``load``/``probe``/``seconds`` for engines that compute features from audio: any file
    libsndfile decodes, mixed to ``self.channels`` and resampled to ``self.sample_rate``."""

    if TYPE_CHECKING:  # what the engine provides: fields, or properties of its parameters

        @property
        def channels(self) -> int: ...

        @property
        def sample_rate(self) -> int: ...

    def load(self, path: Path) -> tuple[np.ndarray, SourceInfo]:
        wave, info = audio.load_with_info(path, channels=self.channels, sample_rate=self.sample_rate)
        return wave, SourceInfo(info.duration, info.sample_rate, info.channels, info.shortfall)

    def probe(self, path: Path) -> float:
        return audio.probe(path).duration

    def seconds(self, item: np.ndarray) -> float:
        return item.shape[-1] / self.sample_rate


def features_of_file(engine: Engine, path: Path) -> np.ndarray:
    """Load and extract one file; ``audio.AudioError`` names a file that cannot be used."""
    item, _ = engine.load(Path(path))
    try:
        return engine.extract([item])[0]
    except (ValueError, RuntimeError) as err:
        raise audio.AudioError(f"{path}: {err}") from err
