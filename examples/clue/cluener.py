#!/usr/bin/env python
"""Fine-tune GAU-alpha on CLUENER2020 (named entities) with a GlobalPointer head.

    python examples/clue/cluener.py                      # bundled sample, small random model
    python examples/clue/cluener.py --data-dir /data/clue \\
        --model-dir weights/chinese_GAU-alpha-char_L-24_H-768     # the real job

GlobalPointer scores every token span (i, j) for every entity type: logits (B, types, N, N);
a span is an entity when its logit is > 0. Trained with multi-label categorical
cross-entropy, AdaFactor at lr 5e-4 (segment ids 0). Entities are cut from the text with
the tokens' character offsets. Prints the dev micro F1 and writes the submission file.
"""
import argparse
import math
import tempfile
from pathlib import Path

import numpy as np

import gau_alpha  # noqa: F401  (first: selects tf-keras and adapts bert4keras)
import tensorflow as tf
from bert4keras.backend import multilabel_categorical_crossentropy
from bert4keras.layers import GlobalPointer
from bert4keras.optimizers import AdaFactor
from gau_alpha import build_transformer_model
from gau_alpha.clue import cluener_scores, get_spec, load_split, write_submission
from gau_alpha.clue.features import Feature, collate_inputs, epoch_batches, make_batches
from gau_alpha.clue.tasks.ner import entities_from_spans
from gau_alpha.clue.training import seed_everything
from gau_alpha.model_dir import create_random_model_dir, open_model_dir
from gau_alpha.resources import clue_sample_dir
from gau_alpha.tokenization import load_tokenizer

keras = tf.keras
TYPES = list(get_spec("cluener").labels)  # address, book, company, ...


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Fine-tune GAU-alpha on CLUENER2020 (GlobalPointer).")
    parser.add_argument("--data-dir", type=Path, help="CLUE data (default: the bundled sample)")
    parser.add_argument("--model-dir", type=Path, help="the release (default: a small random GAU-alpha)")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/example-cluener"))
    parser.add_argument("--epochs", type=int, help="default: the recipe's 10; 20 for the random model")
    parser.add_argument("--learning-rate", type=float, help="default: 5e-4; 2e-2 for the random model")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--maxlen", type=int, default=256)
    parser.add_argument("--max-steps", type=int, help="at most this many training steps per epoch")
    parser.add_argument("--seed", type=int, default=42)
    return parser.parse_args()


def encode(examples, tokenizer, maxlen):
    """Token ids (N,); label: gold (type, first token, last token); meta: token character offsets."""
    features = []
    for index, example in enumerate(examples):
        token_ids, _, offsets = tokenizer.encode_with_offsets(example.text, maxlen=maxlen)
        first_token = {start: t for t, (start, end) in enumerate(offsets) if end > start}
        last_token = {end - 1: t for t, (start, end) in enumerate(offsets) if end > start}
        gold = []
        for entity_type, start, end in sorted(example.spans()) if example.label is not None else []:
            if start in first_token and end in last_token:  # else cut off by maxlen
                gold.append((TYPES.index(entity_type), first_token[start], last_token[end]))
        features.append(Feature({"token_ids": np.array(token_ids, np.int32)}, gold, index, {"offsets": offsets}))
    return features


def span_matrix(rows, width):
    """The gold spans of a batch as a dense 0/1 matrix (B, types, N, N)."""
    labels = np.zeros((len(rows), len(TYPES), width, width), np.float32)
    for row, feature in enumerate(rows):
        for entity_type, first, last in feature.label:
            labels[row, entity_type, first, last] = 1.0
    return labels


def build_tagger(model_dir):
    """Token ids, segment ids (B, N) -> span logits (B, types, N, N); padding and j < i: -inf."""
    transformer = build_transformer_model(str(model_dir.config), str(model_dir.checkpoint), model="gau_alpha",
                                          application="unilm", return_keras_model=False)
    last_block = "Transformer-%d-GatedAttentionUnit-Norm" % (transformer.num_hidden_layers - 1)
    hidden = transformer.model.get_layer(last_block).output  # (B, N, H)
    token_mask = keras.layers.Lambda(lambda ids: tf.greater(ids, 0))(transformer.model.inputs[0])
    pointer = GlobalPointer(heads=len(TYPES), head_size=transformer.attention_key_size, use_bias=False,
                            kernel_initializer=transformer.initializer)
    return keras.Model(transformer.model.inputs, pointer(hidden, mask=token_mask))


