#!/usr/bin/env python
"""A custom head on the GAU-alpha encoder: masked mean pooling and a label-smoothed loss (tnews).

    python examples/extend/custom_head.py                       # bundled tnews sample, small random model
    python examples/extend/custom_head.py --model-dir weights/chinese_GAU-alpha-char_L-24_H-768 \\
        --data-dir /data/clue --epochs 10

Instead of the recipe's first-token pooling, ``MaskedMeanPooling`` (a Keras Layer) averages the
hidden states of the real tokens; the loss is cross-entropy with label smoothing written
as a plain function. The checks (assertions): the pooled vector is the numpy mean of the
encoder's states over the real tokens; padding a sentence does not change its pooled vector;
the loss is finite. Prints the dev accuracy and writes the tnews submission file.
"""
import argparse
import tempfile
from pathlib import Path

import numpy as np

import gau_alpha  # noqa: F401  (first: selects tf-keras and adapts bert4keras)
import tensorflow as tf
from bert4keras.optimizers import AdaFactor
from gau_alpha import build_transformer_model
from gau_alpha.clue import accuracy, get_spec, load_split, write_submission
from gau_alpha.clue.features import Feature, collate_inputs, epoch_batches, make_batches
from gau_alpha.model_dir import create_random_model_dir, open_model_dir
from gau_alpha.resources import clue_sample_dir
from gau_alpha.tokenization import load_tokenizer

keras = tf.keras
LABELS = list(get_spec("tnews").labels)


def compile_forward(model):
    """``model(inputs)`` as one tf.function for all batch shapes (predict_on_batch retraces per length)."""
    function = tf.function(lambda inputs: model(inputs, training=False), reduce_retracing=True)
    return lambda arrays: function([tf.constant(array) for array in arrays]).numpy()


class MaskedMeanPooling(keras.layers.Layer):
    """Mean of the hidden states (B, N, H) over the real tokens (token id > 0): (B, H)."""

    def call(self, inputs):
        hidden, token_ids = inputs
        mask = tf.cast(tf.greater(token_ids, 0), hidden.dtype)[..., None]  # (B, N, 1)
        return tf.reduce_sum(hidden * mask, axis=1) / tf.reduce_sum(mask, axis=1)


def smoothed_cross_entropy(labels, logits, smoothing=0.1):
    """Cross-entropy against (1 - smoothing) * one-hot + smoothing / C: labels (B,), logits (B, C) -> (B,)."""
    targets = tf.one_hot(tf.cast(tf.reshape(labels, (-1,)), tf.int32), tf.shape(logits)[-1])
    targets = targets * (1.0 - smoothing) + smoothing / tf.cast(tf.shape(logits)[-1], logits.dtype)
    return tf.nn.softmax_cross_entropy_with_logits(targets, logits)


def main() -> None:
    parser = argparse.ArgumentParser(description="Mean pooling and a label-smoothed loss on tnews.")
    parser.add_argument("--data-dir", type=Path, help="CLUE data (default: the bundled sample)")
    parser.add_argument("--model-dir", type=Path, help="the release (default: a small random GAU-alpha)")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/example-custom-head"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--learning-rate", type=float, help="default: 5e-4; 2e-2 for the random model")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--maxlen", type=int, default=128)
    parser.add_argument("--max-steps", type=int, help="at most this many training steps per epoch")
    args = parser.parse_args()
    learning_rate = args.learning_rate or (5e-4 if args.model_dir else 2e-2)

    with tempfile.TemporaryDirectory() as scratch:
        files = open_model_dir(args.model_dir) if args.model_dir else create_random_model_dir(Path(scratch) / "random")
        tokenizer = load_tokenizer(files.vocab, fast=True)
        encoder = build_transformer_model(str(files.config), str(files.checkpoint), model="gau_alpha")
    token_ids, segment_ids = encoder.inputs
    pooled = MaskedMeanPooling(name="mean-pooling")([encoder.output, token_ids])
    model = keras.Model(encoder.inputs, keras.layers.Dense(len(LABELS), name="classifier")(pooled))
    model.compile(loss=smoothed_cross_entropy,
                  optimizer=AdaFactor(learning_rate=learning_rate, beta1=0.9, min_dim_size_to_factor=10**6))

    # checks: the pooling is the mean over real tokens, and padding does not change it
    ids = np.array([tokenizer.encode("北京是中国的首都。")[0]])
    padded = np.pad(ids, ((0, 0), (0, 7)))
    pooling = keras.Model(encoder.inputs, pooled)
    expected = encoder.predict([ids, np.zeros_like(ids)], verbose=0).mean(axis=1)
    np.testing.assert_allclose(pooling.predict([ids, np.zeros_like(ids)], verbose=0), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pooling.predict([padded, np.zeros_like(padded)], verbose=0), expected,
                               rtol=1e-4, atol=1e-5)
    print("pooling: the mean of the real tokens' states; 7 padding tokens change nothing")

    data_dir = args.data_dir or clue_sample_dir("tnews")
    data = {split: load_split("tnews", data_dir, split) for split in ("train", "dev", "test")}
    features = {split: [Feature({"token_ids": np.array(tokenizer.encode(e.text, maxlen=args.maxlen)[0], np.int32)},
                                LABELS.index(e.label) if e.label else None, i) for i, e in enumerate(examples)]
                for split, examples in data.items()}

    forward = compile_forward(model)

    def predict(split):
        predictions = [None] * len(features[split])
        for batch in make_batches([f.length for f in features[split]], args.batch_size):
            inputs = collate_inputs([features[split][i] for i in batch])
            for i, logits in zip(batch, forward([inputs["token_ids"], inputs["segment_ids"]])):
                predictions[i] = LABELS[int(np.argmax(logits))]
        return predictions

    train = features["train"]
    for epoch in range(args.epochs):
        losses = []
        for batch in epoch_batches(train, args.batch_size, seed=42, epoch=epoch)[: args.max_steps]:
            inputs = collate_inputs([train[i] for i in batch])
            losses.append(model.train_on_batch([inputs["token_ids"], inputs["segment_ids"]],
                                               np.array([train[i].label for i in batch])))
        assert np.isfinite(losses).all(), losses
        score = 100.0 * accuracy([e.label for e in data["dev"]], predict("dev"))
        print("epoch %d/%d: train loss %.4f, dev accuracy %.2f" % (epoch + 1, args.epochs, np.mean(losses), score))
    submission = write_submission("tnews", data["test"], predict("test"), args.output_dir / "submission")
    print("submission (last epoch's weights): %s" % submission)
    print("all checks passed")


if __name__ == "__main__":
    main()
