"""The bottom layer every other package stands on: the user-facing error type, the machine (devices and
cores) and crash-safe file writes. It imports nothing from ``mrnet``.

    mrnet.core  <-  mrnet.manifests  <-  mrnet.store  <-  mrnet.extract, mrnet.train
"""
