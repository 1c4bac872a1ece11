"""The training loop: AdaFactor, tf.distribute, reproducible epochs, batched prediction,
with XLA and length buckets (the default of ``gau-alpha clue``) or without (``--no-xla``).

Two paths run the same model, loss and optimizer:

**XLA** (``Trainer(..., xla=True)``). The train step and the prediction function are
``tf.function(jit_compile=True)``: XLA compiles them once per input shape, so shapes are
bounded. The token axis of every batch is padded up to a ladder of at most ``max_buckets``
widths (:func:`~gau_alpha.clue.features.batches_ladder`: fitted to the batches' longest
features so that padding is least; at most one width per ``min_batches_per_bucket``
batches, so a short run compiles once), and a short last batch is filled up to the batch
size with copies of its first feature that carry weight 0 (training: they add nothing to
the loss or the gradients; prediction: their outputs are dropped). A run therefore
compiles the train step at most once per ladder width (times the number of choice counts
``K`` for multiple-choice tasks), and the prediction function once per width for each set
of features it predicts. Every trace is counted (:meth:`Trainer.compilations`; the run
writes the counts to ``metrics.json``). Dropout inside the XLA step is *stateless*: each
dropout call draws from ``stateless_fold_in(seed, epoch, step, replica, call)`` (XLA
ignores the seeds of TensorFlow's legacy random ops), so one compiled step serves the whole
run and an epoch still depends only on the weights and optimizer state it starts from
(the dropout masks differ from ``--no-xla``'s, so the two paths agree exactly only without
dropout). If XLA cannot compile a step (an op without an XLA kernel) the trainer says so
once on stderr and runs the same bucketed step without ``jit_compile``.

**Without XLA** (``xla=False``, the class default; ``gau-alpha clue --no-xla``): fully
dynamic shapes, each batch padded to its longest feature, the train step traced afresh
every epoch (:meth:`Trainer.make_train_step`) after ``tf.keras.utils.set_random_seed(seed
+ epoch)``, so its legacy dropout ops are seeded from the epoch's seed. Exactly the
behaviour before XLA was added.

Reproducibility (both paths): every epoch starts with ``set_random_seed(seed + epoch)``
(Python, NumPy and TensorFlow seeds) and batches are drawn with a NumPy generator seeded
with ``(seed, epoch)``, which is what makes resuming exact.

Distribution: the train step receives the whole global batch and each replica takes one
contiguous slice of it; every example's loss is weighted by ``1 / global batch size`` (XLA
path: by ``weight / sum of the global batch's weights``), so replica gradients sum to the
gradient of the batch mean whatever the split. With a strategy other than the default one,
XLA compiles each replica's forward and backward pass and the optimizer update runs
outside it (its cross-replica reduction cannot be compiled). ``--strategy mirrored`` on a
machine without GPUs runs one replica on the CPU.

Prediction for other commands: :func:`predict_features` (the same batching, padding and
compiled function as a run's dev and test predictions).
"""
from __future__ import annotations

import contextlib
import math
import re
import sys
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from gau_alpha import interrupts
from gau_alpha.errors import RunError

from .features import (
    DEFAULT_MAX_BUCKETS,
    MIN_BATCHES_PER_BUCKET,
    Feature,
    batches_ladder,
    bucket_budget,
    bucket_width,
    collate_inputs,
    epoch_batches,
    make_batches,
)
from .tasks.base import Task

__all__ = [
    "STRATEGIES", "make_strategy", "is_chief", "make_optimizer", "epoch_batches", "Trainer", "seed_everything",
    "predict_features", "bucket_budget", "MIN_BATCHES_PER_BUCKET",
]

STRATEGIES = ("default", "mirrored", "multiworker")

# Op types whose seeds XLA ignores: a jit-compiled train step holding one is not reproducible.
_LEGACY_RANDOM_OPS = frozenset({
    "RandomUniform", "RandomUniformInt", "RandomStandardNormal", "TruncatedNormal", "RandomShuffle",
    "Multinomial", "RandomGamma", "RandomPoisson", "RandomPoissonV2",
})


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


