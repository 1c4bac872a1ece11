"""The reference GAU-alpha: bert4keras's own ``RoFormerV2`` + ``GatedAttentionUnit``.

This is how the GAU-alpha authors composed the model from bert4keras parts. It is the parity
oracle of the tests (:class:`gau_alpha.GAU_alpha` must give the same outputs from the same
checkpoint) and the speed baseline of the benchmarks; it is not part of the package.

Importable as ``reference`` by the tests (tests/ is on ``sys.path`` via ``conftest.py``) and
as ``tests.reference`` from the repository root (``python -m benchmarks.run``). Self-contained
for that reason: it imports nothing else from tests/.

Graph: ``Embedding-Token`` + ``Embedding-Segment`` -> per block ``Transformer-i-GatedAttentionUnit``
(bert4keras's GAU: ``softmax_plus``, RoPE, no biases) -> dropout -> residual add -> RMS norm
(post-norm). Inputs token ids and segment ids ``(B, N)``, output hidden states ``(B, N, H)``.
Checkpoint names come from :mod:`gau_alpha.spec`, like the package model's.
"""
from __future__ import annotations

from typing import Dict, List

import gau_alpha  # noqa: F401  (first: adapts bert4keras to this TensorFlow when it is imported)
from bert4keras import models as b4k_models
from bert4keras.layers import Add, Dropout, LayerNormalization
from bert4keras.layers import GatedAttentionUnit as Bert4kerasGAU
from gau_alpha import spec

__all__ = ["ReferenceGAUAlpha"]


class ReferenceGAUAlpha(b4k_models.RoFormerV2):
    """RoFormerV2 whose attention + feed-forward pairs are single bert4keras GAU layers."""

    def initializer(self, shape, dtype=None, order=3, gain=1.0):
        # GAU-alpha uses order 3 where RoFormerV2 uses 2
        return super().initializer(shape, dtype, order, gain)

    def apply_main_layers(self, inputs, index: int):
        """One block: ``(B, N, H)`` -> GAU -> dropout -> add -> RMS norm -> ``(B, N, H)``."""
        name = "Transformer-%d-GatedAttentionUnit" % index
        mask = self.compute_attention_bias(index)
        sinusoid = self.compute_position_bias(inputs)
        layer_inputs, arguments = [inputs, sinusoid], {"a_bias": None, "p_bias": "rotary"}
        if mask is not None:
            arguments["a_bias"] = True
            layer_inputs.insert(1, mask)
        h = self.apply(
            inputs=layer_inputs, layer=Bert4kerasGAU, arguments=arguments,
            units=self.intermediate_size, key_size=self.attention_key_size,
            activation=self.hidden_act, use_bias=False, normalization="softmax_plus",
            attention_dropout=self.attention_dropout_rate,
            kernel_initializer=self.initializer, name=name,
        )
        h = self.apply(inputs=h, layer=Dropout, rate=self.dropout_rate, name=name + "-Dropout")
        x = self.apply(inputs=[inputs, h], layer=Add, name=name + "-Add")
        return self.apply(
            inputs=x, layer=LayerNormalization, zero_mean=False, scale=False, offset=False,
            name=name + "-Norm",
        )

    def variable_mapping(self) -> Dict[str, List[str]]:
        """Keras layer name -> TF1 variable names of the released checkpoint (from the spec)."""
        return spec.variable_mapping(spec.ModelDims(
            vocab_size=self.vocab_size, hidden_size=self.hidden_size, intermediate_size=self.intermediate_size,
            attention_key_size=self.attention_key_size, num_hidden_layers=self.num_hidden_layers,
            type_vocab_size=self.segment_vocab_size, embedding_size=self.embedding_size))
