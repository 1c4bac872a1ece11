"""The model being pre-trained, its distributed train step, evaluation and TF1 export.

The MLM model is ``gau_alpha.build_transformer_model(config, checkpoint, model=...,
with_mlm="linear")``: the backbone (``gau_alpha``, ``roformer_v2`` or ``bert``, optionally
with residual attention) and its own MLM head (GAU-alpha and RoFormerV2: the tied token
embedding, no bias; BERT: dense + LayerNorm + tied embedding + bias). Training and evaluation
run the backbone on every position and the head's layers on the predicted positions only
(:meth:`Pretrainer.predicted_logits`, ``(M, vocab)`` logits); the whole model is what is saved. Weights start from the model's own initializer (seeded) or, with
``--init-from``, from a release checkpoint loaded strictly (every missing, mis-shaped or
unused variable is an error naming it).

**The train step** (:meth:`Pretrainer.train_step`) takes one optimizer step's data, arrays
``(A, B, N)``: ``A`` gradient-accumulation micro-batches of the global batch ``B``. Under a
``tf.distribute`` strategy every replica receives the whole arrays and trains on its
contiguous slice ``[B*r/R, B*(r+1)/R)`` of each micro-batch; each token's loss is divided by
the number of predicted tokens in the *whole* step (all micro-batches, all replicas), so the
replicas' summed gradients (the optimizer's cross-replica sum) are the gradient of the
step's mean token loss, whatever the number of workers. Gradients of the micro-batches are
summed inside the step, so an optimizer step is one call and the optimizer holds no
accumulation buffers.

**Dropout** draws from stateless generators seeded with ``(seed, step, micro-batch,
replica)`` (the clue trainer's stateless-dropout wrapper of every Keras ``Dropout`` layer), so
a step depends only on the weights, the optimizer state and the step's data: a resumed run
repeats the uninterrupted one exactly. A model holding dropout outside Keras ``Dropout``
layers (bert4keras's own multi-head attention without residual attention creates one per
call) keeps TensorFlow's stateful random ops; :attr:`Pretrainer.exact_resume` is then False
(the run says so once).

**Mixed precision** (``float16``: with dynamic loss scaling; ``bfloat16``): the Keras policy
``mixed_*`` for the model; the logits are cast to float32 before the loss; weights and
optimizer state stay float32.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from gau_alpha.clue.training import DropoutSeeds, use_stateless_dropout, seed_everything
from gau_alpha.errors import RunError

from .optimizer import make_optimizer
from .packing import Batch
from .settings import Inputs

__all__ = ["Pretrainer", "STATEFUL_RANDOM_OPS"]

STATEFUL_RANDOM_OPS = frozenset({
    "RandomUniform", "RandomUniformInt", "RandomStandardNormal", "TruncatedNormal", "RandomShuffle",
    "Multinomial", "RandomGamma", "RandomPoisson", "RandomPoissonV2",
})
_POLICIES = {"off": None, "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}


def _say(message: str) -> None:
    print("gau-alpha pretrain: %s" % message, file=sys.stderr, flush=True)


def _graph_random_ops(graph: Any) -> List[str]:
    """Stateful random ops in ``graph`` and in the functions it calls."""
    found = [op.name for op in graph.get_operations() if op.type in STATEFUL_RANDOM_OPS]
    for function in getattr(graph, "_functions", {}).values():
        inner = getattr(function, "graph", None)
        if inner is not None:
            found.extend(_graph_random_ops(inner))
    return found


_HEAD_LAYERS = ("Output-Mapping", "MLM-Dense", "MLM-Norm", "Output-MLM-Dropout", "Embedding-Token", "MLM-Bias")
"""The MLM head's layers in the order bert4keras applies them (those a model has): BERT's
dense + norm + tied embedding + bias; RoFormerV2's and GAU-alpha's dropout + tied embedding."""


def _split_head(transformer: Any) -> Tuple[Any, List[Any]]:
    """``(backbone, head layers)``: a Keras model from the inputs to the hidden states the MLM
    head reads (B, N, H), and the head's layers, to apply to the predicted positions only
    (the head's (B, N, vocab) logits are most of a small model's work; about 15% of the
    positions are predicted)."""
    model = transformer.model
    names = {layer.name for layer in model.layers}
    head = [model.get_layer(transformer.prefixed(n)) for n in _HEAD_LAYERS if transformer.prefixed(n) in names]
    first = head[0]
    # the tied embedding is called twice (lookup, then the head's dense mode); without
    # dropout (rate 0 builds no layer) it is the head's first layer: take its second call
    hidden = first.get_input_at(1) if first.name.endswith("Embedding-Token") else first.input
    return tf.keras.Model(model.inputs, hidden, name="mlm_backbone"), head


class Pretrainer:
    """The MLM model, optimizer and compiled steps of one run, under ``strategy``.

    Args:
        inputs: the checked run inputs (:func:`gau_alpha.pretrain.settings.resolve`).
        strategy: the ``tf.distribute`` strategy (build everything under it).

    Raises:
        CheckpointError: ``--init-from`` does not fit the config (naming the variables).
        ConfigError: the config does not fit the model.
    """

    def __init__(self, inputs: Inputs, strategy: tf.distribute.Strategy) -> None:
        from gau_alpha.models import build_transformer_model

        s = inputs.settings
        self.inputs, self.settings, self.strategy = inputs, s, strategy
        policy = _POLICIES[s.mixed_precision]
        tf.keras.mixed_precision.set_global_policy(policy or "float32")
        overrides: Dict[str, Any] = {}
        if s.dropout is not None:
            overrides.update(dropout_rate=s.dropout, attention_dropout_rate=s.dropout)
        seed_everything(s.seed)
        try:
            with strategy.scope():
                self.transformer = build_transformer_model(
                    str(inputs.config_path), None if inputs.checkpoint is None else str(inputs.checkpoint),
                    model=s.model, with_mlm="linear", return_keras_model=False,
                    residual_attention_scores=s.residual_attention is not None,
                    residual_attention_mode=s.residual_attention or "cumulative", **overrides,
                )
                self.model = self.transformer.model
                optimizer = make_optimizer(s.optimizer, s.learning_rate, inputs.schedule, s.weight_decay)
                self.base_optimizer = optimizer
                if s.mixed_precision == "float16":
                    optimizer = tf.keras.mixed_precision.LossScaleOptimizer(optimizer)
                self.optimizer = optimizer
                self.optimizer._create_all_weights(self.model.trainable_variables)
        finally:
            if policy is not None:
                tf.keras.mixed_precision.set_global_policy("float32")
        self.backbone, self.head_layers = _split_head(self.transformer)
        self.seeds = DropoutSeeds()
        self.dropout_layers = use_stateless_dropout(self.model, self.seeds)
        self.exact_resume: Optional[bool] = None
        self._train = None
        self._evaluate = None

    # ------------------------------------------------------------------ state
    def weights(self) -> Tuple[List[np.ndarray], List[str]]:
        """All model weights (values, names), in model order."""
        return self.model.get_weights(), [w.name for w in self.model.weights]

    def _optimizer_variables(self) -> List[Any]:
        """The optimizer's step counter and slots, and with float16 the dynamic loss scale and
        its count of good steps (state too: a resumed run must scale as the original did)."""
        variables = list(self.optimizer.variables())
        scale = getattr(self.optimizer, "_loss_scale", None)
        for name in ("_current_loss_scale", "_counter"):
            variable = getattr(scale, name, None)
            if variable is not None and all(variable is not v for v in variables):
                variables.append(variable)
        return variables

    def optimizer_state(self) -> Tuple[List[np.ndarray], List[str]]:
        """The values and names of :meth:`_optimizer_variables`."""
        variables = self._optimizer_variables()
        return [np.asarray(v.numpy()) for v in variables], [v.name for v in variables]

    def model_shapes(self) -> List[Tuple[str, Tuple[int, ...]]]:
        return [(w.name, tuple(w.shape)) for w in self.model.weights]

    def optimizer_shapes(self) -> List[Tuple[str, Tuple[int, ...]]]:
        return [(v.name, tuple(v.shape)) for v in self._optimizer_variables()]

    def restore(self, model_arrays: Sequence[np.ndarray], optimizer_arrays: Sequence[np.ndarray]) -> None:
        self.model.set_weights(list(model_arrays))
        for variable, value in zip(self._optimizer_variables(), optimizer_arrays):
            variable.assign(value)

    @property
    def step(self) -> int:
        """Optimizer steps taken (the optimizer's counter)."""
        return int(self.base_optimizer.iterations.numpy())

    def learning_rate(self) -> float:
        """The learning rate of the next step."""
        return float(self.base_optimizer.current_learning_rate())

    # ------------------------------------------------------------------ the model
    def predicted_logits(self, input_ids, target_ids, weights, training: bool):
        """Logits of the predicted positions only: ``(logits (M, vocab) float32, targets (M,),
        weights (M,))`` for the M positions of ``weights > 0`` in ``(B, N)`` inputs."""
        hidden = self.backbone([input_ids, tf.zeros_like(input_ids)], training=training)
        where = tf.where(weights > 0)
        x = tf.gather_nd(hidden, where)
        for layer in self.head_layers:
            if layer.name.endswith("Embedding-Token"):
                x = layer(x, mode="dense")
            elif isinstance(layer, tf.keras.layers.Dropout):
                x = layer(x, training=training)
            else:
                x = layer(x)
        return tf.cast(x, tf.float32), tf.gather_nd(target_ids, where), tf.gather_nd(weights, where)

    # ------------------------------------------------------------------ training
    def _build_train(self, accum: int, batch: int, length: int):
        model, optimizer, seeds, strategy = self.model, self.optimizer, self.seeds, self.strategy
        scaled = isinstance(optimizer, tf.keras.mixed_precision.LossScaleOptimizer)

        def replica_step(input_ids, target_ids, weights, seed):
            context = tf.distribute.get_replica_context()
            replicas = tf.cast(context.num_replicas_in_sync, tf.int32)
            replica = tf.cast(context.replica_id_in_sync_group, tf.int32)
            start, end = batch * replica // replicas, batch * (replica + 1) // replicas
            total = tf.maximum(tf.reduce_sum(weights), 1.0)
            variables = model.trainable_variables
            summed = None
            loss_sum = correct = tf.constant(0.0)
            for micro in range(accum):
                x, y, w = input_ids[micro, start:end], target_ids[micro, start:end], weights[micro, start:end]
                micro_seed = tf.random.experimental.stateless_fold_in(seed, micro)
                micro_seed = tf.random.experimental.stateless_fold_in(micro_seed, tf.cast(replica, tf.int64))
                with seeds.active(micro_seed), tf.GradientTape() as tape:
                    logits, y, w = self.predicted_logits(x, y, w, training=True)
                    token_loss = tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits)
                    loss = tf.reduce_sum(token_loss * w) / total
                    objective = optimizer.get_scaled_loss(loss) if scaled else loss
                gradients = tape.gradient(objective, variables)
                gradients = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
                             for g, v in zip(gradients, variables)]
                if scaled:
                    gradients = optimizer.get_unscaled_gradients(gradients)
                summed = gradients if summed is None else [a + b for a, b in zip(summed, gradients)]
                loss_sum += tf.reduce_sum(token_loss * w)
                hits = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y), tf.float32)
                correct += tf.reduce_sum(hits * w)
            optimizer.apply_gradients(zip(summed, variables))
            return loss_sum, correct

        specs = [tf.TensorSpec((accum, batch, length), tf.int32), tf.TensorSpec((accum, batch, length), tf.int32),
                 tf.TensorSpec((accum, batch, length), tf.float32), tf.TensorSpec((2,), tf.int64)]

        @tf.function(input_signature=specs, autograph=False)
        def train(input_ids, target_ids, weights, seed):
            loss_sum, correct = strategy.run(replica_step, args=(input_ids, target_ids, weights, seed))
            return (strategy.reduce(tf.distribute.ReduceOp.SUM, loss_sum, axis=None),
                    strategy.reduce(tf.distribute.ReduceOp.SUM, correct, axis=None))

        graph = train.get_concrete_function().graph
        found = _graph_random_ops(graph)
        self.exact_resume = not found
        if found:
            _say("the model draws dropout from stateful random ops (%s): a resumed run is statistically, "
                 "not bitwise, the same as an uninterrupted one" % ", ".join(found[:2]))
        return train

    def train_step(self, batch: Batch, step: int) -> Tuple[float, float, float]:
        """One optimizer step on ``batch`` (arrays (A, B, N)); ``step`` (0-based) seeds dropout.

        Returns:
            ``(summed token loss, correctly predicted tokens, predicted tokens)`` over the
            whole global step.
        """
        if self._train is None:
            self._train = self._build_train(*batch.input_ids.shape)
        seed = tf.constant([self.settings.seed, step], tf.int64)
        loss_sum, correct = self._train(tf.constant(batch.input_ids), tf.constant(batch.target_ids),
                                        tf.constant(batch.weights), seed)
        return float(loss_sum), float(correct), float(batch.weights.sum())

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, batches: Sequence[Batch]) -> Dict[str, float]:
        """Masked-token loss and accuracy (%) on fixed batches (no dropout):
        ``{"loss", "mlm_accuracy", "tokens"}``."""
        if self._evaluate is None:
            @tf.function(autograph=False, reduce_retracing=True)
            def evaluate(x, y, w):
                logits, y, w = self.predicted_logits(x, y, w, training=False)
                token_loss = tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits)
                hits = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y), tf.float32)
                return tf.reduce_sum(token_loss * w), tf.reduce_sum(hits * w)

            self._evaluate = evaluate
        loss = correct = tokens = 0.0
        for batch in batches:
            loss_sum, hits = self._evaluate(tf.constant(batch.input_ids[0]), tf.constant(batch.target_ids[0]),
                                            tf.constant(batch.weights[0]))
            loss += float(loss_sum)
            correct += float(hits)
            tokens += float(batch.weights.sum())
        if tokens == 0:
            raise RunError("the validation corpus gave no tokens to predict")
        return {"loss": loss / tokens, "mlm_accuracy": 100.0 * correct / tokens, "tokens": tokens}

    # ------------------------------------------------------------------ export
    def export_checkpoint(self, prefix: Path) -> None:
        """The weights as a TF1 checkpoint in the release's names (``bert_model.ckpt.*``)."""
        self.transformer.save_weights_as_checkpoint(str(prefix))
