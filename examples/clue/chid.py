#!/usr/bin/env python
"""Fine-tune GAU-alpha on CHID (fill each blank of a passage with one of the candidate idioms).

    python examples/clue/chid.py                         # bundled sample, small random model
    python examples/clue/chid.py --data-dir /data/clue \\
        --model-dir weights/chinese_GAU-alpha-char_L-24_H-768     # the real job

For each blank, every candidate makes one sequence ``[CLS] idiom [SEP] context [SEP]``
(segment ids 0) where the context is the passage around the blank, the blank itself written
``[unused1]`` and any other blank ``[MASK]``x4. The candidates' first-token states are scored
by a shared Dense(1); a softmax over the candidates is trained. A passage's blanks are then
filled jointly: distinct idioms with the highest total score. Writes ``chid11_predict.json``.
"""
import argparse
import math
import re
import tempfile
from pathlib import Path

import numpy as np

import gau_alpha  # noqa: F401  (first: selects tf-keras and adapts bert4keras)
import tensorflow as tf
from bert4keras.optimizers import AdaFactor
from gau_alpha import build_transformer_model
from gau_alpha.clue import accuracy, get_spec, load_split, write_submission
from gau_alpha.clue.assignment import assign_candidates
from gau_alpha.clue.features import Feature, collate_inputs, epoch_batches, make_batches, pad_arrays
from gau_alpha.clue.training import seed_everything
from gau_alpha.model_dir import create_random_model_dir, open_model_dir
from gau_alpha.resources import clue_sample_dir
from gau_alpha.tokenization import load_tokenizer

keras = tf.keras
BLANK_TAG = re.compile(r"#idiom\d+#")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Fine-tune GAU-alpha on CHID (idiom cloze).")
    parser.add_argument("--data-dir", type=Path, help="CLUE data (default: the bundled sample)")
    parser.add_argument("--model-dir", type=Path, help="the release (default: a small random GAU-alpha)")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/example-chid"))
    parser.add_argument("--epochs", type=int, help="default: the recipe's 5; 20 for the random model")
    parser.add_argument("--learning-rate", type=float, help="default: 5e-4; 2e-2 for the random model")
    parser.add_argument("--batch-size", type=int, default=12, help="blanks per step")
    parser.add_argument("--maxlen", type=int, default=64, help="tokens per candidate sequence")
    parser.add_argument("--max-steps", type=int, help="at most this many training steps per epoch")
    parser.add_argument("--seed", type=int, default=42)
    return parser.parse_args()


def encode(examples, tokenizer, maxlen):
    """One Feature per blank: token ids (K, N) for the K candidates; label: the right candidate."""
    def content(text):  # token ids without [CLS] and [SEP]
        return tokenizer.encode(text)[0][1:-1]

    blank_id, other_blank = tokenizer.token_to_id("[unused1]"), [tokenizer.mask_id] * 4
    features = []
    for index, example in enumerate(examples):
        candidates = [content(idiom) for idiom in example.candidates]
        pieces = [content(piece) for piece in BLANK_TAG.split(example.text)]  # the text between blanks
        half = (maxlen - max(map(len, candidates)) - 4) // 2  # context tokens on each side of the blank
        for blank in range(len(example.blanks)):
            left = sum((pieces[i] + other_blank for i in range(blank)), []) + pieces[blank]
            right = pieces[blank + 1] + sum((other_blank + pieces[i] for i in range(blank + 2, len(pieces))), [])
            context = left[max(0, len(left) - half):] + [blank_id] + right[:half] + [tokenizer.sep_id]
            rows = [np.array([tokenizer.cls_id] + idiom + [tokenizer.sep_id] + context, np.int32)
                    for idiom in candidates]
            label = example.label[blank] if example.label is not None else None
            features.append(Feature({"token_ids": pad_arrays(rows)}, label, index, {"blank": blank}))
    return features


