"""``--features ssl``: any transformers audio encoder, every hidden state, read from the model's own files.

Tiny random encoders of each family are written by save_pretrained and loaded through the same
from_pretrained path as a hub name; MERT's remote code is stood in for by a tiny auto_map folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mrnet.core.errors import UserError
from mrnet.extract.config import ExtractConfig
from mrnet.extract.engines import SslEngine, engine_for_run, engine_for_store
from mrnet.extract.pipeline import provenance, run
from mrnet.store import FeatureStore
from tests.extract.encoders import FAMILIES, save_encoder, save_tiny_mert
from tests.extract.test_engines import scan_of, waves
from tests.extract.test_pipeline import make_audio_folder


@pytest.fixture(scope="module")
def encoders(tmp_path_factory) -> dict[str, str]:
    base = tmp_path_factory.mktemp("encoders")
    return {family: save_encoder(family, base / family) for family in FAMILIES}


@pytest.fixture(scope="module")
def mert(tmp_path_factory) -> str:
    return save_tiny_mert(tmp_path_factory.mktemp("encoders") / "mert")


@pytest.mark.parametrize("family", [*FAMILIES, "mert"])
def test_each_family_batched_equals_one_track_at_a_time(encoders, mert, family):
    model, rate = (mert, 24000) if family == "mert" else (encoders[family], 16000)
    one = SslEngine(model=model, batch_size=1, window_seconds=0.5, trust_remote_code=family == "mert")
    many = SslEngine(model=model, batch_size=8, window_seconds=0.5, trust_remote_code=family == "mert")
    assert (many.layers, many.dim, many.sample_rate, many.frame_rate) == (
        [0, 1, 2],
        32,
        rate,
        rate / 20,
    )  # strides 5, 2, 2
    assert many.normalize is True and many.describe()["extraction"]["ssl"]["architecture"] == family.replace(
        "mert", "tiny_mert"
    )
    # equal lengths batch together; the long tracks become 0.5 s windows from different tracks in one batch
    tracks = waves(4000, 4000, 4000, 16000 + 123, 16000 + 400, 9000, 700)
    alone = [one.extract([t])[0] for t in tracks]
    for a, b, t in zip(alone, many.extract(tracks), tracks):
        assert a.shape == (1, 3, (t.shape[1] - 40) // 20 + 1, 32) == b.shape
        assert np.abs(a - b).max() <= 1e-5 * np.abs(a).max()


def test_normalisation_follows_the_feature_extractor(tmp_path):
    plain = SslEngine(model=save_encoder("hubert", tmp_path / "plain", normalize=False))
    assert plain.normalize is False and plain.describe()["extraction"]["ssl"]["normalize"] is False
    (track,) = waves(8000)
    normalized = SslEngine(model=save_encoder("hubert", tmp_path / "norm", normalize=True))
    scaled = [8 * track]  # normalising makes the input's scale irrelevant; without it the features change
    assert np.allclose(normalized.extract([track])[0], normalized.extract(scaled)[0], atol=1e-4)
    assert not np.allclose(plain.extract([track])[0], plain.extract(scaled)[0], atol=1e-4)


def test_remote_code_needs_trust_and_is_recorded(mert):
    with pytest.raises(UserError, match="--trust-remote-code"):
        SslEngine(model=mert)
    engine = SslEngine(model=mert, trust_remote_code=True, window_seconds=0.5)
    assert type(engine._net).__name__ == "TinyMertModel"
    assert (engine.sample_rate, engine.frame_rate, engine.layers) == (24000, 24000 / 20, [0, 1, 2])
    recorded = engine.describe()
    assert recorded["extraction"]["ssl"]["trust_remote_code"] is True
    assert (
        recorded["model_revision"].startswith("local:") and recorded["extraction"]["ssl"]["architecture"] == "tiny_mert"
    )
    (track,) = waves(24000)
    assert engine.extract([track])[0].shape == (1, 3, (24000 - 40) // 20 + 1, 32)


def test_rebuilt_for_predict_from_the_store_record(encoders, mert, tmp_path):
    for model, trust in ((encoders["wav2vec2"], False), (mert, True)):
        cfg = ExtractConfig(
            dataset="folder",
            features="ssl",
            model=model,
            trust_remote_code=trust,
            window_seconds=1.0,
            layers=(0, 2),
            dtype="float32",
        )
        engine = engine_for_run(cfg, "audio", device="cpu")
        prov = provenance(engine, cfg, scan_of("audio"))
        assert prov.feature == "ssl" and prov.layers == [0, 2] and prov.model == model
        again = engine_for_store(prov)
        (track,) = waves(30000)
        assert np.array_equal(engine.extract([track])[0], again.extract([track])[0])
        with pytest.raises(UserError, match="revision|folder here"):
            engine_for_store(replace(prov, model_revision="local:0000000000000000"))
    # a changed file of the remote code is caught before the code runs
    copy = Path(shutil.copytree(mert, tmp_path / "mert"))
    cfg = ExtractConfig(dataset="folder", features="ssl", model=str(copy), trust_remote_code=True)
    prov = provenance(engine_for_run(cfg, "audio", device="cpu"), cfg, scan_of("audio"))
    (copy / "modeling_tiny_mert.py").write_text(
        (copy / "modeling_tiny_mert.py").read_text() + "\nraise SystemExit('ran')\n"
    )
    with pytest.raises(UserError, match="folder here"):
        engine_for_store(prov)
    wrong = replace(prov, extraction={"ssl": dict(prov.extraction["ssl"], stride=160)})
    with pytest.raises(UserError, match="stride"):
        engine_for_store(replace(wrong, model_revision=None))


def test_trust_remote_code_applies_to_ssl_only():
    with pytest.raises(UserError, match="--trust-remote-code applies to --features ssl"):
        engine_for_run(ExtractConfig(dataset="folder", features="mel", trust_remote_code=True), "audio", device="cpu")


def test_a_store_of_every_hidden_state(encoders, tmp_path):
    root = make_audio_folder(tmp_path / "music", bad=False)
    cfg = ExtractConfig(
        dataset="folder",
        root=root,
        features="ssl",
        model=encoders["data2vec-audio"],
        out=str(tmp_path / "s.zarr"),
        manifests_dir=tmp_path / "manifests",
        dtype="float32",
        folds=2,
    )
    summary = run(cfg)
    store = FeatureStore.open(summary.store)
    assert store.provenance.feature == "ssl" and store.provenance.layers == [0, 1, 2] and store.provenance.dim == 32
    track = store.tracks.filter(store.tracks["status"] == "done")["key"][0]
    assert store.read(track).shape[1:] == (3, store.tracks.filter(store.tracks["key"] == track)["frames"][0], 32)


def _extract(args: list[str], env_extra: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf-home"), HF_HUB_CACHE=str(tmp_path / "hf-cache"), **env_extra)
    if "HF_HUB_OFFLINE" not in env_extra:
        env.pop("HF_HUB_OFFLINE", None)
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=300)


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed once the with-block ends: connecting is refused


_TIMED = """
import sys, time
from transformers import AutoFeatureExtractor, AutoModel, WavLMModel, PretrainedConfig  # imports are not what is timed
from mrnet.core.errors import UserError
from mrnet.extract.engines import SslEngine, WavLMEngine
began = time.perf_counter()
try:
    {"wavlm": WavLMEngine, "ssl": SslEngine}[sys.argv[1]](model="microsoft/wavlm-base")
except UserError as err:
    print(f"{time.perf_counter() - began:.2f}")
"""


@pytest.mark.parametrize("features", ["wavlm", "ssl"])
@pytest.mark.parametrize("how", ["unreachable", "HF_HUB_OFFLINE"])
def test_offline_fails_fast_with_the_mel_hint(tmp_path, features, how):
    """A hub that cannot be reached (a closed port on this machine) or HF_HUB_OFFLINE: a second, not
    half a minute of retries, and the way out in the message."""
    root = make_audio_folder(tmp_path / "music", bad=False)
    env = {"HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}"} if how == "unreachable" else {"HF_HUB_OFFLINE": "1"}
    done = _extract(
        [
            "-c",
            "from mrnet.extract.cli import main; main()",
            "folder",
            "--root",
            str(root),
            "--features",
            features,
            "--dry-run",
        ],
        env,
        tmp_path,
    )
    output = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 2, output
    assert "--features mel" in output and "cannot be reached" in output and "microsoft/wavlm-base" in output
    timed = _extract(["-c", _TIMED, features], env, tmp_path)
    assert timed.stdout.strip() and float(timed.stdout) < 5, timed.stdout + timed.stderr
