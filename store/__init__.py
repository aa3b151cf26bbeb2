"""Feature stores: Zarr v3 arrays of frame-level features plus the Polars manifests that describe them.

``FeatureStore.open(path_or_url)`` reads; ``StoreWriter.open(location, provenance)`` writes.

Names are resolved on first use, so ``mrnet.store.errors`` (which the manifests import) loads without
pulling in the reader and writer, which import the manifests in turn.
"""

from importlib import import_module

_EXPORTS = {
    "UserError": "errors",
    "FORMAT_VERSION": "format",
    "Provenance": "format",
    "track_key": "format",
    "Location": "location",
    "FeatureStore": "reader",
    "StoreWriter": "writer",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"mrnet.store.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'mrnet.store' has no attribute {name!r}")