def build_scorer(model_dir):
    """Token ids, segment ids (B, K, N) -> candidate logits (B, K)."""
    transformer = build_transformer_model(str(model_dir.config), str(model_dir.checkpoint), model="gau_alpha",
                                          application="unilm", return_keras_model=False)
    last_block = "Transformer-%d-GatedAttentionUnit-Norm" % (transformer.num_hidden_layers - 1)
    encoder = keras.Model(transformer.model.inputs, transformer.model.get_layer(last_block).output)
    token_ids = keras.layers.Input(shape=(None, None), dtype="int32", name="token_ids")
    segment_ids = keras.layers.Input(shape=(None, None), dtype="int32", name="segment_ids")
    flatten = keras.layers.Lambda(lambda x: tf.reshape(x, (-1, tf.shape(x)[-1])))  # (B, K, N) -> (B*K, N)
    hidden = encoder([flatten(token_ids), flatten(segment_ids)])  # (B*K, N, H)
    first_token = keras.layers.Lambda(lambda x: x[:, 0])(hidden)
    scores = keras.layers.Dense(1, kernel_initializer=transformer.initializer, name="candidate-score")(first_token)
    logits = keras.layers.Lambda(lambda x: tf.reshape(x[0], tf.shape(x[1])[:2]))([scores, token_ids])
    return keras.Model([token_ids, segment_ids], logits)


def predict(forward, examples, features, batch_size):
    """Per passage, the candidate index of each blank (distinct candidates, best total score)."""
    scores = [[None] * len(example.blanks) for example in examples]
    for batch in make_batches([f.length for f in features], batch_size):  # sorted by length
        rows = [features[i] for i in batch]
        inputs = collate_inputs(rows)
        for feature, logits in zip(rows, forward([inputs["token_ids"], inputs["segment_ids"]])):
            scores[feature.example_index][feature.meta["blank"]] = logits
    return [assign_candidates(np.stack(passage)) for passage in scores]


def compile_forward(model):
    """``model(inputs)`` as one tf.function for all batch shapes (predict_on_batch retraces per length)."""
    function = tf.function(lambda inputs: model(inputs, training=False), reduce_retracing=True)
    return lambda arrays: function([tf.constant(array) for array in arrays]).numpy()


def main() -> None:
    args = parse_args()
    data_dir = args.data_dir or clue_sample_dir("chid")
    scratch = args.model_dir is None  # a random model learns from scratch: more epochs, larger steps
    epochs = args.epochs or (20 if scratch else 5)
    learning_rate = args.learning_rate or (2e-2 if scratch else 5e-4)

    with tempfile.TemporaryDirectory() as scratch_dir:
        if scratch:
            model_dir = create_random_model_dir(Path(scratch_dir) / "random-gau-alpha", seed=args.seed)
        else:
            model_dir = open_model_dir(args.model_dir)
        tokenizer = load_tokenizer(model_dir.vocab, fast=True)
        data = {split: load_split("chid", data_dir, split) for split in ("train", "dev", "test")}
        features = {split: encode(examples, tokenizer, args.maxlen) for split, examples in data.items()}
        seed_everything(args.seed)
        model = build_scorer(model_dir)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  optimizer=AdaFactor(learning_rate=learning_rate, beta1=0.9, min_dim_size_to_factor=10**6))
    forward = compile_forward(model)

    best_score, best_epoch, best_weights = -math.inf, 0, None
    train = features["train"]
    for epoch in range(epochs):
        losses = []
        for batch in epoch_batches(train, args.batch_size, args.seed, epoch)[: args.max_steps]:
            rows = [train[i] for i in batch]
            inputs = collate_inputs(rows)
            labels = np.array([row.label for row in rows], np.int32)
            losses.append(model.train_on_batch([inputs["token_ids"], inputs["segment_ids"]], labels))
        predictions = predict(forward, data["dev"], features["dev"], args.batch_size)
        golds = [answer for example in data["dev"] for answer in example.label]
        score = 100.0 * accuracy(golds, [choice for passage in predictions for choice in passage])
        print("epoch %d/%d: train loss %.4f, dev accuracy %.2f" % (epoch + 1, epochs, np.mean(losses), score))
        if score > best_score:
            best_score, best_epoch, best_weights = score, epoch + 1, model.get_weights()

    model.set_weights(best_weights)
    predictions = predict(forward, data["test"], features["test"], args.batch_size)
    submission = write_submission("chid", data["test"], predictions, args.output_dir / "submission")
    print("best dev accuracy: %r at epoch %d (published GAU-alpha base: %s)"
          % (best_score, best_epoch, get_spec("chid").published_dev_score))
    print("submission: %s" % submission)


if __name__ == "__main__":
    main()
