"""Task heads on the GAU-alpha encoder, and their per-example losses.

Every builder takes the encoder (a Keras model: token ids and segment ids
``(B, N)`` -> hidden states ``(B, N, H)``) and returns a Keras model whose
inputs are named like the feature inputs (see :mod:`gau_alpha.clue.features`):

================================  ==========================================  =======================
builder                           inputs                                      output
================================  ==========================================  =======================
:func:`cls_classifier`            token_ids, segment_ids ``(B, N)``           logits ``(B, C)``
:func:`span_extractor`            + span_mask ``(B, N)``                      logits ``(B, N, 2)``
:func:`multiple_choice_scorer`    token_ids, segment_ids ``(B, K, N)``,       logits ``(B, K)``
                                  choice_mask ``(B, K)``
:func:`global_pointer_tagger`     token_ids, segment_ids ``(B, N)``           logits ``(B, C, N, N)``
================================  ==========================================  =======================

Positions or choices that are masked out get the logit :data:`MASKED_LOGIT`
(GlobalPointer: ``-inf``, which ``multilabel_categorical_crossentropy`` expects).
The loss functions return one value per example, shape ``(B,)``.
"""
from __future__ import annotations

from typing import Any

import tensorflow as tf
from bert4keras.backend import multilabel_categorical_crossentropy
from bert4keras.layers import GlobalPointer

keras = tf.keras

__all__ = [
    "MASKED_LOGIT",
    "cls_classifier",
    "span_extractor",
    "multiple_choice_scorer",
    "global_pointer_tagger",
    "classification_loss",
    "span_loss",
    "global_pointer_loss",
]

MASKED_LOGIT = -1e9
"""Logit of a masked position or choice (finite, so cross-entropy stays finite)."""


def _sequence_inputs(rank: int = 2):
    shape = (None,) * (rank - 1)
    return (
        keras.layers.Input(shape=shape, dtype="int32", name="token_ids"),
        keras.layers.Input(shape=shape, dtype="int32", name="segment_ids"),
    )


def _apply_mask(logits, mask):
    """``logits`` where ``mask > 0``, else :data:`MASKED_LOGIT` (float32)."""
    logits = tf.cast(logits, tf.float32)
    return tf.where(mask > 0, logits, tf.fill(tf.shape(logits), tf.constant(MASKED_LOGIT, tf.float32)))


def cls_classifier(encoder: Any, num_labels: int, kernel_initializer: Any) -> Any:
    """First-token ([CLS]) pooling + Dense: ``(B, N)`` ids -> ``(B, num_labels)`` logits."""
    token_ids, segment_ids = _sequence_inputs()
    hidden = encoder([token_ids, segment_ids])
    pooled = keras.layers.Lambda(lambda x: x[:, 0], name="first-token")(hidden)
    logits = keras.layers.Dense(num_labels, kernel_initializer=kernel_initializer, name="classifier")(pooled)
    logits = keras.layers.Lambda(lambda x: tf.cast(x, tf.float32), name="logits")(logits)
    return keras.Model([token_ids, segment_ids], logits, name="classifier_model")


def span_extractor(encoder: Any, kernel_initializer: Any) -> Any:
    """Start/end logits per token, masked outside ``span_mask``: ``(B, N, 2)``."""
    token_ids, segment_ids = _sequence_inputs()
    span_mask = keras.layers.Input(shape=(None,), dtype="float32", name="span_mask")
    hidden = encoder([token_ids, segment_ids])
    logits = keras.layers.Dense(2, kernel_initializer=kernel_initializer, name="start-end")(hidden)
    masked = keras.layers.Lambda(lambda x: _apply_mask(x[0], x[1][..., None]), name="span-logits")(
        [logits, span_mask]
    )
    return keras.Model([token_ids, segment_ids, span_mask], masked, name="span_model")


def multiple_choice_scorer(encoder: Any, kernel_initializer: Any) -> Any:
    """Each of the ``K`` choice sequences scored on its own: ``(B, K, N)`` ids -> ``(B, K)`` logits.

    The ``B * K`` sequences go through the encoder as one batch; the [CLS] state
    of each is mapped to one score by a shared Dense layer; padding choices
    (``choice_mask == 0``) get :data:`MASKED_LOGIT`.
    """
    token_ids, segment_ids = _sequence_inputs(rank=3)
    choice_mask = keras.layers.Input(shape=(None,), dtype="float32", name="choice_mask")
    flatten = keras.layers.Lambda(lambda x: tf.reshape(x, (-1, tf.shape(x)[-1])), name="flatten-choices")
    hidden = encoder([flatten(token_ids), flatten(segment_ids)])
    pooled = keras.layers.Lambda(lambda x: x[:, 0], name="first-token")(hidden)
    scores = keras.layers.Dense(1, kernel_initializer=kernel_initializer, name="choice-score")(pooled)
    logits = keras.layers.Lambda(
        lambda x: _apply_mask(tf.reshape(x[0], tf.shape(x[1])), x[1]), name="choice-logits"
    )([scores, choice_mask])
    return keras.Model([token_ids, segment_ids, choice_mask], logits, name="choice_model")


def global_pointer_tagger(encoder: Any, num_types: int, head_size: int, kernel_initializer: Any) -> Any:
    """GlobalPointer span scores per entity type: ``(B, N)`` ids -> ``(B, num_types, N, N)``.

    ``[b, t, i, j]`` scores tokens ``i..j`` (inclusive) as an entity of type ``t``;
    ``j < i`` and padding positions are ``-inf``.
    """
    token_ids, segment_ids = _sequence_inputs()
    hidden = encoder([token_ids, segment_ids])
    mask = keras.layers.Lambda(lambda x: tf.greater(x, 0), name="token-mask")(token_ids)
    pointer = GlobalPointer(
        heads=num_types,
        head_size=head_size,
        use_bias=False,
        kernel_initializer=kernel_initializer,
        name="global-pointer",
    )
    logits = pointer(hidden, mask=mask)
    logits = keras.layers.Lambda(lambda x: tf.cast(x, tf.float32), name="logits")(logits)
    return keras.Model([token_ids, segment_ids], logits, name="ner_model")


# ---------------------------------------------------------------------- losses
def classification_loss(labels, logits):
    """Softmax cross-entropy: labels ``(B,)`` class indices, logits ``(B, C)`` -> ``(B,)``."""
    labels = tf.cast(tf.reshape(labels, (-1,)), tf.int32)
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=tf.cast(logits, tf.float32))


def span_loss(labels, logits):
    """Mean of the start and end cross-entropies: labels ``(B, 2)``, logits ``(B, N, 2)`` -> ``(B,)``."""
    labels = tf.cast(labels, tf.int32)
    logits = tf.cast(logits, tf.float32)
    start = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels[:, 0], logits=logits[..., 0])
    end = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels[:, 1], logits=logits[..., 1])
    return (start + end) / 2.0


def global_pointer_loss(labels, logits):
    """Multi-label categorical cross-entropy per type, averaged over types.

    labels ``(B, C, N, N)`` in {0, 1}, logits ``(B, C, N, N)`` -> ``(B,)``.
    """
    shape = tf.shape(logits)
    logits = tf.reshape(tf.cast(logits, tf.float32), (shape[0], shape[1], -1))
    labels = tf.reshape(tf.cast(labels, tf.float32), (shape[0], shape[1], -1))
    return tf.reduce_mean(multilabel_categorical_crossentropy(labels, logits), axis=1)
