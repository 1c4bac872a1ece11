"""Attention computed in query blocks (``attention_block_size``) equals the whole-matrix layer.

Forward outputs and gradients (inputs, weights, float biases, residual scores) of the blocked
GatedAttentionUnit against the unblocked one with the same weights: every normalisation, key
masks with padding, boolean (LM, UniLM) and additive biases, the three residual modes over
stacked layers, block sizes that divide the length and that do not; then the model built
with the option (strict checkpoint loading, XLA) and the command-line flag.
"""
import os

import numpy as np
import pytest
import tensorflow as tf

import gau_alpha
from gau_alpha.errors import ConfigError
from gau_alpha.layers import GatedAttentionUnit, query_block_layout
from helpers import TINY_CONFIG, padded_batch, write_release_dir
from test_layers import E, H, S, boolean_attention_mask, build_gau, key_mask, sinusoid_table

B, N = 2, 12
# float32, same maths in a different grouping: differences are rounding only
ATOL = 1e-5
BLOCK_SIZES = [4, 5]  # divides N, does not divide N (one block >= N: the residual and model tests)


def close(got, want, atol=ATOL, relative=False):
    got, want = np.asarray(tf.convert_to_tensor(got)), np.asarray(tf.convert_to_tensor(want))
    scale = max(1.0, float(np.abs(want).max())) if relative else 1.0
    np.testing.assert_allclose(got, want, rtol=0, atol=atol * scale)


def twin(block_size, **kwargs):
    """(unblocked, blocked) GAU layers with the same random weights."""
    plain = build_gau(np.random.default_rng(11), **kwargs)
    blocked = build_gau(np.random.default_rng(11), attention_block_size=block_size, **kwargs)
    return plain, blocked


def outputs_and_gradients(layer, inputs, masks, kwargs, watched, weight=None):
    """The layer's outputs and d(loss)/d(watched + trainable weights), loss a fixed random
    projection of every output (so each output element matters)."""
    with tf.GradientTape() as tape:
        tape.watch(watched)
        outputs = layer(inputs, mask=masks, **kwargs)
        flat = outputs if isinstance(outputs, list) else [outputs]
        rng = np.random.default_rng(0)
        loss = sum(tf.reduce_sum(o * rng.standard_normal(o.shape).astype(np.float32)) for o in flat)
    return flat, tape.gradient(loss, watched + layer.trainable_weights)


@pytest.mark.parametrize("block_size", BLOCK_SIZES)
@pytest.mark.parametrize("method", ["softmax_plus", "softmax", "squared_relu"])
@pytest.mark.parametrize("attention_mask", [None, "lm", "unilm", "additive"])
def test_blocked_gau_equals_unblocked(method, attention_mask, block_size):
    rng = np.random.default_rng(1)
    plain, blocked = twin(block_size, normalization=method)
    x = tf.constant(rng.standard_normal((B, N, H)).astype(np.float32))
    mask = tf.constant(key_mask([N, 5]))  # the second example is padded after 5 tokens
    inputs, masks, kwargs, watched = [x], [mask], {"p_bias": "rotary"}, [x]
    if attention_mask is not None:
        if attention_mask == "additive":
            bias = tf.constant(rng.standard_normal((B, N, N)).astype(np.float32))
            watched.append(bias)
        else:
            bias = tf.constant(boolean_attention_mask(attention_mask))
        inputs.append(bias)
        masks.append(None)
        kwargs["a_bias"] = True
    inputs.append(sinusoid_table(N, S))
    masks.append(None)
    want, want_grads = outputs_and_gradients(plain, inputs, masks, kwargs, watched)
    got, got_grads = outputs_and_gradients(blocked, inputs, masks, kwargs, watched)
    close(got[0], want[0])
    assert len(got_grads) == len(want_grads)
    for g, w in zip(got_grads, want_grads):
        close(g, w, relative=True)