def _say(message: str) -> None:
    print("gau-alpha: %s" % message, file=sys.stderr, flush=True)


def _is_default_strategy(strategy: tf.distribute.Strategy) -> bool:
    return strategy is tf.distribute.get_strategy() and not tf.distribute.has_strategy()


# ---------------------------------------------------------------------------- stateless dropout
class DropoutSeeds:
    """The seed of the step being traced; while set, patched dropout layers draw from it.

    ``seed`` is a ``(2,)`` int64 tensor; each dropout call folds in its call number (the
    order in which the trace meets the dropout layers, fixed by the model).
    """

    def __init__(self) -> None:
        self.seed: Optional[tf.Tensor] = None
        self.calls = 0

    @contextlib.contextmanager
    def active(self, seed: tf.Tensor) -> Iterator[None]:
        self.seed, self.calls = seed, 0
        try:
            yield
        finally:
            self.seed = None

    def next_seed(self) -> tf.Tensor:
        self.calls += 1
        return tf.random.experimental.stateless_fold_in(self.seed, self.calls)


class _StatelessDropoutGenerator:
    """Stands in for a Keras ``Dropout`` layer's random generator: stateless dropout from
    :class:`DropoutSeeds` inside the XLA train step, the original generator elsewhere."""

    def __init__(self, original: Any, seeds: DropoutSeeds) -> None:
        self.original, self.seeds = original, seeds

    def dropout(self, inputs, rate, noise_shape=None):
        """``inputs`` with each element (or ``noise_shape`` slice) kept with probability
        ``1 - rate`` and scaled by ``1 / (1 - rate)``, as ``tf.nn.dropout``.

        The uniform draws use Philox explicitly: XLA's CPU implementation of the default
        (``auto_select``) algorithm is ~25x slower (measured: 1.2 s against 0.047 s for
        32 x 48 x 512 values; ThreeFry, faster still under XLA, has no kernel outside it)."""
        if self.seeds.seed is None:
            return self.original.dropout(inputs, rate, noise_shape=noise_shape)
        shape = tf.shape(inputs) if noise_shape is None else noise_shape
        keep = tf.random.stateless_uniform(shape, seed=self.seeds.next_seed(), alg="philox") >= rate
        return inputs * (tf.cast(keep, inputs.dtype) * tf.cast(1.0 / (1.0 - rate), inputs.dtype))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)


def use_stateless_dropout(model: Any, seeds: DropoutSeeds) -> int:
    """Give every dropout layer of ``model`` (nested ones too) the stateless generator
    reading ``seeds`` (a model given to a second trainer follows that trainer's seeds).

    Returns the number of layers changed (each layer once, however often it is shared).
    """
    changed = 0
    for layer in model._flatten_layers(include_self=True, recursive=True):
        generator = getattr(layer, "_random_generator", None)
        if isinstance(generator, _StatelessDropoutGenerator):
            generator.seeds = seeds
            changed += 1
            continue
        if generator is None or not hasattr(generator, "dropout"):
            continue
        # object.__setattr__: no checkpoint tracking of the wrapper (it holds no state)
        object.__setattr__(layer, "_random_generator", _StatelessDropoutGenerator(generator, seeds))
        changed += 1
    return changed


def _legacy_random_ops(function: Any, arrays: Sequence[tf.Tensor]) -> List[str]:
    """Names of legacy (seed-ignoring under XLA) random ops in ``function``'s trace for ``arrays``."""
    graph = function.get_concrete_function(*arrays).graph
    found = []
    for op in graph.get_operations():
        if op.type in _LEGACY_RANDOM_OPS:
            found.append(op.name)
    return found


# ---------------------------------------------------------------------------- bounded batches
def _fill_batch(features: Sequence[Feature], rows: int) -> Tuple[List[Feature], np.ndarray]:
    """``features`` filled up to ``rows`` with copies of the first one, and their weights
    ``(rows,)`` float32: 1 for the real features, 0 for the copies."""
    filled = list(features) + [features[0]] * max(0, rows - len(features))
    weights = np.zeros(len(filled), np.float32)
    weights[: len(features)] = 1.0
    return filled, weights


