"""A fault-injecting HTTP proxy in front of a local S3 server, as object storage misbehaves in real teams.

Every request is forwarded to the real (moto) server, except that, by a seeded draw per request:
``errors`` of them are answered 500 or 503 with an S3 error body and not forwarded, ``resets`` have
their connection closed without an answer, and every request waits ``delay`` plus a random share of
``latency`` first. Clients (botocore, s3fs) must retry; what they end up with must equal a run
without faults (``tests/store/test_faults.py``). ``counts`` also keeps the most requests it held at
once (``peak_in_flight``): how much concurrency a client really used. With no faults and a fixed ``delay`` it is a distant
object store on a fast link: ``benchmarks.remote`` trains, verifies and copies through it.

``python -m benchmarks.faults UPSTREAM --delay 0.02 [--port N]`` runs one in its own process (so its
threads do not share a GIL with the client measured) and prints its URL.
"""

from __future__ import annotations

import http.client
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

_ERROR = (
    '<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>injected by the test proxy</Message>'
    "<RequestId>fault</RequestId></Error>"
)


class FaultProxy:
    """``with FaultProxy(upstream, errors=0.03, resets=0.02) as proxy:`` use ``proxy.url`` as the endpoint."""

    def __init__(
        self,
        upstream: str,
        *,
        errors: float = 0.03,
        resets: float = 0.02,
        latency: float = 0.005,
        delay: float = 0.0,
        seed: int = 0,
        port: int = 0,
    ):
        target = urlparse(upstream)
        self.host, self.port = target.hostname, target.port
        self.errors, self.resets, self.latency, self.delay = errors, resets, latency, delay
        self.rng, self.lock = random.Random(seed), threading.Lock()
        self.counts = {"requests": 0, "errors": 0, "resets": 0, "in_flight": 0, "peak_in_flight": 0}
        self.seen: list[tuple[str, str, str]] = []  # (method, path, Range header) of every request, in order
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FaultProxy:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def draw(self) -> str:
        with self.lock:
            self.counts["requests"] += 1
            x = self.rng.random()
            fault = "error" if x < self.errors else "reset" if x < self.errors + self.resets else "ok"
            if fault != "ok":
                self.counts[fault + "s"] += 1
            return fault

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out in two writes: with Nagle's algorithm the client waits a delayed ACK (40 ms)
            disable_nagle_algorithm = True

            def log_message(self, *args):  # quiet
                pass

            def _any(self):
                with proxy.lock:
                    proxy.counts["in_flight"] += 1
                    proxy.counts["peak_in_flight"] = max(proxy.counts["peak_in_flight"], proxy.counts["in_flight"])
                try:
                    self._forward()
                finally:
                    with proxy.lock:
                        proxy.counts["in_flight"] -= 1

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy.lock:
                    proxy.seen.append((self.command, self.path, self.headers.get("Range") or ""))
                time.sleep(proxy.delay + (proxy.rng.uniform(0, proxy.latency) if proxy.latency else 0.0))
                fault = proxy.draw()
                if fault == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.close_connection = True
                    self.connection.close()  # a reset: no answer at all
                    return
                if fault == "error":
                    code, status = proxy.rng.choice([("InternalError", 500), ("SlowDown", 503)])
                    payload = _ERROR.format(code=code).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                upstream = http.client.HTTPConnection(proxy.host, proxy.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "expect")}
                upstream.request(self.command, self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                payload = answer.read()
                self.send_response(answer.status, answer.reason)
                for key, value in answer.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                        self.send_header(key, value)
                length = (
                    answer.getheader("Content-Length") if self.command == "HEAD" else None
                )  # HEAD: the object's size
                self.send_header("Content-Length", length or str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)
                upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        return Handler


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.faults", description="A latency-adding (and fault-injecting) S3 proxy."
    )
    ap.add_argument("upstream", help="the S3 server, e.g. http://127.0.0.1:5000")
    ap.add_argument("--delay", type=float, default=0.02, help="seconds added to every request [0.02]")
    ap.add_argument("--errors", type=float, default=0.0, help="share of requests answered 500/503 [0]")
    ap.add_argument("--resets", type=float, default=0.0, help="share of connections reset [0]")
    ap.add_argument("--port", type=int, default=0, help="port to listen on (0: a free one)")
    args = ap.parse_args(argv)
    with FaultProxy(
        args.upstream, errors=args.errors, resets=args.resets, latency=0.0, delay=args.delay, port=args.port
    ) as proxy:
        print(proxy.url, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
