#!/usr/bin/env python
"""A custom Keras layer inside each GAU-alpha block: a learnable gate on the GAU's residual branch.

    python examples/extend/custom_gau_layer.py                  # a small random release, built here
    python examples/extend/custom_gau_layer.py --model-dir weights/chinese_GAU-alpha-char_L-24_H-768

The default block is ``x = Norm(x + Dropout(GAU(x)))``. This variant computes
``x = Norm(x + Dropout(gate * GAU(x)))`` with ``gate`` a per-channel weight (H,) of a new
``ResidualGate`` layer, plugged in by overriding ``GAU_alpha.apply_main_layers``. The gate
starts at ``--gate-init`` (0.5): the pre-trained GAU's contribution is damped at first and
fine-tuning learns how much of it to use (cf. ReZero). The checks (assertions):

1. the variant loads the release checkpoint strictly (every tensor used, none missing),
   so its GAU weights are the checkpoint's;
2. its output differs from the default model's on the same input;
3. with every gate set to 1 its output is the default model's: the variant changes only
   what the gate does;
4. the gate is trainable: one training step changes it.
"""
import argparse
import tempfile
from pathlib import Path

import numpy as np

import gau_alpha  # first: selects tf-keras and adapts bert4keras
import tensorflow as tf
from bert4keras.optimizers import AdaFactor
from gau_alpha import GatedAttentionUnit, build_transformer_model, read_tf1_checkpoint
from gau_alpha.model_dir import create_random_model_dir, open_model_dir
from gau_alpha.tokenization import load_tokenizer

keras = tf.keras


class ResidualGate(keras.layers.Layer):
    """``x * gate`` with one learnable gate per channel: (B, N, H) -> (B, N, H)."""

    def __init__(self, gate_init=0.5, **kwargs):
        super().__init__(**kwargs)
        self.gate_init = gate_init

    def build(self, input_shape):
        self.gate = self.add_weight(name="gate", shape=(int(input_shape[-1]),),
                                    initializer=keras.initializers.Constant(self.gate_init))
        super().build(input_shape)

    def call(self, inputs):
        return inputs * self.gate

    def compute_mask(self, inputs, mask=None):
        return mask

    def get_config(self):
        return dict(super().get_config(), gate_init=self.gate_init)


class GatedResidualGAU(gau_alpha.GAU_alpha):
    """GAU-alpha whose blocks are ``Norm(x + Dropout(gate * GAU(x)))``."""

    gate_init = 0.5

    def apply_main_layers(self, inputs, index):
        x = inputs
        name = "Transformer-%d-GatedAttentionUnit" % index  # the release's layer names: its weights load
        h, _ = self.apply_attention(
            [x], index, None, layer=GatedAttentionUnit, units=self.intermediate_size,
            key_size=self.attention_key_size, activation=self.hidden_act, use_bias=False,
            normalization=self.normalization, attention_dropout=self.attention_dropout_rate,
            kernel_initializer=self.initializer, name=name,
        )
        h = self.apply(inputs=h, layer=ResidualGate, gate_init=self.gate_init, name="%s-Gate" % name)
        return self.apply_post_norm(x, h, name)  # Dropout -> Add -> Norm, as the default block


def main() -> None:
    parser = argparse.ArgumentParser(description="A custom gate layer inside GAU-alpha's blocks.")
    parser.add_argument("--model-dir", type=Path, help="the release (default: a small random one, built here)")
    parser.add_argument("--gate-init", type=float, default=0.5)
    args = parser.parse_args()
    GatedResidualGAU.gate_init = args.gate_init

    with tempfile.TemporaryDirectory() as scratch:
        files = open_model_dir(args.model_dir) if args.model_dir else create_random_model_dir(Path(scratch) / "release")
        config, checkpoint = str(files.config), str(files.checkpoint)
        # 1. strict loading: a missing, unused or mis-shaped tensor would raise CheckpointError here
        variant = build_transformer_model(config, checkpoint, model=GatedResidualGAU)
        default = build_transformer_model(config, checkpoint, model="gau_alpha")
        tensors = read_tf1_checkpoint(checkpoint)
        tokenizer = load_tokenizer(files.vocab)

    kernel = variant.get_layer("Transformer-0-GatedAttentionUnit").i_dense.kernel.numpy()
    assert any(np.array_equal(kernel, value) for value in tensors.values()), "GAU weights not from the checkpoint"
    print("1. strict loading: %d checkpoint tensors, the GAU kernels are the checkpoint's" % len(tensors))

    token_ids, segment_ids = tokenizer.encode("今天天气不错，我们去公园散步吧。")
    inputs = [np.array([token_ids]), np.array([segment_ids])]
    gated, plain = variant.predict(inputs, verbose=0), default.predict(inputs, verbose=0)
    difference = float(np.abs(gated - plain).max())
    assert difference > 1e-3, difference
    print("2. gate %.2f: output differs from the default GAU-alpha by up to %.4f" % (args.gate_init, difference))

    gates = [layer for layer in variant.layers if isinstance(layer, ResidualGate)]
    for layer in gates:
        layer.gate.assign(tf.ones_like(layer.gate))
    np.testing.assert_allclose(variant.predict(inputs, verbose=0), plain, rtol=1e-5, atol=1e-5)
    print("3. gate 1: output equals the default GAU-alpha's (%d gates)" % len(gates))

    before = gates[0].gate.numpy().copy()
    variant.compile(loss=lambda _, hidden: tf.reduce_mean(tf.square(hidden[:, 0])),  # any loss will do
                    optimizer=AdaFactor(learning_rate=1e-2, beta1=0.9, min_dim_size_to_factor=10**6))
    variant.train_on_batch(inputs, np.zeros((1,)))
    assert not np.array_equal(before, gates[0].gate.numpy())
    print("4. one training step changed the gate: trainable")
    print("all checks passed")


if __name__ == "__main__":
    main()
