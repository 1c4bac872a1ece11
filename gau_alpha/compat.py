"""The one place that adapts bert4keras 0.11.5 to modern TensorFlow (2.16+ with tf-keras).

:func:`apply` runs once: when ``bert4keras`` is first imported after ``import gau_alpha`` (an
import hook in ``gau_alpha/__init__.py``), or when ``gau_alpha.layers``/``gau_alpha.models`` is
imported; calling it again does nothing. Every adaptation below is listed in ``ADAPTATIONS``
and has a test in ``tests/test_compat.py``. Numbers refer to the table in ``docs/compat.md``.
Only adaptations to this TensorFlow live here; residual attention is wired in the model
classes (``gau_alpha.models``), not by patching bert4keras.

1. Environment: ``TF_KERAS=1`` and ``TF_USE_LEGACY_KERAS=1`` before TensorFlow builds
   ``tf.keras``; a clear error if ``tf.keras`` is already Keras 3; Keras 3 modules that
   ``import tensorflow`` cached as ``keras.*`` are forgotten so bert4keras gets tf-keras.
2. ``distutils`` (gone in Python 3.12): a stand-in ``distutils.util.strtobool``.
3. Optimizers: bert4keras's optimizers subclass the *legacy* Keras optimizer
   (``tf.keras.optimizers.legacy.Optimizer``), which still has ``_set_hyper``,
   ``_create_slots`` and ``_resource_apply_dense``.
4. ``AdaFactor`` with a float learning rate: one learning-rate variable, created once
   (the original made a new one on each access, which ``tf.function`` rejects).
5. Random initialisation: an initializer *instance* shared by sibling layers (Q/K/V/O,
   both FFN Dense) draws a fresh seed at every call, so siblings differ.
6. ``RECOMPUTE=1``: the tape helpers moved to ``tensorflow.python.eager.record``;
   inputs passed several times (q = k = v) are watched once, so gradients are exact;
   the replay runs inside the layer's autocast scope, so mixed precision works.
7. ``Transformer.save_weights_as_checkpoint``: written with TF2 eager ops, same TF1
   names and on-disk format (``.index`` + ``.data-00000-of-00001``).
8. Mixed precision: ``attention_normalize`` counts keys in float32 and casts back;
   the tied MLM head (``Embedding(mode='dense')``) casts its kernel to the input dtype.
"""
from __future__ import annotations

import functools
import os
import random
import sys
import types
from typing import Any, Callable, List

ADAPTATIONS: List[str] = [
    "environment",
    "distutils",
    "legacy_optimizers",
    "adafactor_learning_rate",
    "distinct_initializers",
    "recompute",
    "save_weights_as_checkpoint",
    "mixed_precision",
]

_applied = False
_applying = False


class KerasVersionError(RuntimeError):
    """``tf.keras`` is Keras 3, which bert4keras cannot use."""


def _configure_environment() -> None:
    """Adaptation 1: select tf-keras before TensorFlow resolves ``tf.keras``."""
    os.environ["TF_KERAS"] = "1"
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    module = getattr(tf.keras, "__name__", "")
    if not module.startswith("tf_keras"):
        raise KerasVersionError(
            "tensorflow was imported with Keras 3 as tf.keras (module %s) before gau_alpha; "
            "bert4keras needs tf-keras. Set TF_USE_LEGACY_KERAS=1 (and TF_KERAS=1) in the "
            "environment before Python starts, or import gau_alpha before anything touches "
            "tf.keras, and install tf-keras matching your tensorflow version." % module
        )
    _forget_keras3_modules(tf.keras)


def _forget_keras3_modules(tf_keras_module: Any) -> None:
    """``import tensorflow`` without TF_USE_LEGACY_KERAS loads Keras 3 as ``keras.*``.

    bert4keras points ``sys.modules['keras']`` at tf.keras and then imports
    ``keras.layers`` etc.; cached Keras 3 submodules would be picked up instead. Before
    bert4keras is first imported, drop those cache entries so the names resolve to tf-keras.
    """
    if "bert4keras.backend" in sys.modules:
        return
    cached = sys.modules.get("keras")
    if cached is None or cached is tf_keras_module:
        return
    for name in [n for n in sys.modules if n == "keras" or n.startswith("keras.")]:
        del sys.modules[name]


def _install_distutils_shim() -> None:
    """Adaptation 2: bert4keras imports ``distutils.util.strtobool``."""
    try:
        from distutils.util import strtobool  # noqa: F401
        return
    except ImportError:
        pass

    def strtobool(value: str) -> int:
        value = value.lower()
        if value in ("y", "yes", "t", "true", "on", "1"):
            return 1
        if value in ("n", "no", "f", "false", "off", "0"):
            return 0
        raise ValueError("invalid truth value %r" % (value,))

    package = types.ModuleType("distutils")
    package.__path__ = []  # a package, so ``distutils.util`` resolves
    util = types.ModuleType("distutils.util")
    util.strtobool = strtobool
    package.util = util
    sys.modules["distutils"] = package
    sys.modules["distutils.util"] = util


