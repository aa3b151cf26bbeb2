"""Stage 1: datasets as they ship -> frame-level features in a Zarr feature store.

``mrnet.extract.pipeline.run(ExtractConfig(...))`` is what ``mrnet-extract`` calls;
``mrnet.extract.features.Extractor`` turns one audio file into features the same way.
"""
