"""``GAUAlphaMaskedLMPreprocessor``: strings -> masked ``token_ids`` + ``mask_positions`` and labels.

keras-hub's ``MaskedLMPreprocessor`` with the GAU-alpha tokenizer: pack ``[CLS] a [SEP]``,
select ``mask_selection_rate`` of the non-special tokens (at most ``mask_selection_length``),
replace 80% of them by ``[MASK]``, 10% by a random token; the labels are the original ids at
``mask_positions`` with weights 1 (0 for unused slots).
"""
from __future__ import annotations

import keras
from keras_hub.src.models.masked_lm_preprocessor import MaskedLMPreprocessor

from gau_alpha.keras3.backbone import GAUAlphaBackbone
from gau_alpha.keras3.tokenizer import GAUAlphaTokenizer

__all__ = ["GAUAlphaMaskedLMPreprocessor"]


@keras.saving.register_keras_serializable(package="gau_alpha")
class GAUAlphaMaskedLMPreprocessor(MaskedLMPreprocessor):
    """Dynamic masking for :class:`GAUAlphaMaskedLM`.

    Returns ``(x, y, sample_weight)``: ``x`` ``{"token_ids", "segment_ids", "padding_mask"}``
    (B, N) and ``"mask_positions"`` (B, P); ``y`` the masked ids (B, P); weights (B, P).
    """

    backbone_cls = GAUAlphaBackbone
    tokenizer_cls = GAUAlphaTokenizer
