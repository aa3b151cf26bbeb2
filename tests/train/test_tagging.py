"""Multi-label tagging end to end: a miniature MagnaTagATune in its published layout (30 s MP3s in the hex
folders, the real 188-tag header, a broken MP3) extracts with the FCN input (mel96), and FCN-5, MsE-CNN
and MRNet train on it with their presets and report macro ROC-AUC and PR-AUC."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from sklearn.metrics import average_precision_score, roc_auc_score
from typer.testing import CliRunner

from mrnet.core.errors import UserError
from mrnet.extract.config import ExtractConfig
from mrnet.extract.pipeline import run as extract
from mrnet.store import FeatureStore
from mrnet.train.cli import predict_app
from mrnet.train.crops import EvalUnit, TrackDataset, track_targets
from mrnet.train.loader import length_batches, make_loader
from mrnet.train.loop import train
from mrnet.train.predict import Predictor
from mrnet.train.presets import preset, tiny
from mrnet.train.runs import RunFolder, load_checkpoint
from mrnet.train.splits import split_tracks
from tests.extract.fixtures import make_mtat
from tests.helpers import tone

QUICK = dict(num_workers=0, device="cpu", eval_batch_size=8)


@pytest.fixture(scope="module")
def mtat_store(tmp_path_factory):
    """32 clips of 30 s (2 per hex folder: 24 train, 2 valid, 6 test), tagged by style, and the broken MP3."""
    tmp = tmp_path_factory.mktemp("mtat")
    root = make_mtat(tmp / "mtat", per_folder=2, seconds=30.0)
    cfg = ExtractConfig(
        dataset="mtat", root=root, out=str(tmp / "mtat.zarr"), manifests_dir=tmp / "m", features="mel96"
    )
    extract(cfg)
    return cfg.store


@pytest.fixture(scope="module")
def mrnet_run(mtat_store, tmp_path_factory):
    return train(tiny(mtat_store, out=str(tmp_path_factory.mktemp("runs") / "mrnet"), epochs=6, **QUICK))


def report(run) -> dict:
    return json.loads((run / "report.json").read_text())


def test_the_task_comes_from_the_store_and_mrnet_learns_the_tags(mtat_store, mrnet_run):
    store = FeatureStore.open(mtat_store)
    assert store.provenance.task == "multi-label"
    r = report(mrnet_run)
    cfg = json.loads((mrnet_run / "config.json").read_text())
    assert r["task"] == "multi-label" and cfg["select_metric"] == "roc_auc"  # chosen for the task, and recorded
    assert r["test"]["roc_auc"] > 0.7 and 0 < r["test"]["pr_auc"] <= 1  # the styles' tones tell the tags apart
    assert len(r["test"]["per_tag"]) == 50 and r["tags"] == store.genres["name"].to_list()
    assert (mrnet_run / "plots" / "tags.png").exists() and (mrnet_run / "plots" / "weights.png").exists()
    text = (mrnet_run / "report.md").read_text()
    assert "Test ROC-AUC" in text and "PR-AUC" in text and "## Per tag (test)" in text


def test_the_reported_scores_are_scikit_learns_on_the_selected_model(mtat_store, mrnet_run):
    """Recompute the test metrics from the checkpoint's sigmoid outputs with scikit-learn directly."""
    store = FeatureStore.open(mtat_store)
    tags = store.genres["name"].to_list()
    test = split_tracks(store.tracks).test
    predictor = Predictor.open(mrnet_run)
    truth = np.stack(track_targets(test, tags))
    probs = np.stack([predictor.probabilities(store.read(k)) for k in test["key"]])
    scored = (truth.sum(0) > 0) & (truth.sum(0) < len(truth))  # tags with both kinds of clip in the test split
    r = report(mrnet_run)
    assert r["test"]["roc_auc"] == pytest.approx(
        roc_auc_score(truth[:, scored], probs[:, scored], average="macro"), abs=1e-6
    )
    assert r["test"]["pr_auc"] == pytest.approx(
        average_precision_score(truth[:, scored], probs[:, scored], average="macro"), abs=1e-6
    )
    # the threshold was chosen on validation and applied unchanged to test
    best = load_checkpoint(RunFolder(mrnet_run).best)
    assert r["test"]["threshold"] == best["valid"]["valid_threshold"] == r["valid"]["threshold"]


@pytest.mark.parametrize("name", ["fcn5", "msecnn"])
def test_fcn5_and_msecnn_train_with_their_recipes(mtat_store, tmp_path, name):
    cfg = preset(f"{name}-paper", mtat_store, out=str(tmp_path / name), epochs=1, **QUICK)
    assert (cfg.optimizer, cfg.batch_size, cfg.select_metric, cfg.augment) == ("adam", 16, "loss", False)
    r = report(train(cfg))
    assert r["model"]["parameters"] == {"fcn5": 447_732, "msecnn": 953_446}[name]  # the spec's counts for 50 tags
    assert r["selection"]["metric"] == "loss" and 0 <= r["test"]["roc_auc"] <= 1
    assert json.loads((tmp_path / name / "config.json").read_text())["eval_unit"] == "center"


def test_the_center_unit_scores_the_middle_1366_frames(mtat_store):
    store = FeatureStore.open(mtat_store)
    test = split_tracks(store.tracks).test
    eval_unit = EvalUnit("center", crop=1366)
    ds = TrackDataset(
        store.location, test, [0], eval_unit=eval_unit, targets=track_targets(test, store.genres["name"].to_list())
    )
    x, y = ds[0]
    frames = test["frames"][0]
    start = (frames - 1366) // 2
    np.testing.assert_array_equal(x[0], store.read(test["key"][0])[:, :, start : start + 1366])
    assert y.dtype == np.float32 and y.sum() == len(test["tags"][0])
    batch = next(
        iter(make_loader(ds, length_batches(ds.lengths, 4), num_workers=0, device=torch.device("cpu"), seed=0))
    )
    assert tuple(batch[0].shape) == (4, 1, 1, 1, 1366, 96) and tuple(batch[1].shape) == (4, 50)


