"""Client CPU per range request, s3fs against obstore: ``python -m benchmarks.s3_clients``.

Why: with s3fs reading, training from object storage on this machine reached 0.68 of local disk with the
latency hidden (docs/performance.md, "Object storage at local speed"); with the S3 server on a core of its
own, the client's own CPU per request bounded it. This measurement is why reads now go through obstore
where a location's settings allow (``store/objects.py``).

It puts the local S3 server (moto) on the last core and the client on the others, stores 200 shard-sized
objects, then reads ``--requests`` 3,712-byte ranges (a 16-frame crop of 1 s Mel tracks) with 64 in flight:
through ``s3fs.cat_ranges`` in calls of 64, and through ``obstore.get_range_async`` gathered 64 at a time
(obstore, https://github.com/developmentseed/obstore: Rust, its requests made outside Python). Prints
requests per second and the client's CPU milliseconds per request.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from benchmarks.s3local import local_s3

SIZE, RANGE, OBJECTS = 400_000, 3712, 200


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.s3_clients", description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=2000, help="range requests per client [%(default)s]")
    n = ap.parse_args(argv).requests
    import boto3
    import s3fs
    from obstore import get_range_async
    from obstore.store import S3Store

    cores = sorted(os.sched_getaffinity(0))
    server, client = ({cores[-1]}, set(cores[:-1])) if len(cores) > 1 else (None, None)
    if client:
        os.sched_setaffinity(0, client)
    with local_s3(delay=0.0, cpus=server) as s3:
        bucket, keys = s3.bucket(), [f"t{i}/c/0/0/0/0" for i in range(OBJECTS)]
        creds = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}
        boto = boto3.client("s3", endpoint_url=s3.server, **creds)
        blob = os.urandom(SIZE)
        for key in keys:
            boto.put_object(Bucket=bucket, Key=key, Body=blob)
        starts = [(i * RANGE) % (SIZE - RANGE) for i in range(n)]
        fs = s3fs.S3FileSystem(
            key="testing",
            secret="testing",
            client_kwargs={"endpoint_url": s3.server, "region_name": "us-east-1"},
            config_kwargs={"max_pool_connections": 64},
        )
        paths = [f"{bucket}/{keys[i % OBJECTS]}" for i in range(n)]

        def with_s3fs() -> None:
            for j in range(0, n, 64):
                got = fs.cat_ranges(paths[j : j + 64], starts[j : j + 64], [s + RANGE for s in starts[j : j + 64]])
                assert all(len(g) == RANGE for g in got)

        store = S3Store(
            bucket,
            endpoint=s3.server,
            access_key_id="testing",
            secret_access_key="testing",
            region="us-east-1",
            client_options={"allow_http": True},
        )

        def with_obstore() -> None:
            async def gather() -> None:
                for j in range(0, n, 64):
                    got = await asyncio.gather(
                        *(
                            get_range_async(store, keys[i % OBJECTS], start=starts[i], end=starts[i] + RANGE)
                            for i in range(j, min(n, j + 64))
                        )
                    )
                    assert all(len(g) == RANGE for g in got)

            asyncio.run(gather())

        for name, read in (("s3fs", with_s3fs), ("obstore", with_obstore)):
            began, cpu = time.perf_counter(), time.process_time()
            read()
            wall, used = time.perf_counter() - began, time.process_time() - cpu
            print(f"{name:8s} {n / wall:6.0f} requests/s, client CPU {1e3 * used / n:.2f} ms per request")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
