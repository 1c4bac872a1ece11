"""What every format reads into and writes from: a checkpoint bundle, and the release files.

A :class:`CheckpointBundle` is format-neutral: the bert4keras config (the values of
``bert_config.json``), every tensor keyed by its TF1 name (the release's backbone names, see
:mod:`gau_alpha.spec`, plus ``head/...`` tensors, see :mod:`gau_alpha.convert.names`), and the
bytes of ``vocab.txt``.

The ``tf1`` and ``keras`` formats keep ``bert_config.json`` and ``vocab.txt`` beside their
weights (:func:`read_model_files`, :func:`write_model_files`); the ``torch`` format keeps
``vocab.txt`` (:func:`read_vocab`, :func:`write_vocab`) and its own ``config.json``
(:func:`read_json`). File names and checks are those of :mod:`gau_alpha.model_dir`; every
failure is a :class:`~gau_alpha.errors.ConversionError` naming the file.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Tuple

import numpy as np

from gau_alpha.atomic import PathLike, write_json
from gau_alpha.errors import ConfigError, ConversionError, ModelDirError
from gau_alpha.model_dir import CONFIG_FILE, VOCAB_FILE, read_config, read_vocab_lines
from gau_alpha.spec import ModelDims

__all__ = [
    "ConversionError",
    "ConversionRunError",
    "Dims",
    "dims_from_config",
    "CheckpointBundle",
    "read_json",
    "read_vocab",
    "write_vocab",
    "read_model_files",
    "write_model_files",
]

#: The converter's model sizes are the spec's (the old name, kept for imports).
Dims = ModelDims


class ConversionRunError(ConversionError):
    """The conversion itself failed: writing the output, reading it back, or verifying it
    against the source (the source was fine). The command line exits with 1, not 2."""

    exit_code = 1


def dims_from_config(config: Mapping[str, Any], source: str) -> ModelDims:
    """The model sizes of a bert4keras GAU-alpha config (:meth:`ModelDims.from_config`).

    Raises:
        ConversionError: naming ``source`` and each missing or invalid size, or an
            ``embedding_size`` different from ``hidden_size`` (the PyTorch port has no
            embedding mapping, so such a model cannot be converted).
    """
    try:
        dims = ModelDims.from_config(config, source)
    except ConfigError as error:
        raise ConversionError("model config %s is not a GAU-alpha config: %s" % (source, error)) from None
    if dims.embedding_width != dims.hidden_size:
        raise ConversionError(
            "model config %s: embedding_size %r differs from hidden_size %r: factorised embeddings are not "
            "supported by the converter" % (source, dims.embedding_size, dims.hidden_size)
        )
    return dims


@dataclass
class CheckpointBundle:
    """A GAU-alpha checkpoint in memory, whatever format it came from.

    Attributes:
        config: the bert4keras config (``bert_config.json`` values).
        tensors: TF1 name -> array (backbone + ``head/...``), dtypes as stored.
        vocab: the bytes of ``vocab.txt``, copied verbatim.
        format: the format it was read from (``tf1``, ``keras``, ``torch``) or ``memory``.
        path: where it was read from.
        notes: things worth telling the user (ignored files, port config differences).
    """

    config: Dict[str, Any]
    tensors: Dict[str, np.ndarray]
    vocab: bytes
    format: str = "memory"
    path: str = ""
    notes: List[str] = field(default_factory=list)

    @property
    def dims(self) -> ModelDims:
        """The model sizes of :attr:`config` (see :func:`dims_from_config`)."""
        return dims_from_config(self.config, self.path or "(in memory)")

    @property
    def num_parameters(self) -> int:
        """Number of values in all tensors."""
        return int(sum(int(np.asarray(v).size) for v in self.tensors.values()))

    @property
    def num_bytes(self) -> int:
        """Bytes of all tensors."""
        return int(sum(int(np.asarray(v).nbytes) for v in self.tensors.values()))

    def head_names(self) -> List[str]:
        """The TF1 names of the head tensors, sorted."""
        from gau_alpha.convert.names import TF1_HEAD_PREFIX

        return sorted(n for n in self.tensors if n.startswith(TF1_HEAD_PREFIX))


# ------------------------------------------------------------------ shared file helpers
def read_json(path: PathLike, what: str = "config") -> Dict[str, Any]:
    """A JSON object from ``path`` (the torch format's ``config.json``).

    Raises:
        ConversionError: the file is missing, not JSON, or not an object.
    """
    path = Path(path)
    if not path.is_file():
        raise ConversionError("%s file %s does not exist" % (what, path))
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConversionError("%s file %s is not valid JSON: %s" % (what, path, error)) from error
    if not isinstance(value, dict):
        raise ConversionError("%s file %s must hold a JSON object, got %s" % (what, path, type(value).__name__))
    return value


def read_vocab(path: PathLike, dims: ModelDims) -> bytes:
    """The bytes of ``vocab.txt``, checked to be UTF-8 with one token per line for every
    row of the token embeddings (lines counted by :func:`gau_alpha.model_dir.read_vocab_lines`).

    Raises:
        ConversionError: the file is missing, not UTF-8, or its line count differs from
            ``vocab_size``.
    """
    path = Path(path)
    try:
        data, vocab_lines = read_vocab_lines(path)
    except ModelDirError as error:
        raise ConversionError(str(error)) from None
    lines = len(vocab_lines)
    if lines != dims.vocab_size:
        raise ConversionError(
            "vocabulary file %s has %d lines but the config's vocab_size is %d" % (path, lines, dims.vocab_size)
        )
    return data


def write_vocab(directory: PathLike, vocab: bytes) -> Path:
    """Write the vocab bytes verbatim as ``directory/vocab.txt``."""
    path = Path(directory) / VOCAB_FILE
    path.write_bytes(vocab)
    return path


def read_model_files(directory: PathLike) -> Tuple[Dict[str, Any], ModelDims, bytes]:
    """``bert_config.json`` and ``vocab.txt`` of a checkpoint directory, checked.

    Returns:
        ``(config, dims, vocab bytes)``.

    Raises:
        ConversionError: a file is missing or invalid (:func:`gau_alpha.model_dir.read_config`,
            :func:`dims_from_config`, :func:`read_vocab`).
    """
    config_path = Path(directory) / CONFIG_FILE
    try:
        config = read_config(config_path)
    except (ModelDirError, ConfigError) as error:
        raise ConversionError(str(error)) from None
    dims = dims_from_config(config, str(config_path))
    return config, dims, read_vocab(Path(directory) / VOCAB_FILE, dims)


def write_model_files(directory: PathLike, bundle: CheckpointBundle) -> List[Path]:
    """Write the bundle's ``bert_config.json`` and ``vocab.txt`` into ``directory``."""
    return [write_json(Path(directory) / CONFIG_FILE, bundle.config), write_vocab(directory, bundle.vocab)]
