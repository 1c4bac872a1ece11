"""A 2-layer GAU-alpha with a classification head fine-tunes on real tnews records."""
import json
import os

import numpy as np
import tensorflow as tf

import gau_alpha
from bert4keras.optimizers import AdaFactor
from bert4keras.snippets import sequence_padding
from bert4keras.tokenizers import Tokenizer
from gau_alpha.resources import CLUE_SAMPLES_DIR, RELEASE_VOCAB
from helpers import TINY_CONFIG, write_release_dir


def _tnews_batch(count=32, maxlen=48):
    tokenizer = Tokenizer(str(RELEASE_VOCAB), do_lower_case=True)
    with open(os.path.join(CLUE_SAMPLES_DIR, "tnews", "train.json"), encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle if line.strip()][:count]
    codes = sorted({r["label"] for r in records})
    tokens, segments = zip(*(tokenizer.encode(r["sentence"], maxlen=maxlen) for r in records))
    labels = np.array([codes.index(r["label"]) for r in records])
    return [sequence_padding(tokens), sequence_padding(segments)], labels, len(codes)


def test_two_layer_gau_alpha_classifier_loss_decreases_with_adafactor(tmp_path):
    release = write_release_dir(tmp_path, TINY_CONFIG)
    tf.keras.utils.set_random_seed(0)
    backbone = gau_alpha.build_transformer_model(
        os.path.join(release, "bert_config.json"), os.path.join(release, "bert_model.ckpt"), application="unilm"
    )
    x, y, classes = _tnews_batch()
    assert classes > 5 and x[0].shape[0] == 32
    pooled = tf.keras.layers.Lambda(lambda h: h[:, 0], name="CLS")(backbone.output)
    probabilities = tf.keras.layers.Dense(classes, activation="softmax")(pooled)
    model = tf.keras.Model(backbone.inputs, probabilities)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=AdaFactor(learning_rate=5e-2))
    before = model.evaluate(x, y, verbose=0, batch_size=16)
    history = model.fit(x, y, epochs=10, batch_size=16, verbose=0, shuffle=False)
    after = model.evaluate(x, y, verbose=0, batch_size=16)
    losses = history.history["loss"]
    assert np.isfinite(losses).all()
    assert losses[-1] < losses[0]
    # evaluation is deterministic (no dropout): a drop of 0.01 nats is learning, not noise
    assert after < before - 0.01, (before, after)
