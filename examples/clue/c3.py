#!/usr/bin/env python
"""Fine-tune GAU-alpha on C3 (multiple-choice reading comprehension).

    python examples/clue/c3.py                           # bundled sample, small random model
    python examples/clue/c3.py --data-dir /data/clue \\
        --model-dir weights/chinese_GAU-alpha-char_L-24_H-768     # the real job

Each choice becomes its own sequence ``[CLS] document [SEP] question [SEP] choice [SEP]``
(segment ids 0); the K sequences of a question go through the encoder as one batch, the
first token's hidden state of each is scored by a shared Dense(1), and a softmax over the
K scores picks the answer (questions with fewer than 4 choices get masked placeholder rows).
AdaFactor at lr 5e-4. Prints the dev accuracy and writes ``c311_predict.json``.
"""
import argparse
import math
import tempfile
from pathlib import Path

import numpy as np

import gau_alpha  # noqa: F401  (first: selects tf-keras and adapts bert4keras)
import tensorflow as tf
from bert4keras.optimizers import AdaFactor
from gau_alpha import build_transformer_model
from gau_alpha.clue import accuracy, get_spec, load_split, write_submission
from gau_alpha.clue.features import Feature, collate_inputs, epoch_batches, make_batches, pad_arrays, truncate_longest
from gau_alpha.clue.training import seed_everything
from gau_alpha.model_dir import create_random_model_dir, open_model_dir
from gau_alpha.resources import clue_sample_dir
from gau_alpha.tokenization import load_tokenizer

keras = tf.keras
CHOICES = 4  # c3 questions have 2 to 4 choices


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Fine-tune GAU-alpha on C3 (multiple choice).")
    parser.add_argument("--data-dir", type=Path, help="CLUE data (default: the bundled sample)")
    parser.add_argument("--model-dir", type=Path, help="the release (default: a small random GAU-alpha)")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/example-c3"))
    parser.add_argument("--epochs", type=int, help="default: the recipe's 10; 3 for the random model")
    parser.add_argument("--learning-rate", type=float, help="default: 5e-4; 2e-2 for the random model")
    parser.add_argument("--batch-size", type=int, default=4, help="questions per step")
    parser.add_argument("--maxlen", type=int, default=512, help="tokens per choice sequence")
    parser.add_argument("--max-steps", type=int, help="at most this many training steps per epoch")
    parser.add_argument("--seed", type=int, default=42)
    return parser.parse_args()


def encode(examples, tokenizer, maxlen):
    """One Feature per question: token ids (CHOICES, N), choice mask (CHOICES,); label: answer index."""
    cls_id, sep_id = tokenizer.cls_id, tokenizer.sep_id

    def content(text):  # token ids without [CLS] and [SEP]
        return tokenizer.encode(text)[0][1:-1]

    features = []
    for index, example in enumerate(examples):
        document, question = content("|".join(example.context)), content(example.question)
        rows = []
        for choice in map(content, example.choices):
            # too long: drop tokens at the end of the longest part first (bert4keras's rule)
            keep_c, keep_q, keep_d = truncate_longest([len(choice), len(question), len(document)], maxlen - 4)
            rows.append([cls_id] + document[:keep_d] + [sep_id] + question[:keep_q] + [sep_id]
                        + choice[:keep_c] + [sep_id])
        choice_mask = np.array([1.0] * len(rows) + [0.0] * (CHOICES - len(rows)), np.float32)
        rows += [[cls_id, sep_id]] * (CHOICES - len(rows))  # placeholders, masked out
        token_ids = pad_arrays([np.array(row, np.int32) for row in rows])
        features.append(Feature({"token_ids": token_ids, "choice_mask": choice_mask}, example.label_index, index))
    return features


