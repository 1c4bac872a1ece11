"""TF1 checkpoints: read, write, and load into a bert4keras ``Transformer`` strictly.

A TF1 checkpoint is a prefix such as ``dir/bert_model.ckpt`` with files
``bert_model.ckpt.index`` and ``bert_model.ckpt.data-00000-of-00001``. In memory a
checkpoint is a ``Dict[str, np.ndarray]`` keyed by TF1 variable names (for GAU-alpha, the
release's names, see :mod:`gau_alpha.spec`).

Checks, in the order a model build meets them:

- :func:`checkpoint_prefix` resolves a directory without following a ``checkpoint``
  bookkeeping file that points outside it (:func:`bookkeeping_prefix`);
- :func:`check_checkpoint_fits` compares a GAU-alpha checkpoint's index (names and shapes,
  no data read) with the backbone its config describes, before any Keras layer is built,
  naming the layer counts when they differ;
- strict loading (:func:`load_weights_strict`) reports, by name and with both shapes, every
  variable the model needs that is missing, every variable whose shape differs, and every
  checkpoint variable that nothing uses (an error unless ``allow_unused=True``), and refuses
  loaded values that are NaN or infinite (:func:`check_finite`; a warning with
  ``allow_nonfinite=True``).
"""
from __future__ import annotations

import codecs
import logging
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np

from gau_alpha import spec
from gau_alpha.atomic import staging_directory, write_text_atomic
from gau_alpha.errors import CheckpointError  # re-exported: gau_alpha.checkpoints.CheckpointError

CheckpointLike = Union[str, os.PathLike, Mapping[str, np.ndarray]]
DEFAULT_PREFIX_NAME = "bert_model.ckpt"
#: tf.train.Saver's bookkeeping file beside its checkpoints
BOOKKEEPING_FILE = "checkpoint"
_MODEL_CHECKPOINT_PATH = re.compile(r'^\s*model_checkpoint_path\s*:\s*"((?:[^"\\]|\\.)*)"\s*$', re.MULTILINE)
logger = logging.getLogger(__name__)


def _unescape(text: str) -> str:
    """A protobuf text-format string literal's content -> the string."""
    if "\\" not in text:
        return text
    return codecs.escape_decode(text.encode("utf-8"))[0].decode("utf-8")


