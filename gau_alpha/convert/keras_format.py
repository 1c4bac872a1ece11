"""The ``keras`` format: Keras weights of the gau_alpha model.

Files:

- ``model.weights.h5``: ``model.save_weights`` of the Keras model that
  ``gau_alpha.build_transformer_model(config_path='bert_config.json')`` builds (tf-keras's
  ``.weights.h5`` layout). Load it with
  ``model = build_transformer_model('bert_config.json'); model.load_weights('model.weights.h5')``.
- ``bert_config.json``, ``vocab.txt``.
- ``extra_tensors.safetensors`` (only when there are head tensors): the ``head/...`` tensors,
  keyed by their TF1 names, since the backbone model has no layer for them.

Reading builds the model from the config, checks that the file holds exactly as many arrays
as the model has weights (Keras itself raises on a missing array or a shape mismatch), loads
them, and collects the weights under their TF1 names (``collect_tf1_tensors``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import numpy as np

from gau_alpha.atomic import PathLike
from gau_alpha.convert.bundle import CheckpointBundle, ConversionError, read_model_files, write_model_files
from gau_alpha.convert.names import check_tf1_tensors, is_head_tf1_name
from gau_alpha.model_dir import CONFIG_FILE, VOCAB_FILE

NAME = "keras"
DESCRIPTION = "Keras weights (model.weights.h5) + bert_config.json + vocab.txt [+ extra_tensors.safetensors]"
WEIGHTS_FILE = "model.weights.h5"
EXTRA_FILE = "extra_tensors.safetensors"
EXTRA_METADATA = {"format": "gau_alpha.extra_tensors", "names": "tf1"}


def detect(directory: PathLike) -> List[str]:
    """The files of ``directory`` that mark this format."""
    return [WEIGHTS_FILE] if (Path(directory) / WEIGHTS_FILE).is_file() else []


def is_own_file(name: str) -> bool:
    """Whether a file called ``name`` belongs to a directory of this format."""
    return name in (WEIGHTS_FILE, EXTRA_FILE, CONFIG_FILE, VOCAB_FILE)


def _build(config_path: Path, checkpoint=None):
    from gau_alpha.models import build_transformer_model

    return build_transformer_model(str(config_path), checkpoint, return_keras_model=False)


def _h5_arrays(path: Path) -> Dict[str, tuple]:
    """Dataset path -> shape of every array in an HDF5 file."""
    import h5py

    arrays: Dict[str, tuple] = {}
    try:
        with h5py.File(path, "r") as handle:
            handle.visititems(
                lambda name, obj: arrays.__setitem__(name, tuple(obj.shape)) if isinstance(obj, h5py.Dataset) else None
            )
    except OSError as error:
        raise ConversionError(
            "cannot read Keras weights file %s (truncated or not HDF5?): %s" % (path, error)
        ) from error
    return arrays


def read(path: PathLike) -> CheckpointBundle:
    """Read a ``keras`` directory.

    Raises:
        ConversionError: naming the file, for a missing/damaged weights file, a weights file
            that does not fit the model built from ``bert_config.json`` (count or shapes), a
            bad config/vocab, or extra tensors that are not ``head/...`` tensors.
    """
    from gau_alpha.checkpoints import collect_tf1_tensors

    directory = Path(path)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise ConversionError("Keras weights file %s does not exist" % weights)
    config, dims, vocab = read_model_files(directory)
    arrays = _h5_arrays(weights)
    transformer = _build(directory / CONFIG_FILE)
    model = transformer.model
    if len(arrays) != len(model.weights):
        raise ConversionError(
            "Keras weights file %s holds %d arrays but the model built from %s has %d weights "
            "(%s); was it saved from another configuration?"
            % (weights, len(arrays), CONFIG_FILE, len(model.weights), ", ".join(w.name for w in model.weights))
        )
    try:
        model.load_weights(str(weights))
    except Exception as error:  # Keras raises ValueError for count/shape mismatches
        raise ConversionError(
            "Keras weights file %s does not fit the model built from %s: %s" % (weights, CONFIG_FILE, error)
        ) from error
    tensors = collect_tf1_tensors(transformer)
    del transformer, model
    extra_path = directory / EXTRA_FILE
    if extra_path.exists():
        extra = _read_extra(extra_path)
        clash = sorted(set(extra) & set(tensors))
        if clash:
            raise ConversionError("%s repeats backbone variables: %s" % (extra_path, ", ".join(clash)))
        tensors.update(extra)
    check_tf1_tensors(tensors, dims, "Keras checkpoint %s" % directory)
    return CheckpointBundle(config=config, tensors=tensors, vocab=vocab, format=NAME, path=str(directory))


def _read_extra(path: Path) -> Dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    try:
        extra = load_file(str(path))
    except Exception as error:
        raise ConversionError(
            "cannot read extra tensors file %s (truncated or damaged?): %s" % (path, error)
        ) from error
    bad = sorted(n for n in extra if not is_head_tf1_name(n))
    if bad:
        raise ConversionError(
            "extra tensors file %s may only hold head tensors (head/<name>), found: %s" % (path, ", ".join(bad))
        )
    return extra


def write(bundle: CheckpointBundle, directory: PathLike) -> List[Path]:
    """Write ``bundle`` into the existing, empty ``directory``; returns the files written.

    Raises:
        ConversionError: a backbone tensor is not float32 (the Keras model's dtype), or the
            tensors do not fit the model.
    """
    directory = Path(directory)
    dims = bundle.dims
    check_tf1_tensors(bundle.tensors, dims, "the checkpoint to write")
    backbone = {n: v for n, v in bundle.tensors.items() if not is_head_tf1_name(n)}
    heads = {n: np.ascontiguousarray(v) for n, v in bundle.tensors.items() if is_head_tf1_name(n)}
    not_float32 = sorted(
        "%s (%s)" % (n, np.asarray(v).dtype) for n, v in backbone.items() if np.asarray(v).dtype != np.float32
    )
    if not_float32:
        raise ConversionError(
            "the keras format stores float32 weights only (the model's dtype); these are not: %s"
            % ", ".join(not_float32)
        )
    written = write_model_files(directory, bundle)
    transformer = _build(directory / CONFIG_FILE, backbone)
    weights = directory / WEIGHTS_FILE
    transformer.model.save_weights(str(weights))
    written.append(weights)
    del transformer
    if heads:
        from safetensors.numpy import save_file

        save_file(heads, str(directory / EXTRA_FILE), metadata=EXTRA_METADATA)
        written.append(directory / EXTRA_FILE)
    return written
