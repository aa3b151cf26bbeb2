"""Reads from S3 through obstore's Rust client, for the locations whose settings it can take.

A crop read from object storage is one small ranged GET, and at training speed the client's own work
per request is what bounds it: s3fs (aiobotocore, Python) spends about 1.4 ms of CPU on each, obstore
(the Rust ``object_store`` crate) about 0.2 ms (``python -m benchmarks.s3_clients``, docs/performance.md).
So reads go through obstore where it can be configured exactly as s3fs would be: whole small objects,
shard indexes, crops, Zarr's reads (``verify``, compressed stores) and the downloads of ``cp``. Everything
else (listing, writing, deleting, and every read of a location it cannot take) stays on s3fs.

obstore takes an ``s3://`` or ``s3a://`` location when
- its fsspec storage options are only ``endpoint_url``, ``key``, ``secret``, ``token``, ``anon``,
  ``client_kwargs`` (``endpoint_url``, ``region_name``) and ``config_kwargs`` (``max_pool_connections``);
- it has an endpoint (options, ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``, or the profile's
  ``endpoint_url``; a profile with endpoints per service leaves the location to s3fs), or it is on AWS
  and S3 tells the bucket's region (one HEAD of the bucket, :func:`bucket_region`): AWS answers a request
  sent to another region with a redirect that botocore follows and obstore does not;
- botocore finds credentials (options, environment, profile, ``~/.aws``, instance metadata: the chain
  s3fs uses), which obstore then asks botocore for again before they expire; or the options say ``anon``;
- this process has not been forked from one that already used obstore (its runtime does not survive a
  fork: a forked DataLoader worker reads through s3fs);
- ``MRNET_S3_CLIENT`` is not ``s3fs`` (the way to rule it out, e.g. to compare the two).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import obstore
import obstore.exceptions
import zarr.abc.store
import zarr.storage
from obstore.store import S3Store

CLIENT_ENV = "MRNET_S3_CLIENT"
_OPTIONS = {"endpoint_url", "key", "secret", "token", "anon", "client_kwargs", "config_kwargs", "skip_instance_cache"}
_CLIENT_KWARGS = {"endpoint_url", "region_name"}
_CONFIG_KWARGS = {"max_pool_connections"}
#: How long obstore keeps credentials from botocore before asking again (botocore refreshes expiring ones).
_CREDENTIALS_FOR = datetime.timedelta(minutes=5)
BLOCK = 8 * 2**20  # what a download holds in memory at once

_used = False  # this process has made an obstore client (its runtime runs threads from its first request)
_forked_after_use = False


def _after_fork() -> None:
    global _forked_after_use
    _forked_after_use = _forked_after_use or _used


os.register_at_fork(after_in_child=_after_fork)


@dataclass(frozen=True)
class Objects:
    """obstore clients for one bucket; paths are fsspec paths (``bucket/key``), as ``Location.path`` gives."""

    bucket: str
    config: dict[str, Any]
    credentials: Any  # obstore's credential callback, or None (static or no signature)

    @cached_property
    def store(self) -> S3Store:
        return self._client()

    def _client(self, prefix: str | None = None) -> S3Store:
        global _used
        _used = True  # from here on a fork's child must not use obstore (module docstring)
        client = {"allow_http": True} if self.config.get("endpoint", "").startswith("http://") else {}
        return S3Store(
            self.bucket,
            prefix=prefix,
            config=self.config,  # type: ignore[arg-type]
            client_options=client,  # type: ignore[arg-type]
            credential_provider=self.credentials,
        )

    def zarr_store(self, root: str) -> zarr.abc.store.Store:
        """Zarr's read-only store over obstore for the store at ``root`` (an fsspec path, ``bucket/x.zarr``)."""
        return zarr.storage.ObjectStore(self._client(self._key(root)), read_only=True)

    def _key(self, path: str) -> str:
        return path[len(self.bucket) + 1 :]

    def get(self, path: str) -> bytes:
        """A whole object in one GET; ``FileNotFoundError`` when there is none."""
        return bytes(self._call(path, lambda key: obstore.get(self.store, key).bytes()))

    def tail(self, path: str, size: int) -> bytes:
        """The last ``size`` bytes of an object, in one GET with a suffix range."""
        return bytes(
            self._call(path, lambda key: obstore.get(self.store, key, options={"range": {"suffix": size}}).bytes())
        )

    def download(self, path: str, target: str) -> None:
        """Write the object at ``path`` to the local file ``target``, streamed (a shard may be tens of MB)."""

        def write(key: str) -> None:
            with open(target, "wb") as out:
                for chunk in obstore.get(self.store, key).stream(min_chunk_size=BLOCK):
                    out.write(chunk)

        self._call(path, write)

    def ranges(self, path: str, starts: list[int], ends: list[int]) -> list[memoryview]:
        """Byte ranges of one object, fetched concurrently; ranges less than 1 MiB apart share a GET
        (obstore's default), so a crop of a small feature over several layers is one request."""
        blobs = self._call(path, lambda key: obstore.get_ranges(self.store, key, starts=starts, ends=ends))
        return [memoryview(blob) for blob in blobs]

    def _call(self, path: str, request):
        """``request(key)``; obstore's errors as an ``OSError`` naming the object. One from a server that could not
        be reached, or refused, keeps obstore's error as its cause (``core.errors.as_user_error`` names it so);
        a range past the object's end is the object's own damage, as a short range or a missing object is."""
        try:
            return request(self._key(path))
        except obstore.exceptions.BaseError as err:  # FileNotFoundError passes as itself
            what = f"{path}: {str(err).splitlines()[0]}"
            if "Range Not Satisfiable" in what:
                raise OSError(what) from None
            raise OSError(what) from err


