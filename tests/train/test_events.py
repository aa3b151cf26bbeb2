"""TensorBoard event files of real runs, read back with TensorBoard's own reader (EventAccumulator): the
curves as they train, and at the end the configuration as hparams, the final metrics, the figures; the
linear probe over its C grid; one event folder per fold and per seed, and one for their mean."""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata
from tensorboard.util import tensor_util

from mrnet.train import events, launch
from mrnet.train.loop import Interrupted, resume, train
from mrnet.train.probe import GRID
from mrnet.train.runs import RunFolder
from tests.train.conftest import small_config


def read(run: Path) -> EventAccumulator:
    """Every event of ``run``'s event folder, nothing sampled away."""
    acc = EventAccumulator(str(events.folder_of(run)), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    return acc.Reload()


def scalars(acc: EventAccumulator, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def logged_hparams(acc: EventAccumulator) -> dict:
    """The hparams of the run's session, as the HParams tab reads them."""
    content = acc.PluginTagToContent(metadata.PLUGIN_NAME)[metadata.SESSION_START_INFO_TAG]
    info = metadata.parse_session_start_info_plugin_data(content)
    return {k: getattr(v, v.WhichOneof("kind")) for k, v in info.hparams.items()}


@pytest.fixture(scope="module")
def straight(mel_store, tmp_path_factory):
    """3 epochs of 3 batches (12 training tracks, batches of 4)."""
    return train(small_config(mel_store, tmp_path_factory.mktemp("straight") / "run", epochs=3, batch_size=4))


def test_a_run_logs_its_curves_at_global_steps(straight):
    acc, history = read(straight), RunFolder(straight).metrics()
    assert [step for step, _ in scalars(acc, "batch/train_loss")] == list(range(1, 10))
    assert [step for step, _ in scalars(acc, "accuracy/valid")] == [3, 6, 9]
    assert {"loss/train", "loss/valid", "loss/test", "macro_f1/valid", "lr"} <= set(acc.Tags()["scalars"])
    assert [round(v, 5) for _, v in scalars(acc, "loss/train")] == [round(r["train_loss"], 5) for r in history]


def test_a_finished_run_logs_its_configuration_final_metrics_and_figures(straight):
    acc, run = read(straight), RunFolder(straight)
    report, config = run.report(), json.loads(run.config_file.read_text())
    hp = logged_hparams(acc)
    assert hp == pytest.approx(events.hparams(config))
    assert (hp["model"], hp["lr"], hp["epochs"], hp["augment"]) == ("mrnet", config["lr"], 3, True)
    assert hp["model_options.width"] == 16 and "fold" not in hp  # nested options flattened; unset ones left out
    # the final metrics: the validation-selected model's numbers, the HParams tab's metric columns
    assert scalars(acc, "final/test_accuracy") == [(9, pytest.approx(report["test"]["accuracy"]))]
    assert scalars(acc, "final/valid_macro_f1")[0][1] == pytest.approx(report["valid"]["macro_f1"])
    assert scalars(acc, "final/epoch")[0][1] == report["selection"]["epoch"]
    # every figure the run wrote as PNG, byte for byte
    pngs = sorted(run.plots.glob("*.png"))
    assert {p.stem for p in pngs} >= {"confusion", "curves", "weights"}
    for png in pngs:
        (image,) = acc.Images(f"figures/{png.stem}")
        assert image.encoded_image_string == png.read_bytes() and image.step == 9
    (text,) = acc.Tensors("config/text_summary")
    assert json.loads(tensor_util.make_ndarray(text.tensor_proto).item().decode().strip("`\n")) == config


def test_a_resumed_run_draws_each_point_once(mel_store, straight, tmp_path):
    """Stopped in the middle of epoch 2 and resumed: the same curve as the run that never stopped, each
    step once (the step the checkpoint ended on kept, the points past it replaced)."""
    with pytest.raises(Interrupted):
        train(
            small_config(mel_store, tmp_path / "run", epochs=3, batch_size=4), should_stop=lambda e, s: (e, s) == (1, 2)
        )
    resumed = read(resume(tmp_path / "run"))
    assert [s for s, _ in scalars(resumed, "batch/train_loss")] == list(range(1, 10))
    assert [s for s, _ in scalars(resumed, "accuracy/valid")] == [3, 6, 9]
    assert [round(v, 5) for _, v in scalars(resumed, "loss/train")] == [
        round(v, 5) for _, v in scalars(read(straight), "loss/train")
    ]


@pytest.fixture(scope="module")
def probe_run(mel_store, tmp_path_factory):
    return train(small_config(mel_store, tmp_path_factory.mktemp("probe") / "probe", model="linear"))


def test_the_linear_probe_logs_its_c_grid_as_steps(probe_run):
    run = probe_run
    acc, report = read(run), RunFolder(run).report()
    assert scalars(acc, "C") == [(i + 1, pytest.approx(c)) for i, c in enumerate(GRID)]
    assert [s for s, _ in scalars(acc, "accuracy/valid")] == list(range(1, len(GRID) + 1))
    assert "batch/train_loss" not in acc.Tags()["scalars"]  # no batches, no epochs
    assert scalars(acc, "final/C")[0] == (len(GRID), pytest.approx(report["selection"]["C"]))
    assert scalars(acc, "final/test_accuracy")[0][1] == pytest.approx(report["test"]["accuracy"])
    assert logged_hparams(acc)["model"] == "linear" and acc.Images("figures/confusion")
    # fitted again (resumed): the grid's points replaced, not drawn twice
    resume(run)
    assert [s for s, _ in scalars(read(run), "C")] == list(range(1, len(GRID) + 1))


def test_tensorboard_itself_compares_the_runs_in_its_hparams_tab(straight, probe_run, tmp_path):
    """A real TensorBoard server over two runs' event folders: its HParams tab lists one session per run
    with the run's options and final metrics (what a researcher sorts and filters runs by)."""
    import urllib.request

    from tensorboard import program

    for name, run in (("mrnet", straight), ("probe", probe_run)):
        shutil.copytree(events.folder_of(run), tmp_path / "runs" / name / events.FOLDER)
    board = program.TensorBoard()
    board.configure(argv=[None, "--logdir", str(tmp_path / "runs"), "--host", "127.0.0.1", "--port", "0"])
    server = board._make_server()  # noqa: SLF001 - what launch() serves, kept here to stop it afterwards
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = server.get_url()
    query = {
        "experimentName": "",
        "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS"],
        "colParams": [{"metric": {"tag": "final/test_accuracy"}}, {"hparam": "model"}],
        "startIndex": 0,
        "sliceSize": 10,
    }
    try:
        deadline, groups = time.time() + 60, []
        while len(groups) < 2 and time.time() < deadline:  # the server loads the event files in the background
            request = urllib.request.Request(
                url + "data/plugin/hparams/session_groups",
                data=json.dumps(query).encode(),
                headers={"Content-Type": "application/json"},
            )
            groups = json.load(urllib.request.urlopen(request, timeout=30)).get("sessionGroups", [])
            time.sleep(0.2)
    finally:
        server.shutdown()
        server.server_close()
    shown = {
        g["sessions"][0]["name"]: (
            g["hparams"]["model"],
            next(m["value"] for m in g["metricValues"] if m["name"]["tag"] == "final/test_accuracy"),
        )
        for g in groups
    }
    assert shown == {
        "mrnet/tensorboard": ("mrnet", pytest.approx(RunFolder(straight).report()["test"]["accuracy"])),
        "probe/tensorboard": ("linear", pytest.approx(RunFolder(probe_run).report()["test"]["accuracy"])),
    }


def test_every_fold_has_its_event_folder_and_the_top_one_their_mean(fold_store, tmp_path):
    run = train(small_config(fold_store, tmp_path / "cv", epochs=1, batch_size=4, all_folds=True))
    top = RunFolder(run).report()
    for k in range(3):
        acc, report = read(run / f"fold-{k}"), RunFolder(run / f"fold-{k}").report()
        assert logged_hparams(acc)["fold"] == k
        assert scalars(acc, "final/test_accuracy")[0][1] == pytest.approx(report["test"]["accuracy"])
    acc = read(run)
    assert logged_hparams(acc)["all_folds"] is True
    assert scalars(acc, "final/test_accuracy")[0][1] == pytest.approx(top["mean"]["test_accuracy"])
    assert scalars(acc, "final/test_accuracy_std")[0][1] == pytest.approx(top["std"]["test_accuracy"])
    assert acc.Images("figures/folds")[0].encoded_image_string == (run / "plots" / "folds.png").read_bytes()


def test_every_seed_has_its_event_folder_and_the_top_one_their_mean(mel_store, tmp_path):
    run = launch.train(small_config(mel_store, tmp_path / "seeds", epochs=1, batch_size=4, seeds=(0, 1)))
    for s in (0, 1):
        acc = read(run / f"seed-{s}")
        assert logged_hparams(acc)["seed"] == s
        assert scalars(acc, "final/test_accuracy")[0][1] == pytest.approx(
            RunFolder(run / f"seed-{s}").report()["test"]["accuracy"]
        )
    acc, top = read(run), RunFolder(run).report()
    assert logged_hparams(acc)["seeds"] == "0,1"
    assert scalars(acc, "final/test_accuracy")[0][1] == pytest.approx(top["mean"]["test_accuracy"])


def test_without_tensorboard_a_run_says_so_and_writes_no_events(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    log = events.EventLog(tmp_path / "tb", steps_per_epoch=3)
    log.epoch({"epoch": 1, "train_loss": 1.0})
    log.close()
    assert "pip install tensorboard" in (log.missing or "")
    assert events.log_result(tmp_path, {"config": {}}, step=0) == log.missing
    assert not (tmp_path / "tb").exists() and not events.folder_of(tmp_path).exists()
