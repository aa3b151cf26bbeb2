"""The engine registry: one declaration per engine file, provenance unchanged, and every engine
refusing stored parameters it cannot reproduce when rebuilt for a store (``mrnet-predict``)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from mrnet.core.errors import UserError
from mrnet.extract import engines
from mrnet.extract.config import ExtractConfig
from mrnet.extract.engines import FEATURES, SHIPPED, engine_for_run, engine_for_store
from mrnet.extract.engines.base import computes
from mrnet.extract.pipeline import provenance
from tests.extract.test_engines import scan_of

#: What each kind's provenance was before the registry (recorded from the code that wrote the stores
#: already shared): a store written now must hold exactly these bytes, in this key order.
RECORDED = json.loads((Path(__file__).parent / "provenance_of_each_kind.json").read_text())
CASES = [
    ("mel", {}),
    ("mel128", {}),
    ("mel96", {}),
    ("mfcc", {}),
    ("wave", {}),
    ("wave+mfcc", {}),
    ("mel", {"channels": 2}),
    ("wavlm", {"model": "MODEL"}),
    ("wavlm", {"layers": [0, 2], "model": "MODEL", "normalize": True, "window_seconds": 10.0}),
]


def _recorded(kind: str, extra: dict, model: str) -> str:
    settings = dict(extra, layers=tuple(extra["layers"])) if "layers" in extra else extra
    cfg = ExtractConfig(
        dataset="demo",
        features=kind,
        out="/tmp/x.zarr",
        **{k: model if v == "MODEL" else v for k, v in settings.items()},
    )
    prov = provenance(engine_for_run(cfg, "audio", device="cpu"), cfg, scan_of("audio")).to_json()
    prov.pop("versions")
    if kind == "wavlm":
        prov["model"], prov["model_revision"] = "MODEL", "REVISION"
    return json.dumps(prov)


@pytest.mark.parametrize("kind, extra", CASES, ids=[f"{k}{'-' + '-'.join(e) if e else ''}" for k, e in CASES])
def test_each_kind_writes_the_provenance_it_wrote_before(tiny_wavlm, kind, extra):
    expected = RECORDED[f"{kind} {json.dumps(extra, sort_keys=True)}"]
    assert _recorded(kind, extra, tiny_wavlm) == json.dumps(expected)


def test_a_shipped_kind_writes_the_provenance_it_wrote_before():
    cfg = ExtractConfig(dataset="melon", features="mel", out="/tmp/x.zarr", root=Path("/tmp"))
    prov = provenance(engine_for_run(cfg, "melon"), cfg, scan_of("melon")).to_json()
    prov.pop("versions")
    assert json.dumps(prov) == json.dumps(RECORDED["melon shipped"])


def test_every_kind_is_declared_once_by_its_own_file():
    assert list(FEATURES) == [
        "wavlm",
        "ssl",
        "mel",
        "mel128",
        "mel96",
        "mfcc",
        "mfcc-window",
        "wave",
        "wave+mfcc",
        "wave+mfcc-window",
    ] and list(SHIPPED) == ["melon"]
    assert {cls.__module__.rsplit(".", 1)[1] for cls in FEATURES.values()} == {
        "wavlm",
        "ssl",
        "mel",
        "mfcc",
        "wave",
        "wavemfcc",
    }
    with pytest.raises(ValueError, match="registered twice"):
        computes("mel")(type("Again", (), {}))


def test_a_registered_kind_is_built_like_any_other(monkeypatch):
    """A new engine file needs nothing but its class and ``@computes``: the pipeline's builder finds it."""
    monkeypatch.setattr(engines.base, "FEATURES", dict(FEATURES))
    monkeypatch.setattr(engines, "FEATURES", engines.base.FEATURES)

    @computes("mel-copy")
    class Copy(engines.MelEngine):
        pass

    built = engines.FEATURES["mel-copy"].from_config(
        ExtractConfig(dataset="folder", features="mel"), __import__("torch").device("cpu")
    )
    assert isinstance(built, Copy) and built.describe() == engines.MelEngine().describe()


def _stored(kind: str, **changes):
    cfg = ExtractConfig(dataset="folder", features=kind)
    prov = provenance(engine_for_run(cfg, "audio", device="cpu"), cfg, scan_of("audio"))
    return replace(prov, **changes)


@pytest.mark.parametrize(
    "kind, key, name, value, says",
    [
        ("mel", "mel", "n_bins", 64, r"extraction\.mel\.n_bins = 64, which this mrnet does not know"),
        ("mel128", "mel", "n_fft", "2048", r"extraction\.mel\.n_fft = '2048', where this mrnet expects a int"),
        ("mfcc", "mfcc", "lifter", 22, r"extraction\.mfcc\.lifter = 22, which this mrnet does not know"),
        ("mfcc", "mfcc", "top_db", True, r"extraction\.mfcc\.top_db = True, where this mrnet expects a float"),
        ("wave", "wave", "frame", 1024.5, r"extraction\.wave\.frame = 1024\.5, where this mrnet expects a int"),
        ("wave+mfcc", "wave", "overlap", 0, r"extraction\.wave\.overlap = 0, which this mrnet does not know"),
    ],
)
def test_rebuilding_refuses_a_stored_parameter_it_does_not_know(kind, key, name, value, says):
    prov = _stored(kind)
    extraction = dict(prov.extraction, **{key: dict(prov.extraction[key], **{name: value})})
    with pytest.raises(UserError, match=says) as err:
        engine_for_store(replace(prov, extraction=extraction))
    assert "mrnet version that wrote the store" in str(err.value)


@pytest.mark.parametrize(
    "kind, attribute, value",
    [("mel", "dim", 64), ("mfcc", "frame_rate", 50.0), ("wave", "sample_rate", 22050), ("wave+mfcc", "layers", [0, 1])],
)
def test_rebuilding_refuses_a_store_whose_shape_the_parameters_do_not_make(kind, attribute, value):
    with pytest.raises(
        UserError, match=re.escape(f"the store records {attribute} = {value!r}, but the {kind} engine rebuilt")
    ):
        engine_for_store(_stored(kind, **{attribute: value}))


def test_rebuilding_wavlm_refuses_a_stored_window_or_geometry_it_cannot_use(tiny_wavlm):
    cfg = ExtractConfig(dataset="folder", features="wavlm", model=tiny_wavlm)
    prov = provenance(engine_for_run(cfg, "audio", device="cpu"), cfg, scan_of("audio"))
    assert engine_for_store(prov).describe() == engine_for_run(cfg, "audio", device="cpu").describe()
    with pytest.raises(UserError, match=r"extraction\.window_frames = '2000', not a positive whole number"):
        engine_for_store(replace(prov, extraction=dict(prov.extraction, window_frames="2000")))
    with pytest.raises(UserError, match=r"extraction\.geometry = \{'stride': 160, 'receptive': 400\}"):
        engine_for_store(replace(prov, extraction=dict(prov.extraction, geometry={"stride": 160, "receptive": 400})))
