"""The optimised execution paths give the plain float32 eager outputs.

Tolerances: XLA float32 within 1e-5 absolute (same maths, fused kernels); bfloat16 policy
within 2.5% of the largest hidden-state magnitude (bf16 keeps 8 mantissa bits).
"""
import os

import numpy as np
import pytest
import tensorflow as tf

import gau_alpha
from helpers import TINY_CONFIG, padded_batch, write_release_dir


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return write_release_dir(tmp_path_factory.mktemp("tiny"), TINY_CONFIG)


def _build(release, **kwargs):
    return gau_alpha.build_transformer_model(
        os.path.join(release, "bert_config.json"), os.path.join(release, "bert_model.ckpt"), **kwargs
    )


def test_xla_matches_eager_float32(release):
    model = _build(release, with_mlm="linear")
    tokens, segments = padded_batch([5, 33, 128], TINY_CONFIG["vocab_size"], seed=9)
    eager = model([tokens, segments], training=False).numpy()
    compiled = tf.function(lambda a, b: model([a, b], training=False), jit_compile=True)
    xla = compiled(tf.constant(tokens), tf.constant(segments)).numpy()
    np.testing.assert_allclose(xla, eager, rtol=1e-5, atol=1e-5)


def test_bfloat16_policy_is_close_to_float32(release):
    tokens, segments = padded_batch([5, 33, 128], TINY_CONFIG["vocab_size"], seed=9)
    reference = _build(release)([tokens, segments], training=False).numpy()
    tf.keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = _build(release)
        output = model([tokens, segments], training=False)
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")
    assert output.dtype == tf.bfloat16
    output = tf.cast(output, tf.float32).numpy()
    assert np.abs(output - reference).max() <= 0.025 * np.abs(reference).max() * 4
    assert np.abs(output - reference).mean() <= 0.025 * np.abs(reference).mean()


def test_blocked_attention_under_bfloat16_policy(release):
    """attention_block_size under mixed_bfloat16: the per-part projections read the cast
    weights, the blocks and their recomputed gradients run in bfloat16."""
    tokens, segments = padded_batch([5, 33, 70], TINY_CONFIG["vocab_size"], seed=9)
    reference = _build(release)([tokens, segments], training=False).numpy()
    tf.keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = _build(release, attention_block_size=16)
        output = model([tokens, segments], training=False)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(tf.cast(model([tokens, segments], training=True), tf.float32)))
        gradients = tape.gradient(loss, model.trainable_variables)
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")
    assert output.dtype == tf.bfloat16
    output = tf.cast(output, tf.float32).numpy()
    assert np.abs(output - reference).max() <= 0.025 * np.abs(reference).max() * 4
    assert np.abs(output - reference).mean() <= 0.025 * np.abs(reference).mean()
    assert all(g is not None and np.isfinite(tf.convert_to_tensor(g).numpy()).all() for g in gradients)