def _bucketed_inputs(features: Sequence[Feature], ladder: Sequence[int], rows: int):
    """Inputs padded to the ladder width and ``rows`` rows; the filled feature list; weights."""
    filled, weights = _fill_batch(features, rows)
    width = bucket_width(max(f.length for f in features), ladder)
    return collate_inputs(filled, width=width), filled, weights


class _Compiled:
    """A function compiled with XLA where it can be, one ``tf.function`` per input shape (so
    each is traced once, and a trace is a compilation): traces are counted, and when XLA
    cannot compile a trace the function is rebuilt without ``jit_compile`` (said once).

    ``inner``: for a function (not itself compiled) that calls a compiled one, the compiled
    one, which is the one to rebuild when compiling fails.
    """

    def __init__(self, python_function: Callable, name: str, jit_compile: bool, inner: Optional["_Compiled"] = None):
        self.python_function, self.name, self.inner = python_function, name, inner
        self.traces = 0
        self.shapes: List[Tuple[Tuple[int, ...], ...]] = []
        self.fallback: Optional[str] = None
        self.jit_compile = jit_compile
        self._functions: Dict[Tuple[Tuple[int, ...], ...], Any] = {}
        self._executed: set = set()

    def function_for(self, arrays: Sequence[tf.Tensor]):
        """The ``tf.function`` for the shapes of ``arrays`` (made on first use)."""
        key = tuple(tuple(a.shape) for a in arrays)
        function = self._functions.get(key)
        if function is None:
            def counted(*inputs):
                self.traces += 1
                self.shapes.append(tuple(tuple(a.shape.as_list()) for a in inputs))
                return self.python_function(*inputs)

            function = tf.function(counted, jit_compile=self.jit_compile, autograph=False)
            # one trace per function by design: TensorFlow's "frequent retracing" warning
            # (counted across the functions made from ``counted``) does not apply
            function._omit_frequent_tracing_warning = True
            self._functions[key] = function
        return function

    @property
    def compiled(self) -> "_Compiled":
        """The function XLA compiles (this one, or ``inner``)."""
        return self.inner if self.inner is not None else self

    def __call__(self, *arrays):
        key = tuple(tuple(a.shape) for a in arrays)
        try:
            result = self.function_for(arrays)(*arrays)
            self._executed.add(key)
            return result
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as error:
            target = self.compiled
            # only the first call of a shape compiles, so only it can fail to compile
            if not target.jit_compile or key in self._executed:
                raise
            message = str(error).strip()
            unsupported = re.search(r"JIT: (\w+) \(No registered", message)
            reason = ("no XLA kernel for the op %s" % unsupported.group(1) if unsupported
                      else (message.splitlines() or [""])[0][:200])
            target.fallback, target.jit_compile = reason, False
            _say("XLA cannot compile the %s (%s); running it without XLA (same bucketed shapes). "
                 "Use --no-xla to skip XLA." % (self.name, reason))
            target._functions.clear()
            self._functions.clear()
            return self.function_for(arrays)(*arrays)


