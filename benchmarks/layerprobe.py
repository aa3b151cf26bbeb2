"""The layer-wise probing figure of a real store: ``python -m benchmarks.layerprobe``.

No pretrained weights can be downloaded where this is built, so the store is made with a **randomly
initialised** WavLM (seeded; 4 transformer layers of width 256, WavLM Base's convolutional front end
with 128 channels): a random encoder is the standard baseline of probing studies, and the figure shows
what the tool draws, not what WavLM's layers know. With real weights the same steps are::

    mrnet-extract folder --root DATASET/audio --labels DATASET/labels.csv --features ssl --model microsoft/wavlm-base --out store/realmusic-wavlm.zarr
    mrnet-train --store store/realmusic-wavlm.zarr --model mrnet --out runs/realmusic-wavlm
    mrnet-probe-layers --store store/realmusic-wavlm.zarr --run runs/realmusic-wavlm

Steps (each skipped when its output exists, so a rerun after an interruption goes on where it stopped):
the encoder folder (``save_pretrained``), the extraction of the real-music benchmark's dataset
(``python -m benchmarks.realmusic --build-only`` builds it; read only here) with ``--features ssl``,
a short MRNet run on that store (``--preset tiny``, :data:`EPOCHS` epochs: its learned layer weights go
beside the probe; ``--no-run`` skips it),
and ``mrnet-probe-layers``, whose figure is copied to ``docs/img/layer-probe.png`` and whose table to
``benchmarks/results/layer-probe.json``. Everything runs on one thread (``OMP_NUM_THREADS=1``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.common import CACHE, REPO, RESULTS, log

DATASET = CACHE / "realmusic" / "dataset"
SEED = 0
EPOCHS = 4  # the tiny preset's MRNet cut short (its 40 epochs take an hour on a busy CPU): layer weights that have begun to move
#: The random encoder: WavLM's architecture at a size one CPU core extracts 5.4 h of audio with in minutes.
ENCODER = dict(
    hidden_size=256,
    num_hidden_layers=4,
    num_attention_heads=4,
    intermediate_size=1024,
    conv_dim=(128,) * 7,  # WavLM Base's kernels and strides (320 samples a frame: 50 frames/s), narrower
    num_conv_pos_embeddings=128,
    num_conv_pos_embedding_groups=16,
)


def encoder(folder: Path) -> Path:
    """A seeded, randomly initialised WavLM and its feature extractor, written by ``save_pretrained``."""
    if (folder / "config.json").exists():
        return folder
    import torch
    from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMModel

    log(f"writing a random WavLM ({ENCODER['num_hidden_layers']} layers, width {ENCODER['hidden_size']}) to {folder}")
    torch.manual_seed(SEED)
    WavLMModel(WavLMConfig(**ENCODER)).eval().save_pretrained(folder)
    Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True).save_pretrained(folder)
    return folder


def run(args: list[str]) -> None:
    log(" ".join(args))
    subprocess.run(args, check=True, env=dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1"))


def extract(dataset: Path, model: Path, work: Path) -> Path:
    """``mrnet-extract folder ... --features ssl --model MODEL`` into ``work/realmusic-ssl.zarr``."""
    out = work / "realmusic-ssl.zarr"
    if not (out / "manifest" / "tracks.parquet").exists():
        run(
            [
                "mrnet-extract",
                "folder",
                "--root",
                str(dataset / "audio"),
                "--labels",
                str(dataset / "labels.csv"),
                "--features",
                "ssl",
                "--model",
                str(model),
                "--threads",
                "1",
                "--io-threads",
                "1",
                "--out",
                str(out),
                "--manifests-dir",
                str(work / "manifests"),
            ]
        )
    return out


def train(store: Path, work: Path) -> Path:
    """A short MRNet run on the store (the tiny preset, :data:`EPOCHS` epochs), for its learned layer weights."""
    out = work / "runs" / "mrnet-tiny"
    if not (out / "report.json").exists():
        args = ["mrnet-train", "--store", str(store), "--preset", "tiny", "--epochs", str(EPOCHS), "--seed", str(SEED)]
        args += ["--num-workers", "0"]
        run(["mrnet-train", "--resume", str(out)] if (out / "config.json").exists() else [*args, "--out", str(out)])
    return out


def probe(store: Path, trained: Path | None, work: Path) -> Path:
    """``mrnet-probe-layers`` (as ``python -m mrnet.train.cli_probe``: the same command, installed or not)."""
    out = work / "probe"
    args = [sys.executable, "-m", "mrnet.train.cli_probe", "--store", str(store), "--out", str(out)]
    run([*args, "--run", str(trained)] if trained else args)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.layerprobe", description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=CACHE / "layerprobe", help="where the encoder, store and runs go")
    parser.add_argument("--dataset", type=Path, default=DATASET, help="the real-music dataset folder (read only)")
    parser.add_argument("--no-run", action="store_true", help="probe only: train no MRNet run")
    args = parser.parse_args(argv)
    if not (args.dataset / "labels.csv").exists():
        raise SystemExit(f"{args.dataset}: no labels.csv; build it first: python -m benchmarks.realmusic --build-only")
    os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    args.work.mkdir(parents=True, exist_ok=True)
    store = extract(args.dataset, encoder(args.work / "encoder"), args.work)
    trained = None if args.no_run else train(store, args.work)
    out = probe(store, trained, args.work)
    shutil.copyfile(out / "layers.png", REPO / "docs" / "img" / "layer-probe.png")
    result = json.loads((out / "layers.json").read_text())
    result["encoder"] = {"weights": "random (seeded)", "seed": SEED, "architecture": "wavlm", **ENCODER}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "layer-probe.json").write_text(json.dumps(result, indent=2) + "\n")
    log(f"wrote docs/img/layer-probe.png and {RESULTS / 'layer-probe.json'}")


if __name__ == "__main__":
    main()
