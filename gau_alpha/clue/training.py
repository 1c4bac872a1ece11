"""The training loop: AdaFactor, tf.distribute, reproducible epochs, batched prediction.

Reproducibility: every epoch starts with ``tf.keras.utils.set_random_seed(seed + epoch)``
(Python, NumPy and TensorFlow seeds), batches are drawn with a NumPy generator
seeded with ``(seed, epoch)``, and the train step is traced afresh for the
epoch, so its dropout ops are seeded from the epoch's seed rather than from
whatever ran before. An epoch therefore depends only on the weights and the
optimizer state it starts from, which is what makes resuming exact.

Distribution: the train step receives the whole global batch and each replica
takes one contiguous slice of it; every example's loss is weighted by
``1 / global batch size``, so replica gradients sum to the gradient of the
batch mean whatever the split. Inputs have fully dynamic shapes, so each
epoch's train step is traced once. ``--strategy mirrored`` on a machine
without GPUs runs one replica on the CPU.
"""
from __future__ import annotations

import math
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence

import tensorflow as tf

from gau_alpha import interrupts
from gau_alpha.errors import RunError

from .features import Feature, collate_inputs, epoch_batches, make_batches
from .tasks.base import Task

__all__ = [
    "STRATEGIES", "make_strategy", "is_chief", "make_optimizer", "epoch_batches", "Trainer", "seed_everything",
]

STRATEGIES = ("default", "mirrored", "multiworker")


def make_strategy(name: str) -> tf.distribute.Strategy:
    """``default`` (no distribution), ``mirrored`` (all local GPUs, else the CPU) or
    ``multiworker`` (``MultiWorkerMirroredStrategy``, cluster from ``TF_CONFIG``)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or ["/cpu:0"]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError("unknown strategy %r; expected one of %s" % (name, ", ".join(STRATEGIES)))


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes files (all but the non-chief workers of ``multiworker``)."""
    return bool(getattr(strategy.extended, "should_checkpoint", True))


