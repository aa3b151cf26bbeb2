"""The feature engines, with a tiny WavLM loaded through from_pretrained like microsoft/wavlm-base."""

import numpy as np
import pytest

from mrnet.core.errors import UserError
from mrnet.extract.config import ExtractConfig
from mrnet.extract.datasets import Scan
from mrnet.extract.engines import MelEngine, MelonEngine, WavLMEngine, engine_for_run, engine_for_store
from mrnet.extract.pipeline import provenance


def waves(*lengths, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    return [(0.1 * rng.normal(size=(channels, n))).astype(np.float32) for n in lengths]


@pytest.fixture(scope="module")
def engines(tiny_wavlm):
    one = WavLMEngine(model=tiny_wavlm, batch_size=1, window_seconds=2.0)
    many = WavLMEngine(model=tiny_wavlm, batch_size=8, window_seconds=2.0)
    return one, many


def test_batched_equals_one_track_at_a_time(engines):
    one, many = engines
    # equal lengths batch together; long tracks become 2 s windows from different tracks in one batch
    tracks = waves(20000, 20000, 20000, 16000 * 5 + 123, 16000 * 5 + 400, 16000 * 2, 7000)
    alone = [one.extract([t])[0] for t in tracks]
    batched = many.extract(tracks)
    for a, b in zip(alone, batched):
        assert a.shape == b.shape
        scale = np.abs(a).max()
        assert np.abs(a - b).max() <= 1e-5 * scale


def test_zero_padding_would_change_features(engines):
    """Why we never pad: WavLM-base's GroupNorm sees the padding (this is the bug batching must avoid)."""
    one, _ = engines
    (short,) = waves(20000)
    alone = one._forward(short[:, : one.geometry.samples(one.geometry.frames(20000))])[0]
    padded = np.zeros((1, 36000), np.float32)
    padded[0, :20000] = short[0]
    with_pad = one._forward(padded)[0][:, : alone.shape[1]]
    assert np.abs(with_pad - alone).max() > 0.05 * np.abs(alone).max()


def test_a_track_within_the_window_is_one_whole_forward(engines):
    one, _ = engines
    (track,) = waves(16000 + 555)
    frames = one.geometry.frames(track.shape[1])
    whole = one._forward(track[:, : one.geometry.samples(frames)])
    assert np.array_equal(one.extract([track])[0][0], whole[0])


def test_stereo_channels_go_through_separately(engines):
    one, _ = engines
    (st,) = waves(20000, channels=2)
    both = one.extract([st])[0]
    left = one.extract([st[:1]])[0]
    assert both.shape[0] == 2 and np.allclose(both[:1], left, atol=1e-6)


def test_all_hidden_states_by_default_and_a_subset_on_request(tiny_wavlm):
    full = WavLMEngine(model=tiny_wavlm)
    assert full.layers == [0, 1, 2] and full.dim == 32 and full.frame_rate == 50.0
    sub = WavLMEngine(model=tiny_wavlm, layers=[2])
    (track,) = waves(16000)
    assert np.allclose(sub.extract([track])[0][:, 0], full.extract([track])[0][:, 2], atol=1e-6)
    with pytest.raises(UserError, match="hidden states 0..2"):
        WavLMEngine(model=tiny_wavlm, layers=[5])


def test_wavlm_normalises_each_window_by_its_sample_variance(tiny_wavlm):
    """What every wavlm store holds: WavLMModel's hidden states of the window scaled by its sample variance
    (``--features ssl`` divides by the population variance, as Wav2Vec2FeatureExtractor does)."""
    import torch
    from transformers import WavLMModel

    engine = WavLMEngine(model=tiny_wavlm, normalize=True)
    (track,) = waves(1600)
    x = torch.from_numpy(track[:, : engine.geometry.samples(engine.geometry.frames(1600))])
    net = WavLMModel.from_pretrained(tiny_wavlm).eval()

    def hidden_states(correction: int) -> np.ndarray:
        normed = (x - x.mean(1, keepdim=True)) / torch.sqrt(x.var(1, keepdim=True, correction=correction) + 1e-7)
        with torch.inference_mode():
            return torch.stack(net(normed, output_hidden_states=True).hidden_states, 1).numpy()

    got = engine.extract([track])[0]
    assert np.array_equal(got, hidden_states(1)) and not np.array_equal(got, hidden_states(0))


def test_wavlm_records_a_local_folders_weights_as_it_always_has(tiny_wavlm, tmp_path):
    """A local folder's model_revision in a wavlm store: the sha1 of the names and bytes of its .json,
    .safetensors and .bin files, in name order. Python files beside them do not count (ssl counts them:
    a model's own code)."""
    import hashlib
    import shutil
    from pathlib import Path

    from mrnet.extract.engines import SslEngine

    folder = Path(shutil.copytree(tiny_wavlm, tmp_path / "model"))
    digest = hashlib.sha1()
    for path in sorted(folder.iterdir()):
        if path.suffix in (".json", ".safetensors", ".bin"):
            digest.update(path.name.encode() + path.read_bytes())
    (folder / "modeling_extra.py").write_text("# code beside the weights\n")
    assert WavLMEngine(model=str(folder)).describe()["model_revision"] == f"local:{digest.hexdigest()[:16]}"
    assert SslEngine(model=str(folder)).describe()["model_revision"] != f"local:{digest.hexdigest()[:16]}"


def test_missing_model_names_the_option_and_the_fix(tmp_path):
    with pytest.raises(UserError, match="--model .*--features mel"):
        WavLMEngine(model=str(tmp_path / "nowhere"))


def scan_of(source: str) -> Scan:
    return Scan(name="x", root=None, source=source, labeling="genre", tracks=None, genres=None)


def test_provenance_round_trip_reproduces_the_engine(tiny_wavlm, tmp_path):
    cfg = ExtractConfig(dataset="folder", model=tiny_wavlm, window_seconds=2.0, dtype="float32", chunk_frames=100)
    engine = engine_for_run(cfg, "audio", device="cpu")
    prov = provenance(engine, cfg, scan_of("audio"))
    assert prov.model_revision.startswith("local:") and prov.layers == [0, 1, 2] and prov.dim == 32
    again = engine_for_store(prov)
    (track,) = waves(40000)
    assert np.array_equal(engine.extract([track])[0], again.extract([track])[0])
    # other weights under the same name: refused, with the reason
    from dataclasses import replace

    with pytest.raises(UserError, match="revision"):
        engine_for_store(replace(prov, model_revision="local:0000000000000000"))


def test_mel_features_are_48_bins_at_62_5_fps():
    cfg = ExtractConfig(dataset="folder", features="mel", channels=2)
    engine = engine_for_store(provenance(engine_for_run(cfg, "audio", device="cpu"), cfg, scan_of("audio")))
    assert (engine.dim, engine.frame_rate, engine.channels) == (48, 62.5, 2)
    t = np.arange(32000) / 16000
    tone = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 3000 * t)]).astype(np.float32)
    feats = engine.extract([tone])[0]
    assert feats.shape == (2, 1, 32000 // 256 + 1, 48)
    assert feats[0, 0].mean(0).argmax() < feats[1, 0].mean(0).argmax()  # the higher tone sits in a higher band


# --- every engine behind one protocol ---------------------------------------------------------------
PROTOCOL = (
    "feature",
    "layers",
    "dim",
    "frame_rate",
    "channels",
    "sample_rate",
    "load",
    "probe",
    "seconds",
    "extract",
    "describe",
)


def test_every_engine_has_the_whole_protocol(tiny_wavlm):
    from mrnet.extract.engines import FEATURES, SHIPPED

    built = [
        engine_for_run(ExtractConfig(dataset="folder", features=name, model=tiny_wavlm), "audio", device="cpu")
        for name in FEATURES
    ]
    built += [cls() for cls in SHIPPED.values()]
    assert {type(e) for e in built} == {*FEATURES.values(), *SHIPPED.values()}
    for engine in built:
        missing = [name for name in PROTOCOL if not hasattr(engine, name)]
        assert not missing, f"{type(engine).__name__} lacks {missing}"
        assert set(engine.describe()) == {"model", "model_revision", "extraction"}


def test_melon_arrays_load_and_pass_through_unchanged(tmp_path):
    rng = np.random.default_rng(0)
    shipped = rng.normal(size=(48, 300)).astype(np.float32)
    np.save(tmp_path / "12345.npy", shipped)
    engine = MelonEngine()
    item, info = engine.load(tmp_path / "12345.npy")
    (feats,) = engine.extract([item])
    assert feats.shape == (1, 1, 300, 48) and np.array_equal(feats[0, 0], shipped.T)
    assert info.duration == pytest.approx(300 * 256 / 16000) and engine.probe(tmp_path / "12345.npy") == info.duration
    assert (engine.feature, engine.frame_rate, engine.describe()["extraction"]["mel"]["n_mels"]) == ("mel", 62.5, 48)


@pytest.mark.parametrize("array", [np.zeros((40, 10)), np.zeros((48, 0)), np.zeros(48)])
def test_a_melon_array_of_the_wrong_shape_names_the_file(tmp_path, array):
    from mrnet.extract.audio import AudioError

    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(AudioError, match=r"bad\.npy: expected a \(48, frames\) array"):
        MelonEngine().load(tmp_path / "bad.npy")
    (tmp_path / "text.npy").write_text("not numpy")
    with pytest.raises(AudioError, match=r"text\.npy: cannot read it as a NumPy array"):
        MelonEngine().load(tmp_path / "text.npy")


def test_a_shipped_dataset_picks_its_own_engine_and_refuses_what_does_not_apply():
    assert isinstance(engine_for_run(ExtractConfig(dataset="melon"), "melon"), MelonEngine)
    with pytest.raises(UserError, match="ships mel features, no audio: use --features mel"):
        engine_for_run(ExtractConfig(dataset="melon", features="wavlm"), "melon")
    with pytest.raises(UserError, match="--channels stereo does not apply"):
        engine_for_run(ExtractConfig(dataset="melon", channels=2), "melon")


def test_predict_refuses_a_store_of_shipped_arrays():
    cfg = ExtractConfig(dataset="melon")
    prov = provenance(engine_for_run(cfg, "melon"), cfg, scan_of("melon"))
    with pytest.raises(UserError, match="not computed by mrnet from audio"):
        engine_for_store(prov)


# --- the shortest inputs ------------------------------------------------------------------------------
@pytest.mark.parametrize("samples", [0, 1, 2, 256])
def test_too_short_audio_is_a_value_error_naming_the_length(tiny_wavlm, samples):
    """Each audio engine refuses what is too short for one frame with a ValueError, which fails that
    track (never a library's RuntimeError, which used to escape and stop the run)."""
    for engine in (MelEngine(), WavLMEngine(model=tiny_wavlm)):
        with pytest.raises(ValueError, match=str(samples)):
            engine.extract([np.zeros((1, samples), np.float32)])


def test_one_frame_is_enough(tiny_wavlm):
    mel, wavlm = MelEngine(), WavLMEngine(model=tiny_wavlm)
    assert mel.extract([np.zeros((1, 257), np.float32)])[0].shape == (1, 1, 2, 48)  # centred: frames at 0 and 256
    assert wavlm.extract([np.zeros((1, 400), np.float32)])[0].shape == (1, 3, 1, 32)  # one 400-sample receptive field


# --- the baselines' feature kinds ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "feature, rate, dim, frame_rate",
    [
        ("mel", 16000, 48, 62.5),
        ("mel128", 22050, 128, 22050 / 256),
        ("mel96", 12000, 96, 12000 / 256),
        ("mfcc", 44100, 20, 44100 / 1024),
        ("wave", 44100, 1024, 44100 / 1024),
        ("wave+mfcc", 44100, 1044, 44100 / 1024),
        ("mfcc-window", 44100, 20, 44100 / 1024),
        ("wave+mfcc-window", 44100, 1044, 44100 / 1024),
    ],
)
def test_each_profile_has_its_rate_width_and_frame_rate(feature, rate, dim, frame_rate):
    engine = engine_for_run(ExtractConfig(dataset="folder", features=feature), "audio", device="cpu")
    assert (engine.feature, engine.sample_rate, engine.dim, engine.frame_rate) == (feature, rate, dim, frame_rate)
    (feats,) = engine.extract(waves(3 * rate))
    assert feats.shape[:2] == (1, 1) and feats.shape[3] == dim and abs(feats.shape[2] - 3 * frame_rate) <= 1
    again = engine_for_store(provenance(engine, ExtractConfig(dataset="folder", features=feature), scan_of("audio")))
    assert type(again) is type(engine) and np.array_equal(again.extract(waves(3 * rate))[0], feats)


