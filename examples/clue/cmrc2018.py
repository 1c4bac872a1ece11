#!/usr/bin/env python
"""Fine-tune GAU-alpha on CMRC2018 (answer spans in a paragraph) with sliding windows.

    python examples/clue/cmrc2018.py                     # bundled sample, small random model
    python examples/clue/cmrc2018.py --data-dir /data/clue \\
        --model-dir weights/chinese_GAU-alpha-char_L-24_H-768     # the real job

A paragraph longer than a window is cut into windows ``[CLS] question [SEP] context[w:w+W] [SEP]``
whose starts are ``--doc-stride`` tokens apart. A Dense layer gives every token a start and an
end logit; in a window that does not hold the answer both labels point at [CLS]. A question's
answer is the best ``start + end`` span over all its windows, cut from the paragraph with the
tokens' character offsets. Prints dev EM/F1 and writes ``cmrc2018_predict.json``.
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
from gau_alpha.clue import cmrc2018_scores, get_spec, load_split, write_submission
from gau_alpha.clue.features import Feature, collate_inputs, epoch_batches, make_batches
from gau_alpha.clue.tasks.span import best_span, char_span_to_tokens, locate_answer
from gau_alpha.clue.training import seed_everything
from gau_alpha.model_dir import create_random_model_dir, open_model_dir
from gau_alpha.resources import clue_sample_dir
from gau_alpha.tokenization import load_tokenizer

keras = tf.keras


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Fine-tune GAU-alpha on CMRC2018 (sliding windows).")
    parser.add_argument("--data-dir", type=Path, help="CLUE data (default: the bundled sample)")
    parser.add_argument("--model-dir", type=Path, help="the release (default: a small random GAU-alpha)")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/example-cmrc2018"))
    parser.add_argument("--epochs", type=int, help="default: the recipe's 10; 20 for the random model")
    parser.add_argument("--learning-rate", type=float, help="default: 5e-4; 2e-2 for the random model")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--maxlen", type=int, default=512, help="tokens per window")
    parser.add_argument("--doc-stride", type=int, default=128, help="tokens between window starts")
    parser.add_argument("--max-answer-len", type=int, default=100, help="longest answer in tokens")
    parser.add_argument("--max-steps", type=int, help="at most this many training steps per epoch")
    parser.add_argument("--seed", type=int, default=42)
    return parser.parse_args()


def encode(examples, tokenizer, maxlen, doc_stride):
    """Windows of every question: token ids and span mask (N,); label (start, end) positions."""
    features = []
    for index, example in enumerate(examples):
        ids, _, offsets = tokenizer.encode_with_offsets(example.context)
        context_ids, offsets = ids[1:-1], np.array(offsets[1:-1]).reshape(-1, 2)  # without [CLS], [SEP]
        question_ids = tokenizer.encode(example.question)[0][1:-1][: maxlen // 2]
        head = [tokenizer.cls_id] + question_ids + [tokenizer.sep_id]
        width = maxlen - len(head) - 1  # context tokens per window
        answer = locate_answer(example) if example.answers else None  # [start, end) characters
        gold = char_span_to_tokens(offsets, *answer) if answer else None  # (first, last) context tokens
        start = 0
        while True:
            end = min(start + width, len(context_ids))
            token_ids = np.array(head + context_ids[start:end] + [tokenizer.sep_id], np.int32)
            span_mask = np.zeros(len(token_ids), np.float32)
            span_mask[0] = span_mask[len(head): len(head) + end - start] = 1.0  # [CLS] and the context
            label = (0, 0)  # "not in this window"
            if gold is not None and start <= gold[0] and gold[1] < end:
                label = (gold[0] - start + len(head), gold[1] - start + len(head))
            meta = {"context_position": len(head), "offsets": offsets[start:end]}
            features.append(Feature({"token_ids": token_ids, "span_mask": span_mask}, label, index, meta))
            if end == len(context_ids):
                break
            start += min(doc_stride, width)
    return features


def build_span_model(model_dir):
    """Token ids, segment ids, span mask (B, N) -> start/end logits (B, N, 2), -1e9 outside the mask."""
    transformer = build_transformer_model(str(model_dir.config), str(model_dir.checkpoint), model="gau_alpha",
                                          application="unilm", return_keras_model=False)
    last_block = "Transformer-%d-GatedAttentionUnit-Norm" % (transformer.num_hidden_layers - 1)
    hidden = transformer.model.get_layer(last_block).output  # (B, N, H)
    span_mask = keras.layers.Input(shape=(None,), name="span_mask")
    logits = keras.layers.Dense(2, kernel_initializer=transformer.initializer, name="start-end")(hidden)
    masked = keras.layers.Lambda(lambda x: x[0] - 1e9 * (1.0 - x[1][..., None]))([logits, span_mask])
    return keras.Model(transformer.model.inputs + [span_mask], masked)


def span_loss(labels, logits):
    """Mean of the start and end cross-entropies: labels (B, 2), logits (B, N, 2) -> (B,)."""
    labels = tf.cast(labels, tf.int32)
    start = tf.nn.sparse_softmax_cross_entropy_with_logits(labels[:, 0], logits[..., 0])
    end = tf.nn.sparse_softmax_cross_entropy_with_logits(labels[:, 1], logits[..., 1])
    return (start + end) / 2


def model_inputs(inputs):
    return [inputs["token_ids"], inputs["segment_ids"], inputs["span_mask"]]


def predict(forward, examples, features, batch_size, max_answer_len):
    """Per question, the paragraph text of the best span over all its windows."""
    best = [(-math.inf, 0, 0)] * len(examples)
    for batch in make_batches([f.length for f in features], batch_size):  # sorted by length
        rows = [features[i] for i in batch]
        logits = forward(model_inputs(collate_inputs(rows)))
        for feature, window_logits in zip(rows, logits):
            offsets, position = feature.meta["offsets"], feature.meta["context_position"]
            context = window_logits[position: position + len(offsets)]
            score, first, last = best_span(context[:, 0], context[:, 1], max_answer_len)
            if first >= 0 and score > best[feature.example_index][0]:
                best[feature.example_index] = (score, offsets[first][0], offsets[last][1])
    return [example.context[start:end] for example, (_, start, end) in zip(examples, best)]


def compile_forward(model):
    """``model(inputs)`` as one tf.function for all batch shapes (predict_on_batch retraces per length)."""
    function = tf.function(lambda inputs: model(inputs, training=False), reduce_retracing=True)
    return lambda arrays: function([tf.constant(array) for array in arrays]).numpy()


def main() -> None:
    args = parse_args()
    data_dir = args.data_dir or clue_sample_dir("cmrc2018")
    scratch = args.model_dir is None  # a random model learns from scratch: more epochs, larger steps
    epochs = args.epochs or (20 if scratch else 10)
    learning_rate = args.learning_rate or (2e-2 if scratch else 5e-4)

    with tempfile.TemporaryDirectory() as scratch_dir:
        if scratch:
            model_dir = create_random_model_dir(Path(scratch_dir) / "random-gau-alpha", seed=args.seed)
        else:
            model_dir = open_model_dir(args.model_dir)
        tokenizer = load_tokenizer(model_dir.vocab, fast=True)
        data = {split: load_split("cmrc2018", data_dir, split) for split in ("train", "dev", "test")}
        features = {split: encode(examples, tokenizer, args.maxlen, args.doc_stride)
                    for split, examples in data.items()}
        seed_everything(args.seed)
        model = build_span_model(model_dir)
    model.compile(loss=span_loss,
                  optimizer=AdaFactor(learning_rate=learning_rate, beta1=0.9, min_dim_size_to_factor=10**6))
    forward = compile_forward(model)

    best_em, best_epoch, best_weights = -math.inf, 0, None
    train = features["train"]
    for epoch in range(epochs):
        losses = []
        for batch in epoch_batches(train, args.batch_size, args.seed, epoch)[: args.max_steps]:
            rows = [train[i] for i in batch]
            labels = np.array([row.label for row in rows], np.int32)
            losses.append(model.train_on_batch(model_inputs(collate_inputs(rows)), labels))
        answers = predict(forward, data["dev"], features["dev"], args.batch_size, args.max_answer_len)
        scores = cmrc2018_scores(data["dev"], {example.id: answer for example, answer in zip(data["dev"], answers)})
        print("epoch %d/%d: train loss %.4f, dev EM %.2f, F1 %.2f"
              % (epoch + 1, epochs, np.mean(losses), scores.em, scores.f1))
        if scores.em > best_em:
            best_em, best_epoch, best_weights = scores.em, epoch + 1, model.get_weights()

    model.set_weights(best_weights)
    answers = predict(forward, data["test"], features["test"], args.batch_size, args.max_answer_len)
    submission = write_submission("cmrc2018", data["test"], answers, args.output_dir / "submission")
    print("best dev EM: %r at epoch %d (published GAU-alpha base: %s)"
          % (best_em, best_epoch, get_spec("cmrc2018").published_dev_score))
    print("submission: %s" % submission)


if __name__ == "__main__":
    main()
