"""Fixtures for store tests: small local stores, a CLI runner, and a real S3-compatible server.

The S3 server is moto's HTTP server in a thread, bound to 127.0.0.1 on a free port, started once per
session. ``s3_env`` points the standard AWS variables at it for one test module; each test that asks
for ``s3`` gets a fresh bucket. Nothing in the storage layer is mocked: s3fs and Zarr talk HTTP to it
as to any S3 endpoint.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.helpers import make_store
from tests.store.util import new_bucket


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A finished local store: 3 genres x 2 tracks of 1 x 1 x ~400 x 48 float16."""
    return make_store(tmp_path / "local.zarr", per_genre=2)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


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