# --------------------------------------------------------------------------- recompute
def recompute_grad(call: Callable) -> Callable:
    """Gradient-checkpointing decorator for a Keras layer's ``call`` (``RECOMPUTE=1``).

    The forward pass runs without recording; the backward pass re-runs ``call`` under a
    fresh tape. Differences from bert4keras's version: works with TF >= 2.16, watches each
    distinct input tensor once (bert4keras watched q, k, v separately even when they are
    the same tensor, which produced wrong gradients), and replays inside the layer's
    autocast scope (mixed precision).
    """
    import bert4keras.backend as b4k_backend

    if not b4k_backend.do_recompute:
        return call

    import tensorflow as tf
    from tensorflow.python.eager import record
    from tensorflow.python.util import nest, tf_inspect

    call_args = tf_inspect.getfullargspec(call).args

    @functools.wraps(call)
    def inner(self, inputs, **kwargs):
        for key in ("mask", "training"):
            if key not in call_args and key in kwargs:
                del kwargs[key]

        flat_inputs = nest.flatten(inputs)
        unique_inputs, seen = [], set()
        for tensor in flat_inputs:
            if tf.is_tensor(tensor) and id(tensor) not in seen:
                seen.add(id(tensor))
                unique_inputs.append(tensor)

        def kernel_call():
            return call(self, inputs, **kwargs)

        with record.stop_recording():
            outputs = kernel_call()
            outputs = nest.map_structure(tf.identity, outputs)
        flat_outputs = nest.flatten(outputs)
        variables = list(self.trainable_weights)

        def grad_fn(*doutputs):
            watches = unique_inputs + variables
            with tf.GradientTape() as tape:
                tape.watch(watches)
                with tf.control_dependencies(list(doutputs)):
                    with _autocast_scope(self):
                        replayed = nest.flatten(kernel_call())
            grads = tape.gradient(
                replayed, watches, output_gradients=list(doutputs),
                unconnected_gradients=tf.UnconnectedGradients.ZERO,
            )
            return grads

        # reading each variable here records the read, so gradients reach the variables
        watches = [tf.convert_to_tensor(x) for x in unique_inputs + variables]
        record.record_operation(call.__name__, flat_outputs, watches, grad_fn)
        return outputs

    return inner


def _autocast_scope(layer: Any):
    """The scope in which Keras autocasts a layer's float32 variables to its compute dtype."""
    from tf_keras.src.mixed_precision import autocast_variable

    dtype = getattr(layer, "_compute_dtype_object", None)
    return autocast_variable.enable_auto_cast_variables(dtype)


def _patch_backend(backend: types.ModuleType) -> None:
    """Adaptations 6 and 8 (backend part), before ``bert4keras.layers`` binds the names."""
    backend.recompute_grad = recompute_grad
    original_normalize = backend.attention_normalize

    def attention_normalize(a, mask=None, axis=-1, method="softmax", bias=None):
        if method not in ("softmax_plus", "squared_relu") or a.dtype == "float32":
            return original_normalize(a, mask, axis, method, bias)
        # Count keys in float32 (bf16 cannot count past 256 exactly), compute in float32.
        import tensorflow as tf

        if bias is not None and bias.dtype != tf.bool:
            bias = tf.cast(bias, "float32")
        out = original_normalize(tf.cast(a, "float32"), mask, axis, method, bias)
        return tf.cast(out, a.dtype)

    backend.attention_normalize = attention_normalize


# --------------------------------------------------------------------------- optimizers
def _import_optimizers_with_legacy_base() -> types.ModuleType:
    """Adaptation 3: import ``bert4keras.optimizers`` with the legacy optimizer as base."""
    import importlib

    from bert4keras.backend import keras  # the module object bert4keras subclasses from

    modern = keras.optimizers.Optimizer
    keras.optimizers.Optimizer = keras.optimizers.legacy.Optimizer
    try:
        if "bert4keras.optimizers" in sys.modules:
            module = importlib.reload(sys.modules["bert4keras.optimizers"])
        else:
            module = importlib.import_module("bert4keras.optimizers")
    finally:
        keras.optimizers.Optimizer = modern
    return module


