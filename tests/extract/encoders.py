"""Tiny random encoders of each family, written by ``save_pretrained`` (model + feature extractor) so the
engine loads them through the same ``from_pretrained`` path as a hub name; and a tiny MERT-like
remote-code folder (a config with ``auto_map`` pointing at modeling code written next to it)."""

from __future__ import annotations

import json
from pathlib import Path

SMALL = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=37,
    conv_dim=(16, 16, 16),
    conv_kernel=(10, 3, 3),
    conv_stride=(5, 2, 2),
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=2,
)
FAMILIES = ("wavlm", "hubert", "wav2vec2", "data2vec-audio")

MERT_CONFIG = """from transformers import HubertConfig


class TinyMertConfig(HubertConfig):
    model_type = "tiny_mert"
"""
MERT_MODEL = """from transformers import HubertModel

from .configuration_tiny_mert import TinyMertConfig


class TinyMertModel(HubertModel):
    config_class = TinyMertConfig
"""


def save_encoder(family: str, path: Path, *, normalize: bool = True, rate: int = 16000) -> str:
    import torch
    import transformers as tf

    config = {
        "wavlm": tf.WavLMConfig,
        "hubert": tf.HubertConfig,
        "wav2vec2": tf.Wav2Vec2Config,
        "data2vec-audio": tf.Data2VecAudioConfig,
    }[family]
    extra = {"num_buckets": 32, "max_bucket_distance": 64} if family == "wavlm" else {}
    extra |= {"conv_pos_kernel_size": 5, "num_conv_pos_embeddings": 5} if family == "data2vec-audio" else {}
    torch.manual_seed(0)
    tf.AutoModel.from_config(config(**(SMALL | extra))).eval().save_pretrained(path)
    tf.Wav2Vec2FeatureExtractor(sampling_rate=rate, do_normalize=normalize).save_pretrained(path)
    return str(path)


def save_tiny_mert(path: Path) -> str:
    """A HuBERT-shaped model whose config names its own classes through auto_map, at MERT's 24 kHz."""
    import torch
    import transformers as tf

    torch.manual_seed(0)
    tf.HubertModel(tf.HubertConfig(**SMALL)).eval().save_pretrained(path)
    tf.Wav2Vec2FeatureExtractor(sampling_rate=24000, do_normalize=True).save_pretrained(path)
    (path / "configuration_tiny_mert.py").write_text(MERT_CONFIG)
    (path / "modeling_tiny_mert.py").write_text(MERT_MODEL)
    config = json.loads((path / "config.json").read_text())
    config |= {
        "model_type": "tiny_mert",
        "architectures": ["TinyMertModel"],
        "auto_map": {
            "AutoConfig": "configuration_tiny_mert.TinyMertConfig",
            "AutoModel": "modeling_tiny_mert.TinyMertModel",
        },
    }
    (path / "config.json").write_text(json.dumps(config, indent=2))
    return str(path)
