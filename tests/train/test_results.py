"""Results a researcher can publish: comparisons that never pool configurations or test sets, per-track
predictions of every run (and from a store), bootstrap intervals and paired tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from scipy.stats import binomtest
from typer.testing import CliRunner

from mrnet.train import compare, fingerprint, predictions, stats
from mrnet.train.cli import compare_app, predict_app
from mrnet.train.loop import train
from mrnet.train.predict import _load
from mrnet.train.report import summary_table
from mrnet.train.runs import RunFolder
from mrnet.train.tasks import HEADLINE
from tests.train.conftest import learnable_store, small_config

runner = CliRunner()
WIDE = {"COLUMNS": "250"}


@pytest.fixture(scope="module")
def ablation(tmp_path_factory) -> Path:
    """The pooled ablation of issue 20: a normal MRNet run (two seeds) and a 1-epoch --drop-route L1 run on one store."""
    tmp = tmp_path_factory.mktemp("ablation")
    store = learnable_store(tmp / "mel.zarr", frames=(160, 220), per_genre=8)
    for seed in (0, 1):
        train(small_config(store, tmp / "runs" / f"full-s{seed}", epochs=2, batch_size=4, seed=seed))
    train(small_config(store, tmp / "runs" / "no-L1", epochs=1, batch_size=4, drop_routes=("L1",)))
    return tmp / "runs"


def test_an_ablation_is_never_pooled_with_the_full_model(ablation):
    rows = compare.compare([ablation])
    assert len(rows) == 2  # before fingerprints: one row, n = 3, the ablated model's parameters
    full, ablated = rows
    assert (full["n"], ablated["n"]) == (2, 1)  # n counts the seeds of one configuration
    assert full["label"] == "mrnet tiny, 2 epochs" and ablated["label"] == "mrnet tiny --drop-route L1, 1 epoch"
    assert full["parameters"] != ablated["parameters"]
    assert ablated["accuracy"] == pytest.approx(RunFolder(ablation / "no-L1").report()["test"]["accuracy"])
    (line,) = [line for line in compare.markdown(rows).splitlines() if "--drop-route L1" in line]
    assert "±" not in line  # one run shows its bootstrap interval, not ± 0.0
    low, high = ablated["accuracy_interval"]
    assert f"[{100 * low:.1f}, {100 * high:.1f}]" in line


def test_every_run_records_its_fingerprint_and_old_runs_get_it_from_config_json(ablation, tmp_path):
    marks = {
        name: json.loads((ablation / name / fingerprint.FILE).read_text())["fingerprint"]
        for name in ("full-s0", "full-s1", "no-L1")
    }
    assert marks["full-s0"] == marks["full-s1"] != marks["no-L1"]  # the seed is not the configuration
    old = tmp_path / "old"
    shutil.copytree(ablation, old)
    for run in old.iterdir():
        (run / fingerprint.FILE).unlink()  # runs from before fingerprints
        (run / "predictions.parquet").unlink()
    rows = compare.compare([old])
    assert [r["n"] for r in rows] == [2, 1] and rows[1]["label"] == "mrnet tiny --drop-route L1, 1 epoch"
    assert {t["reason"] for t in compare.paired_tests(rows)} == {
        "no predictions.parquet (a run from before they were kept)"
    }


def test_the_fingerprint_leaves_out_seed_folder_and_machine_but_not_the_recipe():
    config = small_config("s.zarr", "runs/a").to_json()
    store = {"provenance": {"feature": "mel", "versions": {"torch": "2.0"}}, "genres": ["a", "b"]}
    same = [
        {**config, "seed": 3, "out": "elsewhere", "workers": 2, "device": "cuda", "num_workers": 4},
        config,
        {**config, "preset": "small"},
    ]
    assert len({fingerprint.fingerprint(c, store) for c in same}) == 1
    assert fingerprint.fingerprint(
        config, {**store, "provenance": {"feature": "mel", "versions": {"torch": "2.5"}}}
    ) == fingerprint.fingerprint(config, store)  # the same store, written by another torch
    for change in ({"lr": 0.01}, {"drop_routes": ["H"]}, {"normalize": "stored"}, {"layers": [0]}, {"time_masks": 0}):
        assert fingerprint.fingerprint({**config, **change}, store) != fingerprint.fingerprint(config, store), change
    other_store = {**store, "provenance": {"feature": "wavlm"}}
    assert fingerprint.fingerprint(config, other_store) != fingerprint.fingerprint(config, store)


def test_labels_tell_rows_of_one_model_apart_by_option_and_other_models_by_name_alone():
    mrnet = {"model": "mrnet", "preset": "small", "epochs": 60, "lr": 1e-3, "drop_routes": []}
    ablated = {**mrnet, "drop_routes": ["L1"], "epochs": 1}
    nnet = {"model": "nnet1", "preset": "nnet1-paper", "epochs": 200, "lr": 1e-4, "weight_decay": 0.005}
    probe = {"model": "linear", "C": None}
    assert fingerprint.distinguishing([mrnet, ablated, nnet, probe]) == [
        "mrnet small, 60 epochs",
        "mrnet small --drop-route L1, 1 epoch",
        "nnet1 nnet1-paper",  # a recipe differs from MRNet's in dozens of values: the name says it
        "linear probe",
    ]


def test_runs_on_different_folds_are_never_averaged_but_the_folds_of_one_run_are(tmp_path):
    store = learnable_store(tmp_path / "folds.zarr", splits=False, folds=3, frames=(160, 200))
    for k in (0, 1):
        train(small_config(store, tmp_path / "runs" / f"fold{k}", epochs=1, batch_size=4, fold=k))
    train(small_config(store, tmp_path / "runs" / "all", epochs=1, batch_size=4, all_folds=True))
    rows = compare.compare([tmp_path / "runs"])
    assert sorted((r["label"], r["n"]) for r in rows) == [
        ("mrnet tiny", 3),
        ("mrnet tiny, fold 0", 1),
        ("mrnet tiny, fold 1", 1),
    ]
    tests = compare.paired_tests(rows)
    assert all(
        not t["paired"] and t["reason"] == "different test tracks" for t in tests
    )  # fold 0's test tracks are not fold 1's


# --- predictions ------------------------------------------------------------------------------------


def test_every_run_writes_its_validation_and_test_predictions(ablation):
    run = RunFolder(ablation / "no-L1")
    table = predictions.read(run.path / predictions.FILE)
    report = run.report()
    assert table.schema == predictions.schema(report["genres"])
    assert table.group_by("split").len().sort("split").rows() == [
        ("test", report["sizes"]["test"]),
        ("valid", report["sizes"]["valid"]),
    ]
    assert table["seed"].unique().to_list() == [0] and table["fold"].null_count() == table.height
    test = table.filter(pl.col("split") == "test")
    probs = predictions.probabilities(test)
    assert np.allclose(probs.sum(1), 1, atol=1e-5)
    truth = predictions.truth(test)
    assert np.mean(probs.argmax(1) == truth) == pytest.approx(
        report["test"]["accuracy"]
    )  # the checkpoint the report scored
    assert [p[0] for p in test["predicted"].to_list()] == [report["genres"][i] for i in probs.argmax(1)]


def test_a_tag_run_writes_true_tags_and_the_tags_over_its_threshold(tmp_path):
    store = learnable_store(tmp_path / "tags.zarr", tags=True, frames=(160, 200))
    run = RunFolder(train(small_config(store, tmp_path / "run", epochs=1, batch_size=4)))
    test = predictions.read(run.path / predictions.FILE).filter(pl.col("split") == "test")
    report = run.report()
    threshold = report["test"]["threshold"]
    assert test["threshold"].unique().to_list() == [pytest.approx(threshold)]
    probs = predictions.probabilities(test)
    assert [sorted(p) for p in test["predicted"].to_list()] == [
        sorted(np.asarray(report["tags"])[row >= threshold]) for row in probs
    ]
    assert stats.metric("roc_auc", predictions.truth(test), probs) == pytest.approx(report["test"]["roc_auc"])
    low, high = report["test"]["interval"]["roc_auc"]
    assert low <= report["test"]["roc_auc"] <= high


def test_mrnet_predict_from_a_store_matches_the_runs_own_predictions_and_adds_embeddings(ablation, tmp_path):
    run = ablation / "full-s0"
    store = RunFolder(run).report()["store"]
    out = tmp_path / "pred.parquet"
    result = runner.invoke(
        predict_app, [str(run), "--store", store, "--split", "test", "--embeddings", "--out", str(out)], env=WIDE
    )
    assert result.exit_code == 0, result.output
    assert "test tracks: accuracy" in result.output and "[" in result.output
    table = predictions.read(out)
    kept = predictions.read(run / predictions.FILE).filter(pl.col("split") == "test")
    assert table.drop("embedding").columns == kept.columns and table["track_id"].to_list() == kept["track_id"].to_list()
    assert np.allclose(predictions.probabilities(table), predictions.probabilities(kept), atol=1e-5)
    model, info, _ = _load(RunFolder(run))
    from mrnet.store import FeatureStore

    features = FeatureStore.open(store).read(table["key"][0], layers=info["layer_positions"]).astype(np.float32)
    with torch.no_grad():
        expected = model.eval().embed(torch.from_numpy(features)[None])[0].numpy()
    assert np.allclose(table["embedding"][0].to_numpy(), expected, atol=1e-5)  # the model's penultimate vector


def test_mrnet_predict_refuses_a_store_of_other_features(ablation, tmp_path):
    other = learnable_store(tmp_path / "wavlm.zarr", feature="wavlm", layers=3, dim=16)
    result = runner.invoke(predict_app, [str(ablation / "no-L1"), "--store", str(other)])
    assert result.exit_code != 0 and "is not the store run" in result.output


# --- intervals and paired tests -----------------------------------------------------------------


def test_every_test_number_carries_a_seeded_bootstrap_interval(ablation):
    report = RunFolder(ablation / "full-s0").report()
    test = report["test"]
    for metric in HEADLINE["single-label"]:
        low, high = test["interval"][metric]
        assert low <= test[metric] <= high
    table = predictions.read(ablation / "full-s0" / predictions.FILE).filter(pl.col("split") == "test")
    again = stats.intervals(predictions.truth(table), predictions.probabilities(table), HEADLINE["single-label"])
    assert again == test["interval"]  # seeded: the same interval every time
    md = (ablation / "full-s0" / "report.md").read_text()
    acc_low, acc_high = test["interval"]["accuracy"]
    assert f"[{100 * acc_low:.1f}, {100 * acc_high:.1f}]" in md and "bootstrap" in md
    from rich.console import Console

    console = Console(width=250, record=True)
    console.print(summary_table(report))
    assert f"[{100 * acc_low:.1f}, {100 * acc_high:.1f}]" in console.export_text()


def test_the_interval_is_scipys_bootstrap_of_the_metric():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 3, 60)
    probs = rng.random((60, 3)) + 0.8 * np.eye(3)[truth]
    from scipy.stats import bootstrap

    correct = (probs.argmax(1) == truth).astype(float)
    expected = bootstrap(
        (correct,), np.mean, n_resamples=stats.RESAMPLES, method="percentile", rng=np.random.default_rng(stats.SEED)
    )
    assert stats.interval(truth, probs, "accuracy") == pytest.approx(tuple(expected.confidence_interval))


def test_the_paired_accuracy_test_is_mcnemars_on_the_discordant_tracks():
    truth = np.zeros(30, dtype=int)
    first = np.eye(2)[[0] * 20 + [1] * 10]  # right on 20
    second = np.eye(2)[[0] * 12 + [1] * 18]  # right on 12, all of them also right by first
    result = stats.paired(truth, first, second, "accuracy")
    assert (result["only_first"], result["only_second"]) == (8, 0)
    assert result["p"] == pytest.approx(binomtest(8, 8, 0.5).pvalue) and result["difference"] == pytest.approx(8 / 30)
    boot = stats.paired(truth, first, second, "macro_f1")
    assert boot["test"] == "paired bootstrap" and boot["interval"][0] <= boot["difference"] <= boot["interval"][1]


def test_compare_tests_each_pair_on_the_same_tracks_and_says_not_paired_otherwise(ablation, tmp_path):
    other = learnable_store(tmp_path / "other.zarr", frames=(160, 220), genres=("a", "b", "c"), seed=5)  # other tracks
    train(small_config(other, tmp_path / "elsewhere", epochs=1, batch_size=4))
    result = runner.invoke(
        compare_app, [str(ablation), str(tmp_path / "elsewhere"), "--out", str(tmp_path / "cmp")], env=WIDE
    )
    assert result.exit_code == 0, result.output
    tests = json.loads((tmp_path / "cmp" / "paired.json").read_text())
    same = [t for t in tests if t["paired"]]
    assert len(same) == 1 and {x["test"] for x in same[0]["tests"]} == {"McNemar (exact)", "paired bootstrap"}
    assert {t["reason"] for t in tests if not t["paired"]} == {"different test tracks"}
    md = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "## Paired tests" in md and "McNemar" in md and "not paired: different test tracks" in md


@pytest.mark.parametrize("decimals", [None, 1, 2])
def test_the_tag_areas_of_a_resample_equal_scikit_learns(decimals):
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(decimals or 0)
    truth = (rng.random((400, 12)) < 0.15).astype(int)
    truth[0], truth[1] = 1, 0  # every tag has positive and negative clips
    scores = rng.random((400, 12)) + 0.3 * truth
    scores = np.round(scores, decimals) if decimals else scores  # ties: one threshold each
    assert stats.tag_areas("roc_auc", truth, scores) == pytest.approx(
        roc_auc_score(truth, scores, average=None), abs=1e-12
    )
    assert stats.tag_areas("pr_auc", truth, scores) == pytest.approx(
        average_precision_score(truth, scores, average=None), abs=1e-12
    )


def test_embeddings_come_from_the_input_of_the_last_linear_layer_of_any_model(ablation, tmp_path):
    """The probe's head is one linear layer: its embedding is the standardised statistics it classifies."""
    from mrnet.train.predict_store import predict_split

    store = RunFolder(ablation / "full-s0").report()["store"]
    probe = train(small_config(Path(store), tmp_path / "probe", model="linear"))
    table = predict_split(probe, store, "valid", embeddings=True)
    model, _, _ = _load(RunFolder(probe))
    assert table.schema["embedding"].size == model.head.in_features
    x = np.stack(table["embedding"].to_numpy())
    logits = x @ model.head.weight.detach().numpy().T + model.head.bias.detach().numpy()
    assert np.allclose(
        np.exp(logits) / np.exp(logits).sum(1, keepdims=True), predictions.probabilities(table), atol=1e-5
    )