def build_scorer(model_dir):
    """Token ids, segment ids (B, K, N), choice mask (B, K) -> choice logits (B, K)."""
    transformer = build_transformer_model(str(model_dir.config), str(model_dir.checkpoint), model="gau_alpha",
                                          application="unilm", return_keras_model=False)
    last_block = "Transformer-%d-GatedAttentionUnit-Norm" % (transformer.num_hidden_layers - 1)
    encoder = keras.Model(transformer.model.inputs, transformer.model.get_layer(last_block).output)
    token_ids = keras.layers.Input(shape=(None, None), dtype="int32", name="token_ids")
    segment_ids = keras.layers.Input(shape=(None, None), dtype="int32", name="segment_ids")
    choice_mask = keras.layers.Input(shape=(None,), name="choice_mask")
    flatten = keras.layers.Lambda(lambda x: tf.reshape(x, (-1, tf.shape(x)[-1])))  # (B, K, N) -> (B*K, N)
    hidden = encoder([flatten(token_ids), flatten(segment_ids)])  # (B*K, N, H)
    first_token = keras.layers.Lambda(lambda x: x[:, 0])(hidden)
    scores = keras.layers.Dense(1, kernel_initializer=transformer.initializer, name="choice-score")(first_token)
    logits = keras.layers.Lambda(lambda x: tf.reshape(x[0], tf.shape(x[1])) - 1e9 * (1.0 - x[1]))(
        [scores, choice_mask])
    return keras.Model([token_ids, segment_ids, choice_mask], logits)


def model_inputs(inputs):
    return [inputs["token_ids"], inputs["segment_ids"], inputs["choice_mask"]]


def predict(forward, features, batch_size):
    """The index of the best-scoring choice, per question."""
    predictions = [None] * len(features)
    for batch in make_batches([f.length for f in features], batch_size):  # sorted by length
        logits = forward(model_inputs(collate_inputs([features[i] for i in batch])))
        for index, row in zip(batch, logits):
            predictions[index] = int(np.argmax(row))
    return predictions


def compile_forward(model):
    """``model(inputs)`` as one tf.function for all batch shapes (predict_on_batch retraces per length)."""
    function = tf.function(lambda inputs: model(inputs, training=False), reduce_retracing=True)
    return lambda arrays: function([tf.constant(array) for array in arrays]).numpy()


def main() -> None:
    args = parse_args()
    data_dir = args.data_dir or clue_sample_dir("c3")
    scratch = args.model_dir is None  # a random model learns from scratch: larger steps
    epochs = args.epochs or (3 if scratch else 10)
    learning_rate = args.learning_rate or (2e-2 if scratch else 5e-4)

    with tempfile.TemporaryDirectory() as scratch_dir:
        if scratch:
            model_dir = create_random_model_dir(Path(scratch_dir) / "random-gau-alpha", seed=args.seed)
        else:
            model_dir = open_model_dir(args.model_dir)
        tokenizer = load_tokenizer(model_dir.vocab, fast=True)
        data = {split: load_split("c3", data_dir, split) for split in ("train", "dev", "test")}
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
            labels = np.array([row.label for row in rows], np.int32)
            losses.append(model.train_on_batch(model_inputs(collate_inputs(rows)), labels))
        predictions = predict(forward, features["dev"], args.batch_size)
        score = 100.0 * accuracy([example.label_index for example in data["dev"]], predictions)
        print("epoch %d/%d: train loss %.4f, dev accuracy %.2f" % (epoch + 1, epochs, np.mean(losses), score))
        if score > best_score:
            best_score, best_epoch, best_weights = score, epoch + 1, model.get_weights()

    model.set_weights(best_weights)
    predictions = predict(forward, features["test"], args.batch_size)
    submission = write_submission("c3", data["test"], predictions, args.output_dir / "submission")
    print("best dev accuracy: %r at epoch %d (published GAU-alpha base: %s)"
          % (best_score, best_epoch, get_spec("c3").published_dev_score))
    print("submission: %s" % submission)


if __name__ == "__main__":
    main()