# ---------------------------------------------------------------------------- prediction
class _Predictor:
    """Batched prediction of one model: the task's summary of each feature.

    ``xla``: one compiled function per (ladder width, batch size) shape; otherwise one
    dynamic-shape function, each batch padded to its longest feature (the non-XLA path).
    """

    def __init__(self, task: Task, model: Any, xla: bool, max_buckets: int = DEFAULT_MAX_BUCKETS,
                 progress: bool = False, min_batches_per_bucket: int = MIN_BATCHES_PER_BUCKET):
        self.task, self.model, self.xla, self.max_buckets, self.progress = task, model, xla, max_buckets, progress
        self.min_batches_per_bucket = min_batches_per_bucket
        self.input_names = task.input_names()
        self._dynamic = None
        self._compiled: Optional[_Compiled] = None

    def _dynamic_function(self, feature: Feature):
        if self._dynamic is None:
            model = self.model
            signature = _input_specs(self.task, feature, labelled=False)

            @tf.function(input_signature=signature, autograph=False)
            def predict_function(*inputs):
                return model(list(inputs), training=False)

            self._dynamic = predict_function
        return self._dynamic

    def _compiled_function(self) -> _Compiled:
        if self._compiled is None:
            model = self.model

            def predict_function(*inputs):
                return model(list(inputs), training=False)

            self._compiled = _Compiled(predict_function, "prediction function", jit_compile=True)
        return self._compiled

    @property
    def traces(self) -> int:
        return self._compiled.traces if self._compiled is not None else 0

    def __call__(self, features: Sequence[Feature], batch_size: int, desc: str = "predict") -> List[Any]:
        from tqdm import tqdm

        if not features:
            return []
        summaries: List[Any] = [None] * len(features)
        batches = make_batches([f.length for f in features], batch_size)
        ladder = (batches_ladder(features, batches, batch_size, self.max_buckets, self.min_batches_per_bucket)
                  if self.xla else None)
        for indices in tqdm(batches, desc=desc, unit="batch", disable=not self.progress, file=sys.stderr,
                            dynamic_ncols=True):
            interrupts.check()
            batch = [features[i] for i in indices]
            if self.xla:
                inputs, _, _ = _bucketed_inputs(batch, ladder, batch_size)
                function = self._compiled_function()
            else:
                inputs = collate_inputs(batch)
                function = self._dynamic_function(batch[0])
            outputs = function(*[tf.constant(inputs[name]) for name in self.input_names]).numpy()
            for index, feature, output in zip(indices, batch, outputs):  # drops the fill rows
                summaries[index] = self.task.summarize(feature, output)
        return summaries


def predict_features(task: Task, model: Any, features: Sequence[Feature], batch_size: int, *, xla: bool = True,
                     max_buckets: int = DEFAULT_MAX_BUCKETS, min_batches_per_bucket: int = MIN_BATCHES_PER_BUCKET,
                     progress: bool = False, desc: str = "predict") -> List[Any]:
    """The task's summary of each feature (``task.summarize``), in the order of ``features``,
    computed the way a ``gau-alpha clue`` run predicts its dev and test sets.

    Batches of ``batch_size`` features sorted by length. ``xla=True`` (a run's default):
    compiled with XLA, token axis padded to the features' length ladder, the last batch
    filled to ``batch_size``; ``xla=False`` (``--no-xla``): each batch padded to its longest
    feature. The two agree to float rounding. Pass ``task.decode(examples, features,
    summaries, params)`` the result to get predictions.

    Args:
        task: the task (its ``input_names``, ``summarize``).
        model: the task model (``task.build_model``), weights loaded.
        features: ``task.encode(..., labelled=False)`` of the examples.
        batch_size: features per model call (a run uses ``--eval-batch-size``, default ``--batch-size``).
        xla: compile with XLA and bucket the shapes.
        max_buckets: the most ladder widths (compiled shapes).
        min_batches_per_bucket: at most one width per this many batches (:func:`bucket_budget`).
        progress: a tqdm bar on stderr.
        desc: the bar's label.

    With the defaults (a run's), the summaries are those of the run's own test prediction
    (the same ladder, the same compiled shapes), to the bit.
    """
    return _Predictor(task, model, xla, max_buckets, progress, min_batches_per_bucket)(features, batch_size, desc)


def _input_specs(task: Task, feature: Feature, labelled: bool) -> List[tf.TensorSpec]:
    """Fully dynamic specs of a batch's inputs (and labels), so one trace serves all batches."""
    specs = []
    for name in task.input_names():
        dtype = tf.float32 if name.endswith("_mask") else tf.int32
        rank = feature.inputs.get(name, feature.inputs["token_ids"]).ndim + 1  # segment ids may be implicit
        specs.append(tf.TensorSpec((None,) * rank, dtype, name=name))
    if labelled:
        specs.append(tf.TensorSpec((None,) + tuple(task.label_shape()[1:]), task.label_dtype(), name="labels"))
    return specs


