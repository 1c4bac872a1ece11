"""GAU-alpha for Keras 3 and keras-hub: one model on the JAX, TensorFlow and PyTorch backends.

Pick the backend before the first ``import keras`` (``KERAS_BACKEND=jax|tensorflow|torch``).
This package uses Keras 3 (``keras``), never tf-keras or bert4keras, even though
``import gau_alpha`` sets ``TF_USE_LEGACY_KERAS=1`` for the tf-keras side of the project (that
variable only changes what ``tf.keras`` is).

Classes (keras-hub conventions, one module each):

- :class:`GAUAlphaBackbone` (``backbone.py``): inputs ``token_ids``, ``segment_ids``,
  ``padding_mask`` (B, N) -> (B, N, H).
- :class:`GAUAlphaTokenizer` (``tokenizer.py``): bert4keras's ids with keras-hub's WordPiece.
- :class:`GAUAlphaTextClassifier` + :class:`GAUAlphaTextClassifierPreprocessor`.
- :class:`GAUAlphaMaskedLM` + :class:`GAUAlphaMaskedLMPreprocessor` (tied head).
- ``layers.py``: the GAU, RoPE, ``softmax_plus``, residual attention, the RMS norm.
- ``presets.py``: ``from_preset`` of a release directory (TF1 checkpoint read by
  ``tf1_reader.py``, numpy only), a torch-layout directory or a keras-hub preset; strict.
- ``clue.py``: CLUE classification on Keras 3 (:func:`gau_alpha.keras3.clue.run_keras3_clue`).

Note: keras-hub itself imports TensorFlow when it is installed (for ``tf.data``
preprocessing); the weight readers here do not need it.
"""
from __future__ import annotations

import keras as _keras

if not _keras.__version__.startswith("3."):  # pragma: no cover - guarded by the install
    raise ImportError("gau_alpha.keras3 needs Keras 3, found keras %s" % _keras.__version__)

from gau_alpha.keras3.backbone import GAUAlphaBackbone  # noqa: E402
from gau_alpha.keras3.layers import (  # noqa: E402
    GAUAlphaInitializer,
    GatedAttentionUnit,
    RMSNorm,
    ScaleOffset,
)
from gau_alpha.keras3.masked_lm import GAUAlphaMaskedLM, GAUAlphaMaskedLMHead  # noqa: E402
from gau_alpha.keras3.masked_lm_preprocessor import GAUAlphaMaskedLMPreprocessor  # noqa: E402
from gau_alpha.keras3.text_classifier import GAUAlphaTextClassifier  # noqa: E402
from gau_alpha.keras3.text_classifier_preprocessor import GAUAlphaTextClassifierPreprocessor  # noqa: E402
from gau_alpha.keras3.tokenizer import GAUAlphaTokenizer  # noqa: E402

__all__ = [
    "GAUAlphaBackbone",
    "GAUAlphaTokenizer",
    "GAUAlphaTextClassifier",
    "GAUAlphaTextClassifierPreprocessor",
    "GAUAlphaMaskedLM",
    "GAUAlphaMaskedLMHead",
    "GAUAlphaMaskedLMPreprocessor",
    "GatedAttentionUnit",
    "GAUAlphaInitializer",
    "RMSNorm",
    "ScaleOffset",
]
