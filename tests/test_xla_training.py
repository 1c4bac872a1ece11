"""XLA in the CLUE train step and prediction, with length buckets (issue 14).

A tiny GAU-alpha (tests/helpers.TINY_CONFIG) on the bundled CLUE samples:

- bucketing pads only to the ladder, only the token axis, with padding tokens and zero masks;
- the XLA train step (bucketed shapes, filled last batch, stateless dropout) gives the same
  losses and weights as the ``--no-xla`` step (per-batch padding), and XLA prediction the
  same outputs; the number of compilations is the number of ladder widths the batches used,
  and a second epoch compiles nothing;
- with dropout on (stateless in the XLA step), an epoch depends only on the weights and
  optimizer state it starts from (what makes ``--resume`` exact);
- a model XLA cannot compile runs the same bucketed step without XLA, and says so;
- a model holding a random op whose seed XLA ignores is refused, not silently irreproducible.

XLA compilations cost seconds each on a CPU, so the runs are few steps on few buckets.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

import gau_alpha  # noqa: F401  (adapts bert4keras first)
import itertools

from gau_alpha.clue.features import (
    LADDER_MULTIPLE, batches_ladder, bucket_budget, bucket_width, collate_inputs, epoch_batches, length_ladder,
)
from gau_alpha.clue.loaders import load_split
from gau_alpha.clue.tasks import TaskParams, get_task
from gau_alpha.clue.training import Trainer, make_optimizer, predict_features, seed_everything
from gau_alpha.errors import RunError
from gau_alpha.model_dir import build_encoder, create_random_model_dir
from gau_alpha.resources import clue_sample_dir
from gau_alpha.tokenization import load_tokenizer
from helpers import TINY_CONFIG

BATCH = 8
STEPS = 4
MAX_BUCKETS = 2


def _features(task_name: str, split: str = "train", maxlen: int = 128):
    task = get_task(task_name)
    params = TaskParams(maxlen=maxlen)
    examples = load_split(task_name, clue_sample_dir(task_name), split)
    return task, task.encode(examples, load_tokenizer(fast=True), params, labelled=split == "train"), params


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("xla-models")
    plain = dict(TINY_CONFIG, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return {"no-dropout": create_random_model_dir(root / "no-dropout", config=plain, seed=5),
            "dropout": create_random_model_dir(root / "dropout", config=dict(TINY_CONFIG), seed=5)}


def _trainer(files, task, params, xla: bool, wrap=None, min_batches_per_bucket: int = 1) -> Trainer:
    """A fresh tnews model (seeded), optionally with its logits passed through ``wrap``."""
    tf.keras.backend.clear_session()
    seed_everything(11)
    encoder, transformer = build_encoder(files, application="unilm")
    params = dataclasses.replace(params, key_size=int(transformer.attention_key_size),
                                 kernel_initializer=transformer.initializer)
    model = task.build_model(encoder, params)
    if wrap is not None:
        model = tf.keras.Model(model.inputs, tf.keras.layers.Lambda(wrap)(model.output))
    return Trainer(task, model, make_optimizer(2e-3), tf.distribute.get_strategy(), progress=False, xla=xla,
                   max_buckets=MAX_BUCKETS, min_batches_per_bucket=min_batches_per_bucket)


# ------------------------------------------------------------------------------ bucketing
@pytest.mark.parametrize("task_name", ["tnews", "cmrc2018", "c3"])
def test_bucketing_pads_only_the_token_axis_and_only_to_the_ladder(task_name):
    task, features, _ = _features(task_name, maxlen=256)
    lengths = [f.length for f in features]
    ladder = length_ladder(lengths, 4)
    assert 1 <= len(ladder) <= 4 and ladder == sorted(set(ladder))
    assert all(w % LADDER_MULTIPLE == 0 for w in ladder)
    assert max(lengths) <= ladder[-1] < max(lengths) + LADDER_MULTIPLE
    used = set()
    for indices in epoch_batches(features, 4, seed=0, epoch=0):
        batch = [features[i] for i in indices]
        width = bucket_width(max(f.length for f in batch), ladder)
        used.add(width)
        assert width in ladder
        plain, padded = collate_inputs(batch), collate_inputs(batch, width=width)
        assert set(padded) == set(plain)
        for name, array in plain.items():
            token_aligned = array.shape == plain["token_ids"].shape
            expected = array.shape[:-1] + (width,) if token_aligned else array.shape
            assert padded[name].shape == expected, name
            np.testing.assert_array_equal(padded[name][..., : array.shape[-1]], array)
            assert not padded[name][..., array.shape[-1]:].any(), name  # padding tokens, zero masks
        if "choice_mask" in plain:
            assert plain["choice_mask"].shape[1] < width  # the choice axis is not the token axis
    assert used <= set(ladder)
    with pytest.raises(ValueError, match="shorter than the batch's longest"):
        collate_inputs(features[:2], width=max(f.length for f in features[:2]) - 1)


def test_the_ladder_pads_least():
    """Against every choice of widths (brute force), on random lengths with weights."""
    rng = np.random.default_rng(0)

    def padding(lengths, weights, ladder):
        return sum(w * (bucket_width(n, ladder) - n) for n, w in zip(lengths, weights))

    for _ in range(20):
        lengths = rng.integers(1, 120, size=int(rng.integers(1, 30)))
        weights = rng.integers(1, 5, size=len(lengths))
        buckets = int(rng.integers(1, 5))
        ladder = length_ladder(lengths, buckets, weights=weights)
        rounded = sorted({-(-int(n) // LADDER_MULTIPLE) * LADDER_MULTIPLE for n in lengths})
        assert len(ladder) <= buckets and ladder[-1] == rounded[-1] and set(ladder) <= set(rounded)
        best = min(padding(lengths, weights, list(c) + [rounded[-1]])
                   for k in range(min(buckets, len(rounded)))
                   for c in itertools.combinations(rounded[:-1], k))
        assert padding(lengths, weights, ladder) == best


def test_bucket_budget_gives_short_runs_one_width():
    assert bucket_budget(2) == 1 and bucket_budget(7) == 1
    assert bucket_budget(10_000) == 8 and bucket_budget(10_000, max_buckets=3) == 3
    assert bucket_budget(40, min_batches=10) == 4


# ------------------------------------------------------------------------------ XLA on/off
def test_xla_step_and_prediction_equal_the_no_xla_ones_with_bounded_compilations(model_dirs):
    task, features, params = _features("tnews")
    _, dev, _ = _features("tnews", "dev")
    dev = dev[:4]  # one prediction batch: one compilation
    results = {}
    for xla in (False, True):
        trainer = _trainer(model_dirs["no-dropout"], task, params, xla)
        losses = [trainer.train_epoch(features, BATCH, seed=3, epoch=epoch, max_steps=STEPS)["loss"]
                  for epoch in range(2)]
        after_first_epoch = trainer.compilations()["train_traces"]
        results[xla] = dict(losses=losses, weights=trainer.model.get_weights(),
                            dev=np.stack(trainer.predict(dev, 4)), report=trainer.compilations(),
                            standalone=np.stack(predict_features(task, trainer.model, dev, 4, xla=xla,
                                                                 max_buckets=MAX_BUCKETS, min_batches_per_bucket=1)),
                            after_first_epoch=after_first_epoch)
    plain, xla = results[False], results[True]
    np.testing.assert_allclose(xla["losses"], plain["losses"], rtol=1e-5)
    assert len(plain["weights"]) == len(xla["weights"]) > 10
    for a, b in zip(plain["weights"], xla["weights"]):
        np.testing.assert_allclose(b, a, atol=1e-5)
    assert np.abs(plain["dev"]).max() > 0.1  # real logits, not zeros
    np.testing.assert_allclose(xla["dev"], plain["dev"], atol=1e-5)
    np.testing.assert_array_equal(xla["standalone"], xla["dev"])  # predict_features is what a run uses
    np.testing.assert_array_equal(plain["standalone"], plain["dev"])

    # compilations: one per ladder width the batches used, none added by the second epoch
    ladder = batches_ladder(features, epoch_batches(features, BATCH, 3, 0)[:STEPS], BATCH, MAX_BUCKETS, 1)
    ladder[-1] = bucket_width(max(f.length for f in features), ())  # covers every feature
    widths = {bucket_width(max(features[i].length for i in batch), ladder)
              for epoch in range(2) for batch in epoch_batches(features, BATCH, 3, epoch)[:STEPS]}
    first = {bucket_width(max(features[i].length for i in batch), ladder)
             for batch in epoch_batches(features, BATCH, 3, 0)[:STEPS]}
    report = xla["report"]
    assert report["xla"] and report["fallback"] is None
    assert len(widths) >= 2, widths  # the run really mixes lengths
    assert report["train_traces"] == len(widths) <= len(ladder) <= MAX_BUCKETS
    assert xla["after_first_epoch"] == len(first)
    assert sorted(map(tuple, report["train_token_shapes"])) == sorted((BATCH, w) for w in widths)
    assert report["predict_traces"] == 1
    assert plain["report"]["train_traces"] == plain["report"]["predict_traces"] == 0


def test_an_xla_epoch_with_dropout_depends_only_on_its_starting_state(model_dirs):
    """What makes resuming exact: the same epoch from the same weights and optimizer state
    gives the same result to the bit, with dropout on (stateless, seeded per step)."""
    task, features, params = _features("tnews")
    trainer = _trainer(model_dirs["dropout"], task, params, xla=True, min_batches_per_bucket=16)  # one width
    assert trainer.dropout_layers == 5  # embedding, 2 x (attention, block output)
    trainer.train_epoch(features, BATCH, seed=3, epoch=0, max_steps=2)  # creates the optimizer state
    start = trainer.model.get_weights(), trainer.optimizer.get_weights()
    runs = []
    for _ in range(2):
        trainer.model.set_weights(start[0])
        trainer.optimizer.set_weights(start[1])
        loss = trainer.train_epoch(features, BATCH, seed=3, epoch=1, max_steps=2)["loss"]
        runs.append((loss, trainer.model.get_weights(), trainer.optimizer.get_weights()))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1] + runs[0][2], runs[1][1] + runs[1][2]):
        np.testing.assert_array_equal(a, b)
    assert any(np.abs(a - b).max() > 0 for a, b in zip(start[0], runs[0][1]))  # it trained
    assert trainer.compilations()["train_traces"] == 1  # one width: compiled once for all three epochs

    # dropout is really on: another step seed gives other outputs, no seed the legacy ops
    inputs = collate_inputs(features[:4])
    arrays = [tf.constant(inputs[name]) for name in task.input_names()]

    @tf.function(jit_compile=True)  # as in the train step (Philox counters need XLA here)
    def forward(arrays, seed):
        with trainer._seeds.active(seed):
            return trainer.model(arrays, training=True)

    outputs = [forward(arrays, tf.constant(seed, tf.int64)).numpy() for seed in ([1, 2], [1, 3], [1, 2])]
    np.testing.assert_array_equal(outputs[0], outputs[2])
    assert np.abs(outputs[0] - outputs[1]).max() > 1e-3
    assert np.abs(trainer.model(arrays, training=True).numpy() - outputs[0]).max() > 1e-3


def test_a_model_xla_cannot_compile_falls_back_and_says_so(model_dirs, capsys):
    """The fallback runs the same bucketed step without XLA: (no dropout) the same as --no-xla."""
    task, features, params = _features("tnews")

    def not_compilable(logits):  # adds 0 through an op without an XLA kernel (gradient: identity)
        zero = tf.numpy_function(lambda a: a * 0, [logits], tf.float32, stateful=False)
        return logits + tf.stop_gradient(zero)

    runs = {}
    for name, xla, wrap in (("fallback", True, not_compilable), ("no-xla", False, None)):
        trainer = _trainer(model_dirs["no-dropout"], task, params, xla=xla, wrap=wrap)
        loss = trainer.train_epoch(features, BATCH, seed=3, epoch=0, max_steps=3)["loss"]
        runs[name] = dict(loss=loss, weights=trainer.model.get_weights(), report=trainer.compilations())
    assert "XLA cannot compile the train step (no XLA kernel for the op PyFunc" in capsys.readouterr().err
    assert runs["fallback"]["report"]["fallback"].startswith("no XLA kernel for the op PyFunc")
    np.testing.assert_allclose(runs["fallback"]["loss"], runs["no-xla"]["loss"], rtol=1e-5)
    for a, b in zip(runs["fallback"]["weights"], runs["no-xla"]["weights"]):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_a_random_op_xla_cannot_seed_is_refused(model_dirs):
    task, features, params = _features("tnews")
    trainer = _trainer(model_dirs["no-dropout"], task, params, xla=True,
                       wrap=lambda logits: logits + 0 * tf.random.uniform(tf.shape(logits)))
    with pytest.raises(RunError, match="random ops whose seeds XLA ignores.*--no-xla"):
        trainer.train_epoch(features, BATCH, seed=3, epoch=0, max_steps=1)
