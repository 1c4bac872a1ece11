#!/usr/bin/env python
"""RealFormer residual attention on GAU-alpha and RoFormerV2: same checkpoints, new attention.

    python examples/extend/realformer.py                        # small random models, built here
    python examples/extend/realformer.py --model-dir weights/chinese_GAU-alpha-char_L-24_H-768

``build_transformer_model(..., residual_attention_scores=True, residual_attention_mode=MODE)``
passes each layer's pre-softmax attention scores on to the next layer (RealFormer,
https://arxiv.org/abs/2012.11747): with ``cumulative`` layer l attends with ``S_l + P_{l-1}``.
It adds no weights, so a checkpoint of the plain model loads strictly into it. The checks:

1. the residual model loads the plain model's checkpoint (strict loading);
2. layer 0 has no previous scores: its output equals the plain model's;
3. from layer 1 on the attention differs: the final output differs from the plain model's;
4. GAU-alpha: the three modes (cumulative, mean, previous) give three different outputs (from 3 layers
   on: with 2, ``cumulative`` and ``previous`` coincide).
"""
import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

import gau_alpha  # noqa: F401  (first: selects tf-keras and adapts bert4keras)
import tensorflow as tf
from gau_alpha import build_transformer_model
from gau_alpha.model_dir import TINY_CONFIG, create_random_model_dir, open_model_dir
from gau_alpha.tokenization import load_tokenizer

keras = tf.keras
SMALL_CONFIG = {  # a 3-layer BERT-family model (RoFormerV2 ignores the position size) with the GAU-alpha vocab, random weights
    "hidden_size": 64, "num_hidden_layers": 3, "num_attention_heads": 2, "intermediate_size": 128,
    "hidden_act": "gelu", "vocab_size": 12000, "type_vocab_size": 2, "max_position_embeddings": 512,
    "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
}
LAST_OF_BLOCK_0 = {"gau_alpha": "Transformer-0-GatedAttentionUnit-Norm",
                   "bert": "Transformer-0-FeedForward-Norm", "roformer_v2": "Transformer-0-FeedForward-Norm"}


def outputs(config, checkpoint, model, inputs, **residual):
    """(block 0 output, final output) of ``model`` built from ``config`` and ``checkpoint``."""
    network = build_transformer_model(config, checkpoint, model=model, **residual)
    block0 = keras.Model(network.inputs, network.get_layer(LAST_OF_BLOCK_0[model]).output)
    inputs = [tf.constant(array) for array in inputs]
    return block0(inputs, training=False).numpy(), network(inputs, training=False).numpy()


def check(name, config, checkpoint, inputs, modes=("cumulative", "mean", "previous")):
    plain_block0, plain = outputs(config, checkpoint, name, inputs)
    finals = {}
    for mode in modes:
        block0, finals[mode] = outputs(config, checkpoint, name, inputs,
                                       residual_attention_scores=True, residual_attention_mode=mode)
        np.testing.assert_allclose(block0, plain_block0, rtol=1e-5, atol=1e-5)  # 2.
        assert np.abs(finals[mode] - plain).max() > 1e-4, mode  # 3.
    for a, b in zip(modes, modes[1:] + modes[:1]) if len(modes) > 1 else ():
        assert np.abs(finals[a] - finals[b]).max() > 1e-5, (a, b)  # 4.
    print("%-11s loads its plain checkpoint; block 0 unchanged; final output differs from the plain model "
          "by up to %.4f (cumulative)%s" % (name, np.abs(finals["cumulative"] - plain).max(),
                                           "; the modes %s differ" % ", ".join(modes) if len(modes) > 1 else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description="RealFormer residual attention on three model families.")
    parser.add_argument("--model-dir", type=Path, help="the GAU-alpha release (default: a small random one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        files = open_model_dir(args.model_dir) if args.model_dir else create_random_model_dir(
            scratch / "gau-alpha", config=dict(TINY_CONFIG, num_hidden_layers=3))  # 3 layers: modes differ
        tokenizer = load_tokenizer(files.vocab)
        token_ids, segment_ids = tokenizer.encode("残差注意力把上一层的注意力分数传给下一层。")
        inputs = [np.array([token_ids]), np.array([segment_ids])]
        check("gau_alpha", str(files.config), str(files.checkpoint), inputs)

        config = scratch / "bert_config.json"
        config.write_text(json.dumps(SMALL_CONFIG))
        for name in ("roformer_v2",):  # or "bert", "roberta", "roformer"
            plain = build_transformer_model(str(config), None, model=name, return_keras_model=False)
            plain.save_weights_as_checkpoint(str(scratch / name / "bert_model.ckpt"))  # a TF1 checkpoint
            check(name, str(config), str(scratch / name / "bert_model.ckpt"), inputs, modes=("cumulative",))
    print("all checks passed")


if __name__ == "__main__":
    main()
