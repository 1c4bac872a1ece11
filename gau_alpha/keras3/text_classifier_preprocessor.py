"""``GAUAlphaTextClassifierPreprocessor``: strings -> ``token_ids``/``segment_ids``/``padding_mask``.

Single sentences give ``[CLS] a [SEP]`` (segment 0); pairs ``(a, b)`` give
``[CLS] a [SEP] b [SEP]`` with segment ids 0 then 1, as bert4keras's ``encode(a, b)``, padded
with ``[PAD]`` (0) to ``sequence_length`` and truncated by keras-hub's ``round_robin`` (or
``waterfall``) packer. Works on Python inputs and inside ``tf.data`` (keras-hub's
``TextClassifierPreprocessor``).
"""
from __future__ import annotations

import keras
from keras_hub.src.models.text_classifier_preprocessor import TextClassifierPreprocessor

from gau_alpha.keras3.backbone import GAUAlphaBackbone
from gau_alpha.keras3.tokenizer import GAUAlphaTokenizer

__all__ = ["GAUAlphaTextClassifierPreprocessor"]


@keras.saving.register_keras_serializable(package="gau_alpha")
class GAUAlphaTextClassifierPreprocessor(TextClassifierPreprocessor):
    """Tokenize and pack one or two text segments for :class:`GAUAlphaTextClassifier`.

    Args:
        tokenizer: a :class:`GAUAlphaTokenizer`.
        sequence_length: packed length N (default 512).
        truncate: ``round_robin`` or ``waterfall``.

    Call: ``preprocessor(x, y=None, sample_weight=None)`` with ``x`` a batch of strings or a
    tuple of two batches; returns ``{"token_ids", "segment_ids", "padding_mask"}`` (B, N).
    """

    backbone_cls = GAUAlphaBackbone
    tokenizer_cls = GAUAlphaTokenizer