def bookkeeping_prefix(directory: Union[str, os.PathLike]) -> Optional[str]:
    """The prefix the ``checkpoint`` bookkeeping file of ``directory`` names, or None when
    there is no such file.

    Only a checkpoint inside ``directory`` is followed: ``tf.train.latest_checkpoint`` would
    load whatever an absolute path or a ``../`` path names, a checkpoint the user never chose.

    Raises:
        CheckpointError: naming the ``checkpoint`` file and the path it points to, when that
            path is outside ``directory``, when its index does not exist, or when the file
            cannot be read.
    """
    directory = str(directory)
    path = os.path.join(directory, BOOKKEEPING_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as error:
        raise CheckpointError("cannot read the checkpoint bookkeeping file %s: %s" % (path, error)) from None
    match = _MODEL_CHECKPOINT_PATH.search(text)
    if not match:
        raise CheckpointError("checkpoint bookkeeping file %s names no model_checkpoint_path" % path)
    target = _unescape(match.group(1))
    root = os.path.realpath(directory)
    resolved = os.path.realpath(os.path.join(directory, target))
    if os.path.commonpath([root, resolved]) != root:
        raise CheckpointError(
            "checkpoint bookkeeping file %s points to %s, outside %s; refusing to load a checkpoint "
            "from elsewhere (pass that checkpoint's prefix explicitly to load it)" % (path, target, directory)
        )
    prefix = os.path.join(directory, os.path.relpath(resolved, root))
    if not os.path.exists(prefix + ".index"):
        raise CheckpointError(
            "checkpoint bookkeeping file %s points to %s, but %s.index does not exist" % (path, target, prefix)
        )
    return prefix


def checkpoint_prefix(path: Union[str, os.PathLike]) -> str:
    """Resolve ``path`` (a checkpoint prefix, one of its files, or a directory) to a prefix.

    In a directory: ``bert_model.ckpt`` (the release's name) if present; else the checkpoint
    the ``checkpoint`` bookkeeping file names, if it lies inside the directory
    (:func:`bookkeeping_prefix`); else the only ``*.index`` there. Pure Python.

    Raises:
        CheckpointError: nothing that looks like a TF1 checkpoint is there, or the
            bookkeeping file points outside the directory.
    """
    path = str(path)
    if os.path.isdir(path):
        candidate = os.path.join(path, DEFAULT_PREFIX_NAME)
        if os.path.exists(candidate + ".index"):
            return candidate
        named = bookkeeping_prefix(path)
        if named is not None:
            return named
        indexes = sorted(p for p in os.listdir(path) if p.endswith(".index"))
        if len(indexes) == 1:
            return os.path.join(path, indexes[0][: -len(".index")])
        if indexes:
            raise CheckpointError(
                "directory %s holds %d TF1 checkpoints (%s) and no checkpoint bookkeeping file; "
                "give the prefix of one" % (path, len(indexes), ", ".join(indexes))
            )
        raise CheckpointError("no TF1 checkpoint (*.index) found in directory %s" % path)
    for suffix in (".index", ".meta"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
    if ".data-" in os.path.basename(path):
        path = path[: path.rindex(".data-")]
    if not os.path.exists(path + ".index"):
        raise CheckpointError("checkpoint index file %s.index does not exist" % path)
    return path


def list_tf1_checkpoint(path: Union[str, os.PathLike]) -> Dict[str, Tuple[int, ...]]:
    """Variable name -> shape, read from the index file only."""
    import tensorflow as tf

    prefix = checkpoint_prefix(path)
    try:
        reader = tf.train.load_checkpoint(prefix)
        shapes = reader.get_variable_to_shape_map()
    except Exception as error:  # tf raises several types for damaged files
        raise CheckpointError("cannot read checkpoint index %s.index: %s" % (prefix, error)) from error
    return {name: tuple(shape) for name, shape in shapes.items()}


def read_tf1_checkpoint(path: Union[str, os.PathLike]) -> Dict[str, np.ndarray]:
    """Every variable of a TF1 checkpoint as numpy arrays.

    Raises:
        CheckpointError: naming the data file and the variable, when the data is truncated
            or unreadable.
    """
    import tensorflow as tf

    prefix = checkpoint_prefix(path)
    try:
        reader = tf.train.load_checkpoint(prefix)
        names = sorted(reader.get_variable_to_shape_map())
    except Exception as error:
        raise CheckpointError("cannot read checkpoint index %s.index: %s" % (prefix, error)) from error
    tensors = {}
    for name in names:
        try:
            tensors[name] = np.asarray(reader.get_tensor(name))
        except Exception as error:
            data_files = sorted(
                str(p) for p in Path(prefix).parent.glob(Path(prefix).name + ".data-*")
            )
            raise CheckpointError(
                "cannot read variable %r from checkpoint data file(s) %s (truncated or damaged?): %s"
                % (name, ", ".join(data_files) or prefix + ".data-*", str(error).splitlines()[0])
            ) from error
    return tensors


def write_tf1_checkpoint(
    prefix: Union[str, os.PathLike], tensors: Mapping[str, np.ndarray]
) -> List[str]:
    """Write ``tensors`` as a TF1 checkpoint at ``prefix`` (eager ``SaveV2``, no Session).

    The files are written under a temporary directory beside them
    (``.<name>.pid<PID>.<random>.partial``, see :mod:`gau_alpha.atomic`) and renamed into
    place, and a ``checkpoint`` bookkeeping file is written so that
    ``tf.train.latest_checkpoint(dir)`` finds it. Returns the paths written.
    """
    import tensorflow as tf

    if not tensors:
        raise CheckpointError("refusing to write an empty checkpoint to %s" % prefix)
    prefix = str(prefix)
    directory = os.path.dirname(os.path.abspath(prefix))
    os.makedirs(directory, exist_ok=True)
    names = sorted(tensors)
    values = []
    for name in names:
        value = np.asarray(tensors[name])
        if value.dtype == object:
            raise CheckpointError("variable %r is not a numeric array" % name)
        values.append(tf.constant(value))
    with staging_directory(prefix) as staging:
        tmp = os.path.join(staging, "ckpt")
        tf.raw_ops.SaveV2(
            prefix=tmp, tensor_names=names, shape_and_slices=[""] * len(names), tensors=values
        )
        written = []
        for produced in sorted(os.listdir(staging)):
            target = prefix + produced[len("ckpt"):]
            os.replace(os.path.join(staging, produced), target)
            written.append(target)
    bookkeeping = os.path.join(directory, BOOKKEEPING_FILE)
    relative = os.path.relpath(prefix, directory)
    write_text_atomic(bookkeeping, 'model_checkpoint_path: "%s"\nall_model_checkpoint_paths: "%s"\n' % (relative, relative))
    return written + [bookkeeping]


def checkpoint_shapes(checkpoint: CheckpointLike) -> Dict[str, Tuple[int, ...]]:
    """Variable name -> shape of a checkpoint (for a TF1 checkpoint, from its index only)."""
    if isinstance(checkpoint, Mapping):
        return {name: tuple(np.shape(value)) for name, value in checkpoint.items()}
    return list_tf1_checkpoint(checkpoint)


#: differences listed by :func:`check_checkpoint_fits` (the counts say the rest): few
#: enough that the command line's one error line shows them
MAX_LISTED = 3


def check_checkpoint_fits(
    shapes: Mapping[str, Tuple[int, ...]],
    dims: spec.ModelDims,
    checkpoint_source: str,
    config_source: str,
    allow_unused: bool = False,
) -> None:
    """Compare a GAU-alpha checkpoint's variables with the backbone the config describes
    (:func:`gau_alpha.spec.tensor_shapes`), before any model is built.

    Args:
        shapes: the checkpoint's variable name -> shape (:func:`checkpoint_shapes`).
        dims: the config's sizes.
        checkpoint_source, config_source: how to name the checkpoint and the config.
        allow_unused: variables the backbone does not use are fine (``allow_unused_weights``).

    Raises:
        CheckpointError: a headline with the layer counts when they differ (``checkpoint X
            has 4 GAU layers, config Y says 2``) and the number of missing, mis-shaped and
            unused variables, then the first :data:`MAX_LISTED` of them, one per line.
    """
    expected = spec.tensor_shapes(dims)
    missing = ["missing variable %s (shape %s)" % (name, shape) for name, shape in expected.items() if name not in shapes]
    wrong = [
        "shape mismatch for variable %s: checkpoint %s, model %s" % (name, tuple(shapes[name]), shape)
        for name, shape in expected.items()
        if name in shapes and tuple(shapes[name]) != tuple(shape)
    ]
    unused = [] if allow_unused else [
        "unused checkpoint variable %s, shape %s" % (name, tuple(shapes[name]))
        for name in sorted(set(shapes) - set(expected))
    ]
    problems = missing + wrong + unused
    if not problems:
        return
    depth = spec.layer_count(shapes)
    if depth != dims.num_hidden_layers:
        headline = "checkpoint %s has %d GAU layers, config %s says %d (num_hidden_layers)" % (
            checkpoint_source, depth, config_source, dims.num_hidden_layers)
    else:
        headline = "checkpoint %s does not fit config %s" % (checkpoint_source, config_source)
    counts = ", ".join("%d %s" % (len(group), what) for group, what in
                       ((missing, "missing"), (wrong, "of the wrong shape"), (unused, "unused")) if group)
    listed = problems[:MAX_LISTED]
    if len(problems) > MAX_LISTED:
        listed.append("... and %d more" % (len(problems) - MAX_LISTED))
    raise CheckpointError("%s; %s variable(s):\n  - %s" % (headline, counts, "\n  - ".join(listed)))


def nonfinite_counts(tensors: Mapping[str, np.ndarray]) -> Dict[str, int]:
    """Name -> number of NaN or infinite values, for every floating-point tensor that has any
    (sorted by name; integer tensors cannot hold them)."""
    counts = {}
    for name in sorted(tensors):
        value = np.asarray(tensors[name])
        if value.dtype.kind not in "fc":
            continue
        bad = int(value.size - np.count_nonzero(np.isfinite(value)))
        if bad:
            counts[name] = bad
    return counts


def describe_nonfinite(tensors: Mapping[str, np.ndarray], counts: Mapping[str, int],
                       limit: Optional[int] = None) -> str:
    """``name (bad of total values), ...`` for :func:`nonfinite_counts`' ``counts`` (the first
    ``limit`` of them, then ``and N more``)."""
    items = list(counts.items())
    shown = ["%s (%d of %d values)" % (name, bad, np.size(tensors[name])) for name, bad in items[:limit]]
    if limit is not None and len(items) > limit:
        shown.append("and %d more" % (len(items) - limit))
    return ", ".join(shown)


def check_finite(tensors: Mapping[str, np.ndarray], source: str, allow_nonfinite: bool = False) -> Dict[str, int]:
    """Refuse (or, with ``allow_nonfinite``, log a warning about) tensors holding NaN or
    infinite values.

    Returns:
        :func:`nonfinite_counts` of ``tensors``.

    Raises:
        CheckpointError: naming ``source``, the tensors and their counts, unless ``allow_nonfinite``.
    """
    counts = nonfinite_counts(tensors)
    if counts:
        message = "checkpoint %s holds NaN or infinite values in %d tensor(s): %s" % (
            source, len(counts), describe_nonfinite(tensors, counts, limit=5))
        if not allow_nonfinite:
            raise CheckpointError(message + "; pass allow_nonfinite=True (--allow-nonfinite) to load them anyway")
        logger.warning("%s; loading them anyway (allow_nonfinite)", message)
    return counts


def _as_dict(checkpoint: CheckpointLike) -> Dict[str, np.ndarray]:
    if isinstance(checkpoint, Mapping):
        return {k: np.asarray(v) for k, v in checkpoint.items()}
    return read_tf1_checkpoint(checkpoint)


def _weights_with_names(transformer: Any, mapping: Optional[Dict[str, List[str]]] = None):
    """(layer name, keras variable, checkpoint name) for every mapped model weight."""
    mapping = mapping or transformer.variable_mapping()
    mapping = {transformer.prefixed(k): v for k, v in mapping.items()}
    triples, problems = [], []
    for layer_name, names in mapping.items():
        if layer_name not in transformer.layers:
            continue
        weights = transformer.layers[layer_name].trainable_weights
        if len(weights) != len(names):
            problems.append(
                "layer %s has %d weights (%s) but the variable mapping names %d (%s)"
                % (layer_name, len(weights), ", ".join(w.name for w in weights), len(names), ", ".join(names))
            )
        for weight, name in zip(weights, names):
            triples.append((layer_name, weight, name))
    return triples, problems


def load_weights_strict(
    transformer: Any,
    checkpoint: CheckpointLike,
    mapping: Optional[Dict[str, List[str]]] = None,
    allow_unused: bool = False,
    allow_nonfinite: bool = False,
) -> Dict[str, List[str]]:
    """Load ``checkpoint`` into a built bert4keras ``transformer``; no silent skips.

    Args:
        transformer: a built ``bert4keras.models.Transformer`` (``return_keras_model=False``).
        checkpoint: a TF1 checkpoint path/prefix/directory, or a name -> array dict.
        mapping: layer name -> checkpoint names; defaults to ``transformer.variable_mapping()``.
        allow_unused: if True, checkpoint variables that nothing uses are only reported in
            the returned dict instead of raising.
        allow_nonfinite: if True, loaded variables holding NaN or infinite values are only
            logged as a warning instead of raising (:func:`check_finite`).

    Returns:
        ``{"loaded": [...], "unused": [...]}`` checkpoint names.

    Raises:
        CheckpointError: listing every missing variable, shape mismatch (model shape and
            checkpoint shape) and, unless ``allow_unused``, every unused variable; or
            naming every loaded variable with NaN or infinite values (unless ``allow_nonfinite``).
    """
    import tensorflow as tf

    tensors = _as_dict(checkpoint)
    triples, problems = _weights_with_names(transformer, mapping)
    pairs, used = [], set()
    for layer_name, weight, name in triples:
        if name not in tensors:
            problems.append(
                "missing variable %s (for %s of layer %s, shape %s)"
                % (name, weight.name, layer_name, tuple(weight.shape))
            )
            continue
        used.add(name)
        # the model's own load_variable applies keep_tokens / compound_tokens, transposes
        value = np.asarray(transformer.load_variable(tensors, name))
        if tuple(value.shape) != tuple(weight.shape):
            problems.append(
                "shape mismatch for variable %s: checkpoint %s, model %s (%s of layer %s)"
                % (name, tuple(value.shape), tuple(weight.shape), weight.name, layer_name)
            )
            continue
        pairs.append((weight, value))
    unused = sorted(set(tensors) - used)
    if unused and not allow_unused:
        problems.extend(
            "unused checkpoint variable %s, shape %s (pass allow_unused=True to ignore)"
            % (name, tuple(tensors[name].shape))
            for name in unused
        )
    where = "" if isinstance(checkpoint, Mapping) else " %s" % checkpoint
    if problems:
        raise CheckpointError(
            "checkpoint%s does not fit the model:\n  - %s" % (where, "\n  - ".join(problems))
        )
    check_finite({name: tensors[name] for name in used}, where.strip() or "(given as arrays)", allow_nonfinite)
    tf.keras.backend.batch_set_value(pairs)
    return {"loaded": sorted(used), "unused": unused}


def collect_tf1_tensors(
    transformer: Any, mapping: Optional[Dict[str, List[str]]] = None
) -> Dict[str, np.ndarray]:
    """The model's weights keyed by checkpoint names (the inverse of loading)."""
    import tensorflow as tf

    triples, problems = _weights_with_names(transformer, mapping)
    if problems:
        raise CheckpointError("cannot map the model's weights:\n  - " + "\n  - ".join(problems))
    values = tf.keras.backend.batch_get_value([weight for _, weight, _ in triples])
    tensors = {}
    for (_, _, name), value in zip(triples, values):
        with tf.Graph().as_default():
            _, stored = transformer.create_variable(name, value)
        tensors[name] = np.asarray(stored)
    return tensors
