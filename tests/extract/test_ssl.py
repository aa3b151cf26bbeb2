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


_TIMED_CLI = """
import sys, time
from transformers import AutoFeatureExtractor, AutoModel, WavLMModel, PretrainedConfig  # imports are not what is timed
import huggingface_hub
from mrnet.extract import cli, dryrun, pipeline
sys.argv = ["mrnet-extract", *sys.argv[1:]]
began = time.perf_counter()
try:
    cli.main()
finally:
    print(f"ELAPSED {time.perf_counter() - began:.2f}", file=sys.stderr)
"""


def _timed_cli(args: list[str], env: dict[str, str], tmp_path: Path) -> tuple[int, str, float]:
    """``mrnet-extract ARGS`` in a fresh process: exit code, output on one line, seconds the command took
    (its imports done beforehand, so a hub retry is what a slow answer means)."""
    done = _extract(["-c", _TIMED_CLI, *args], {"COLUMNS": "400", **env}, tmp_path)  # table cells on one line
    output = " ".join((done.stdout + done.stderr).split())
    elapsed = [line for line in done.stderr.splitlines() if line.startswith("ELAPSED ")]
    assert elapsed, output
    return done.returncode, output, float(elapsed[-1].split()[1])


@pytest.mark.parametrize("features", ["wavlm", "ssl"])
@pytest.mark.parametrize("how", ["unreachable", "HF_HUB_OFFLINE"])
def test_offline_a_dry_run_needs_no_weights_and_a_run_fails_fast_with_the_mel_hint(tmp_path, features, how):
    """A hub that cannot be reached (a closed port on this machine) or HF_HUB_OFFLINE: the default model's
    dry run answers without its weights (tracks and audio; what a real run would download, and that it could
    not), and the real run stops in seconds (not half a minute of retries) with the way out."""
    root = make_audio_folder(tmp_path / "music", bad=False)
    env = {"HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}"} if how == "unreachable" else {"HF_HUB_OFFLINE": "1"}
    args = ["folder", "--root", str(root), "--features", features, "--manifests-dir", str(tmp_path / "m")]
    args += ["--out", str(tmp_path / "s.zarr")]
    code, output, seconds = _timed_cli([*args, "--dry-run"], env, tmp_path)
    assert code == 0, output
    assert "6 (0 unreadable or missing" in output and "nothing written" in output
    assert "the weights of microsoft/wavlm-base are not on this machine (a dry run downloads nothing)" in output
    assert "cannot be reached from here" in output and "--features mel" in output
    assert "store size │ not known" in output and seconds < 10, output
    assert not (tmp_path / "s.zarr").exists() and not (tmp_path / "m").exists()
    code, output, seconds = _timed_cli(args, env, tmp_path)
    assert code == 2, output
    assert "--features mel" in output and "cannot be reached" in output and "microsoft/wavlm-base" in output
    assert seconds < 10, output


def test_a_dry_run_sizes_the_store_from_a_config_in_the_cache_without_the_weights(encoders, tmp_path):
    """Only config.json and the preprocessor's in the hub cache (as a download cut short leaves them): the
    dry run sizes the store from them and loads nothing; with the weights there too it loads and times."""
    cache = tmp_path / "hf-cache"
    snapshot = cache / "models--acme--tiny-wavlm" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (cache / "models--acme--tiny-wavlm" / "refs").mkdir()
    (cache / "models--acme--tiny-wavlm" / "refs" / "main").write_text("a" * 40)
    for name in ("config.json", "preprocessor_config.json"):
        shutil.copy(Path(encoders["wavlm"]) / name, snapshot / name)
    root = make_audio_folder(tmp_path / "music", bad=False)
    args = ["folder", "--root", str(root), "--features", "ssl", "--model", "acme/tiny-wavlm", "--dry-run"]
    args += ["--manifests-dir", str(tmp_path / "m"), "--dtype", "float16"]
    env = {"HF_HUB_OFFLINE": "1"}
    code, output, _ = _timed_cli(args, env, tmp_path)
    assert code == 0, output
    # 3 hidden states x 32 values at 16 kHz / stride 20 (800 frames/s) x 2 bytes
    assert f"({3 * 32 * 800 * 2 / 1e6:.3f} MB per audio second)" in output
    assert "the weights of acme/tiny-wavlm are not on this machine" in output
    shutil.copy(Path(encoders["wavlm"]) / "model.safetensors", snapshot / "model.safetensors")
    code, output, _ = _timed_cli(args, env, tmp_path)
    assert code == 0 and "timed on 2 tracks here" in output, output
