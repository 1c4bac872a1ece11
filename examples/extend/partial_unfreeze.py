#!/usr/bin/env python
"""Load the GAU-alpha release and continue training with only the top blocks unfrozen.

    python examples/extend/partial_unfreeze.py                  # a small random release, built here
    python examples/extend/partial_unfreeze.py --model-dir weights/chinese_GAU-alpha-char_L-24_H-768 \\
        --unfreeze 4 --steps 200

The embeddings and the lower blocks are frozen (``layer.trainable = False`` before
``compile``); the top ``--unfreeze`` blocks and a new classifier head train on the bundled
tnews sample. The checks (assertions): every frozen weight is bit-for-bit what the
checkpoint held; every unfrozen weight of the encoder changed; the head changed.
"""
import argparse
import tempfile
from pathlib import Path

import numpy as np

import gau_alpha  # noqa: F401  (first: selects tf-keras and adapts bert4keras)
import tensorflow as tf
from bert4keras.optimizers import AdaFactor
from gau_alpha import build_transformer_model
from gau_alpha.clue import get_spec, load_split
from gau_alpha.clue.features import Feature, collate_inputs, epoch_batches
from gau_alpha.model_dir import create_random_model_dir, open_model_dir
from gau_alpha.resources import clue_sample_dir
from gau_alpha.tokenization import load_tokenizer

keras = tf.keras


def main() -> None:
    parser = argparse.ArgumentParser(description="Continue training GAU-alpha with the lower blocks frozen.")
    parser.add_argument("--model-dir", type=Path, help="the release (default: a small random one, built here)")
    parser.add_argument("--unfreeze", type=int, default=1, help="top blocks to train (default 1)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--maxlen", type=int, default=64)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        files = open_model_dir(args.model_dir) if args.model_dir else create_random_model_dir(Path(scratch) / "release")
        tokenizer = load_tokenizer(files.vocab, fast=True)
        transformer = build_transformer_model(str(files.config), str(files.checkpoint), model="gau_alpha",
                                              return_keras_model=False)
    encoder, layers = transformer.model, transformer.num_hidden_layers
    first_trained = layers - args.unfreeze
    for layer in encoder.layers:  # block i's layers are named "Transformer-i-..."
        parts = layer.name.split("-")
        in_top_block = parts[0] == "Transformer" and int(parts[1]) >= first_trained
        layer.trainable = in_top_block
    labels = list(get_spec("tnews").labels)
    first_token = keras.layers.Lambda(lambda x: x[:, 0])(encoder.output)
    logits = keras.layers.Dense(len(labels), kernel_initializer=transformer.initializer, name="classifier")(first_token)
    model = keras.Model(encoder.inputs, logits)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  optimizer=AdaFactor(learning_rate=1e-2, beta1=0.9, min_dim_size_to_factor=10**6))

    frozen = [(w, w.numpy()) for w in encoder.non_trainable_weights]  # (variable, value before training)
    unfrozen = [(w, w.numpy()) for w in encoder.trainable_weights]
    head = model.get_layer("classifier").kernel.numpy()
    print("%d blocks: %d frozen weights (embeddings, blocks 0-%d), %d trainable (blocks %d-%d) + the head"
          % (layers, len(frozen), first_trained - 1, len(unfrozen), first_trained, layers - 1))
    assert frozen and unfrozen, "nothing frozen or nothing to train: choose 0 < --unfreeze < %d" % layers

    examples = load_split("tnews", clue_sample_dir("tnews"), "train")
    features = [Feature({"token_ids": np.array(tokenizer.encode(e.text, maxlen=args.maxlen)[0], np.int32)},
                        labels.index(e.label), i) for i, e in enumerate(examples)]
    for step, batch in enumerate(epoch_batches(features, args.batch_size, seed=0, epoch=0)[: args.steps]):
        inputs = collate_inputs([features[i] for i in batch])
        loss = model.train_on_batch([inputs["token_ids"], inputs["segment_ids"]],
                                    np.array([features[i].label for i in batch]))
        print("step %d: loss %.4f" % (step + 1, loss))

    for weight, before in frozen:
        assert np.array_equal(weight.numpy(), before), "frozen weight changed: " + weight.name
    for weight, before in unfrozen:
        assert not np.array_equal(weight.numpy(), before), "did not train: " + weight.name
    assert not np.array_equal(model.get_layer("classifier").kernel.numpy(), head)
    print("frozen weights unchanged (%d), every unfrozen weight changed (%d), the head changed"
          % (len(frozen), len(unfrozen)))
    print("all checks passed")


if __name__ == "__main__":
    main()
