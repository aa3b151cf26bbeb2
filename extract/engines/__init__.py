"""Feature engines, one file per kind, and the registry the pipeline and ``mrnet-predict`` build them from.

================  ===========  ========================================================================
feature           file         what a store of it holds per track (channels, layers, frames, dim)
================  ===========  ========================================================================
wavlm             wavlm.py     WavLM hidden states: (channels, 13, frames at 50/s, 768) for WavLM-base
ssl               ssl.py       every hidden state of any transformers audio encoder (--model): docs/encoders.md
mel               mel.py       48-bin log-Mel at 16 kHz, hop 256 (62.5/s): MRNet, Melon's own profile
mel128            mel.py       128-bin log-Mel at 22,050 Hz, hop 256 (86.1/s): MusicNeXt
mel96             mel.py       96-bin log-Mel at 12 kHz, hop 256 (46.9/s): FCN-5, MsE-CNN
mfcc              mfcc.py      20 MFCC at 44.1 kHz, hop 1024 (43.1/s), floored 80 dB under the track's maximum: NNET2
mfcc-window       mfcc.py      the same, computed and floored per 2^18-sample window as NNET2's authors do
wave              wave.py      the waveform at 44.1 kHz in frames of 1024 samples (43.1/s): NNET1
wave+mfcc         wavemfcc.py  both on one frame grid, 1024 + 20 per frame: MixNet (and NNET1, NNET2)
wave+mfcc-window  wavemfcc.py  wave and mfcc-window on one frame grid: MixNet as its authors compute it
(shipped)         melon.py     the Melon dataset's own Mel arrays, taken as they are: (1, 1, frames, 48)
================  ===========  ========================================================================

Every engine follows :class:`~mrnet.extract.engines.base.Engine`: ``load`` one file, ``extract`` a
batch, ``describe`` itself. A kind computed from audio is a class with ``from_config`` (a new store)
and ``from_provenance`` (new files for a store's model), registered in :data:`FEATURES` by its file's
``@computes(...)``; a dataset that ships arrays instead of audio names its engine with ``@ships(...)``
in :data:`SHIPPED` (keyed by its reader's ``Scan.source``). Adding a kind is one new file here plus
its import below (the import order is the order ``--features`` lists them in). ``wavlm`` and ``ssl``
are one engine, :mod:`.encoder`'s frozen transformers encoder, each with what it fixes and records.

>>> list(FEATURES), list(SHIPPED)
(['wavlm', 'ssl', 'mel', 'mel128', 'mel96', 'mfcc', 'mfcc-window', 'wave', 'wave+mfcc', 'wave+mfcc-window'], ['melon'])
"""

from __future__ import annotations

from mrnet.core.errors import UserError
from mrnet.core.machine import pick_device
from mrnet.extract.engines.base import FEATURES, SHIPPED, AudioEngine, AudioInput, Engine, SourceInfo, features_of_file
from mrnet.extract.engines.encoder import DEFAULT_MODEL, PRECISIONS

# each file registers its kinds as it is imported; this order is --features', so the import sorter leaves it
# isort: off
from mrnet.extract.engines.wavlm import WavLMEngine
from mrnet.extract.engines.ssl import SslEngine
from mrnet.extract.engines.mel import MelEngine, MelParams
from mrnet.extract.engines.mfcc import MfccEngine
from mrnet.extract.engines.wave import WaveEngine
from mrnet.extract.engines.wavemfcc import WaveMfccEngine
from mrnet.extract.engines.melon import MelonEngine
# isort: on

#: What a dataset reader's ``Scan.source`` is for datasets of audio files.
AUDIO = "audio"
#: The kinds computed by a transformers encoder whose weights load (``--model``): several layers each.
ENCODERS = ("wavlm", "ssl")

__all__ = [
    "AUDIO",
    "DEFAULT_MODEL",
    "ENCODERS",
    "FEATURES",
    "PRECISIONS",
    "SHIPPED",
    "AudioEngine",
    "AudioInput",
    "Engine",
    "MelEngine",
    "MelParams",
    "MelonEngine",
    "MfccEngine",
    "SourceInfo",
    "SslEngine",
    "WaveEngine",
    "WaveMfccEngine",
    "WavLMEngine",
    "check_options",
    "engine_for_run",
    "engine_for_store",
    "features_of_file",
]


def engine_for_run(cfg, source: str, *, device: str | None = None) -> Engine:
    """The engine an extraction run uses: the dataset's own for shipped arrays, else ``cfg.features``.

    ``source`` is the dataset reader's ``Scan.source``; ``device`` ``None`` picks CUDA when present.
    """
    if source != AUDIO:
        engine = SHIPPED[source]()
        if cfg.features != engine.feature:
            raise UserError(f"{cfg.dataset} ships {engine.feature} features, no audio: use --features {engine.feature}")
        if cfg.channels != engine.channels:
            raise UserError(f"{cfg.dataset} ships mono {engine.feature} features: --channels stereo does not apply")
        return engine
    check_options(cfg)
    return FEATURES[cfg.features].from_config(cfg, pick_device(device))


def check_options(cfg) -> None:
    """Refuse options the audio kind ``cfg.features`` does not take (before any weights load)."""
    if cfg.layers is not None and cfg.features not in ENCODERS:
        raise UserError(
            f"--layers chooses an encoder's hidden states; --features {cfg.features} has one layer. Drop --layers."
        )
    if cfg.trust_remote_code and cfg.features != "ssl":
        raise UserError(
            f"--trust-remote-code applies to --features ssl (a model that brings its own code); --features {cfg.features} runs none."
        )


def engine_for_store(prov, *, device: str | None = "cpu") -> Engine:
    """The engine that makes a store's features from new audio files (``mrnet-predict``), rebuilt from
    the store's provenance; ``UserError`` when this install cannot reproduce them."""
    if prov.feature not in FEATURES:
        raise UserError(
            f"the store's feature kind {prov.feature!r} is not one this mrnet computes ({', '.join(FEATURES)})"
        )
    return FEATURES[prov.feature].from_provenance(prov, pick_device(device))  # each checks the store's parameters