@pytest.mark.parametrize("block_size", [5, 64])
@pytest.mark.parametrize("mode", ["cumulative", "mean", "previous"])
def test_blocked_residual_attention_equals_unblocked_over_three_layers(mode, block_size):
    """Outputs, passed scores and gradients through three stacked layers (the scores of one
    layer are the next one's input), with padding and the UniLM mask."""
    rng = np.random.default_rng(2)
    pairs = [
        (build_gau(np.random.default_rng(20 + i), normalization="softmax_plus", residual_attention=mode, layer_index=i),
         build_gau(np.random.default_rng(20 + i), normalization="softmax_plus", residual_attention=mode, layer_index=i,
                   attention_block_size=block_size))
        for i in range(3)
    ]
    x0 = tf.constant(rng.standard_normal((B, N, H)).astype(np.float32))
    mask = tf.constant(key_mask([N, 7]))
    unilm = tf.constant(boolean_attention_mask("unilm"))
    table = sinusoid_table(N, S)
    readout = [rng.standard_normal((B, N, H)).astype(np.float32) for _ in range(3)]

    def run(which):
        layers = [pair[which] for pair in pairs]
        with tf.GradientTape() as tape:
            tape.watch(x0)
            x, previous, outputs, loss = x0, None, [], 0.0
            for index, layer in enumerate(layers):
                inputs, masks, kwargs = [x, unilm, table], [mask, None, None], {"a_bias": True, "p_bias": "rotary"}
                if previous is not None:
                    inputs.append(previous)
                    masks.append(None)
                    kwargs["r_scores"] = True
                x, previous = layer(inputs, mask=masks, **kwargs)
                outputs += [x, previous]
                loss += tf.reduce_sum(x * readout[index])
            loss += tf.reduce_sum(tf.sin(previous))
        weights = [w for layer in layers for w in layer.trainable_weights]
        return outputs, tape.gradient(loss, [x0] + weights)

    want, want_grads = run(0)
    got, got_grads = run(1)
    for g, w in zip(got, want):
        close(g, w, relative=True)
    for g, w in zip(got_grads, want_grads):
        close(g, w, relative=True)


def test_blocked_cross_attention_with_other_key_length():
    rng = np.random.default_rng(3)
    layers = []
    for block_size in (None, 5):
        layer = GatedAttentionUnit(units=E, key_size=S, self_attention=False, normalization="softmax_plus",
                                   attention_block_size=block_size)
        layer.build([(None, None, H)] * 3)
        layers.append(layer)
    layers[1].set_weights(layers[0].get_weights())
    q_in = tf.constant(rng.standard_normal((B, N, H)).astype(np.float32))
    kv_in = tf.constant(rng.standard_normal((B, 7, H)).astype(np.float32))
    kv_mask = tf.constant(key_mask([7, 3], 7))
    results = [outputs_and_gradients(layer, [q_in, kv_in, kv_in], [None, kv_mask, kv_mask], {}, [q_in, kv_in])
               for layer in layers]
    close(results[1][0][0], results[0][0][0])
    for g, w in zip(results[1][1], results[0][1]):
        close(g, w, relative=True)


