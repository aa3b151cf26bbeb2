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


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A finished local store: 3 genres x 2 tracks of 1 x 1 x ~400 x 48 float16."""
    return make_store(tmp_path / "local.zarr", per_genre=2)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()