# ---------------------------------------------------------------------------- the trainer
class Trainer:
    """Runs training epochs and predictions of one task model under a strategy.

    Args:
        task: the task (loss, labels, summaries).
        model: the task model, built under ``strategy.scope()``.
        optimizer: built under ``strategy.scope()``.
        strategy: the distribution strategy.
        progress: show tqdm progress bars (on stderr).
        xla: XLA with length buckets (see the module docstring); False: dynamic shapes,
            per-batch padding, the train step traced every epoch (``--no-xla``).
        max_buckets: the most widths of a length ladder (XLA only).
        min_batches_per_bucket: a ladder gets at most one width per this many batches of
            a pass (:func:`bucket_budget`; XLA only).
    """

    def __init__(self, task: Task, model: Any, optimizer: Any, strategy: tf.distribute.Strategy,
                 progress: bool = True, xla: bool = False, max_buckets: int = DEFAULT_MAX_BUCKETS,
                 min_batches_per_bucket: int = MIN_BATCHES_PER_BUCKET):
        self.task = task
        self.model = model
        self.optimizer = optimizer
        self.strategy = strategy
        self.progress = progress
        self.xla = bool(xla)
        self.max_buckets = int(max_buckets)
        self.min_batches_per_bucket = int(min_batches_per_bucket)
        self.input_names = task.input_names()
        self._predictor = _Predictor(task, model, self.xla, self.max_buckets, progress, self.min_batches_per_bucket)
        self._train: Optional[_Compiled] = None
        self._seeds = DropoutSeeds()
        self._ladders: Dict[Tuple[int, ...], List[int]] = {}
        self.dropout_layers = use_stateless_dropout(model, self._seeds) if self.xla else 0

    # ------------------------------------------------------------------ without XLA
    def _batch(self, features: Sequence[Feature], labelled: bool):
        inputs = collate_inputs(features)
        labels = self.task.collate_labels(features, inputs) if labelled else None
        return inputs, labels

    def _signature(self, feature: Feature, labelled: bool) -> List[tf.TensorSpec]:
        return _input_specs(self.task, feature, labelled)

    def make_train_step(self, feature: Feature) -> Callable:
        """A freshly traced train step (no XLA) for batches shaped like ``feature`` (fully dynamic
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

    # ------------------------------------------------------------------ with XLA
    def _create_optimizer_weights(self) -> None:
        """Create the optimizer's variables before the first trace (as ``apply_gradients``
        would, same names), so that trace does not have to be repeated after creating them."""
        variables = self.model.trainable_variables
        with self.strategy.scope(), tf.name_scope(self.optimizer._name), tf.init_scope():
            self.optimizer._create_all_weights(variables)
            getattr(self.optimizer, "learning_rate", None)  # AdaFactor makes its variable on first use

    def _xla_train_function(self) -> _Compiled:
        """The bucketed train step: ``(*inputs, labels, weights (B,), seed (3,) int64)`` ->
        summed weighted per-example loss. One optimizer step on ``sum(w * loss) / sum(w)``."""
        if self._train is not None:
            return self._train
        model, optimizer, task, strategy, seeds = self.model, self.optimizer, self.task, self.strategy, self._seeds
        count = len(self.input_names)

        def replica_gradients(*arrays):
            """Forward and backward on this replica's slice: (summed weighted loss, gradients)."""
            context = tf.distribute.get_replica_context()
            replicas = tf.cast(context.num_replicas_in_sync, tf.int32)
            replica = tf.cast(context.replica_id_in_sync_group, tf.int32)
            inputs, labels, weights, seed = arrays[:count], arrays[count], arrays[count + 1], arrays[count + 2]
            total_weight = tf.reduce_sum(weights)
            size = tf.shape(inputs[0])[0]
            start, end = size * replica // replicas, size * (replica + 1) // replicas
            local = [array[start:end] for array in (*inputs, labels, weights)]
            step_seed = tf.random.experimental.stateless_fold_in(seed[:2], seed[2])
            step_seed = tf.random.experimental.stateless_fold_in(step_seed, tf.cast(replica, tf.int64))
            with seeds.active(step_seed), tf.GradientTape() as tape:
                outputs = model(local[:count], training=True)
                per_example = task.loss(local[count], outputs)
                weighted = per_example * tf.cast(local[count + 1], per_example.dtype)
                loss = tf.reduce_sum(weighted) / tf.cast(total_weight, per_example.dtype)
            gradients = tape.gradient(loss, model.trainable_variables)
            return tf.reduce_sum(weighted), gradients

        def apply(gradients):
            pairs = [(g, v) for g, v in zip(gradients, model.trainable_variables) if g is not None]
            optimizer.apply_gradients(pairs)

        self._create_optimizer_weights()
        if _is_default_strategy(strategy):
            def whole_step(*arrays):
                loss, gradients = replica_gradients(*arrays)
                apply(gradients)
                return loss

            self._train = _Compiled(whole_step, "train step", jit_compile=True)
        else:
            # XLA compiles each replica's forward and backward; the update (a cross-replica
            # reduction) stays outside.
            compiled_gradients = _Compiled(replica_gradients, "train step", jit_compile=True)

            def replica_step(*arrays):
                loss, gradients = compiled_gradients.function_for(arrays)(*arrays)
                apply(gradients)
                return loss

            def distributed_step(*arrays):
                losses = strategy.run(replica_step, args=arrays)
                return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

            self._train = _Compiled(distributed_step, "train step", jit_compile=False, inner=compiled_gradients)
        self._checked_random_ops = False
        return self._train

    def training_ladder(self, features: Sequence[Feature], batch_size: int, seed: int,
                        max_steps: Optional[int] = None) -> List[int]:
        """The training ladder: fitted to the batches of the first epoch (``epoch_batches(...,
        seed, 0)``, cut to ``max_steps``), so the same for every epoch and after resuming."""
        key = (len(features), sum(f.length for f in features), batch_size, seed, -1 if max_steps is None else max_steps)
        if key not in self._ladders:
            batches = epoch_batches(features, batch_size, seed, 0)
            if max_steps is not None:
                batches = batches[:max_steps]
            ladder = batches_ladder(features, batches, batch_size, self.max_buckets, self.min_batches_per_bucket)
            # later epochs' batches (only some features are in the first epoch's cut) must fit too
            ladder[-1] = max(ladder[-1], bucket_width(max(f.length for f in features), ()))
            self._ladders[key] = ladder
        return self._ladders[key]

    def _train_epoch_xla(self, features: Sequence[Feature], batch_size: int, seed: int, epoch: int,
                         max_steps: Optional[int], bar: Any) -> Tuple[float, int]:
        function = self._xla_train_function()
        ladder = self.training_ladder(features, batch_size, seed, max_steps)
        total, seen = 0.0, 0
        for step, indices in enumerate(bar):
            interrupts.check()
            batch = [features[i] for i in indices]
            inputs, filled, weights = _bucketed_inputs(batch, ladder, batch_size)
            labels = self.task.collate_labels(filled, inputs)
            arrays = ([tf.constant(inputs[name]) for name in self.input_names]
                      + [tf.constant(labels), tf.constant(weights),
                         tf.constant([int(seed), int(epoch), step], dtype=tf.int64)])
            if not self._checked_random_ops:
                self._check_random_ops(function, arrays)
            loss = float(function(*arrays))
            if not math.isfinite(loss):
                self._raise_nan(loss, epoch, step)
            total += loss
            seen += len(indices)
            bar.set_postfix(loss="%.4f" % (total / seen))
        return total, seen

    def _check_random_ops(self, function: _Compiled, arrays: Sequence[tf.Tensor]) -> None:
        """Refuse a model whose train step still holds legacy random ops: XLA ignores their
        seeds, so the run would not be reproducible."""
        target = function.compiled
        if target.jit_compile:
            found = _legacy_random_ops(target.function_for(arrays), arrays) if target is function else []
            if found:
                error = RunError("the model's train step uses random ops whose seeds XLA ignores (%s): "
                                 "the run would not be reproducible; run it with --no-xla"
                                 % ", ".join(found[:3]))
                error.exit_code = 1
                raise error
        self._checked_random_ops = True

    @staticmethod
    def _raise_nan(loss: float, epoch: int, step: int) -> None:
        error = RunError("training loss became %s at epoch %d, step %d (try a lower --learning-rate)"
                         % (loss, epoch + 1, step + 1))
        error.exit_code = 1  # a failed run, not bad input
        raise error

    def precompile(self, features: Sequence[Feature], batch_size: int, seed: int,
                   max_steps: Optional[int] = None) -> List[int]:
        """Compile (XLA) the train step for every ladder width an epoch over ``features`` can
        use, leaving the model's weights and the optimizer's state as they were.

        One step per width is run on a batch of features of that bucket and undone. A run
        does not need this (it compiles each width when first used); benchmarks call it to
        keep compilation out of timed epochs.

        Returns:
            the ladder (token widths); empty without XLA.
        """
        if not self.xla or not features:
            return []
        ladder = self.training_ladder(features, batch_size, seed, max_steps)
        function = self._xla_train_function()
        saved = self.model.get_weights(), self.optimizer.get_weights()
        lower = 0
        for width in ladder:
            members = [f for f in features if lower < f.length <= width]
            lower = width
            if not members:
                continue
            batch = members[:batch_size]
            inputs, filled, weights = _bucketed_inputs(batch, ladder, batch_size)
            labels = self.task.collate_labels(filled, inputs)
            arrays = ([tf.constant(inputs[name]) for name in self.input_names]
                      + [tf.constant(labels), tf.constant(weights), tf.constant([0, 0, 0], dtype=tf.int64)])
            if not self._checked_random_ops:
                self._check_random_ops(function, arrays)
            function(*arrays)
        self.model.set_weights(saved[0])
        self.optimizer.set_weights(saved[1])
        return list(ladder)

    # ------------------------------------------------------------------ epochs
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
        bar = tqdm(batches, desc="epoch %d" % (epoch + 1), unit="step", disable=not self.progress,
                   file=sys.stderr, dynamic_ncols=True)
        if self.xla:
            total, seen = self._train_epoch_xla(features, batch_size, seed, epoch, max_steps, bar)
            bar.close()
            return {"loss": total / max(seen, 1), "steps": float(len(batches))}
        train_function = self.make_train_step(features[0])
        total, seen = 0.0, 0
        for indices in bar:
            interrupts.check()
            inputs, labels = self._batch([features[i] for i in indices], labelled=True)
            arrays = [tf.constant(inputs[name]) for name in self.input_names] + [tf.constant(labels)]
            loss = float(train_function(*arrays))
            if not math.isfinite(loss):
                self._raise_nan(loss, epoch, bar.n)
            total += loss
            seen += len(indices)
            bar.set_postfix(loss="%.4f" % (total / seen))
        bar.close()
        return {"loss": total / max(seen, 1), "steps": float(len(batches))}

    # ------------------------------------------------------------------ prediction
    def predict(self, features: Sequence[Feature], batch_size: int, desc: str = "predict") -> List[Any]:
        """Run the model on ``features`` (length-sorted batches) and return the task's
        summary of each feature, in the order of ``features`` (see :func:`predict_features`)."""
        return self._predictor(features, batch_size, desc)

    # ------------------------------------------------------------------ report
    def compilations(self) -> Dict[str, Any]:
        """What was compiled: ``{"xla": bool, "train_traces": int, "predict_traces": int,
        "train_shapes": [...], "fallback": message or None, "dropout_layers": int}``.

        ``*_traces`` count the traces of the XLA functions (each one XLA compilation); without
        XLA they are 0 (the dynamic-shape step is traced once per epoch).
        """
        inner = self._train.compiled if self._train is not None else None
        shapes = sorted({tuple(s[0]) for s in inner.shapes}) if inner is not None else []
        fallbacks = [c.fallback for c in (inner, self._predictor._compiled) if c is not None and c.fallback]
        return {
            "xla": self.xla,
            "train_traces": inner.traces if inner is not None else 0,
            "predict_traces": self._predictor.traces,
            "train_token_shapes": [list(s) for s in shapes],
            "max_buckets": self.max_buckets,
            "dropout_layers": self.dropout_layers,
            "fallback": "; ".join(fallbacks) or None,
        }
