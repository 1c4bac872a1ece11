"""``GAUAlphaTextClassifier``: GAU-alpha + a classification head on ``[CLS]`` (keras-hub ``TextClassifier``).

Head: hidden state of the first token (B, H) -> dropout -> ``Dense(num_classes)`` named
``logits`` -> logits (B, C) (``activation=None``). ``compile()`` defaults (keras-hub): Adam 5e-5,
sparse categorical cross-entropy from logits, accuracy.
"""
from __future__ import annotations

from typing import Any

import keras
from keras_hub.src.models.text_classifier import TextClassifier

from gau_alpha.keras3.backbone import GAUAlphaBackbone
from gau_alpha.keras3.layers import GAUAlphaInitializer
from gau_alpha.keras3.text_classifier_preprocessor import GAUAlphaTextClassifierPreprocessor

__all__ = ["GAUAlphaTextClassifier"]


@keras.saving.register_keras_serializable(package="gau_alpha")
class GAUAlphaTextClassifier(TextClassifier):
    """Sentence (or sentence-pair) classification with GAU-alpha.

    Args:
        backbone: a :class:`GAUAlphaBackbone`.
        num_classes: C.
        preprocessor: a :class:`GAUAlphaTextClassifierPreprocessor` or None (then call it
            with ``{"token_ids", "segment_ids", "padding_mask"}``).
        activation: of the logits layer (None: logits; ``"softmax"``: probabilities).
        dropout: before the logits layer.

    ``GAUAlphaTextClassifier.from_preset(release_dir, num_classes=15, sequence_length=128)``
    loads the backbone strictly and builds the preprocessor from the directory's vocab.
    """

    backbone_cls = GAUAlphaBackbone
    preprocessor_cls = GAUAlphaTextClassifierPreprocessor

    def __init__(self, backbone: GAUAlphaBackbone, num_classes: int, preprocessor: Any = None,
                 activation: Any = None, dropout: float = 0.1, **kwargs):
        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor
        self.output_dropout = keras.layers.Dropout(dropout, dtype=backbone.dtype_policy, name="classifier_dropout")
        self.output_dense = keras.layers.Dense(
            num_classes, activation=activation, kernel_initializer=GAUAlphaInitializer(backbone.num_layers),
            dtype=backbone.dtype_policy, name="logits")
        # === Functional model ===
        inputs = backbone.input
        hidden = backbone(inputs)
        pooled = self.output_dropout(hidden[:, backbone.start_token_index, :])
        outputs = self.output_dense(pooled)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        # === Config ===
        self.num_classes = num_classes
        self.activation = keras.activations.get(activation)
        self.dropout = dropout

    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self.num_classes, activation=keras.activations.serialize(self.activation),
                      dropout=self.dropout)
        return config

    @classmethod
    def from_preset(cls, preset: Any, load_weights: bool = True, **kwargs):
        from gau_alpha.keras3 import presets

        if presets.preset_format(preset) == presets.KERAS_HUB:
            return super().from_preset(preset, load_weights=load_weights, **kwargs)
        return presets.load_task(cls, preset, load_weights=load_weights, **kwargs)