def test_query_block_layout_covers_every_row_with_equal_blocks():
    for length in (1, 5, 12, 512, 513, 1000, 16384):
        for block_size in (1, 5, 512):
            count, size = (int(t) for t in query_block_layout(length, block_size))
            assert size <= block_size and count * size >= length and (count - 1) * size < length
            assert count == -(-length // block_size)


def test_blocked_dropout_is_the_same_in_forward_and_backward():
    """Training with attention dropout: masks drawn per block are those the backward pass
    recomputes, so the gradient is the derivative of the forward (checked against central
    differences under the same random seed); inference has no dropout."""
    rng = np.random.default_rng(4)
    _, layer = twin(5, normalization="softmax_plus", attention_dropout=0.3)
    plain, _ = twin(5, normalization="softmax_plus")
    x = tf.constant(rng.standard_normal((1, N, H)).astype(np.float32))
    inputs = lambda x: [x, sinusoid_table(N, S)]  # noqa: E731
    direction = tf.constant(rng.standard_normal((1, N, H)).astype(np.float32))

    def loss(x):
        tf.random.set_seed(123)
        return tf.reduce_sum(tf.sin(layer(inputs(x), p_bias="rotary", training=True)))

    with tf.GradientTape() as tape:
        tape.watch(x)
        value = loss(x)
    gradient = tape.gradient(value, x)
    assert float(value) == float(loss(x))  # same seed, same masks
    tf.random.set_seed(7)
    other_seed = float(tf.reduce_sum(tf.sin(layer(inputs(x), p_bias="rotary", training=True))))
    assert abs(other_seed - float(value)) > 1e-4  # another seed, other masks
    eps = 1e-2
    numeric = (float(loss(x + eps * direction)) - float(loss(x - eps * direction))) / (2 * eps)
    analytic = float(tf.reduce_sum(gradient * direction))
    assert abs(numeric - analytic) <= 2e-2 * max(1.0, abs(analytic))
    inference = layer(inputs(x), p_bias="rotary", training=False)
    close(inference, plain(inputs(x), p_bias="rotary"))
    dropped = layer(inputs(x), p_bias="rotary", training=True)
    assert np.abs(dropped.numpy() - inference.numpy()).max() > 1e-3


def test_attention_block_size_config_and_validation():
    layer = GatedAttentionUnit(units=E, key_size=S, attention_block_size=256)
    config = layer.get_config()
    assert config["attention_block_size"] == 256
    assert GatedAttentionUnit.from_config(config).attention_block_size == 256
    assert GatedAttentionUnit(units=E, key_size=S).get_config()["attention_block_size"] is None
    for bad in (0, -3, 2.5, True, "512"):
        with pytest.raises(ValueError, match="attention_block_size"):
            GatedAttentionUnit(units=E, key_size=S, attention_block_size=bad)


# ---------------------------------------------------------------------------- models
@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return write_release_dir(tmp_path_factory.mktemp("tiny"), TINY_CONFIG)


def _build(release, **kwargs):
    return gau_alpha.build_transformer_model(
        os.path.join(release, "bert_config.json"), os.path.join(release, "bert_model.ckpt"), **kwargs
    )


@pytest.mark.parametrize("application", ["encoder", "unilm"])
def test_blocked_model_loads_strictly_and_equals_unblocked(release, application):
    tokens, segments = padded_batch([5, 33, 70], TINY_CONFIG["vocab_size"], seed=9)
    want = _build(release, application=application)([tokens, segments], training=False).numpy()
    model = _build(release, application=application, attention_block_size=32)  # 70 rows: 3 blocks of 24, 2 rows repeated
    layer = model.get_layer("Transformer-0-GatedAttentionUnit")
    assert layer.attention_block_size == 32
    close(model([tokens, segments], training=False), want, relative=True)
    if application == "encoder":
        compiled = tf.function(lambda a, b: model([a, b], training=False), jit_compile=True)
        close(compiled(tf.constant(tokens), tf.constant(segments)), want, relative=True)


def test_blocked_model_trains_under_xla_like_unblocked(release):
    """One gradient of the whole model (dropout off) under XLA: blocked equals unblocked."""
    tokens, segments = padded_batch([9, 40], TINY_CONFIG["vocab_size"], seed=3)

    def gradients(model):
        @tf.function(jit_compile=True)
        def step(a, b):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.square(model([a, b], training=False)))
            return tape.gradient(loss, model.trainable_variables)

        return [tf.convert_to_tensor(g) for g in step(tf.constant(tokens), tf.constant(segments))]

    for g, w in zip(gradients(_build(release, attention_block_size=7)), gradients(_build(release))):  # 6 blocks of 7 for 40
        close(g, w, relative=True)


def test_blocked_model_with_dropout_runs_under_xla(release):
    model = _build(release, attention_block_size=8, residual_attention_scores=True)
    tokens, segments = padded_batch([9, 40], TINY_CONFIG["vocab_size"], seed=3)
    step = tf.function(lambda a, b: model([a, b], training=True), jit_compile=True)
    first, second = (step(tf.constant(tokens), tf.constant(segments)).numpy() for _ in range(2))
    assert np.isfinite(first).all() and np.abs(first - second).max() > 0  # dropout drawn anew


def test_bad_attention_block_size_is_a_config_error(release):
    with pytest.raises(ConfigError, match="attention_block_size"):
        _build(release, attention_block_size=0)
    with pytest.raises(ConfigError, match="attention_blok_size"):
        _build(release, attention_blok_size=64)  # misspelt: refused with a suggestion


def test_fill_mask_takes_attention_block_size(tmp_path, capsys):
    from gau_alpha.cli import main

    release = write_release_dir(tmp_path / "release", TINY_CONFIG)
    text = "北京是中国的[MASK]都。"
    assert main(["fill-mask", "--model-dir", str(release), "--top-k", "2", text]) == 0
    plain = capsys.readouterr().out
    assert main(["fill-mask", "--model-dir", str(release), "--top-k", "2", "--attention-block-size", "4", text]) == 0
    assert capsys.readouterr().out == plain
    with pytest.raises(SystemExit) as exit_info:
        main(["fill-mask", "--model-dir", str(release), "--attention-block-size", "0", text])
    assert exit_info.value.code == 2
