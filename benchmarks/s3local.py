"""A local S3 server (moto) and, in front of it, the latency proxy: each in its own process, on 127.0.0.1.

``with local_s3(delay=0.02) as s3:`` starts ``python -m moto.server`` on a free port and
``python -m benchmarks.faults`` in front of it (no faults, ``delay`` seconds added to every request);
``s3.env`` holds the standard AWS variables that point a client at the proxy (``s3.direct_env`` at the
server itself), and ``s3.bucket()`` makes a fresh bucket. Separate processes, so the servers' threads
never share a GIL with the client being measured. Nothing leaves the machine.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from benchmarks.common import REPO, pinned_to

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@dataclass
class LocalS3:
    server: str  # the S3 server's endpoint
    proxy: str  # the latency proxy's endpoint
    delay: float

    @property
    def env(self) -> dict[str, str]:
        """AWS variables for a client that goes through the proxy."""
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.proxy}

    @property
    def direct_env(self) -> dict[str, str]:
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.server}

    def bucket(self) -> str:
        import boto3

        name = f"bench-{uuid.uuid4().hex[:10]}"
        boto3.client("s3", endpoint_url=self.server, **_boto_credentials()).create_bucket(Bucket=name)
        return name


def _boto_credentials() -> dict:
    return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before it answered")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except urllib.error.HTTPError:
            return  # it answered (an S3 error page is an answer)
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer at {url} within {timeout:.0f} s")


@contextmanager
def local_s3(delay: float = 0.02, cpus: set[int] | None = None) -> Iterator[LocalS3]:
    """The server and the proxy, on ``cpus`` only when given (every thread they start too)."""
    procs: list[subprocess.Popen] = []
    pin = pinned_to(cpus)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    try:
        port = free_port()
        server = f"http://127.0.0.1:{port}"
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
                preexec_fn=pin,
            )
        )
        _wait(server, procs[-1], "the moto S3 server")
        pport = free_port()
        proxy = f"http://127.0.0.1:{pport}"
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "benchmarks.faults", server, "--delay", str(delay), "--port", str(pport)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=REPO,
                env=env,
                preexec_fn=pin,
            )
        )
        _wait(proxy, procs[-1], "the latency proxy")
        yield LocalS3(server, proxy, delay)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