def test_wave_and_mfcc_share_one_frame_grid():
    from mrnet.extract.engines import MfccEngine, WaveEngine, WaveMfccEngine

    (x,) = waves(44100 * 2 + 300)
    both = WaveMfccEngine().extract([x])[0]
    wave, mfcc = WaveEngine().extract([x])[0], MfccEngine().extract([x])[0]
    assert both.shape == (1, 1, wave.shape[2], 1044) and mfcc.shape[2] == wave.shape[2] + 1
    assert np.array_equal(both[..., :1024], wave) and np.array_equal(both[..., 1024:], mfcc[:, :, : wave.shape[2]])
    assert np.array_equal(wave[0, 0].reshape(-1), x[0, : wave.shape[2] * 1024])  # frames are consecutive samples


def test_mfcc_window_is_the_authors_mfcc_of_the_test_window_floored_at_its_own_maximum():
    """NNET2's authors compute the MFCC of audio[len/2 : len/2 + 2^18] alone, floored 80 dB under that
    window's maximum; ``mfcc`` floors under the whole track's. A loud first half and a quiet second half
    tell them apart in the quiet window."""
    import torch

    from mrnet.extract.engines import MfccEngine, WaveMfccEngine
    from mrnet.extract.engines.mfcc import MfccWindowEngine
    from mrnet.extract.engines.wavemfcc import WaveMfccWindowEngine

    rng = np.random.default_rng(0)
    n = 2**18 * 3 + 5000
    x = (rng.normal(size=(1, n)) * np.where(np.arange(n) < n // 3, 1.0, 1e-4)).astype(np.float32)
    x[:, n // 2 : n // 2 + 2**17] *= 1e-2  # part of the test window quieter still: the window's own floor cuts there
    window, track = MfccWindowEngine().extract([x])[0], MfccEngine().extract([x])[0]
    assert window.shape == track.shape
    start = window.shape[2] // 2  # --eval-unit middle on this store
    authors = (
        MfccEngine()
        ._mfcc(torch.from_numpy(x[:, start * 1024 : start * 1024 + 2**18]))[..., :256]
        .transpose(1, 2)
        .numpy()
    )
    np.testing.assert_allclose(window[:, 0, start : start + 256], authors, rtol=1e-5, atol=1e-4)
    assert not np.allclose(track[:, 0, start : start + 256], authors, atol=1e-2)  # the track's floor is another
    both = WaveMfccWindowEngine().extract([x])[0]
    wave_start = both.shape[2] // 2  # one frame fewer: the window anchored at this store's middle
    authors = (
        MfccEngine()
        ._mfcc(torch.from_numpy(x[:, wave_start * 1024 : wave_start * 1024 + 2**18]))[..., :256]
        .transpose(1, 2)
        .numpy()
    )
    np.testing.assert_allclose(both[:, 0, wave_start : wave_start + 256, 1024:], authors, rtol=1e-5, atol=1e-4)
    assert np.array_equal(both[..., :1024], WaveMfccEngine().extract([x])[0][..., :1024])


def test_mel128_floors_80_db_under_the_tracks_maximum():
    engine = engine_for_run(ExtractConfig(dataset="folder", features="mel128"), "audio", device="cpu")
    t = np.arange(22050) / 22050
    (feats,) = engine.extract([(0.5 * np.sin(2 * np.pi * 440 * t))[None].astype(np.float32)])
    assert feats.max() - feats.min() == pytest.approx(80.0, abs=1e-3)