def global_pointer_loss(labels, logits):
    """Multi-label cross-entropy over all spans of each type, averaged over types: (B,)."""
    shape = tf.shape(logits)
    logits = tf.reshape(logits, (shape[0], shape[1], -1))
    labels = tf.reshape(tf.cast(labels, logits.dtype), (shape[0], shape[1], -1))
    return tf.reduce_mean(multilabel_categorical_crossentropy(labels, logits), axis=1)


def predict(forward, examples, features, batch_size):
    """The entities of each example as the official label dict {type: {text: [[start, end]]}}."""
    found = [set() for _ in examples]
    for batch in make_batches([f.length for f in features], batch_size):  # sorted by length
        rows = [features[i] for i in batch]
        inputs = collate_inputs(rows)
        logits = forward([inputs["token_ids"], inputs["segment_ids"]])
        for feature, scores in zip(rows, logits):
            for entity_type, first, last in zip(*np.nonzero(scores > 0)):
                start, end = feature.meta["offsets"][first][0], feature.meta["offsets"][last][1] - 1
                if feature.meta["offsets"][first][1] > start and end >= start:  # not [CLS]/[SEP]
                    found[feature.example_index].add((TYPES[entity_type], int(start), int(end)))
    return [entities_from_spans(example.text, spans) for example, spans in zip(examples, found)]


def compile_forward(model):
    """``model(inputs)`` as one tf.function for all batch shapes (predict_on_batch retraces per length)."""
    function = tf.function(lambda inputs: model(inputs, training=False), reduce_retracing=True)
    return lambda arrays: function([tf.constant(array) for array in arrays]).numpy()


def main() -> None:
    args = parse_args()
    data_dir = args.data_dir or clue_sample_dir("cluener")
    scratch = args.model_dir is None  # a random model learns from scratch: more epochs, larger steps
    epochs = args.epochs or (20 if scratch else 10)
    learning_rate = args.learning_rate or (2e-2 if scratch else 5e-4)

    with tempfile.TemporaryDirectory() as scratch_dir:
        if scratch:
            model_dir = create_random_model_dir(Path(scratch_dir) / "random-gau-alpha", seed=args.seed)
        else:
            model_dir = open_model_dir(args.model_dir)
        tokenizer = load_tokenizer(model_dir.vocab, fast=True)
        data = {split: load_split("cluener", data_dir, split) for split in ("train", "dev", "test")}
        features = {split: encode(examples, tokenizer, args.maxlen) for split, examples in data.items()}
        seed_everything(args.seed)
        model = build_tagger(model_dir)
    model.compile(loss=global_pointer_loss,
                  optimizer=AdaFactor(learning_rate=learning_rate, beta1=0.9, min_dim_size_to_factor=10**6))
    forward = compile_forward(model)

    best_f1, best_epoch, best_weights = -math.inf, 0, None
    train = features["train"]
    for epoch in range(epochs):
        losses = []
        for batch in epoch_batches(train, args.batch_size, args.seed, epoch)[: args.max_steps]:
            rows = [train[i] for i in batch]
            inputs = collate_inputs(rows)  # zero-padded to the batch's longest; segment ids 0
            labels = span_matrix(rows, inputs["token_ids"].shape[1])
            losses.append(model.train_on_batch([inputs["token_ids"], inputs["segment_ids"]], labels))
        dev_predictions = predict(forward, data["dev"], features["dev"], args.batch_size)
        f1 = 100.0 * cluener_scores([example.label for example in data["dev"]], dev_predictions).micro.f1
        print("epoch %d/%d: train loss %.4f, dev F1 %.2f" % (epoch + 1, epochs, np.mean(losses), f1))
        if f1 > best_f1:
            best_f1, best_epoch, best_weights = f1, epoch + 1, model.get_weights()

    model.set_weights(best_weights)
    test_predictions = predict(forward, data["test"], features["test"], args.batch_size)
    submission = write_submission("cluener", data["test"], test_predictions, args.output_dir / "submission")
    print("best dev F1: %r at epoch %d (published GAU-alpha base: %s)"
          % (best_f1, best_epoch, get_spec("cluener").published_dev_score))
    print("submission: %s" % submission)


if __name__ == "__main__":
    main()
