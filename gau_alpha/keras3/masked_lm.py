"""``GAUAlphaMaskedLM``: GAU-alpha with its tied masked-language-model head (keras-hub ``MaskedLM``).

Head: the hidden states at ``mask_positions`` (B, P, H) times the token embeddings transposed
(``Embedding-Token``, reversible: no new weights, no bias, as the release) -> logits (B, P, V),
float32. ``softmax`` of them is bert4keras's MLM output at those positions.
"""
from __future__ import annotations

from typing import Any

import keras
from keras import ops
from keras_hub.src.models.masked_lm import MaskedLM

from gau_alpha.keras3.backbone import GAUAlphaBackbone
from gau_alpha.keras3.masked_lm_preprocessor import GAUAlphaMaskedLMPreprocessor

__all__ = ["GAUAlphaMaskedLM", "GAUAlphaMaskedLMHead"]


@keras.saving.register_keras_serializable(package="gau_alpha")
class GAUAlphaMaskedLMHead(keras.layers.Layer):
    """Tied MLM head: gather (B, N, H) at ``mask_positions`` (B, P) -> logits (B, P, V) float32."""

    def __init__(self, token_embedding: Any = None, **kwargs):
        super().__init__(autocast=False, **kwargs)
        self.token_embedding = token_embedding

    def call(self, inputs, mask_positions):
        positions = ops.expand_dims(ops.cast(mask_positions, "int32"), axis=-1)
        gathered = ops.take_along_axis(inputs, positions, axis=1)
        return ops.cast(self.token_embedding(gathered, reverse=True), "float32")

    def compute_output_shape(self, inputs_shape, mask_positions_shape):
        return (inputs_shape[0], mask_positions_shape[1], self.token_embedding.input_dim)


@keras.saving.register_keras_serializable(package="gau_alpha")
class GAUAlphaMaskedLM(MaskedLM):
    """Masked language model (fill-mask) with GAU-alpha.

    Inputs: the backbone's three inputs and ``mask_positions`` (B, P); output logits (B, P, V).
    """

    backbone_cls = GAUAlphaBackbone
    preprocessor_cls = GAUAlphaMaskedLMPreprocessor

    def __init__(self, backbone: GAUAlphaBackbone, preprocessor: Any = None, **kwargs):
        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor
        self.masked_lm_head = GAUAlphaMaskedLMHead(token_embedding=backbone.token_embedding, name="mlm_head")
        # === Functional model ===
        inputs = {**backbone.input,
                  "mask_positions": keras.Input(shape=(None,), dtype="int32", name="mask_positions")}
        outputs = self.masked_lm_head(backbone(backbone.input), inputs["mask_positions"])
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

    @classmethod
    def from_preset(cls, preset: Any, load_weights: bool = True, **kwargs):
        from gau_alpha.keras3 import presets

        if presets.preset_format(preset) == presets.KERAS_HUB:
            return super().from_preset(preset, load_weights=load_weights, **kwargs)
        return presets.load_task(cls, preset, load_weights=load_weights, **kwargs)