def _fix_adafactor_learning_rate(optimizers: types.ModuleType) -> None:
    """Adaptation 4: one learning-rate variable per AdaFactor instance."""
    import tensorflow as tf

    base = optimizers.AdaFactorBase
    schedule_property = base.learning_rate

    def learning_rate(self):
        if self._learning_rate is None:
            return schedule_property.fget(self)
        variable = self.__dict__.get("_gau_alpha_learning_rate")
        if variable is None:
            with tf.init_scope():
                variable = tf.Variable(
                    float(self._learning_rate), name="learning_rate", trainable=False,
                    dtype=tf.keras.backend.floatx(),
                )
            self.__dict__["_gau_alpha_learning_rate"] = variable
        return variable

    base.learning_rate = property(learning_rate)


# --------------------------------------------------------------------------- initialisers
def _fresh_seed_initializer(initializer: Any) -> Any:
    """Wrap a seedable Keras initializer so each call draws from a new seed.

    The seed comes from Python's ``random`` module, so ``keras.utils.set_random_seed``
    (which seeds ``random`` too) makes model building reproducible.
    """
    from tf_keras import initializers

    config = initializer.get_config()
    if "seed" not in config:
        return initializer
    cls = type(initializer)

    class FreshSeed(cls):
        def __call__(self, shape, dtype=None, **kwargs):
            fresh = cls.from_config(dict(config, seed=random.randrange(2**31 - 1)))
            return fresh(shape, dtype=dtype, **kwargs)

    FreshSeed.__name__ = cls.__name__  # serialises under the original class name
    wrapped = FreshSeed.from_config(config)
    assert isinstance(wrapped, initializers.Initializer)
    return wrapped


_INITIALIZER_KWARGS = ("kernel_initializer", "embeddings_initializer", "hidden_initializer")


# --------------------------------------------------------------------------- Transformer
def _patch_transformer(models: types.ModuleType) -> None:
    """Adaptations 5 and 7 on ``bert4keras.models.Transformer``."""
    from tf_keras import initializers

    Transformer = models.Transformer
    original_apply = Transformer.apply

    def apply(self, inputs=None, layer=None, arguments=None, **kwargs):
        for key in _INITIALIZER_KWARGS:
            value = kwargs.get(key)
            if isinstance(value, initializers.Initializer):
                kwargs[key] = _fresh_seed_initializer(value)
        return original_apply(self, inputs, layer, arguments, **kwargs)

    Transformer.apply = apply
    Transformer.save_weights_as_checkpoint = _save_weights_as_checkpoint


def _save_weights_as_checkpoint(self, filename: str, mapping=None, dtype=None) -> None:
    """Adaptation 7: TF2 replacement of bert4keras's TF1 Session-based writer.

    Each model class's own ``create_variable`` still decides how a value is stored
    (BERT transposes the NSP kernel, for example).
    """
    import tensorflow as tf

    from gau_alpha.checkpoints import collect_tf1_tensors, write_tf1_checkpoint

    dtype = dtype or tf.keras.backend.floatx()
    tensors = collect_tf1_tensors(self, mapping)
    write_tf1_checkpoint(filename, {name: value.astype(dtype) for name, value in tensors.items()})


def _patch_tied_embedding(layers: types.ModuleType) -> None:
    """Adaptation 8 (layers part): the tied MLM head under mixed precision."""
    import tensorflow as tf

    Embedding = layers.Embedding
    original_call = Embedding.call

    def call(self, inputs, mode="embedding"):
        if mode == "embedding":
            return original_call(self, inputs, mode)
        kernel = tf.cast(tf.transpose(self.embeddings), inputs.dtype)
        return tf.matmul(inputs, kernel)

    Embedding.call = call


def apply() -> None:
    """Apply every adaptation once (idempotent; see the module docstring for when it runs)."""
    global _applied, _applying
    if _applied or _applying:
        return  # done, or bert4keras is being imported by apply() itself
    _applying = True
    try:
        _apply_all()
        _applied = True
    finally:
        _applying = False


def _apply_all() -> None:
    _configure_environment()
    _install_distutils_shim()
    if "bert4keras.layers" in sys.modules and "bert4keras.backend" in sys.modules:
        if sys.modules["bert4keras.backend"].recompute_grad is not recompute_grad and (
            sys.modules["bert4keras.backend"].do_recompute
        ):
            raise RuntimeError(
                "bert4keras.layers was imported before gau_alpha with RECOMPUTE=1; "
                "import gau_alpha first so recomputation gets exact gradients."
            )
    import bert4keras.backend as backend

    _patch_backend(backend)
    import bert4keras.layers as layers
    import bert4keras.models as models

    layers.attention_normalize = backend.attention_normalize
    optimizers = _import_optimizers_with_legacy_base()
    _fix_adafactor_learning_rate(optimizers)
    _patch_transformer(models)
    _patch_tied_embedding(layers)
