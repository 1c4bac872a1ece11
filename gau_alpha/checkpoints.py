"""TF1 checkpoints: read, write, and load into a bert4keras ``Transformer`` strictly.

A TF1 checkpoint is a prefix such as ``dir/bert_model.ckpt`` with files
``bert_model.ckpt.index`` and ``bert_model.ckpt.data-00000-of-00001``. In memory a
checkpoint is a ``Dict[str, np.ndarray]`` keyed by the TF1 variable names of the release
(``bert/embeddings/word_embeddings``, ``GAU_alpha/encoder/layer_0/gau/i_dense/kernel``, ...).

Strict loading (:func:`load_weights_strict`) reports, by name and with both shapes, every
variable the model needs that is missing, every variable whose shape differs, and every
checkpoint variable that nothing uses (an error unless ``allow_unused=True``).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np

CheckpointLike = Union[str, os.PathLike, Mapping[str, np.ndarray]]
DEFAULT_PREFIX_NAME = "bert_model.ckpt"


from gau_alpha.errors import CheckpointError  # noqa: E402  (re-exported: gau_alpha.checkpoints.CheckpointError)


def checkpoint_prefix(path: Union[str, os.PathLike]) -> str:
    """Resolve ``path`` (a checkpoint prefix, one of its files, or a directory) to a prefix.

    Raises:
        CheckpointError: nothing that looks like a TF1 checkpoint is there.
    """
    path = str(path)
    if os.path.isdir(path):
        candidate = os.path.join(path, DEFAULT_PREFIX_NAME)
        if os.path.exists(candidate + ".index"):
            return candidate
        import tensorflow as tf

        latest = tf.train.latest_checkpoint(path)
        if latest:
            return latest
        indexes = sorted(p for p in os.listdir(path) if p.endswith(".index"))
        if len(indexes) == 1:
            return os.path.join(path, indexes[0][: -len(".index")])
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

    The files are written under a temporary prefix in the same directory and renamed into
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
    tmp_prefix = tempfile.mkdtemp(prefix=".ckpt-", dir=directory)
    try:
        tmp = os.path.join(tmp_prefix, "ckpt")
        tf.raw_ops.SaveV2(
            prefix=tmp, tensor_names=names, shape_and_slices=[""] * len(names), tensors=values
        )
        written = []
        for produced in sorted(os.listdir(tmp_prefix)):
            target = prefix + produced[len("ckpt"):]
            os.replace(os.path.join(tmp_prefix, produced), target)
            written.append(target)
    finally:
        for leftover in os.listdir(tmp_prefix):
            os.remove(os.path.join(tmp_prefix, leftover))
        os.rmdir(tmp_prefix)
    bookkeeping = os.path.join(directory, "checkpoint")
    relative = os.path.relpath(prefix, directory)
    with open(bookkeeping + ".tmp", "w", encoding="utf-8") as handle:
        handle.write('model_checkpoint_path: "%s"\nall_model_checkpoint_paths: "%s"\n' % (relative, relative))
    os.replace(bookkeeping + ".tmp", bookkeeping)
    return written + [bookkeeping]


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
) -> Dict[str, List[str]]:
    """Load ``checkpoint`` into a built bert4keras ``transformer``; no silent skips.

    Args:
        transformer: a built ``bert4keras.models.Transformer`` (``return_keras_model=False``).
        checkpoint: a TF1 checkpoint path/prefix/directory, or a name -> array dict.
        mapping: layer name -> checkpoint names; defaults to ``transformer.variable_mapping()``.
        allow_unused: if True, checkpoint variables that nothing uses are only reported in
            the returned dict instead of raising.

    Returns:
        ``{"loaded": [...], "unused": [...]}`` checkpoint names.

    Raises:
        CheckpointError: listing every missing variable, shape mismatch (model shape and
            checkpoint shape) and, unless ``allow_unused``, every unused variable.
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
    if problems:
        where = "" if isinstance(checkpoint, Mapping) else " %s" % checkpoint
        raise CheckpointError(
            "checkpoint%s does not fit the model:\n  - %s" % (where, "\n  - ".join(problems))
        )
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
