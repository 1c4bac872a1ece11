"""Keras layers: the Gated Attention Unit and residual (RealFormer) attention.

Shapes: B batch, N query length, M key length, H hidden size, E expansion (``units``),
S key size, h heads.

Both attention layers accept bert4keras's calling convention, so they drop into
``bert4keras.models.Transformer.apply``: a list of inputs and the flags ``a_bias`` (an
attention bias/mask input follows), ``p_bias='rotary'`` (a sinusoidal table follows) and
``r_scores`` (the previous layer's residual scores follow, last).

Residual attention (``residual_attention``):

- ``'cumulative'`` (RealFormer): ``P_l = S_l + P_{l-1}``; attention logits are ``P_l``;
  the layer outputs ``P_l`` for the next layer.
- ``'mean'`` (RealFormer's running mean): as cumulative, but the logits are
  ``P_l / (l + 1)`` with ``l = layer_index`` (0-based); ``P_l`` is passed on undivided.
- ``'previous'`` (bert4keras's ``residual_attention_scores=True``): logits are
  ``S_l + S_{l-1}``; the layer passes its own raw ``S_l``.

``S_l`` are the scaled raw scores ``q k^T / sqrt(S)``; masks and attention biases are
always added after the residual sum and never passed on.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from gau_alpha import compat

compat.apply()

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from bert4keras.layers import MultiHeadAttention as _Bert4kerasMultiHeadAttention
from tf_keras import activations, initializers, layers as keras_layers

from gau_alpha.compat import recompute_grad

NORMALIZATIONS = ("softmax", "softmax_plus", "squared_relu")
RESIDUAL_MODES = ("cumulative", "mean", "previous")


# ----------------------------------------------------------------------------- helpers
def apply_rotary(x: tf.Tensor, sinusoid: tf.Tensor) -> tf.Tensor:
    """Rotary position embedding on interleaved pairs.

    Args:
        x: (B, N, ..., S) with S even.
        sinusoid: (B or 1, >= N, S) laid out as ``[sin_0, cos_0, sin_1, cos_1, ...]``
            (bert4keras ``SinusoidalPositionEmbedding(merge_mode='zero')``).
    Returns:
        (B, N, ..., S): ``x * cos + rot(x) * sin`` with ``rot(x)_{2i} = -x_{2i+1}``,
        ``rot(x)_{2i+1} = x_{2i}``.
    """
    length = tf.shape(x)[1]
    sinusoid = tf.cast(sinusoid[:, :length], x.dtype)
    extra = x.shape.rank - 3
    sinusoid = tf.reshape(
        sinusoid, tf.concat([tf.shape(sinusoid)[:2], [1] * extra, tf.shape(sinusoid)[-1:]], 0)
    )
    sin = tf.repeat(sinusoid[..., 0::2], 2, axis=-1)
    cos = tf.repeat(sinusoid[..., 1::2], 2, axis=-1)
    rotated = tf.reshape(tf.stack([-x[..., 1::2], x[..., 0::2]], axis=-1), tf.shape(x))
    return x * cos + rotated * sin


def combine_residual_scores(
    scores: tf.Tensor, previous: Optional[tf.Tensor], mode: str, layer_index: int
) -> Tuple[tf.Tensor, tf.Tensor]:
    """Residual attention, the one implementation of every mode (see the module doc).

    Args:
        scores: this layer's scaled raw scores S_l, (B, [h,] N, M).
        previous: what layer l-1 passed on (same shape), or None for the first layer.
        mode: ``cumulative``, ``mean`` or ``previous``.
        layer_index: l, 0-based (``mean`` divides by l + 1).
    Returns:
        ``(logits to normalise, scores to pass to layer l+1)``, both shaped like ``scores``.
    """
    if mode not in RESIDUAL_MODES:
        raise ValueError("residual_attention must be one of %s, got %r" % (RESIDUAL_MODES, mode))
    if mode == "previous":
        logits = scores if previous is None else scores + previous
        return logits, scores
    total = scores if previous is None else scores + previous
    if mode == "mean":
        return total / float(layer_index + 1), total
    return total, total


def visible_keys(
    key_mask: Optional[tf.Tensor], bias: Optional[tf.Tensor], rank: int
) -> Optional[tf.Tensor]:
    """Boolean mask of the keys each query may see, broadcastable to the scores.

    Args:
        key_mask: (B, M), True for real keys, or None.
        bias: a boolean attention mask ((N, M) or (B, N, M); True = may attend), or None.
        rank: rank of the scores, 3 for (B, N, M) or 4 for (B, h, N, M).
    Returns:
        None, or a bool tensor of shape (B, [1,] 1, M), (B, [1,] N, M) or ([1, 1,] N, M).
    """
    visible = None
    if key_mask is not None:
        key_mask = tf.cast(key_mask, tf.bool)
        visible = tf.reshape(key_mask, tf.concat([tf.shape(key_mask)[:1], [1] * (rank - 2), tf.shape(key_mask)[-1:]], 0))
    if bias is not None:
        if bias.shape.rank == 3 and rank == 4:
            bias = bias[:, None]
        visible = bias if visible is None else tf.logical_and(visible, bias)
    return visible


def count_visible(visible: Optional[tf.Tensor], length: tf.Tensor) -> tf.Tensor:
    """Number of visible keys per query row, float32, keepdims (no (B, N, M) broadcast
    when the mask has no query axis). ``length`` is used when ``visible`` is None."""
    if visible is None:
        return tf.cast(length, tf.float32)
    return tf.reduce_sum(tf.cast(visible, tf.float32), axis=-1, keepdims=True)


def softmax_plus_factor(n: tf.Tensor, min_length: Optional[float], base_length: float) -> tf.Tensor:
    """``log(n) / log(base)`` with ``n`` clamped below at ``min_length`` (unless None)."""
    if min_length is not None:
        n = tf.maximum(n, float(min_length))
    return tf.math.log(n) / math.log(base_length)


def masked_softmax(logits: tf.Tensor, visible: Optional[tf.Tensor]) -> tf.Tensor:
    """Softmax over the last axis in float32 with invisible keys at exactly 0; returns
    ``logits.dtype``."""
    x = tf.cast(logits, tf.float32)
    if visible is not None:
        x = tf.where(visible, x, tf.constant(-np.inf, tf.float32))
    return tf.cast(tf.nn.softmax(x, axis=-1), logits.dtype)


def normalize_attention(
    logits: tf.Tensor,
    key_mask: Optional[tf.Tensor],
    bias: Optional[tf.Tensor],
    method: str,
    min_length: Optional[float] = 16.0,
    base_length: float = 512.0,
) -> tf.Tensor:
    """Attention weights from logits; computed in float32, returned in ``logits.dtype``.

    Args:
        logits: (B, [h,] N, M).
        key_mask: (B, M) boolean/0-1, True for real keys; None for all keys.
        bias: None, a boolean mask broadcastable to logits (True = may attend; e.g. the
            (N, M) LM mask or the (B, N, M) UniLM mask), or an additive float bias.
        method: ``softmax``; ``softmax_plus`` (``softmax(logits * log(n) / log(base))``,
            n = visible keys, clamped below at ``min_length`` unless None); or
            ``squared_relu`` (``relu(logits)^2 / n``).
    Returns:
        (B, [h,] N, M) weights; masked keys get exactly 0.
    """
    if method not in NORMALIZATIONS:
        raise ValueError("normalization must be one of %s, got %r" % (NORMALIZATIONS, method))
    out_dtype = logits.dtype
    x = tf.cast(logits, tf.float32)
    rank = x.shape.rank
    boolean_bias = bias if bias is not None and bias.dtype == tf.bool else None
    if bias is not None and boolean_bias is None:
        bias = tf.cast(bias, tf.float32)
        x = x + (bias[:, None] if bias.shape.rank == 3 and rank == 4 else bias)
    visible = visible_keys(key_mask, boolean_bias, rank)
    if method == "softmax":
        return tf.cast(masked_softmax(x, visible), out_dtype)
    n = count_visible(visible, tf.shape(x)[-1])
    if method == "squared_relu":
        if visible is not None:
            x = tf.where(visible, x, tf.zeros_like(x))
        return tf.cast(tf.square(tf.nn.relu(x)) / n, out_dtype)
    x = x * softmax_plus_factor(n, min_length, base_length)
    return tf.cast(masked_softmax(x, visible), out_dtype)


# ----------------------------------------------------------------- query-blocked attention
def query_block_layout(length: tf.Tensor, block_size: int) -> Tuple[tf.Tensor, tf.Tensor]:
    """``(count, size)``: ``length`` query rows cut into ``count = ceil(length / block_size)``
    blocks of equal ``size = ceil(length / count) <= block_size`` rows (the last block
    repeats the last row for the fewer than ``count`` missing rows)."""
    length = tf.convert_to_tensor(length, tf.int32)
    count = tf.maximum((length + block_size - 1) // block_size, 1)
    size = tf.maximum((length + count - 1) // count, 1)
    return count, size


def _merge_blocks(stacked: tf.Tensor, length: tf.Tensor) -> tf.Tensor:
    """(count, ..., size, D) blocks of a (..., N, D) tensor -> (..., N, D), the rows past
    ``length`` dropped. (With one leading dimension of size 1, e.g. batch 1, the transpose
    only moves a singleton axis: TensorFlow does it without a copy.)"""
    rank = stacked.shape.rank
    perm = list(range(1, rank - 2)) + [0, rank - 2, rank - 1]
    merged = tf.transpose(stacked, perm)
    shape = tf.shape(merged)
    merged = tf.reshape(merged, tf.concat([shape[: rank - 3], [shape[rank - 3] * shape[rank - 2]], shape[-1:]], 0))
    return merged[..., :length, :]


def attention_in_query_blocks(
    attend: Callable[..., Tuple[tf.Tensor, Optional[tf.Tensor]]],
    q: tf.Tensor,
    k: tf.Tensor,
    v: tf.Tensor,
    rows: Sequence[tf.Tensor] = (),
    shared: Sequence[tf.Tensor] = (),
    block_size: int = 512,
    with_scores: bool = False,
):
    """Exact attention computed ``block_size`` query rows at a time, in memory linear in N.

    Every block sees all M keys, so each row's normalisation (softmax, ``softmax_plus``'s
    visible-key count, ``squared_relu``'s 1/n) is the unblocked one. Only one block's
    (B, b, M) scores exist at a time, forward and backward: the gradient is a custom one that
    recomputes each block's attention (FLASH-style recomputation) instead of keeping the
    (B, N, M) weights, so training memory is linear in N too. With ``with_scores`` the
    (B, N, M) scores each block passes on are assembled (residual attention: that output
    is N^2 by definition).

    Args:
        attend: ``attend(q_block, k, v, row_blocks, shared, block_index) ->
            (output_block (B, b, E), scores_block (B, b, M) or None)`` (the output: A v, or a
            function of it and the row blocks, such as a gate); a pure function of
            its tensor arguments (no variables). Dropout in it must be a function of
            ``block_index`` (stateless), since the backward pass calls it again.
        q: (B, N, S) queries; k: (B, M, S) keys; v: (B, M, E) values.
        rows: tensors with the query axis at -2 ((N, M), (B, N, M) ...): cut with q.
        shared: tensors every block sees whole (a key mask, a dropout seed ...).
        block_size: most query rows per block.
        with_scores: ``attend`` returns scores to assemble into a (B, N, M) output.
    Returns:
        the output (B, N, E), and the (B, N, M) scores too with ``with_scores``.
    """
    rows, shared = list(rows), list(shared)
    n_rows = len(rows)

    @tf.custom_gradient
    def blocked(q, k, v, *extra):
        row_values, shared_values = list(extra[:n_rows]), list(extra[n_rows:])
        length = tf.shape(q)[1]
        count, size = query_block_layout(length, block_size)
        padded = count * size
        offsets = tf.range(size)

        def block_rows(i):
            index = tf.minimum(i * size + offsets, length - 1)
            return tf.gather(q, index, axis=1), [tf.gather(r, index, axis=r.shape.rank - 2) for r in row_values]

        def run_blocks(body, dtypes, accumulators=()):
            """``body(i) -> (blocks, additions)`` for every block: the blocks (query axis -2)
            are collected and merged into (..., N, D) tensors, the additions summed."""

            def step(i, arrays, accumulators):
                blocks, additions = body(i)
                arrays = [array.write(i, block) for array, block in zip(arrays, blocks)]
                accumulators = [a + x for a, x in zip(accumulators, additions)]
                return i + 1, arrays, accumulators

            arrays = [tf.TensorArray(dtype, size=count, element_shape=None) for dtype in dtypes]
            _, arrays, accumulators = tf.while_loop(
                lambda i, *_: i < count, step, [tf.constant(0), arrays, list(accumulators)], parallel_iterations=1
            )
            return [_merge_blocks(array.stack(), length) for array in arrays], accumulators

        def forward(i):
            q_block, row_blocks = block_rows(i)
            context, passed = attend(q_block, k, v, row_blocks, shared_values, i)
            return ([context, passed] if with_scores else [context]), []

        outputs, _ = run_blocks(forward, [v.dtype, q.dtype] if with_scores else [v.dtype])

        def grad(*upstream):
            upstream = [
                tf.pad(tf.zeros_like(out) if g is None else g, [[0, 0], [0, padded - length], [0, 0]])
                for g, out in zip(upstream, outputs)
            ]
            float_rows = [j for j, r in enumerate(row_values) if r.dtype.is_floating]
            float_shared = [j for j, t in enumerate(shared_values) if t.dtype.is_floating]

            def backward(i):
                q_block, row_blocks = block_rows(i)
                index = i * size + offsets
                out_grads = [tf.gather(g, index, axis=1) for g in upstream]
                sources = [q_block, k, v] + [row_blocks[j] for j in float_rows] + [shared_values[j] for j in float_shared]
                with tf.GradientTape() as tape:
                    tape.watch(sources)
                    context, passed = attend(q_block, k, v, row_blocks, shared_values, i)
                targets = [context, passed] if with_scores else [context]
                grads = tape.gradient(
                    targets, sources, output_gradients=out_grads, unconnected_gradients=tf.UnconnectedGradients.ZERO
                )
                blocks = [grads[0]] + grads[3 : 3 + len(float_rows)]
                return blocks, [grads[1], grads[2]] + grads[3 + len(float_rows) :]

            dtypes = [q.dtype] + [row_values[j].dtype for j in float_rows]
            accumulators = [tf.zeros_like(k), tf.zeros_like(v)] + [tf.zeros_like(shared_values[j]) for j in float_shared]
            blocks, sums = run_blocks(backward, dtypes, accumulators)
            d_extra = [None] * len(extra)
            for j, g in zip(float_rows, blocks[1:]):
                d_extra[j] = g
            for j, g in zip(float_shared, sums[2:]):
                d_extra[n_rows + j] = g
            return [blocks[0], sums[0], sums[1]] + d_extra

        return (outputs[0], outputs[1]) if with_scores else outputs[0], grad

    return blocked(q, k, v, *rows, *shared)


def split_extra_inputs(
    inputs: Sequence[tf.Tensor], start: int, a_bias: Any, p_bias: Optional[str], r_scores: Any
) -> Tuple[Optional[tf.Tensor], Optional[tf.Tensor], Optional[tf.Tensor]]:
    """The optional inputs after the ``start`` q/k/v inputs, in bert4keras's order:
    (attention bias if ``a_bias``, sinusoid table if ``p_bias='rotary'``, previous residual
    scores if ``r_scores``); None for each one absent."""
    if p_bias not in (None, "rotary"):
        raise ValueError("attention layers here support p_bias=None or 'rotary', got %r" % (p_bias,))
    extras, n = [], start
    for present in (a_bias, p_bias == "rotary", r_scores):
        extras.append(inputs[n] if present else None)
        n += 1 if present else 0
    return extras[0], extras[1], extras[2]


def _clone_initializer(initializer: Any) -> Any:
    """A new instance per sub-layer: an unseeded tf-keras initializer instance returns the
    same values at every call, so sibling layers sharing one would start identical."""
    return initializer.__class__.from_config(initializer.get_config())


def _first(mask: Any, index: int = 0) -> Optional[tf.Tensor]:
    if isinstance(mask, (list, tuple)):
        return mask[index] if len(mask) > index else None
    return mask


@tf.keras.utils.register_keras_serializable(package="gau_alpha")
class ScaleOffset(keras_layers.Layer):
    """Per-dimension affine map ``x * gamma (+ beta)`` on the last axis (S,).

    Weights are created in bert4keras's order (``beta`` before ``gamma``) so variable
    mappings written for bert4keras's ``ScaleOffset`` apply unchanged.
    """

    def __init__(self, offset: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.offset = offset

    def build(self, input_shape):
        dim = int(input_shape[-1])
        if self.offset:
            self.beta = self.add_weight(name="beta", shape=(dim,), initializer="zeros")
        self.gamma = self.add_weight(name="gamma", shape=(dim,), initializer="ones")
        super().build(input_shape)

    def call(self, inputs):
        outputs = inputs * self.gamma
        if self.offset:
            outputs = outputs + self.beta
        return outputs

    def get_config(self) -> Dict[str, Any]:
        return dict(super().get_config(), offset=self.offset)


# ------------------------------------------------------------------------------ GAU
@tf.keras.utils.register_keras_serializable(package="gau_alpha")
class GatedAttentionUnit(keras_layers.Layer):
    """Gated Attention Unit (FLASH, https://arxiv.org/abs/2202.10447), single head.

    Self-attention form, input x (B, N, H)::

        u, v, z = split(act(x W_i), [E, E, S])
        q, k    = z * gamma_q (+ beta_q), z * gamma_k (+ beta_k)   # then RoPE
        A       = normalize(q k^T / sqrt(S) [+ residual] [+ bias], key mask)
        out     = (u * (A v)) W_o                                  # (B, N, H)

    Cross-attention form (``self_attention=False``), inputs q (B, N, H), k (B, M, H),
    v (B, M, H): ``u, q = split(act(q W_uq), [E, S])``, ``k = act(k W_k)``, ``v = act(v W_v)``.

    Inputs (a list, bert4keras order): ``[x]`` or ``[q, k, v]``, then the attention bias if
    ``a_bias`` (bool mask or float bias, (N, M) or (B, N, M)), then the sinusoid table if
    ``p_bias='rotary'``, then the previous residual scores (B, N, M) if ``r_scores``.

    Returns (B, N, H), or ``[out, scores]`` when ``residual_attention`` is set.

    Args:
        units: E, the expansion size (1536 in GAU-alpha base).
        key_size: S, the shared q/k size (128 in GAU-alpha base).
        activation: applied to every projection (swish in GAU-alpha).
        use_bias: biases in the projections and offsets in the q/k scale-offset.
        normalization: ``softmax``, ``softmax_plus`` or ``squared_relu``.
        self_attention: self- (one input) or cross-attention (q, k, v inputs).
        attention_scale: divide scores by sqrt(S).
        attention_dropout: dropout rate on the attention weights.
        softmax_plus_min_length: clamp of the key count in ``softmax_plus`` (bert4keras
            uses 16; the PyTorch port uses none: pass None).
        softmax_plus_base_length: the training length in ``log(n) / log(base)`` (512).
        residual_attention: None, ``cumulative``, ``mean`` or ``previous`` (module doc).
        layer_index: 0-based depth, used by ``mean``.
        attention_block_size: None (the whole (B, N, M) attention at once), or compute the
            attention ``attention_block_size`` queries at a time
            (:func:`attention_in_query_blocks`): the same results (exact, ``softmax_plus``
            included: each block sees every key, so each row's visible-key count is the
            unblocked one), with activation memory linear in N in inference and training
            (the backward pass recomputes each block). With ``residual_attention`` the
            layer still takes and returns (B, N, M) scores, so memory stays N^2 there
            (fewer N^2 temporaries, same results). Attention dropout is then drawn per
            block from a stateless generator (same distribution, other draws).
    """

    def __init__(
        self,
        units: int,
        key_size: int,
        activation: Any = "swish",
        use_bias: bool = True,
        normalization: str = "squared_relu",
        self_attention: bool = True,
        attention_scale: bool = True,
        attention_dropout: Optional[float] = None,
        softmax_plus_min_length: Optional[float] = 16.0,
        softmax_plus_base_length: float = 512.0,
        residual_attention: Optional[str] = None,
        layer_index: int = 0,
        kernel_initializer: Any = "glorot_uniform",
        attention_block_size: Optional[int] = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if attention_block_size is not None and (
            isinstance(attention_block_size, bool) or not isinstance(attention_block_size, (int, np.integer))
            or attention_block_size < 1
        ):
            raise ValueError("attention_block_size must be None or a positive integer, got %r" % (attention_block_size,))
        if normalization not in NORMALIZATIONS:
            raise ValueError("normalization must be one of %s, got %r" % (NORMALIZATIONS, normalization))
        if residual_attention is not None and residual_attention not in RESIDUAL_MODES:
            raise ValueError("residual_attention must be None or one of %s, got %r" % (RESIDUAL_MODES, residual_attention))
        self.units = int(units)
        self.key_size = int(key_size)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.normalization = normalization
        self.self_attention = bool(self_attention)
        self.attention_scale = bool(attention_scale)
        self.attention_dropout = attention_dropout or 0.0
        self.softmax_plus_min_length = softmax_plus_min_length
        self.softmax_plus_base_length = float(softmax_plus_base_length)
        self.residual_attention = residual_attention
        self.layer_index = int(layer_index)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.attention_block_size = None if attention_block_size is None else int(attention_block_size)
        self.supports_masking = True

    def _dense(self, units: int, name: str, activation: Any = None):
        initializer = self.kernel_initializer
        if isinstance(initializer, initializers.Initializer):
            initializer = _clone_initializer(initializer)
        return keras_layers.Dense(
            units, activation=activation, use_bias=self.use_bias, kernel_initializer=initializer, name=name,
        )

    def build(self, input_shape):
        first = input_shape[0] if isinstance(input_shape[0], (list, tuple, tf.TensorShape)) else input_shape
        hidden_size = int(first[-1])
        # Sub-layers are built here (not on first call) so weights exist right after build.
        if self.self_attention:
            self.i_dense = self._dense(2 * self.units + self.key_size, "i_dense", self.activation)
            self.q_scaleoffset = ScaleOffset(offset=self.use_bias, name="q_scaleoffset")
            self.k_scaleoffset = ScaleOffset(offset=self.use_bias, name="k_scaleoffset")
            self.i_dense.build((None, None, hidden_size))
            self.q_scaleoffset.build((None, None, self.key_size))
            self.k_scaleoffset.build((None, None, self.key_size))
        else:
            self.uq_dense = self._dense(self.units + self.key_size, "uq_dense", self.activation)
            self.k_dense = self._dense(self.key_size, "k_dense", self.activation)
            self.v_dense = self._dense(self.units, "v_dense", self.activation)
            for dense in (self.uq_dense, self.k_dense, self.v_dense):
                dense.build((None, None, hidden_size))
        self.o_dense = self._dense(hidden_size, "o_dense")
        self.o_dense.build((None, None, self.units))
        self.dropout = keras_layers.Dropout(self.attention_dropout, name="attention_dropout")
        super().build(input_shape)

    @recompute_grad
    def call(self, inputs, mask=None, a_bias=None, p_bias=None, r_scores=None, training=None):
        inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        bias, sinusoid, previous = split_extra_inputs(inputs, 1 if self.self_attention else 3, a_bias, p_bias, r_scores)
        if self.self_attention:
            key_mask = _first(mask, 0)
            if self.attention_block_size is None:
                hidden = self.i_dense(inputs[0])
                u, v, z = tf.split(hidden, [self.units, self.units, self.key_size], axis=-1)
            else:  # three products: no (B, N, 2E + S) tensor next to its parts
                u, v, z = self._project_parts(inputs[0], [self.units, self.units, self.key_size])
            q, k = self.q_scaleoffset(z), self.k_scaleoffset(z)
        else:
            key_mask = _first(mask, 1)
            uq = self.uq_dense(inputs[0])
            u, q = tf.split(uq, [self.units, self.key_size], axis=-1)
            k, v = self.k_dense(inputs[1]), self.v_dense(inputs[2])
        if sinusoid is not None:
            q, k = apply_rotary(q, sinusoid), apply_rotary(k, sinusoid)
        if key_mask is not None:
            key_mask = tf.cast(key_mask, tf.bool)
        if self.attention_block_size is None:
            context, passed = self._attention(
                q, k, v, key_mask, bias, previous, lambda weights: self.dropout(weights, training=training)
            )
            gated = u * context
        else:
            gated, passed = self._blocked_attention(u, q, k, v, key_mask, bias, previous, training)
        outputs = self.o_dense(gated)
        if self.residual_attention is not None:
            return [outputs, passed]
        return outputs

    def _project_parts(self, x: tf.Tensor, sizes: Sequence[int]) -> List[tf.Tensor]:
        """``split(act(x W_i + b), sizes)`` computed part by part from slices of ``i_dense``'s
        weights (same values; lower peak memory at long lengths). x (B, N, H).

        Each part waits for the previous one, so that the graph executor does not run the
        three products at once (their pre-activations would then all be alive together)."""
        kernel = self.i_dense.kernel
        bias = self.i_dense.bias if self.use_bias else None
        parts, start = [], 0
        for size in sizes:
            with tf.control_dependencies(parts[-1:]):
                part = tf.tensordot(x, kernel[:, start : start + size], [[x.shape.rank - 1], [0]])
                if bias is not None:
                    part = part + bias[start : start + size]
                parts.append(self.activation(part))
            start += size
        return parts

    def _attention(self, q, k, v, key_mask, bias, previous, dropout) -> Tuple[tf.Tensor, Optional[tf.Tensor]]:
        """``A v`` for queries q (B, n, S) over keys k (B, M, S), values v (B, M, E).

        ``bias`` and ``previous`` hold the rows of these n queries ((n, M), (B, n, M));
        ``dropout`` maps the (B, n, M) weights. Returns ``(context (B, n, E), scores to pass
        on (B, n, M) or None)``.
        """
        if self._can_fold_scale(bias):
            weights, passed = self._attend_folded(q, k, key_mask, bias), None
        else:
            scores = tf.einsum("bnd,bmd->bnm", q, k)
            if self.attention_scale:
                scores = scores / math.sqrt(self.key_size)
            logits, passed = scores, None
            if self.residual_attention is not None:
                logits, passed = combine_residual_scores(scores, previous, self.residual_attention, self.layer_index)
            weights = normalize_attention(
                logits, key_mask, bias, self.normalization,
                self.softmax_plus_min_length, self.softmax_plus_base_length,
            )
        return tf.einsum("bnm,bmd->bnd", dropout(weights), v), passed

    def _blocked_attention(self, u, q, k, v, key_mask, bias, previous, training):
        """``u * A v`` (B, N, E) by :meth:`_attention` over blocks of ``attention_block_size``
        queries (:func:`attention_in_query_blocks`), the gate u (B, N, E) applied per block;
        same results, activation memory linear in N without residual attention. Returns
        ``(gated (B, N, E), scores to pass on or None)``.

        Dropout here is drawn per block from a stateless generator seeded once per call, so
        the backward pass (which recomputes each block) sees the forward's masks: the same
        distribution as the unblocked layer's dropout, not the same draws.
        """
        bias = None if bias is None else tf.convert_to_tensor(bias)
        previous = None if previous is None else tf.convert_to_tensor(previous)
        rate = self.attention_dropout
        dropping = rate > 0 and training is not None and not (isinstance(training, bool) and not training)
        # a bias broadcast over queries ((..., 1, M)) is given whole to every block
        bias_rows = bias is not None and not (bias.shape.rank is not None and bias.shape[-2] == 1)
        rows = [u] + [t for t in ((bias if bias_rows else None), previous) if t is not None]
        shared = [t for t in (key_mask, (None if bias_rows else bias)) if t is not None]
        if dropping:
            shared.append(tf.random.uniform([2], 0, 2**31 - 1, dtype=tf.int32))
            shared.append(tf.cast(training, tf.float32))  # 1 while training (training may be a tensor)

        def attend(q_block, k, v, row_blocks, shared_values, block_index):
            row_blocks, shared_values = list(row_blocks), list(shared_values)
            u_block = row_blocks.pop(0)
            bias_block = row_blocks.pop(0) if bias_rows else None
            previous_block = row_blocks.pop(0) if previous is not None else None
            mask = shared_values.pop(0) if key_mask is not None else None
            if bias is not None and not bias_rows:
                bias_block = shared_values.pop(0)

            def dropout(weights):
                if not dropping:
                    return weights
                seed, active = shared_values
                keep = tf.random.stateless_uniform(tf.shape(weights), seed=seed + tf.stack([0, block_index])) >= rate
                dropped = tf.where(keep, weights / tf.cast(1.0 - rate, weights.dtype), tf.zeros_like(weights))
                active = tf.cast(active, weights.dtype)
                return active * dropped + (1 - active) * weights

            context, passed = self._attention(q_block, k, v, mask, bias_block, previous_block, dropout)
            return u_block * context, passed

        result = attention_in_query_blocks(
            attend, q, k, v, rows=rows, shared=shared, block_size=self.attention_block_size,
            with_scores=self.residual_attention is not None,
        )
        if self.residual_attention is not None:
            return result[0], result[1]
        return result, None

    def _can_fold_scale(self, bias: Optional[tf.Tensor]) -> bool:
        """The per-row scale (1/sqrt(S), softmax_plus's log n / log 512) can multiply q
        (B, N, S) instead of the scores (B, N, M) when nothing is added to the scores."""
        return (
            self.residual_attention is None
            and self.normalization in ("softmax", "softmax_plus")
            and (bias is None or bias.dtype == tf.bool)
        )

    def _attend_folded(self, q, k, key_mask, bias) -> tf.Tensor:
        """softmax(scale_row * q k^T) with the scale folded into q; same maths as the
        general path, fewer passes over the (B, N, M) scores."""
        visible = visible_keys(key_mask, bias, 3)
        factor = 1.0 / math.sqrt(self.key_size) if self.attention_scale else 1.0
        if self.normalization == "softmax_plus":
            n = count_visible(visible, tf.shape(k)[1])
            factor = factor * softmax_plus_factor(n, self.softmax_plus_min_length, self.softmax_plus_base_length)
            if n.shape.rank == 0:
                factor = tf.reshape(factor, [1, 1, 1])
            q = q * tf.cast(factor, q.dtype)
        elif factor != 1.0:
            q = q * factor
        return masked_softmax(tf.einsum("bnd,bmd->bnm", q, k), visible)

    def compute_mask(self, inputs, mask=None):
        query_mask = _first(mask, 0)
        if self.residual_attention is not None:
            return [query_mask, None]
        return query_mask

    def get_config(self) -> Dict[str, Any]:
        config = {
            "units": self.units,
            "key_size": self.key_size,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "normalization": self.normalization,
            "self_attention": self.self_attention,
            "attention_scale": self.attention_scale,
            "attention_dropout": self.attention_dropout,
            "softmax_plus_min_length": self.softmax_plus_min_length,
            "softmax_plus_base_length": self.softmax_plus_base_length,
            "residual_attention": self.residual_attention,
            "layer_index": self.layer_index,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "attention_block_size": self.attention_block_size,
        }
        return dict(super().get_config(), **config)


# ----------------------------------------------------------------- multi-head attention
@tf.keras.utils.register_keras_serializable(package="gau_alpha")
class ResidualMultiHeadAttention(_Bert4kerasMultiHeadAttention):
    """bert4keras's ``MultiHeadAttention`` with residual attention scores (RealFormer).

    Same weights, names and variable order as the bert4keras layer, so BERT/RoFormer
    checkpoints load unchanged. Inputs ``[q, k, v]`` (B, N|M, H), then the bias if
    ``a_bias`` (a boolean mask such as the (N, M) LM or (B, N, M) UniLM mask, or an additive
    float bias), the sinusoid if ``p_bias='rotary'``, the previous scores (B, h, N, M) if
    ``r_scores``. Returns ``[out (B, N, out_dim), scores (B, h, N, M)]`` when
    ``residual_attention`` is set; otherwise behaves exactly like the bert4keras layer.
    """

    def __init__(self, *args, residual_attention: Optional[str] = None, layer_index: int = 0, **kwargs):
        if residual_attention is not None and residual_attention not in RESIDUAL_MODES:
            raise ValueError("residual_attention must be None or one of %s, got %r" % (RESIDUAL_MODES, residual_attention))
        super().__init__(*args, **kwargs)
        self.residual_attention = residual_attention
        self.layer_index = int(layer_index)
        if residual_attention is not None:
            self.return_attention_scores = True

    def build(self, input_shape):
        super().build(input_shape)
        # bert4keras gives all four Dense one initializer instance (identical draws when
        # unseeded) and builds them on first call: clone it, and build now.
        for dense in (self.q_dense, self.k_dense, self.v_dense, self.o_dense):
            if isinstance(dense.kernel_initializer, initializers.Initializer):
                dense.kernel_initializer = _clone_initializer(dense.kernel_initializer)
        self.q_dense.build(input_shape[0])
        self.k_dense.build(input_shape[1])
        self.v_dense.build(input_shape[2])
        self.o_dense.build((None, None, self.heads * self.head_size))
        self.attention_dropout_layer = keras_layers.Dropout(self.attention_dropout or 0.0)

    @recompute_grad
    def call(self, inputs, mask=None, a_bias=None, p_bias=None, r_scores=None, training=None):
        if self.residual_attention is None:
            return super().call(inputs, mask=mask, a_bias=a_bias, p_bias=p_bias)
        q, k, v = inputs[:3]
        bias, sinusoid, previous = split_extra_inputs(inputs, 3, a_bias, p_bias, r_scores)
        key_mask = _first(mask, 2)
        qw = self._heads(self.q_dense(q), self.key_size)
        kw = self._heads(self.k_dense(k), self.key_size)
        vw = self._heads(self.v_dense(v), self.head_size)
        if sinusoid is not None:
            qw, kw = apply_rotary(qw, sinusoid), apply_rotary(kw, sinusoid)
        scores = tf.einsum("bnhd,bmhd->bhnm", qw, kw)
        if self.attention_scale:
            scores = scores / math.sqrt(self.key_size)
        logits, passed = combine_residual_scores(scores, previous, self.residual_attention, self.layer_index)
        weights = normalize_attention(logits, key_mask, bias, self.normalization)
        weights = self.attention_dropout_layer(weights, training=training)
        context = tf.einsum("bhnm,bmhd->bnhd", weights, vw)
        shape = tf.shape(context)
        context = tf.reshape(context, [shape[0], shape[1], self.heads * self.head_size])
        return [self.o_dense(context), passed]

    def _heads(self, x: tf.Tensor, size: int) -> tf.Tensor:
        shape = tf.shape(x)
        return tf.reshape(x, [shape[0], shape[1], self.heads, size])

    def compute_mask(self, inputs, mask=None):
        if mask is None:
            return [None, None] if self.return_attention_scores else None
        return super().compute_mask(inputs, mask)

    def get_config(self) -> Dict[str, Any]:
        return dict(super().get_config(), residual_attention=self.residual_attention, layer_index=self.layer_index)


CUSTOM_OBJECTS: Dict[str, Any] = {
    "GatedAttentionUnit": GatedAttentionUnit,
    "ResidualMultiHeadAttention": ResidualMultiHeadAttention,
    "ScaleOffset": ScaleOffset,
}