def make_optimizer(learning_rate: float, grad_accum_steps: int = 1):
    """The recipe's AdaFactor (``beta1=0.9``, ``min_dim_size_to_factor=10**6``), with
    bert4keras's gradient accumulation when ``grad_accum_steps > 1``."""
    from bert4keras.optimizers import AdaFactor, extend_with_gradient_accumulation

    options = dict(learning_rate=learning_rate, beta1=0.9, min_dim_size_to_factor=10**6)
    if grad_accum_steps > 1:
        accumulating = extend_with_gradient_accumulation(AdaFactor, name="AdaFactorG")
        return accumulating(grad_accum_steps=grad_accum_steps, **options)
    return AdaFactor(**options)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow (global seed)."""
    tf.keras.utils.set_random_seed(int(seed) % (2**31))


class Trainer:
    """Runs training epochs and predictions of one task model under a strategy.

    Args:
        task: the task (loss, labels, summaries).
        model: the task model, built under ``strategy.scope()``.
        optimizer: built under ``strategy.scope()``.
        strategy: the distribution strategy.
        progress: show tqdm progress bars (on stderr).
    """

    def __init__(self, task: Task, model: Any, optimizer: Any, strategy: tf.distribute.Strategy,
                 progress: bool = True):
        self.task = task
        self.model = model
        self.optimizer = optimizer
        self.strategy = strategy
        self.progress = progress
        self.input_names = task.input_names()
        self._predict_function = None

    # ------------------------------------------------------------------ training
    def _batch(self, features: Sequence[Feature], labelled: bool):
        inputs = collate_inputs(features)
        labels = self.task.collate_labels(features, inputs) if labelled else None
        return inputs, labels

    def _signature(self, feature: Feature, labelled: bool) -> List[tf.TensorSpec]:
        """Fully dynamic specs of a batch's inputs (and labels), so one trace serves all batches."""
        specs = []
        for name in self.input_names:
            dtype = tf.float32 if name.endswith("_mask") else tf.int32
            rank = feature.inputs.get(name, feature.inputs["token_ids"]).ndim + 1  # segment ids may be implicit
            specs.append(tf.TensorSpec((None,) * rank, dtype, name=name))
        if labelled:
            specs.append(tf.TensorSpec((None,) + tuple(self.task.label_shape()[1:]), self.task.label_dtype(),
                                       name="labels"))
        return specs

    def make_train_step(self, feature: Feature) -> Callable:
        """A freshly traced train step for batches shaped like ``feature`` (fully dynamic
        shapes): ``step(*inputs, labels)`` with the arrays of ``task.input_names()`` in order,
        each ``(B, N...)``, then the labels; one optimizer step; returns the summed
        per-example loss. Its ``input_signature`` gives the dtypes."""
        return self._make_train_function(self._signature(feature, labelled=True))

    def _make_train_function(self, signature: List[tf.TensorSpec]) -> Callable:
        """A freshly traced train step: global batch in, summed per-example loss out.

        Each replica takes a contiguous slice of the global batch; examples are
        weighted by ``1 / global batch size`` (see the module docstring).
        """
        model, optimizer, task, strategy = self.model, self.optimizer, self.task, self.strategy
        count = len(self.input_names)

        def step(*arrays):
            context = tf.distribute.get_replica_context()
            replicas = tf.cast(context.num_replicas_in_sync, tf.int32)
            replica = tf.cast(context.replica_id_in_sync_group, tf.int32)
            size = tf.shape(arrays[0])[0]
            start, end = size * replica // replicas, size * (replica + 1) // replicas
            local = [array[start:end] for array in arrays]
            inputs, labels = local[:count], local[count]
            with tf.GradientTape() as tape:
                outputs = model(inputs, training=True)
                per_example = task.loss(labels, outputs)
                loss = tf.reduce_sum(per_example) / tf.cast(size, per_example.dtype)
            variables = model.trainable_variables
            gradients = tape.gradient(loss, variables)
            optimizer.apply_gradients([(g, v) for g, v in zip(gradients, variables) if g is not None])
            return tf.reduce_sum(per_example)

        @tf.function(input_signature=signature, autograph=False)
        def train_function(*arrays):
            losses = strategy.run(step, args=arrays)
            return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

        return train_function

    def train_epoch(
        self,
        features: Sequence[Feature],
        batch_size: int,
        seed: int,
        epoch: int,
        max_steps: Optional[int] = None,
    ) -> Dict[str, float]:
        """One epoch over ``features`` (reseeded from ``seed + epoch``).

        Returns:
            ``{"loss": mean training loss per example, "steps": steps run}``.

        Raises:
            RunError: the loss became NaN or infinite (exit status 1).
        """
        from tqdm import tqdm

        seed_everything(seed + epoch)
        batches = epoch_batches(features, batch_size, seed, epoch)
        if max_steps is not None:
            batches = batches[:max_steps]
        if not batches:
            return {"loss": float("nan"), "steps": 0.0}
        train_function = self.make_train_step(features[0])
        total, seen = 0.0, 0
        bar = tqdm(batches, desc="epoch %d" % (epoch + 1), unit="step", disable=not self.progress,
                   file=sys.stderr, dynamic_ncols=True)
        for indices in bar:
            interrupts.check()
            inputs, labels = self._batch([features[i] for i in indices], labelled=True)
            arrays = [tf.constant(inputs[name]) for name in self.input_names] + [tf.constant(labels)]
            loss = float(train_function(*arrays))
            if not math.isfinite(loss):
                error = RunError("training loss became %s at epoch %d, step %d (try a lower --learning-rate)"
                                 % (loss, epoch + 1, bar.n + 1))
                error.exit_code = 1  # a failed run, not bad input
                raise error
            total += loss
            seen += len(indices)
            bar.set_postfix(loss="%.4f" % (total / seen))
        bar.close()
        return {"loss": total / max(seen, 1), "steps": float(len(batches))}

    # ------------------------------------------------------------------ prediction
    def predict(self, features: Sequence[Feature], batch_size: int, desc: str = "predict") -> List[Any]:
        """Run the model on ``features`` (length-sorted batches) and return the task's
        summary of each feature, in the order of ``features``."""
        from tqdm import tqdm

        if not features:
            return []
        if self._predict_function is None:
            model = self.model

            @tf.function(input_signature=self._signature(features[0], labelled=False), autograph=False)
            def predict_function(*inputs):
                return model(list(inputs), training=False)

            self._predict_function = predict_function
        summaries: List[Any] = [None] * len(features)
        batches = make_batches([f.length for f in features], batch_size)
        for indices in tqdm(batches, desc=desc, unit="batch", disable=not self.progress, file=sys.stderr,
                            dynamic_ncols=True):
            interrupts.check()
            batch = [features[i] for i in indices]
            inputs, _ = self._batch(batch, labelled=False)
            outputs = self._predict_function(*[tf.constant(inputs[name]) for name in self.input_names]).numpy()
            for index, feature, output in zip(indices, batch, outputs):
                summaries[index] = self.task.summarize(feature, output)
        return summaries
