"""The models the benchmark compares, and how each is built.

- ``gau_alpha``: ours, ``gau_alpha.build_transformer_model(config, model='gau_alpha')``.
- ``gau_alpha_xla``: the same model, its calls compiled with ``jit_compile=True``.
- ``reference``: GAU-alpha as its authors composed it from bert4keras parts: bert4keras's
  ``RoFormerV2`` skeleton whose attention + feed-forward pairs are single bert4keras
  ``GatedAttentionUnit`` layers (``softmax_plus``, no biases, post-norm, RMS norm), built
  with ``bert4keras.models.build_transformer_model(config, model=ReferenceGAUAlpha)``.
- ``roformer_v2``, ``bert``: bert4keras's own ``roformer_v2`` and ``bert`` at base size.

All GAU-alpha variants use the release's config (24 layers, hidden 768, expansion 1536,
key size 128, vocab 12000; :data:`gau_alpha.resources.RELEASE_CONFIG`). Importing this module
is light (no TensorFlow); :func:`build_model` imports :mod:`gau_alpha` before bert4keras.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from gau_alpha.model_dir import read_config
from gau_alpha.resources import RELEASE_CONFIG

MODEL_NAMES = ("reference", "gau_alpha", "gau_alpha_xla", "roformer_v2", "bert")

LABELS = {
    "reference": "GAU-alpha (reference, bert4keras layers)",
    "gau_alpha": "GAU-alpha (ours)",
    "gau_alpha_xla": "GAU-alpha (ours, XLA)",
    "roformer_v2": "RoFormerV2 base",
    "bert": "BERT base",
}

ARCHITECTURES = {
    "reference": "gau",
    "gau_alpha": "gau",
    "gau_alpha_xla": "gau",
    "roformer_v2": "mha",
    "bert": "mha",
}

# what the 12-layer, hidden-768 bert4keras base models share
_BASE: Dict[str, Any] = {
    "hidden_size": 768,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "type_vocab_size": 2,
}

#: chinese_roformer-v2-char_L-12_H-768_A-12
ROFORMER_V2_BASE: Dict[str, Any] = dict(_BASE, hidden_act="relu", vocab_size=12000)

#: chinese_L-12_H-768_A-12; max_position_embeddings is raised to the longest length run
BERT_BASE: Dict[str, Any] = dict(_BASE, hidden_act="gelu", vocab_size=21128, max_position_embeddings=512,
                                 initializer_range=0.02)


def gau_alpha_config() -> Dict[str, Any]:
    """The release's ``bert_config.json`` (24 layers, hidden 768)."""
    return read_config(RELEASE_CONFIG)


def model_config(name: str, max_length: int = 512, layers: Optional[int] = None) -> Dict[str, Any]:
    """The config the benchmark builds ``name`` with.

    Args:
        name: one of :data:`MODEL_NAMES`.
        max_length: longest sequence to run (BERT's position table is made at least this long).
        layers: override the layer count (``--quick``); BERT/RoFormerV2 get half of it
            (at least 1), keeping the base models' 24 : 12 ratio.
    """
    if name not in MODEL_NAMES:
        raise ValueError("unknown model %r; expected one of %s" % (name, ", ".join(MODEL_NAMES)))
    if ARCHITECTURES[name] == "gau":
        config = gau_alpha_config()
        if layers is not None:
            config["num_hidden_layers"] = int(layers)
    else:
        config = dict(ROFORMER_V2_BASE if name == "roformer_v2" else BERT_BASE)
        if layers is not None:
            config["num_hidden_layers"] = max(1, int(layers) // 2)
        if name == "bert":
            config["max_position_embeddings"] = max(512, int(max_length))
    if ARCHITECTURES[name] == "mha":
        config.setdefault("attention_key_size", config["hidden_size"] // config["num_attention_heads"])
    return config


def _reference_class():
    """bert4keras RoFormerV2 with one bert4keras GatedAttentionUnit per block, as the authors
    composed it: the tests' parity oracle (tests/reference.py, importable from the repository
    root, where the benchmarks run). Imported lazily: it imports TensorFlow."""
    from tests.reference import ReferenceGAUAlpha

    return ReferenceGAUAlpha


def build_model(name: str, config: Dict[str, Any]):
    """The Keras model ``name``: inputs token ids and segment ids (B, N), output the last
    hidden states (B, N, hidden). Random weights (the speed does not depend on them)."""
    import gau_alpha  # noqa: F401  (adapts bert4keras first)
    from bert4keras.models import build_transformer_model as bert4keras_build

    if name in ("gau_alpha", "gau_alpha_xla"):
        return gau_alpha.build_transformer_model(None, model="gau_alpha", **config)
    if name == "reference":
        return bert4keras_build(None, model=_reference_class(), **config)
    if name in ("roformer_v2", "bert"):
        return bert4keras_build(None, model=name, **config)
    raise ValueError("unknown model %r" % name)
