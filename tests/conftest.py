"""Shared fixtures: a tiny WavLM saved locally and loaded through the same from_pretrained path as
``microsoft/wavlm-base`` (no download anywhere in the test suite)."""

from __future__ import annotations

import pytest


def save_tiny_wavlm(path) -> str:
    """A 2-layer, 32-wide WavLM with WavLM-base's convolutional front end (stride 320, receptive 400)."""
    import torch
    from transformers import WavLMConfig, WavLMModel

    cfg = WavLMConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(32,) * 7,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, num_buckets=32, max_bucket_distance=64,
    )
    torch.manual_seed(0)
    WavLMModel(cfg).eval().save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_wavlm(tmp_path_factory) -> str:
    return save_tiny_wavlm(tmp_path_factory.mktemp("tiny-wavlm"))
