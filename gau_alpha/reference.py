"""The reference GAU-alpha: bert4keras's own ``RoFormerV2`` + ``GatedAttentionUnit``.

This is how the GAU-alpha authors composed the model from bert4keras parts. It is kept as a
parity oracle (tests) and a speed baseline (benchmarks): :class:`gau_alpha.GAU_alpha` must give
the same outputs from the same checkpoint. Not meant for use otherwise.
"""
from __future__ import annotations

from typing import Dict, List

from bert4keras import models as b4k_models
from bert4keras.layers import Add, Dropout, LayerNormalization
from bert4keras.layers import GatedAttentionUnit as Bert4kerasGAU


class ReferenceGAUAlpha(b4k_models.RoFormerV2):
    """RoFormerV2 whose attention + feed-forward pairs are single bert4keras GAU layers."""

    def initializer(self, shape, dtype=None, order=3, gain=1.0):
        # GAU-alpha uses order 3 where RoFormerV2 uses 2
        return super().initializer(shape, dtype, order, gain)

    def apply_main_layers(self, inputs, index: int):
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
        mapping = {
            "Embedding-Token": ["bert/embeddings/word_embeddings"],
            "Embedding-Segment": ["bert/embeddings/token_type_embeddings"],
        }
        for i in range(self.num_hidden_layers):
            prefix = "GAU_alpha/encoder/layer_%d/gau/" % i
            mapping["Transformer-%d-GatedAttentionUnit" % i] = [
                prefix + "i_dense/kernel", prefix + "q_scaleoffset/gamma",
                prefix + "k_scaleoffset/gamma", prefix + "o_dense/kernel",
            ]
        return mapping
