"""Optimizers of pre-training: LAMB (the recipe's) and AdaFactor, on a piecewise-linear schedule.

**LAMB** (You et al. 2019, "Large Batch Optimization for Deep Learning"), as GAU-alpha's
recipe configures it (Adam + decoupled weight decay + layer adaptation, without bias
correction): for each weight ``w`` with gradient ``g``, at learning rate
``lr_t = lr * schedule(t)``::

    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g^2
    u = m / (sqrt(v) + epsilon) + weight_decay * w          (no decay for norms and biases)
    r = ||w|| / ||u||   if both norms are > 0, else 1        (1 for norms and biases)
    w = w - lr_t * r * u

The norms are over the whole weight tensor (one trust ratio per tensor). Weights whose name
contains one of :data:`NO_DECAY` get neither weight decay nor layer adaptation (GAU-alpha has
none: no biases, parameter-free norms; BERT: its LayerNorms and biases).

**AdaFactor**: bert4keras's (as adapted by :mod:`gau_alpha.compat`), with ``beta1=0.9`` as in
``gau-alpha clue``, its learning rate multiplied by the same schedule.

Both are tf-keras *legacy* optimizers, so ``apply_gradients`` under a ``tf.distribute``
strategy sums the replicas' gradients, and ``get_weights``/``set_weights`` hold their whole
state (step counter and slots) for checkpoints.
"""
from __future__ import annotations

from typing import Any, Sequence

import tensorflow as tf

from gau_alpha.errors import ConfigError

from .schedule import Schedule, tf_multiplier

__all__ = ["NO_DECAY", "LAMB", "make_optimizer"]

NO_DECAY = ("Norm", "bias", "Bias")
"""Name fragments of weights without weight decay and layer adaptation: the recipe's
``["Norm", "bias"]`` (norm layers, dense biases), plus BERT's ``MLM-Bias`` layer."""


def _excluded(name: str, fragments: Sequence[str]) -> bool:
    return any(fragment in name for fragment in fragments)


class LAMB(tf.keras.optimizers.legacy.Optimizer):
    """LAMB without bias correction (see the module docstring).

    Args:
        learning_rate: the base learning rate (the recipe: 1.76e-3).
        schedule: ``(step, multiplier)`` points (:mod:`gau_alpha.pretrain.schedule`).
        weight_decay: decoupled weight decay (the recipe: 0.01).
        exclude: name fragments of weights without decay and adaptation.
    """

    def __init__(self, learning_rate: float = 1.76e-3, schedule: Schedule = ((0, 1.0),), beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-6, weight_decay: float = 0.01,
                 exclude: Sequence[str] = NO_DECAY, name: str = "LAMB", **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self._set_hyper("learning_rate", learning_rate)
        self.schedule = [(int(s), float(v)) for s, v in schedule]
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.weight_decay = float(weight_decay)
        self.exclude = tuple(exclude)

    def _create_slots(self, var_list):
        for var in var_list:
            self.add_slot(var, "m")
        for var in var_list:
            self.add_slot(var, "v")

    def current_learning_rate(self, dtype=tf.float32):
        """``lr * schedule(step)`` at the optimizer's step counter (0 before the first step)."""
        base = tf.cast(self._get_hyper("learning_rate"), tf.float32)
        return tf.cast(base * tf_multiplier(self.iterations, self.schedule), dtype)

    def _resource_apply_dense(self, grad, var, apply_state=None):
        dtype = var.dtype.base_dtype
        lr = self.current_learning_rate(dtype)
        m, v = self.get_slot(var, "m"), self.get_slot(var, "v")
        m_t = self.beta_1 * m + (1.0 - self.beta_1) * grad
        v_t = self.beta_2 * v + (1.0 - self.beta_2) * tf.square(grad)
        update = m_t / (tf.sqrt(v_t) + self.epsilon)
        name = var.name
        if not _excluded(name, self.exclude):
            if self.weight_decay:
                update = update + self.weight_decay * var
            w_norm, u_norm = tf.norm(var), tf.norm(update)
            ratio = tf.where(tf.logical_and(w_norm > 0.0, u_norm > 0.0), w_norm / tf.maximum(u_norm, 1e-30),
                             tf.ones_like(w_norm))
            update = update * ratio
        return tf.group(m.assign(m_t), v.assign(v_t), var.assign_sub(lr * update))

    def _resource_apply_sparse(self, grad, var, indices, apply_state=None):
        dense = tf.convert_to_tensor(tf.IndexedSlices(grad, indices, tf.shape(var, out_type=indices.dtype)))
        return self._resource_apply_dense(dense, var, apply_state)

    def get_config(self):
        config = super().get_config()
        config.update(learning_rate=self._serialize_hyperparameter("learning_rate"), schedule=self.schedule,
                      beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon,
                      weight_decay=self.weight_decay, exclude=list(self.exclude))
        return config


def _scheduled_adafactor(learning_rate: float, schedule: Schedule):
    from bert4keras.optimizers import AdaFactor

    class ScheduledAdaFactor(AdaFactor):
        """bert4keras's AdaFactor with its learning rate multiplied by the schedule."""

        def _decayed_lr(self, var_dtype):
            base = super()._decayed_lr(var_dtype)
            return base * tf.cast(tf_multiplier(self.iterations, schedule), var_dtype)

        def current_learning_rate(self, dtype=tf.float32):
            return tf.cast(self._decayed_lr(tf.float32), dtype)

    return ScheduledAdaFactor(learning_rate=learning_rate, beta1=0.9, min_dim_size_to_factor=10**6)


def make_optimizer(name: str, learning_rate: float, schedule: Schedule, weight_decay: float = 0.01):
    """``"lamb"`` (:class:`LAMB`) or ``"adafactor"``, on ``schedule``; build it under the
    strategy's scope."""
    if name == "lamb":
        return LAMB(learning_rate=learning_rate, schedule=schedule, weight_decay=weight_decay)
    if name == "adafactor":
        return _scheduled_adafactor(learning_rate, schedule)
    raise ConfigError("unknown optimizer %r; expected lamb or adafactor" % name)
