"""Where a transformers model's files come from: a local folder, this machine's hub cache, or the hub.

Offline, ``from_pretrained`` spends half a minute in retries before it gives up. :func:`offline`
answers at once instead: ``HF_HUB_OFFLINE`` set, or the hub endpoint (or the HTTPS proxy in front of
it) refusing a TCP connection within :data:`CONNECT_SECONDS`. The engines then load with
``local_files_only=True``: a model in the cache still loads, and one that is not fails in a second
with a message that says what to do (:func:`unavailable`).

A dry run loads no weights: :func:`weights_here` and :func:`local_json` say, without asking the hub,
whether a model's weights and its config are on this machine (its folder, or the hub cache).

>>> offline("/")  # a local folder never asks the hub
False
>>> local_json("/nonexistent-model-folder", "config.json") is None
True
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

from mrnet.core.errors import UserError

CONNECT_SECONDS = 3.0
#: the files ``from_pretrained`` loads weights from, one of which a model has
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def is_local(model: str) -> bool:
    """Whether ``model`` names a folder on this machine (written by ``save_pretrained``)."""
    return Path(model).expanduser().is_dir()


def endpoint() -> str:
    """The hub address ``huggingface_hub`` uses (``HF_ENDPOINT``, default https://huggingface.co)."""
    from huggingface_hub import constants

    return str(constants.ENDPOINT)


def offline(model: str) -> bool:
    """Whether ``model`` must come from this machine's cache: it is not a local folder, and the hub is
    switched off (``HF_HUB_OFFLINE``) or cannot be reached."""
    if is_local(model):
        return False
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return True
    return not _reachable(os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy") or endpoint())


def _reachable(url: str) -> bool:
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if not parts.hostname:
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=CONNECT_SECONDS):
            return True
    except OSError:
        return False


def local_file(model: str, name: str, revision: str | None = None) -> Path | None:
    """File ``name`` of ``model`` on this machine (in its folder, or in the Hugging Face cache at
    ``revision``); None when it is not here. Never asks the hub."""
    if is_local(model):
        path = Path(model).expanduser() / name
        return path if path.is_file() else None
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(model, name, revision=revision)
    except ValueError:  # not a repository name the hub could have (a path that is not a folder, ...)
        return None
    return Path(found) if isinstance(found, str) else None


def weights_here(model: str, revision: str | None = None) -> bool:
    """Whether ``model``'s weights are on this machine: loading it then downloads nothing."""
    return any(local_file(model, name, revision) is not None for name in WEIGHT_FILES)


def local_json(model: str, name: str, revision: str | None = None) -> dict | None:
    """``model``'s JSON file ``name`` (config.json, preprocessor_config.json) if it is on this machine."""
    path = local_file(model, name, revision)
    if path is None:
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def unavailable(model: str, err: Exception, *, offline: bool, what: str, example: str) -> UserError:
    """The error for weights that could not be loaded, naming the option and the ways out."""
    reason = str(err).splitlines()[0] if str(err) else type(err).__name__
    where = (
        (
            f"it is not in this machine's Hugging Face cache and the hub ({endpoint()}) cannot be reached"
            + (" (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") else "")
        )
        if offline
        else reason
    )
    return UserError(
        f"--model {model!r}: cannot load {what} ({where}). Give a hub name this machine can download (e.g. {example}), "
        "a local directory written by save_pretrained, or use --features mel (no weights needed)."
    )


def local_digest(model: str, suffixes: tuple[str, ...] = (".json", ".safetensors", ".bin")) -> str | None:
    """``local:<sha1 of the folder's config, weights (and, given ".py", code)>`` for a model folder, so a
    store records which weights it was made with; ``None`` for a hub name."""
    path = Path(model).expanduser()
    if not path.is_dir():
        return None
    digest = hashlib.sha1()
    for name in sorted(os.listdir(path)):
        if name.endswith(suffixes):
            digest.update(name.encode())
            digest.update((path / name).read_bytes())
    return f"local:{digest.hexdigest()[:16]}"