def test_positive_weights_are_each_tags_negatives_per_positive_in_training(mtat_store, tmp_path):
    from mrnet.manifests.schema import tag_table
    from mrnet.train.setup import build_run, model_input

    store = FeatureStore.open(mtat_store)
    tags = store.genres["name"].to_list()
    train_tracks = split_tracks(store.tracks).train
    cfg = tiny(mtat_store, pos_weight=True, normalize="none")
    setup = build_run(cfg, model_input(store.provenance, 1, len(tags)), train_tracks, torch.device("cpu"), labels=tags)
    expected = dict(tag_table(train_tracks, tags).select("name", "weight").iter_rows())
    assert setup.class_weights.tolist() == pytest.approx([expected[t] for t in tags])
    assert (
        build_run(
            tiny(mtat_store, normalize="none"),
            model_input(store.provenance, 1, len(tags)),
            train_tracks,
            torch.device("cpu"),
            labels=tags,
        ).class_weights
        is None
    )  # off by default


def test_what_cannot_learn_tags_is_refused(mtat_store, tmp_path):
    with pytest.raises(UserError, match="select-metric accuracy: a multi-label store is scored by roc_auc"):
        train(tiny(mtat_store, out=str(tmp_path / "a"), select_metric="accuracy", **QUICK))
    with pytest.raises(UserError, match="--model linear fits one multi-class logistic regression"):
        train(tiny(mtat_store, out=str(tmp_path / "b"), model="linear", **QUICK))
    from mrnet.train.models import ModelInput
    from mrnet.train.setup import build_model

    inputs = ModelInput(
        feature="mel128", channels=1, num_layers=1, dim=128, frame_rate=86.1, num_classes=50, task="multi-label"
    )
    with pytest.raises(UserError, match="musicnext cannot learn a multi-label store.*musicnext-softmax"):
        build_model(tiny("s.zarr", model="musicnext"), inputs)


def test_predict_prints_the_top_tags_and_marks_those_over_the_threshold(mrnet_run, tmp_path):
    path = tmp_path / "clip.wav"
    sf.write(path, tone(30.0, 16000, freq=440.0), 16000)
    result = CliRunner().invoke(predict_app, [str(mrnet_run), str(path), "--top", "5", "--json"])
    assert result.exit_code == 0, result.output
    (doc,) = json.loads(result.output)
    assert len(doc["tags"]) == 5 and all(0 <= t["probability"] <= 1 for t in doc["tags"])
    threshold = report(mrnet_run)["test"]["threshold"]
    probs = {t["tag"]: t["probability"] for t in doc["tags"]}
    assert all(probs[t] >= threshold for t in doc["tagged"] if t in probs)
    assert {t for t, p in probs.items() if p >= threshold} == {t for t in doc["tagged"] if t in probs}


def test_route_weights_of_the_tag_run_are_drawn_beside_the_genre_run(mrnet_run, trained_run, tmp_path):
    from mrnet.train.routes import plot_routes, route_weights, routes_figure

    weights = route_weights([RunFolder(mrnet_run), RunFolder(trained_run)])
    (tags_label, tags), (genres_label, genres) = weights.items()
    assert tags_label.endswith("(tags)") and genres_label.endswith("(genres)")
    w = report(mrnet_run)["route_weights"]
    assert tags == pytest.approx({r: v / np.mean(list(w.values())) for r, v in w.items()})  # W / mean(W), per run
    assert np.mean(list(genres.values())) == pytest.approx(1.0)
    fig = routes_figure(weights)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == list(w)  # one group per route
    bars = [p for p in ax.patches]
    assert len(bars) == 2 * len(w) and all(
        b.get_y() == pytest.approx(1.0) for b in bars
    )  # bars start at the initial value
    assert [b.get_y() + b.get_height() for b in bars[: len(w)]] == pytest.approx(list(tags.values()))
    lo, hi = ax.get_ylim()
    assert (
        lo > 0.5
        and hi < 1.5
        and lo < min([*tags.values(), *genres.values()])
        and hi > max([*tags.values(), *genres.values()])
    )
    assert plot_routes(tmp_path / "routes.png", weights).stat().st_size > 0


def test_mrnet_compare_sets_the_tag_run_beside_the_genre_run(mrnet_run, trained_run, tmp_path):
    from mrnet.train.cli import compare_app

    result = CliRunner().invoke(
        compare_app, [str(mrnet_run), str(trained_run), "--out", str(tmp_path / "cmp")], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert (
        "Route weights of 2 MRNet runs side by side" in result.output
        and (tmp_path / "cmp" / "routes.png").stat().st_size > 0
    )
    rows = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert {r["task"] for r in rows} == {"single-label", "multi-label"}  # one row per task, each with its own metrics


def test_a_tag_run_logs_roc_auc_and_the_per_tag_figure_to_tensorboard(mrnet_run):
    from tests.train.test_events import read, scalars

    acc, rep = read(mrnet_run), report(mrnet_run)
    assert scalars(acc, "final/test_roc_auc")[0][1] == pytest.approx(rep["test"]["roc_auc"])
    assert scalars(acc, "final/test_pr_auc")[0][1] == pytest.approx(rep["test"]["pr_auc"])
    assert [s for s, _ in scalars(acc, "roc_auc/valid")] and "accuracy/valid" not in acc.Tags()["scalars"]
    assert acc.Images("figures/tags")[0].encoded_image_string == (mrnet_run / "plots" / "tags.png").read_bytes()
