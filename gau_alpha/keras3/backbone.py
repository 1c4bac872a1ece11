"""``GAUAlphaBackbone``: the GAU-alpha encoder as a keras-hub ``Backbone`` (Keras 3, any backend).

Graph (layer names as in :mod:`gau_alpha.spec`, so the checkpoint spec applies unchanged)::

    token_ids (B, N), segment_ids (B, N), padding_mask (B, N)
      Embedding-Token (V x H, reversible: the tied MLM head) + Embedding-Segment (T x H)
      -> Embedding-Dropout -> Embedding-Norm (RMS, no parameters)
      -> L x [ Transformer-i-GatedAttentionUnit -> dropout -> add -> RMS norm ]
    -> (B, N, H)

``padding_mask`` (1 real, 0 padding) masks the keys of every attention. Loading:
:meth:`GAUAlphaBackbone.from_preset` accepts a release directory (TF1 ``bert_model.ckpt``,
read without TensorFlow), a directory in the torch (safetensors) layout and a keras-hub preset
(see :mod:`gau_alpha.keras3.presets`).
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import keras
from keras_hub.src.models.backbone import Backbone

from gau_alpha import spec
from gau_alpha.keras3.layers import DEFAULT_EPSILON, GAUAlphaInitializer, GatedAttentionUnit, RMSNorm

__all__ = ["GAUAlphaBackbone"]


@keras.saving.register_keras_serializable(package="gau_alpha")
class GAUAlphaBackbone(Backbone):
    """GAU-alpha encoder network.

    Args:
        vocabulary_size: V (12000 for the release).
        num_layers: L (24); hidden_dim: H (768); intermediate_dim: E (1536);
        key_size: S (128), the shared q/k size; num_segments: T (2).
        dropout: after the embeddings and each GAU; attention_dropout: on attention weights.
        activation: of the GAU projections (``swish``).
        normalization: ``softmax_plus`` (GAU-alpha), ``softmax`` or ``squared_relu``.
        softmax_plus_min_length: clamp of the key count (16 as bert4keras; None as the
            PyTorch port).
        residual_attention: None or ``cumulative`` / ``mean`` / ``previous`` (RealFormer).
        epsilon: of the RMS norm (1e-7, bert4keras's ``K.epsilon()``).
        dtype: a dtype or policy (``mixed_bfloat16`` ...); the attention normalisation and
            the RMS norm always run in float32.

    Inputs: ``{"token_ids", "segment_ids", "padding_mask"}``, int (B, N) each.
    Output: (B, N, hidden_dim).
    """

    def __init__(
        self,
        vocabulary_size: int,
        num_layers: int,
        hidden_dim: int,
        intermediate_dim: int,
        key_size: int,
        num_segments: int = 2,
        dropout: float = 0.1,
        attention_dropout: float = 0.1,
        activation: Any = "swish",
        normalization: str = "softmax_plus",
        softmax_plus_min_length: Optional[float] = 16.0,
        residual_attention: Optional[str] = None,
        max_wavelength: float = 10000.0,
        epsilon: float = DEFAULT_EPSILON,
        dtype: Any = None,
        **kwargs,
    ):
        initializer = GAUAlphaInitializer(num_layers)
        # === Layers ===
        self.token_embedding = keras.layers.ReversibleEmbedding(
            vocabulary_size, hidden_dim, embeddings_initializer=initializer, dtype=dtype, name="Embedding-Token")
        self.segment_embedding = keras.layers.Embedding(
            num_segments, hidden_dim, embeddings_initializer=initializer, dtype=dtype, name="Embedding-Segment")
        self.embeddings_add = keras.layers.Add(dtype=dtype, name="Embedding-Token-Segment")
        self.embeddings_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="Embedding-Dropout")
        self.embeddings_norm = RMSNorm(epsilon, dtype=dtype, name="Embedding-Norm")
        self.transformer_layers = []
        self.block_dropouts, self.block_adds, self.block_norms = [], [], []
        for index in range(num_layers):
            name = "Transformer-%d-GatedAttentionUnit" % index
            self.transformer_layers.append(GatedAttentionUnit(
                intermediate_dim, key_size, activation=activation, use_bias=False, normalization=normalization,
                attention_dropout=attention_dropout, softmax_plus_min_length=softmax_plus_min_length,
                residual_attention=residual_attention, layer_index=index, max_wavelength=max_wavelength,
                kernel_initializer=initializer, dtype=dtype, name=name))
            self.block_dropouts.append(keras.layers.Dropout(dropout, dtype=dtype, name=name + "-Dropout"))
            self.block_adds.append(keras.layers.Add(dtype=dtype, name=name + "-Add"))
            self.block_norms.append(RMSNorm(epsilon, dtype=dtype, name=name + "-Norm"))

        # === Functional model ===
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        segment_ids = keras.Input(shape=(None,), dtype="int32", name="segment_ids")
        padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        x = self.embeddings_add([self.token_embedding(token_ids), self.segment_embedding(segment_ids)])
        x = self.embeddings_norm(self.embeddings_dropout(x))
        scores = None
        for index, gau in enumerate(self.transformer_layers):
            if residual_attention is None:
                h = gau(x, padding_mask=padding_mask)
            else:
                h, scores = gau(x, padding_mask=padding_mask, previous_scores=scores)
            x = self.block_norms[index](self.block_adds[index]([x, self.block_dropouts[index](h)]))
        super().__init__(
            inputs={"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask},
            outputs=x,
            dtype=dtype,
            **kwargs,
        )

        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.num_layers = num_layers
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.key_size = key_size
        self.num_segments = num_segments
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.activation = keras.activations.serialize(keras.activations.get(activation))
        self.normalization = normalization
        self.softmax_plus_min_length = softmax_plus_min_length
        self.residual_attention = residual_attention
        self.max_wavelength = max_wavelength
        self.epsilon = epsilon
        self.start_token_index = 0

    @property
    def dims(self) -> spec.ModelDims:
        """The sizes that fix the checkpoint's tensors (:mod:`gau_alpha.spec`)."""
        return spec.ModelDims(
            vocab_size=self.vocabulary_size, hidden_size=self.hidden_dim, intermediate_size=self.intermediate_dim,
            attention_key_size=self.key_size, num_hidden_layers=self.num_layers, type_vocab_size=self.num_segments)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(
            vocabulary_size=self.vocabulary_size,
            num_layers=self.num_layers,
            hidden_dim=self.hidden_dim,
            intermediate_dim=self.intermediate_dim,
            key_size=self.key_size,
            num_segments=self.num_segments,
            dropout=self.dropout,
            attention_dropout=self.attention_dropout,
            activation=self.activation,
            normalization=self.normalization,
            softmax_plus_min_length=self.softmax_plus_min_length,
            residual_attention=self.residual_attention,
            max_wavelength=self.max_wavelength,
            epsilon=self.epsilon,
        )
        return config

    @classmethod
    def from_preset(cls, preset: Any, load_weights: bool = True, **kwargs):
        """A backbone from a release directory, a torch-layout directory or a keras-hub
        preset (:func:`gau_alpha.keras3.presets.load_backbone`)."""
        from gau_alpha.keras3 import presets

        if presets.preset_format(preset) == presets.KERAS_HUB:
            return super().from_preset(preset, load_weights=load_weights, **kwargs)
        return presets.load_backbone(preset, load_weights=load_weights, backbone_cls=cls, **kwargs)