#: The environment variables a client's settings are read from: a changed one makes a new client.
_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    CLIENT_ENV,
)
_CACHE: dict[tuple, Objects | None] = {}
os.register_at_fork(after_in_child=_CACHE.clear)


def objects_for(url: str, options: dict[str, Any]) -> Objects | None:
    """The obstore client for a store at ``url`` with fsspec ``options``, or None where s3fs must read it
    (the module docstring lists when); one per location, options and environment."""
    key = (url, repr(sorted(options.items())), tuple(os.environ.get(name) for name in _ENV), _forked_after_use)
    if key not in _CACHE:
        settings = s3_settings(url, options)
        _CACHE[key] = None if settings is None else Objects(*settings)
    return _CACHE[key]


def s3_settings(url: str, options: dict[str, Any]) -> tuple[str, dict[str, Any], Any] | None:
    """``(bucket, obstore S3 config, credential provider or None)`` for ``url`` and fsspec ``options``.

    >>> s3_settings("s3://b/x.zarr", {"endpoint_url": "http://127.0.0.1:9000", "anon": True})
    ('b', {'region': 'us-east-1', 'endpoint': 'http://127.0.0.1:9000', 'skip_signature': True}, None)
    >>> s3_settings("s3://b/x.zarr", {"requester_pays": True}) is None
    True
    """
    if not url.startswith(("s3://", "s3a://")) or os.environ.get(CLIENT_ENV, "").lower() == "s3fs" or _forked_after_use:
        return None
    client_kwargs, config_kwargs = options.get("client_kwargs") or {}, options.get("config_kwargs") or {}
    if set(options) - _OPTIONS or set(client_kwargs) - _CLIENT_KWARGS or set(config_kwargs) - _CONFIG_KWARGS:
        return None
    import botocore.session

    session = botocore.session.get_session()
    scoped = session.get_scoped_config()  # the profile's settings in ~/.aws/config
    if "services" in scoped or os.environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"):
        return None  # endpoints per service, or configured ones ignored: botocore's rules, so s3fs's client
    endpoint = (
        options.get("endpoint_url")
        or client_kwargs.get("endpoint_url")
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
        or scoped.get("endpoint_url")
    )
    credentials: Any = None  # anon: requests go unsigned
    if not options.get("anon"):
        if options.get("key") and options.get("secret"):
            static = {
                "access_key_id": options["key"],
                "secret_access_key": options["secret"],
                "token": options.get("token"),
            }
            credentials = lambda: {**static, "expires_at": None}  # noqa: E731
        elif (found := session.get_credentials()) is not None:
            credentials = _Botocore(found)
        else:
            return None  # s3fs says what is missing in its own words
    bucket = url.split("://", 1)[1].split("/", 1)[0]
    if endpoint:
        region = client_kwargs.get("region_name") or session.get_config_variable("region") or "us-east-1"
        config: dict[str, Any] = {"region": region, "endpoint": endpoint}
    elif (region := bucket_region(bucket)) is not None:  # AWS: the bucket's own region, not the one configured
        config = {"region": region}  # (asked last: it is a request)
    else:
        return None
    if options.get("anon"):
        config["skip_signature"] = True
    return bucket, config, credentials


def bucket_region(bucket: str, url: str = "https://{bucket}.s3.amazonaws.com", timeout: float = 10.0) -> str | None:
    """The AWS region of ``bucket``, from the ``x-amz-bucket-region`` header S3 sends with any answer to a
    HEAD of the bucket (301 and 403 included; no credentials needed); None when there is no answer.

    botocore follows S3's redirect to a bucket's region; obstore does not, so it is told the region."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url.format(bucket=bucket), method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.headers.get("x-amz-bucket-region")
    except urllib.error.HTTPError as err:
        return err.headers.get("x-amz-bucket-region")
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class _Botocore:
    """obstore's credential callback over botocore's credentials (which refresh themselves)."""

    credentials: Any

    def __call__(self) -> dict[str, Any]:
        frozen = self.credentials.get_frozen_credentials()
        return {
            "access_key_id": frozen.access_key,
            "secret_access_key": frozen.secret_key,
            "token": frozen.token,
            "expires_at": datetime.datetime.now(datetime.UTC) + _CREDENTIALS_FOR,
        }
