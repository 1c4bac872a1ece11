"""GatedAttentionUnit and residual attention against independent numpy formulas."""
import numpy as np
import pytest
import tensorflow as tf

import gau_alpha
from gau_alpha.layers import GatedAttentionUnit, ResidualMultiHeadAttention
from numpy_reference import gau_projections, mha_projections, normalize, residual_logits, rope, swish

B, N, H, E, S = 2, 12, 16, 24, 8
RTOL, ATOL = 1e-4, 2e-5


def sinusoid_table(n, size):
    """(1, n, size): [sin(p t_0), cos(p t_0), sin(p t_1), ...] with t_i = 10000^(-2i/size)."""
    theta = np.arange(n)[:, None] * 10000.0 ** (-2.0 * np.arange(size // 2) / size)
    table = np.stack([np.sin(theta), np.cos(theta)], -1).reshape(n, size)
    return table[None].astype(np.float32)


def key_mask(lengths, n=N):
    return np.arange(n)[None] < np.asarray(lengths)[:, None]


def build_gau(rng, **kwargs):
    layer = GatedAttentionUnit(units=E, key_size=S, use_bias=False, **kwargs)
    layer.build([(None, None, H)])
    layer.set_weights([
        (rng.standard_normal((H, 2 * E + S)) / np.sqrt(H)).astype(np.float32),
        (1 + 0.2 * rng.standard_normal(S)).astype(np.float32),
        (1 + 0.2 * rng.standard_normal(S)).astype(np.float32),
        (rng.standard_normal((E, H)) / np.sqrt(E)).astype(np.float32),
    ])
    return layer


def numpy_gau(layer, x, mask, method, logits_fn=lambda b, s: s, visible=None, min_length=16):
    """Per-example numpy GAU; ``logits_fn`` maps raw scores to logits (residual)."""
    w_i, g_q, g_k, w_o = layer.get_weights()
    out = []
    for b in range(x.shape[0]):
        u, v, scores = gau_projections(x[b], w_i, g_q, g_k, E, S)
        weights = normalize(logits_fn(b, scores), mask[b], method, min_length=min_length, visible=visible)
        out.append((u * (weights @ v)) @ w_o)
    return np.stack(out)


@pytest.mark.parametrize("method", ["softmax_plus", "softmax", "squared_relu"])
@pytest.mark.parametrize("lengths", [[N, N], [N, 5]])
def test_gau_self_attention_matches_numpy(method, lengths):
    rng = np.random.default_rng(1)
    layer = build_gau(rng, normalization=method)
    x = rng.standard_normal((B, N, H)).astype(np.float32)
    mask = key_mask(lengths)
    got = layer([x, sinusoid_table(N, S)], mask=[tf.constant(mask), None], p_bias="rotary").numpy()
    want = numpy_gau(layer, x, mask, method, lambda b, s: s)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


def test_softmax_plus_length_clamp_is_configurable():
    """Short sequences: bert4keras clamps n at 16; None (the PyTorch port) does not."""
    rng = np.random.default_rng(2)
    clamped = build_gau(rng, normalization="softmax_plus")
    unclamped = GatedAttentionUnit.from_config(dict(clamped.get_config(), softmax_plus_min_length=None))
    unclamped.build([(None, None, H)])
    unclamped.set_weights(clamped.get_weights())
    x = rng.standard_normal((B, N, H)).astype(np.float32)
    mask = key_mask([4, N])
    inputs = [x, sinusoid_table(N, S)]
    a = clamped(inputs, mask=[tf.constant(mask), None], p_bias="rotary").numpy()
    b = unclamped(inputs, mask=[tf.constant(mask), None], p_bias="rotary").numpy()
    np.testing.assert_allclose(a, numpy_gau(clamped, x, mask, "softmax_plus", min_length=16), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(b, numpy_gau(clamped, x, mask, "softmax_plus", min_length=None), rtol=RTOL, atol=ATOL)
    # 4 and 12 keys are both below 16: the clamp changes both examples
    assert np.abs(a[0] - b[0]).max() > 1e-3 and np.abs(a[1] - b[1]).max() > 1e-4


def test_gau_boolean_and_additive_attention_bias():
    rng = np.random.default_rng(3)
    layer = build_gau(rng, normalization="softmax_plus")
    x = rng.standard_normal((B, N, H)).astype(np.float32)
    mask = key_mask([N, 9])
    causal = np.tril(np.ones((N, N), bool))
    table = sinusoid_table(N, S)
    got = layer([x, tf.constant(causal), table], mask=[tf.constant(mask), None, None], a_bias=True, p_bias="rotary").numpy()
    np.testing.assert_allclose(got, numpy_gau(layer, x, mask, "softmax_plus", visible=causal), rtol=RTOL, atol=ATOL)
    additive = rng.standard_normal((B, N, N)).astype(np.float32)
    got = layer([x, additive, table], mask=[tf.constant(mask), None, None], a_bias=True, p_bias="rotary").numpy()
    want = numpy_gau(layer, x, mask, "softmax_plus", lambda b, s: s + additive[b])
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


def test_gau_cross_attention_matches_numpy():
    rng = np.random.default_rng(4)
    layer = GatedAttentionUnit(units=E, key_size=S, use_bias=True, self_attention=False, normalization="softmax")
    layer.build([(None, None, H)] * 3)
    weights = [rng.standard_normal(w.shape).astype(np.float32) * 0.3 for w in layer.weights]
    layer.set_weights(weights)
    w_uq, b_uq, w_k, b_k, w_v, b_v, w_o, b_o = weights
    m = 7
    q_in = rng.standard_normal((B, N, H)).astype(np.float32)
    kv_in = rng.standard_normal((B, m, H)).astype(np.float32)
    kv_mask = key_mask([m, 4], m)
    got = layer([q_in, kv_in, kv_in], mask=[None, tf.constant(kv_mask), tf.constant(kv_mask)]).numpy()
    for b in range(B):
        uq = swish(q_in[b] @ w_uq + b_uq)
        u, q = uq[:, :E], uq[:, E:]
        k, v = swish(kv_in[b] @ w_k + b_k), swish(kv_in[b] @ w_v + b_v)
        weights_b = normalize(q @ k.T / np.sqrt(S), kv_mask[b], "softmax")
        np.testing.assert_allclose(got[b], (u * (weights_b @ v)) @ w_o + b_o, rtol=RTOL, atol=ATOL)


def test_gau_attention_dropout_only_in_training():
    rng = np.random.default_rng(5)
    layer = build_gau(rng, normalization="softmax_plus", attention_dropout=0.5)
    x = rng.standard_normal((B, N, H)).astype(np.float32)
    inputs = [x, sinusoid_table(N, S)]
    plain = build_gau(np.random.default_rng(5), normalization="softmax_plus")
    inference = layer(inputs, p_bias="rotary", training=False).numpy()
    np.testing.assert_allclose(inference, plain(inputs, p_bias="rotary").numpy(), rtol=1e-6, atol=1e-6)
    train_a = layer(inputs, p_bias="rotary", training=True).numpy()
    train_b = layer(inputs, p_bias="rotary", training=True).numpy()
    assert np.abs(train_a - inference).max() > 1e-3
    assert np.abs(train_a - train_b).max() > 1e-3


def test_gau_get_config_round_trips():
    layer = GatedAttentionUnit(
        units=E, key_size=S, activation="swish", use_bias=True, normalization="squared_relu",
        self_attention=False, attention_dropout=0.1, softmax_plus_min_length=None,
        residual_attention="mean", layer_index=3, name="gau",
    )
    config = layer.get_config()
    clone = GatedAttentionUnit.from_config(config)
    assert clone.get_config() == config
    serialized = tf.keras.layers.serialize(layer)
    assert serialized["registered_name"] == "gau_alpha>GatedAttentionUnit"
    restored = tf.keras.layers.deserialize(serialized)
    assert type(restored) is GatedAttentionUnit  # not bert4keras's layer of the same name
    assert restored.get_config() == config
    with pytest.raises(ValueError, match="normalization"):
        GatedAttentionUnit(units=E, key_size=S, normalization="sparsemax")
    with pytest.raises(ValueError, match="residual_attention"):
        GatedAttentionUnit(units=E, key_size=S, residual_attention="sum")


def test_residual_mha_get_config_round_trips():
    layer = ResidualMultiHeadAttention(heads=2, head_size=8, residual_attention="previous", layer_index=1)
    config = layer.get_config()
    assert ResidualMultiHeadAttention.from_config(config).get_config() == config


# ------------------------------------------------------------------------ residual
@pytest.mark.parametrize("mode", ["cumulative", "mean", "previous"])
@pytest.mark.parametrize("lengths", [[N, N], [N, 6]])
def test_gau_residual_attention_over_three_layers(mode, lengths):
    rng = np.random.default_rng(6)
    mask = key_mask(lengths)
    layers = [build_gau(rng, normalization="softmax_plus", residual_attention=mode, layer_index=i) for i in range(3)]
    x = rng.standard_normal((B, N, H)).astype(np.float32)
    table = sinusoid_table(N, S)

    # numpy: raw scores of each layer from that layer's numpy input
    np_x, np_scores, np_outputs = x.astype(np.float64), [], []
    for index, layer in enumerate(layers):
        w_i, g_q, g_k, _ = layer.get_weights()
        np_scores.append(np.stack([gau_projections(np_x[b], w_i, g_q, g_k, E, S)[2] for b in range(B)]))
        logits, _ = residual_logits(np_scores, mode)
        np_outputs.append(numpy_gau(layer, np_x, mask, "softmax_plus", lambda b, s: logits[index][b]))
        np_x = np_outputs[-1]
    _, np_passed = residual_logits(np_scores, mode)

    def gau_inputs(tf_x):
        return [tf_x, table], [tf.constant(mask), None], {"p_bias": "rotary"}

    check_stacked_residual_layers(layers, x, gau_inputs, np_outputs, np_passed)


def check_stacked_residual_layers(layers, x, make_inputs, np_outputs, np_passed):
    """Run ``layers`` in sequence, threading each layer's residual scores into the next as
    the last input (``r_scores``), and compare outputs and passed scores with numpy's.
    ``make_inputs(x) -> (inputs, masks, kwargs)`` gives a layer's inputs before the scores."""
    tf_x, previous = x, None
    for index, layer in enumerate(layers):
        inputs, masks, kwargs = make_inputs(tf_x)
        if previous is not None:
            inputs.append(previous)
            masks.append(None)
            kwargs["r_scores"] = True
        tf_x, previous = layer(inputs, mask=masks, **kwargs)
        np.testing.assert_allclose(previous.numpy(), np_passed[index], rtol=RTOL, atol=1e-4)
        np.testing.assert_allclose(tf_x.numpy(), np_outputs[index], rtol=RTOL, atol=1e-4)


def boolean_attention_mask(kind):
    """None, the (N, N) causal LM mask, or a (B, N, N) UniLM mask (second segment from 4 / 7)."""
    if kind is None:
        return None
    if kind == "lm":
        return np.tril(np.ones((N, N), bool))
    segments = np.stack([np.arange(N) >= start for start in (4, 7)]).astype(np.int32)
    index = np.cumsum(segments, axis=1)
    return index[:, None, :] <= index[:, :, None]


@pytest.mark.parametrize("mode", ["cumulative", "mean", "previous"])
@pytest.mark.parametrize("lengths, attention_mask", [([N, N], None), ([N, 6], None), ([N, 6], "lm"), ([N, 6], "unilm")])
def test_multi_head_residual_attention_over_three_layers(mode, lengths, attention_mask):
    rng = np.random.default_rng(7)
    heads, size = 2, 8
    mask = key_mask(lengths)
    allowed = boolean_attention_mask(attention_mask)
    layers = []
    for index in range(3):
        layer = ResidualMultiHeadAttention(heads=heads, head_size=size, residual_attention=mode, layer_index=index)
        layer.build([(None, None, H)] * 3)
        layer.set_weights([rng.standard_normal(w.shape).astype(np.float32) * 0.4 for w in layer.weights])
        layers.append(layer)
    x = rng.standard_normal((B, N, H)).astype(np.float32)

    np_x, np_scores, np_outputs = x.astype(np.float64), [], []
    for index, layer in enumerate(layers):
        wq, bq, wk, bk, wv, bv, wo, bo = layer.get_weights()
        np_scores.append(np.stack([mha_projections(np_x[b], wq, bq, wk, bk, heads, size) for b in range(B)]))
        logits, _ = residual_logits(np_scores, mode)
        out = []
        for b in range(B):
            visible = None if allowed is None else (allowed if allowed.ndim == 2 else allowed[b])
            weights = normalize(logits[index][b], mask[b], "softmax", visible=visible)  # (h, N, N)
            v = (np_x[b] @ wv + bv).reshape(N, heads, size)
            context = np.einsum("hnm,mhd->nhd", weights, v).reshape(N, heads * size)
            out.append(context @ wo + bo)
        np_outputs.append(np.stack(out))
        np_x = np_outputs[-1]
    _, np_passed = residual_logits(np_scores, mode)

    def mha_inputs(tf_x):
        inputs, masks, kwargs = [tf_x, tf_x, tf_x], [tf.constant(mask)] * 3, {}
        if allowed is not None:
            inputs.append(tf.constant(allowed))
            masks.append(None)
            kwargs["a_bias"] = True
        return inputs, masks, kwargs

    check_stacked_residual_layers(layers, x, mha_inputs, np_outputs, np_passed)


def test_rope_matches_rotation_formula():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, N, S)).astype(np.float32)
    got = gau_alpha.apply_rotary(tf.constant(x), tf.constant(sinusoid_table(N, S))).numpy()
    np.testing.assert_allclose(got[0], rope(x[0].astype(np.float64)), rtol=1e-5, atol=1e-5)
    # relative: q_m . k_n depends on m - n only
    q, k = rng.standard_normal(S), rng.standard_normal(S)
    table = tf.constant(sinusoid_table(N, S))
    rq = gau_alpha.apply_rotary(tf.constant(np.tile(q, (1, N, 1)).astype(np.float32)), table).numpy()[0]
    rk = gau_alpha.apply_rotary(tf.constant(np.tile(k, (1, N, 1)).astype(np.float32)), table).numpy()[0]
    assert abs(rq[5] @ rk[2] - rq[8] @ rk[5]) < 1e-4
