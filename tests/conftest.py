"""Shared fixtures.

- ``tiny_wavlm``: a tiny WavLM saved locally and loaded through the same from_pretrained path as
  ``microsoft/wavlm-base`` (no download anywhere in the test suite).
- ``s3_endpoint`` / ``s3_env`` / ``s3``: a real S3-compatible server (moto's HTTP server in a thread,
  bound to 127.0.0.1 on a free port, once per session); ``s3`` gives a test a fresh bucket with the
  standard AWS variables pointing at it. Nothing in the storage layer is mocked.
"""

from __future__ import annotations

import pytest

from tests.store.util import new_bucket


def save_tiny_wavlm(path) -> str:
    """A 2-layer, 32-wide WavLM with WavLM-base's convolutional front end (stride 320, receptive 400)."""
    import torch
    from transformers import WavLMConfig, WavLMModel

    cfg = WavLMConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(32,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        num_buckets=32,
        max_bucket_distance=64,
    )
    torch.manual_seed(0)
    WavLMModel(cfg).eval().save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_wavlm(tmp_path_factory) -> str:
    return save_tiny_wavlm(tmp_path_factory.mktemp("tiny-wavlm"))


@pytest.fixture(scope="session")
def s3_endpoint() -> str:
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is needed for the S3 tests")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def s3_env(s3_endpoint: str) -> str:
    """Standard AWS variables pointing at the test server (no profile, no instance metadata), per module."""
    with pytest.MonkeyPatch.context() as env:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "MRNET_STORAGE_OPTIONS"):
            env.delenv(name, raising=False)
        env.setenv("AWS_ENDPOINT_URL", s3_endpoint)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        yield s3_endpoint


@pytest.fixture
def s3(s3_env: str) -> tuple:
    """A fresh bucket for one test (which may damage what it writes there)."""
    return new_bucket()


@pytest.fixture
def read_only():
    """Make a folder unwritable (even for root, with chattr +i); yields the function; undoes it after."""
    import os
    import shutil
    import subprocess

    done = []

    def make(path):
        path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            path.chmod(0o555)
        elif (
            shutil.which("chattr") and subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0
        ):
            pass
        else:
            pytest.skip("cannot make a folder read-only here (root without chattr)")
        done.append(path)
        try:
            (path / ".probe").touch()
        except OSError:
            return path
        pytest.skip("the folder stayed writable")

    yield make
    for path in done:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(path)], capture_output=True)
        path.chmod(0o755)
