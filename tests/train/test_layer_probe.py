"""mrnet-probe-layers: the linear probe on each stored layer alone, on real stores on disk (and on S3).

The synthetic stores put the genres' (or tags') signal in one layer only: that layer must come out on
top, and a probe that mixed layers up (read the wrong position, reordered rows) fails here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mrnet.core.errors import UserError
from mrnet.store.reader import FeatureStore
from mrnet.train import layer_probe
from mrnet.train.cli import train_app
from mrnet.train.cli_probe import probe_app
from mrnet.train.layer_probe_figure import layer_probe_figure
from tests.helpers import make_store
from tests.store.util import new_bucket

runner = CliRunner()
WIDE = {"COLUMNS": "200"}
FAST = ["--crop-seconds", "1", "--num-workers", "0", "--device", "cpu"]


def probe_cli(*args) -> object:
    return runner.invoke(probe_app, [str(a) for a in args], env=WIDE)


def layered(path: Path, signal: int, **kwargs) -> Path:
    """4 stored layers of 24 dims ('ssl'), 3 genres x 12 tracks; only layer ``signal`` tells the genres apart."""
    base = dict(feature="ssl", layers=4, dim=24, per_genre=12, frames=(100, 140), signal_layers=(signal,))
    return make_store(path, **(base | kwargs))


class Recorder(layer_probe.Progress):
    def __init__(self):
        self.calls: list = []

    def reading(self, tracks):
        self.calls.append(("reading", tracks))

    def track(self):
        self.calls.append("track")

    def fitting(self, layers):
        self.calls.append(("fitting", layers))

    def layer(self, row):
        self.calls.append(("layer", row["layer"]))


@pytest.fixture(scope="module")
def signal_in_2(tmp_path_factory) -> Path:
    return layered(tmp_path_factory.mktemp("stores") / "signal2.zarr", 2)


@pytest.mark.parametrize("signal", [0, 3])
def test_the_layer_that_carries_the_label_comes_out_on_top(tmp_path, signal):
    store = FeatureStore.open(layered(tmp_path / "s.zarr", signal))
    recorder = Recorder()
    result = layer_probe.probe_layers(store, progress=recorder)
    rows = {r["layer"]: r for r in result["layers"]}
    assert [r["layer"] for r in result["layers"]] == [0, 1, 2, 3] and result["best_layer"] == signal
    assert rows[signal]["test"]["accuracy"] >= 0.9 and rows[signal]["valid"]["accuracy"] >= 0.9
    assert all(rows[k]["test"]["accuracy"] < rows[signal]["test"]["accuracy"] for k in rows if k != signal)
    low, high = rows[signal]["interval"]["accuracy"]
    assert low <= rows[signal]["test"]["accuracy"] <= high
    tracks = sum(result["sizes"].values())
    assert recorder.calls == [
        ("reading", tracks),
        *["track"] * tracks,
        ("fitting", 4),
        *[("layer", k) for k in range(4)],
    ]


def test_each_row_is_the_linear_probe_run_on_that_layer_alone(signal_in_2, tmp_path):
    """mrnet-train --model linear --layer N fits the same probe: the same C and the same test accuracy."""
    result = layer_probe.probe_layers(FeatureStore.open(signal_in_2))
    for layer in (1, 2):
        run = tmp_path / f"linear-{layer}"
        done = runner.invoke(
            train_app,
            ["--store", str(signal_in_2), "--model", "linear", "--layer", str(layer), "--out", str(run), *FAST],
        )
        assert done.exit_code == 0, done.output
        report = json.loads((run / "report.json").read_text())
        row = result["layers"][layer]
        assert row["C"] == report["selection"]["C"]
        assert row["test"]["accuracy"] == pytest.approx(report["test"]["accuracy"])
        assert row["test"]["macro_f1"] == pytest.approx(report["test"]["macro_f1"])


def test_the_command_writes_the_table_and_the_figure(signal_in_2, tmp_path):
    out = tmp_path / "probe"
    done = probe_cli("--store", signal_in_2, "--out", out, "--format", "png,pdf,svg")
    assert done.exit_code == 0, done.output
    assert {p.name for p in out.iterdir()} == {"layers.json", "layers.md", "layers.png", "layers.pdf", "layers.svg"}
    result = json.loads((out / "layers.json").read_text())
    assert result["metric"] == "accuracy" and result["best_layer"] == 2 and not result["one_layer"]
    assert result["sizes"] == {"train": 24, "valid": 6, "test": 6} and result["run"] is None
    table = (out / "layers.md").read_text()
    assert "| 2 **(best)** | 100.0 % |" in table and "95 % bootstrap interval" in table
    assert "layer 2: test accuracy 100.0 %" in done.output and "Linear probe per layer" in done.output
    ax = layer_probe_figure(result).axes[0]
    (line,) = ax.lines[:1]
    assert list(line.get_xdata()) == [0, 1, 2, 3]
    assert list(line.get_ydata()) == [r["test"]["accuracy"] for r in result["layers"]]


def test_a_store_with_one_layer_gives_one_row_and_says_so(mel_store, tmp_path):
    done = probe_cli("--store", mel_store, "--out", tmp_path / "p")
    assert done.exit_code == 0, done.output
    result = json.loads((tmp_path / "p" / "layers.json").read_text())
    assert result["one_layer"] and [r["layer"] for r in result["layers"]] == [0]
    assert "holds one layer" in done.output and "holds one layer" in (tmp_path / "p" / "layers.md").read_text()
    assert result["layers"][0]["test"]["accuracy"] > 0.5  # the mel store is learnable


def test_a_tag_store_is_scored_by_roc_auc(tmp_path):
    store = FeatureStore.open(layered(tmp_path / "tags.zarr", 1, layers=3, tags=True))
    result = layer_probe.probe_layers(store)
    assert result["task"] == "multi-label" and result["metric"] == "roc_auc" and result["chance"] == 0.5
    rows = result["layers"]
    assert result["best_layer"] == 1 and rows[1]["test"]["roc_auc"] > 0.9
    assert all(not math.isnan(v) for v in rows[1]["interval"]["roc_auc"])
    assert all(r["test"]["roc_auc"] < rows[1]["test"]["roc_auc"] for r in rows if r["layer"] != 1)
    assert set(rows[1]["test"]) == {"roc_auc", "pr_auc"}


def test_a_fold_store_and_a_wrong_fold(fold_store, tmp_path):
    result = layer_probe.probe_layers(FeatureStore.open(fold_store))
    assert result["split"].startswith("fold 0 of 3")
    assert layer_probe.probe_layers(FeatureStore.open(fold_store), fold=2)["split"].startswith("fold 2 of 3")
    done = probe_cli("--store", fold_store, "--fold", "7", "--out", tmp_path / "p")
    assert done.exit_code != 0 and "--fold 7" in done.output and "folds 0..2" in done.output
    assert not (tmp_path / "p").exists()


@pytest.mark.slow
def test_mrnet_layer_weights_beside_the_probe(signal_in_2, mel_store, tmp_path):
    run = tmp_path / "mrnet"
    done = runner.invoke(
        train_app,
        ["--store", str(signal_in_2), "--preset", "tiny", "--epochs", "1", "--width", "16", "--out", str(run), *FAST],
    )
    assert done.exit_code == 0, done.output
    weights = json.loads((run / "report.json").read_text())["layer_weights"]
    done = probe_cli("--store", signal_in_2, "--run", run, "--out", tmp_path / "p")
    assert done.exit_code == 0, done.output
    result = json.loads((tmp_path / "p" / "layers.json").read_text())
    assert result["run"]["layer_weights"] == [weights] and result["run"]["layers"] == ["0", "1", "2", "3"]
    shares = result["run"]["shares"][0]
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["2"] == pytest.approx(weights["2"] / sum(weights.values()))
    assert "MRNet layer weight (share) |" in (tmp_path / "p" / "layers.md").read_text()
    weights_axis = layer_probe_figure(result).axes[1]  # the second axis: bars from the uniform share
    tops = [bar.get_y() + bar.get_height() for bar in weights_axis.patches]
    assert tops == pytest.approx([shares[k] for k in ("0", "1", "2", "3")])
    # another store's run, and a model without layer weights, are refused by name
    other = probe_cli("--store", mel_store, "--run", run, "--out", tmp_path / "q")
    assert other.exit_code != 0 and "was trained on" in other.output and "layers:" in other.output
    linear = tmp_path / "linear"
    assert (
        runner.invoke(
            train_app, ["--store", str(signal_in_2), "--model", "linear", "--out", str(linear), *FAST]
        ).exit_code
        == 0
    )
    with pytest.raises(UserError, match="learns no layer weights"):
        layer_probe.run_weights(linear, FeatureStore.open(signal_in_2))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="is not a training run"):
        layer_probe.run_weights(tmp_path / "empty", FeatureStore.open(signal_in_2))
    (run / "report.json").unlink()
    with pytest.raises(UserError, match="has not finished"):
        layer_probe.run_weights(run, FeatureStore.open(signal_in_2))


@pytest.mark.slow
def test_every_layer_of_a_store_extracted_by_a_tiny_encoder(tmp_path):
    """A real extraction (--features ssl, a tiny random WavLM saved by save_pretrained): one row per hidden state."""
    from mrnet.extract.config import ExtractConfig
    from mrnet.extract.pipeline import run
    from tests.extract.encoders import save_encoder
    from tests.extract.test_pipeline import make_audio_folder

    root = make_audio_folder(tmp_path / "music", per_genre=6, seconds=1.2, bad=False)
    cfg = ExtractConfig(
        dataset="folder",
        root=root,
        features="ssl",
        model=save_encoder("wavlm", tmp_path / "wavlm"),
        out=str(tmp_path / "ssl.zarr"),
        manifests_dir=tmp_path / "manifests",
        folds=3,
    )
    run(cfg)
    done = probe_cli("--store", tmp_path / "ssl.zarr", "--out", tmp_path / "p")
    assert done.exit_code == 0, done.output
    result = json.loads((tmp_path / "p" / "layers.json").read_text())
    assert [r["layer"] for r in result["layers"]] == [0, 1, 2] and result["feature"] == "ssl"
    assert result["model"] == str(tmp_path / "wavlm") and result["split"].startswith("fold 0 of 3")
    assert all(
        0.0 <= r["interval"]["accuracy"][0] <= r["test"]["accuracy"] <= r["interval"]["accuracy"][1] <= 1.0
        for r in result["layers"]
    )


@pytest.mark.slow
def test_a_store_on_s3(s3_env, tmp_path):
    _, bucket = new_bucket()
    url = f"s3://{bucket}/layers.zarr"
    layered(url, 1, layers=3)
    done = probe_cli("--store", url, "--out", tmp_path / "p")
    assert done.exit_code == 0, done.output
    result = json.loads((tmp_path / "p" / "layers.json").read_text())
    assert result["store"] == url and result["best_layer"] == 1
