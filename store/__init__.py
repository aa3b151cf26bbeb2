"""Feature stores: Zarr v3 arrays of frame-level features plus the Polars manifests that describe them.

``FeatureStore.open(path_or_url)`` reads; ``StoreWriter.open(location, provenance)`` writes.
"""

from mrnet.store.format import FORMAT_VERSION, Provenance, track_key
from mrnet.store.location import Location
from mrnet.store.reader import FeatureStore
from mrnet.store.writer import StoreWriter

__all__ = ["FORMAT_VERSION", "FeatureStore", "Location", "Provenance", "StoreWriter", "track_key"]
