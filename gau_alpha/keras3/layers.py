"""GAU-alpha's layers for Keras 3, written with ``keras.ops`` only (JAX, TensorFlow, PyTorch).

- :class:`RMSNorm`: ``x / sqrt(mean(x^2) + eps)``, no parameters (bert4keras's
  ``LayerNormalization(zero_mean=False, scale=False, offset=False)``), computed in float32.
- :class:`ScaleOffset`: the per-dimension ``gamma`` of q and k.
- :class:`GatedAttentionUnit`: one-head GAU with RoPE, key masking, ``softmax_plus`` /
  ``softmax`` / ``squared_relu`` and RealFormer residual attention (``cumulative``, ``mean``,
  ``previous``); the attention normalisation runs in float32, so ``mixed_bfloat16`` and
  ``mixed_float16`` policies are safe.
- :class:`GAUAlphaInitializer`: RoFormerV2's truncated normal ``1.13684723 / sqrt(fan) * L^(-1/3)``.

The maths is that of :mod:`gau_alpha.layers` (the tf-keras model), see docs/architecture.md;
weight names follow :mod:`gau_alpha.spec` (``i_dense/kernel``, ``q_scaleoffset/gamma`` ...).
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional, Tuple

import keras
from keras import ops

__all__ = [
    "NORMALIZATIONS",
    "RESIDUAL_MODES",
    "GAUAlphaInitializer",
    "RMSNorm",
    "ScaleOffset",
    "GatedAttentionUnit",
    "rotary_tables",
    "apply_rotary",
    "attention_weights",
    "combine_residual_scores",
]

NORMALIZATIONS = ("softmax", "softmax_plus", "squared_relu")
RESIDUAL_MODES = ("cumulative", "mean", "previous")
#: bert4keras's ``K.epsilon()``: the RMS norm's epsilon of the released model
DEFAULT_EPSILON = 1e-7
_NEGATIVE = -1e30  # masked logits: exp() of it is exactly 0, and a fully masked row stays finite


@keras.saving.register_keras_serializable(package="gau_alpha")
class GAUAlphaInitializer(keras.initializers.Initializer):
    """Truncated normal with stddev ``1.13684723 / sqrt(fan) * num_layers^(-1/order)``.

    ``fan`` is ``shape[0]``, or ``shape[1]`` for embedding-like shapes (``shape[0]`` above
    10000 or below 10), as in bert4keras's RoFormerV2.
    """

    def __init__(self, num_layers: int = 24, order: int = 3, seed: Optional[int] = None):
        self.num_layers, self.order, self.seed = int(num_layers), int(order), seed
        self._seed_generator = keras.random.SeedGenerator(seed) if seed is not None else None

    def __call__(self, shape, dtype=None):
        fan = shape[1] if (shape[0] > 10000 or shape[0] < 10) and len(shape) > 1 else shape[0]
        stddev = 1.13684723 / math.sqrt(fan) * self.num_layers ** (-1.0 / self.order)
        seed = self._seed_generator if self._seed_generator is not None else None
        return keras.random.truncated_normal(shape, stddev=stddev, dtype=dtype, seed=seed)

    def get_config(self) -> Dict[str, Any]:
        return {"num_layers": self.num_layers, "order": self.order, "seed": self.seed}


@keras.saving.register_keras_serializable(package="gau_alpha")
class RMSNorm(keras.layers.Layer):
    """Parameter-free RMS norm over the last axis, in float32, returned in the compute dtype.

    (B, N, H) -> (B, N, H): ``x / sqrt(mean(x^2, -1) + epsilon)``.
    """

    def __init__(self, epsilon: float = DEFAULT_EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        self.supports_masking = True

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        variance = ops.mean(ops.square(x), axis=-1, keepdims=True)
        return ops.cast(x / ops.sqrt(variance + self.epsilon), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> Dict[str, Any]:
        return dict(super().get_config(), epsilon=self.epsilon)


@keras.saving.register_keras_serializable(package="gau_alpha")
class ScaleOffset(keras.layers.Layer):
    """``x * gamma (+ beta)`` on the last axis (S,); weights ``beta`` then ``gamma``."""

    def __init__(self, offset: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.offset = bool(offset)

    def build(self, input_shape):
        dim = int(input_shape[-1])
        if self.offset:
            self.beta = self.add_weight(name="beta", shape=(dim,), initializer="zeros")
        self.gamma = self.add_weight(name="gamma", shape=(dim,), initializer="ones")

    def call(self, inputs):
        outputs = inputs * ops.cast(self.gamma, inputs.dtype)
        if self.offset:
            outputs = outputs + ops.cast(self.beta, inputs.dtype)
        return outputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> Dict[str, Any]:
        return dict(super().get_config(), offset=self.offset)


# ------------------------------------------------------------------------- functions
def rotary_tables(length, key_size: int, max_wavelength: float = 10000.0) -> Tuple[Any, Any]:
    """RoPE tables ``(sin, cos)``, each (N, S) float32, every angle repeated for its pair:
    angle ``p * max_wavelength^(-2i/S)`` at columns 2i and 2i+1 (bert4keras's
    ``SinusoidalPositionEmbedding``)."""
    positions = ops.cast(ops.arange(length), "float32")
    indices = ops.cast(ops.arange(key_size // 2), "float32")
    inverse = ops.power(ops.cast(max_wavelength, "float32"), -2.0 * indices / key_size)
    angles = ops.repeat(positions[:, None] * inverse[None, :], 2, axis=-1)
    return ops.sin(angles), ops.cos(angles)


def apply_rotary(x, sin, cos):
    """Rotate pairs ``(x_2i, x_2i+1)`` of x (B, N, S) by the angles of ``sin``/``cos`` (N, S)."""
    shape = ops.shape(x)
    pairs = ops.reshape(x, (shape[0], shape[1], shape[2] // 2, 2))
    rotated = ops.reshape(ops.stack([-pairs[..., 1], pairs[..., 0]], axis=-1), shape)
    return x * ops.cast(cos, x.dtype) + rotated * ops.cast(sin, x.dtype)


def combine_residual_scores(scores, previous, mode: str, layer_index: int):
    """RealFormer residual attention: ``(logits to normalise, scores passed on)``.

    ``cumulative``: P_l = S_l + P_{l-1}; ``mean``: logits P_l / (l + 1), passes P_l;
    ``previous`` (bert4keras): logits S_l + S_{l-1}, passes S_l.
    """
    if mode not in RESIDUAL_MODES:
        raise ValueError("residual_attention must be one of %s, got %r" % (RESIDUAL_MODES, mode))
    if mode == "previous":
        return (scores if previous is None else scores + previous), scores
    total = scores if previous is None else scores + previous
    if mode == "mean":
        return total / float(layer_index + 1), total
    return total, total


def _visible_count(visible, length):
    """Visible keys per query row (B, 1, 1) float32, or the key length."""
    if visible is None:
        return ops.cast(length, "float32")
    return ops.sum(ops.cast(visible, "float32"), axis=-1, keepdims=True)


def softmax_plus_factor(n, min_length: Optional[float], base_length: float):
    """``log(n) / log(base)``, ``n`` clamped below at ``min_length`` unless None."""
    if min_length is not None:
        n = ops.maximum(n, float(min_length))
    return ops.log(n) / math.log(base_length)


def attention_weights(logits, key_mask, method: str, min_length: Optional[float] = 16.0,
                      base_length: float = 512.0):
    """Attention weights over the keys, computed in float32, returned in ``logits.dtype``.

    Args:
        logits: (B, N, M) scores.
        key_mask: (B, M) 0/1 or bool, 1 for real keys; None for all keys.
        method: ``softmax``; ``softmax_plus``: ``softmax(logits * log n / log base)`` with n
            the visible keys clamped at ``min_length``; ``squared_relu``: ``relu(logits)^2 / n``.
    Returns:
        (B, N, M); padded keys get exactly 0.
    """
    if method not in NORMALIZATIONS:
        raise ValueError("normalization must be one of %s, got %r" % (NORMALIZATIONS, method))
    dtype = logits.dtype
    x = ops.cast(logits, "float32")
    visible = None if key_mask is None else ops.expand_dims(ops.cast(key_mask, "bool"), 1)
    if method == "squared_relu":
        n = _visible_count(visible, ops.shape(x)[-1])
        if visible is not None:
            x = ops.where(visible, x, 0.0)
        return ops.cast(ops.square(ops.relu(x)) / n, dtype)
    if method == "softmax_plus":
        x = x * softmax_plus_factor(_visible_count(visible, ops.shape(x)[-1]), min_length, base_length)
    if visible is not None:
        x = ops.where(visible, x, _NEGATIVE)
    return ops.cast(ops.softmax(x, axis=-1), dtype)


# ------------------------------------------------------------------------------- GAU
@keras.saving.register_keras_serializable(package="gau_alpha")
class GatedAttentionUnit(keras.layers.Layer):
    """Gated Attention Unit (FLASH), one head, self-attention, with RoPE.

    x (B, N, H)::

        u, v, z = split(act(x W_i), [E, E, S])              i_dense (no bias)
        q, k    = RoPE(z * gamma_q), RoPE(z * gamma_k)        q_scaleoffset, k_scaleoffset
        A       = normalize(q k^T / sqrt(S) [+ residual], padding keys)
        out     = (u * dropout(A) v) W_o                    o_dense (no bias)

    Call: ``layer(x, padding_mask=None, previous_scores=None, training=None)`` returns
    (B, N, H), or ``(out, scores to pass on)`` (B, N, N) when ``residual_attention`` is set.

    Args:
        units: E (1536 in GAU-alpha base); key_size: S (128).
        normalization: ``softmax_plus`` (GAU-alpha), ``softmax`` or ``squared_relu``.
        softmax_plus_min_length: the clamp of the key count (16, bert4keras; None: the
            PyTorch port); softmax_plus_base_length: the training length (512).
        residual_attention: None, ``cumulative``, ``mean`` or ``previous``; layer_index: l.
    """

    def __init__(
        self,
        units: int,
        key_size: int,
        activation: Any = "swish",
        use_bias: bool = False,
        normalization: str = "softmax_plus",
        attention_scale: bool = True,
        attention_dropout: float = 0.0,
        softmax_plus_min_length: Optional[float] = 16.0,
        softmax_plus_base_length: float = 512.0,
        residual_attention: Optional[str] = None,
        layer_index: int = 0,
        max_wavelength: float = 10000.0,
        kernel_initializer: Any = "glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if normalization not in NORMALIZATIONS:
            raise ValueError("normalization must be one of %s, got %r" % (NORMALIZATIONS, normalization))
        if residual_attention is not None and residual_attention not in RESIDUAL_MODES:
            raise ValueError("residual_attention must be None or one of %s, got %r"
                             % (RESIDUAL_MODES, residual_attention))
        self.units, self.key_size = int(units), int(key_size)
        if self.key_size % 2:
            raise ValueError("key_size must be even (RoPE rotates pairs), got %d" % self.key_size)
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.normalization = normalization
        self.attention_scale = bool(attention_scale)
        self.attention_dropout = float(attention_dropout or 0.0)
        self.softmax_plus_min_length = softmax_plus_min_length
        self.softmax_plus_base_length = float(softmax_plus_base_length)
        self.residual_attention = residual_attention
        self.layer_index = int(layer_index)
        self.max_wavelength = float(max_wavelength)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        hidden = int(input_shape[-1])
        policy = self.dtype_policy
        init = lambda: keras.initializers.get(keras.saving.serialize_keras_object(self.kernel_initializer))  # noqa
        self.i_dense = keras.layers.Dense(2 * self.units + self.key_size, activation=self.activation,
                                          use_bias=self.use_bias, kernel_initializer=init(), dtype=policy,
                                          name="i_dense")
        self.q_scaleoffset = ScaleOffset(offset=self.use_bias, dtype=policy, name="q_scaleoffset")
        self.k_scaleoffset = ScaleOffset(offset=self.use_bias, dtype=policy, name="k_scaleoffset")
        self.o_dense = keras.layers.Dense(hidden, use_bias=self.use_bias, kernel_initializer=init(), dtype=policy,
                                          name="o_dense")
        self.dropout = keras.layers.Dropout(self.attention_dropout, dtype=policy, name="attention_dropout")
        self.i_dense.build((None, None, hidden))
        self.q_scaleoffset.build((None, None, self.key_size))
        self.k_scaleoffset.build((None, None, self.key_size))
        self.o_dense.build((None, None, self.units))

    def call(self, inputs, padding_mask=None, previous_scores=None, training=None):
        hidden = self.i_dense(inputs)
        u = hidden[..., : self.units]
        v = hidden[..., self.units : 2 * self.units]
        z = hidden[..., 2 * self.units :]
        q, k = self.q_scaleoffset(z), self.k_scaleoffset(z)
        sin, cos = rotary_tables(ops.shape(inputs)[1], self.key_size, self.max_wavelength)
        q, k = apply_rotary(q, sin, cos), apply_rotary(k, sin, cos)
        scale = 1.0 / math.sqrt(self.key_size) if self.attention_scale else 1.0
        passed = None
        if self.residual_attention is None and self.normalization != "squared_relu":
            # the per-row scale (1/sqrt(S) * log n / log 512) multiplies q (B, N, S), not the
            # (B, N, N) scores: the same maths as the tf-keras model's folded path
            factor = scale
            if self.normalization == "softmax_plus":
                visible = None if padding_mask is None else ops.expand_dims(ops.cast(padding_mask, "bool"), 1)
                n = _visible_count(visible, ops.shape(k)[1])
                factor = softmax_plus_factor(n, self.softmax_plus_min_length, self.softmax_plus_base_length) * scale
                q = q * ops.cast(factor, q.dtype)
            elif factor != 1.0:
                q = q * factor
            weights = attention_weights(ops.einsum("bnd,bmd->bnm", q, k), padding_mask, "softmax")
        else:
            scores = ops.einsum("bnd,bmd->bnm", q, k) * scale
            logits = scores
            if self.residual_attention is not None:
                logits, passed = combine_residual_scores(scores, previous_scores, self.residual_attention,
                                                         self.layer_index)
            weights = attention_weights(logits, padding_mask, self.normalization,
                                        self.softmax_plus_min_length, self.softmax_plus_base_length)
        weights = self.dropout(weights, training=training)
        outputs = self.o_dense(u * ops.einsum("bnm,bmd->bnd", weights, v))
        if self.residual_attention is not None:
            return outputs, passed
        return outputs

    def compute_output_shape(self, input_shape, *args, **kwargs):
        if self.residual_attention is not None:
            return tuple(input_shape), (input_shape[0], input_shape[1], input_shape[1])
        return tuple(input_shape)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(
            units=self.units,
            key_size=self.key_size,
            activation=keras.activations.serialize(self.activation),
            use_bias=self.use_bias,
            normalization=self.normalization,
            attention_scale=self.attention_scale,
            attention_dropout=self.attention_dropout,
            softmax_plus_min_length=self.softmax_plus_min_length,
            softmax_plus_base_length=self.softmax_plus_base_length,
            residual_attention=self.residual_attention,
            layer_index=self.layer_index,
            max_wavelength=self.max_wavelength,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config
