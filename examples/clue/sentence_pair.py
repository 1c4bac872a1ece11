#!/usr/bin/env python
"""Fine-tune GAU-alpha on a CLUE sentence-pair task: afqmc, cmnli, ocnli or csl.

    python examples/clue/sentence_pair.py                # bundled afqmc sample, small random model
    python examples/clue/sentence_pair.py cmnli --data-dir /data/clue \\
        --model-dir weights/chinese_GAU-alpha-char_L-24_H-768     # the real job

The GAU-alpha authors' recipe: ``[CLS] text1 [SEP] text2 [SEP]`` (csl: the keywords joined
with "；", then the abstract) with segment ids 0 (not 0/1: with 'unilm' segment 1 would be
causal), the first
token's hidden state -> Dense -> softmax, AdaFactor at lr 5e-4; the best dev epoch predicts
the test set, written as the official submission file. It is the recipe of
``gau-alpha clue``: with the same seed and settings both give the same dev score.
Change the head in ``build_classifier``, the input in ``encode``.
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
from gau_alpha.clue.features import Feature, collate_inputs, epoch_batches
from gau_alpha.clue.tasks import get_task
from gau_alpha.clue.tasks.classification import CSL_KEYWORD_SEPARATOR
from gau_alpha.clue.training import Trainer, seed_everything
from gau_alpha.model_dir import create_random_model_dir, open_model_dir
from gau_alpha.resources import clue_sample_dir
from gau_alpha.tokenization import load_tokenizer

keras = tf.keras


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Fine-tune GAU-alpha on afqmc, cmnli, ocnli or csl.")
    parser.add_argument("task", nargs="?", default="afqmc", choices=("afqmc", "cmnli", "ocnli", "csl"))
    parser.add_argument("--data-dir", type=Path, help="CLUE data (default: the bundled sample)")
    parser.add_argument("--model-dir", type=Path, help="the release (default: a small random GAU-alpha)")
    parser.add_argument("--output-dir", type=Path, help="default: runs/example-<task>")
    parser.add_argument("--epochs", type=int, help="default: the recipe's 10; 20 for the random model")
    parser.add_argument("--learning-rate", type=float, help="default: 5e-4; 2e-2 for the random model")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--maxlen", type=int, default=128)
    parser.add_argument("--max-steps", type=int, help="at most this many training steps per epoch")
    parser.add_argument("--seed", type=int, default=42)
    return parser.parse_args()


def texts(example):
    """The two texts of an example (a CslExample has keywords and an abstract)."""
    if hasattr(example, "keywords"):
        return CSL_KEYWORD_SEPARATOR.join(example.keywords), example.abstract
    return example.text_a, example.text_b


def encode(examples, tokenizer, labels, maxlen):
    """One Feature per example: token ids (N,) of ``[CLS] text1 [SEP] text2 [SEP]``, label = class index."""
    features = []
    for index, example in enumerate(examples):
        # maxlen: the longer text loses tokens at its end; the segment ids are dropped (all 0)
        token_ids, _ = tokenizer.encode(*texts(example), maxlen=maxlen)
        label = labels.index(example.label) if example.label is not None else None
        features.append(Feature({"token_ids": np.array(token_ids, dtype=np.int32)}, label, index))
    return features


def build_classifier(model_dir, num_labels):
    """Token ids, segment ids (B, N) -> logits (B, num_labels)."""
    # 'unilm' as in the recipe: with all segment ids 0 every token sees every token.
    transformer = build_transformer_model(str(model_dir.config), str(model_dir.checkpoint), model="gau_alpha",
                                          application="unilm", return_keras_model=False)
    last_block = "Transformer-%d-GatedAttentionUnit-Norm" % (transformer.num_hidden_layers - 1)
    hidden = transformer.model.get_layer(last_block).output  # (B, N, H), before the MLM head
    first_token = keras.layers.Lambda(lambda x: x[:, 0], name="first-token")(hidden)  # (B, H)
    logits = keras.layers.Dense(num_labels, kernel_initializer=transformer.initializer, name="classifier")(first_token)
    return keras.Model(transformer.model.inputs, logits)


def predict(trainer, features, labels, batch_size):
    """The label string of the highest logit, per feature (batches of similar length)."""
    return [labels[int(np.argmax(logits))] for logits in trainer.predict(features, batch_size)]


def main() -> None:
    args = parse_args()
    spec = get_spec(args.task)
    data_dir = args.data_dir or clue_sample_dir(spec.name)
    output_dir = args.output_dir or Path("runs") / ("example-" + spec.name)
    scratch = args.model_dir is None  # a random model learns from scratch: more epochs, larger steps
    epochs = args.epochs or (20 if scratch else spec.defaults.epochs)
    learning_rate = args.learning_rate or (2e-2 if scratch else spec.defaults.learning_rate)
    labels = list(spec.labels)

    with tempfile.TemporaryDirectory() as scratch_dir:
        if scratch:
            model_dir = create_random_model_dir(Path(scratch_dir) / "random-gau-alpha", seed=args.seed)
        else:
            model_dir = open_model_dir(args.model_dir)
        tokenizer = load_tokenizer(model_dir.vocab, fast=True)
        data = {split: load_split(spec.name, data_dir, split) for split in ("train", "dev", "test")}
        features = {split: encode(examples, tokenizer, labels, args.maxlen) for split, examples in data.items()}

        seed_everything(args.seed)
        model = build_classifier(model_dir, len(labels))
    optimizer = AdaFactor(learning_rate=learning_rate, beta1=0.9, min_dim_size_to_factor=10**6)
    # The library's train step: softmax cross-entropy, one AdaFactor step per batch.
    trainer = Trainer(get_task(spec.name), model, optimizer, tf.distribute.get_strategy(), progress=False)

    best_score, best_epoch, best_weights = -math.inf, 0, None
    train = features["train"]
    for epoch in range(epochs):
        seed_everything(args.seed + epoch)  # this epoch's dropout depends only on seed + epoch
        train_step = trainer.make_train_step(train[0])  # traced afresh: its dropout takes this epoch's seed
        total, seen = 0.0, 0
        for batch in epoch_batches(train, args.batch_size, args.seed, epoch)[: args.max_steps]:
            rows = [train[i] for i in batch]
            inputs = collate_inputs(rows)  # zero-padded to the batch's longest; segment ids 0
            batch_labels = np.array([row.label for row in rows], dtype=np.int32)
            total += float(train_step(inputs["token_ids"], inputs["segment_ids"], batch_labels))
            seen += len(rows)
        dev_predictions = predict(trainer, features["dev"], labels, args.batch_size)
        score = 100.0 * accuracy([example.label for example in data["dev"]], dev_predictions)
        print("epoch %d/%d: train loss %.4f, dev accuracy %.2f" % (epoch + 1, epochs, total / seen, score))
        if score > best_score:
            best_score, best_epoch, best_weights = score, epoch + 1, model.get_weights()

    model.set_weights(best_weights)
    test_predictions = predict(trainer, features["test"], labels, args.batch_size)
    submission = write_submission(spec.name, data["test"], test_predictions, output_dir / "submission")
    print("best dev accuracy: %r at epoch %d (published GAU-alpha base: %s)"
          % (best_score, best_epoch, spec.published_dev_score))
    print("submission: %s" % submission)


if __name__ == "__main__":
    main()
