"""What every format reads into and writes from: a checkpoint bundle.

A :class:`CheckpointBundle` is format-neutral: the bert4keras config (the values of
``bert_config.json``), every tensor keyed by its TF1 name (backbone names of the release plus
``head/...`` tensors, see :mod:`gau_alpha.convert.names`), and the bytes of ``vocab.txt``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Union

import numpy as np

from gau_alpha.checkpoints import CheckpointError

PathLike = Union[str, os.PathLike]
CONFIG_FILE = "bert_config.json"
VOCAB_FILE = "vocab.txt"


class ConversionError(CheckpointError):
    """A checkpoint cannot be read, written or converted; the message names the file and
    every offending variable."""


@dataclass(frozen=True)
class Dims:
    """The sizes that fix the backbone's tensor names and shapes (see ``names``)."""

    vocab_size: int
    type_vocab_size: int
    hidden_size: int
    intermediate_size: int
    attention_key_size: int
    num_hidden_layers: int


_REQUIRED_SIZES = ("vocab_size", "hidden_size", "intermediate_size", "attention_key_size", "num_hidden_layers")


def dims_from_config(config: Mapping[str, Any], source: str) -> Dims:
    """The model sizes of a bert4keras GAU-alpha config.

    ``type_vocab_size`` defaults to 2 as in bert4keras; the others are required.

    Raises:
        ConversionError: naming ``source`` and each missing or invalid field, or an
            ``embedding_size`` different from ``hidden_size`` (the PyTorch port has no
            embedding mapping, so such a model cannot be converted).
    """
    problems = []
    values: Dict[str, int] = {}
    for key in _REQUIRED_SIZES + ("type_vocab_size",):
        value = config.get(key, 2 if key == "type_vocab_size" else None)
        if value is None:
            problems.append("missing field %r" % key)
        elif isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            problems.append("field %r must be a positive integer, got %r" % (key, value))
        else:
            values[key] = value
    embedding_size = config.get("embedding_size")
    if embedding_size is not None and embedding_size != config.get("hidden_size"):
        problems.append(
            "embedding_size %r differs from hidden_size %r: factorised embeddings are not "
            "supported by the converter" % (embedding_size, config.get("hidden_size"))
        )
    if problems:
        raise ConversionError("model config %s is not a GAU-alpha config:\n  - %s" % (source, "\n  - ".join(problems)))
    return Dims(**values)


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
    def dims(self) -> Dims:
        return dims_from_config(self.config, self.path or "(in memory)")

    @property
    def num_parameters(self) -> int:
        return int(sum(int(np.asarray(v).size) for v in self.tensors.values()))

    @property
    def num_bytes(self) -> int:
        return int(sum(int(np.asarray(v).nbytes) for v in self.tensors.values()))

    def head_names(self) -> List[str]:
        from gau_alpha.convert.names import TF1_HEAD_PREFIX

        return sorted(n for n in self.tensors if n.startswith(TF1_HEAD_PREFIX))


# ------------------------------------------------------------------ shared file helpers
def read_json(path: PathLike, what: str = "config") -> Dict[str, Any]:
    """A JSON object from ``path``.

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


def write_json(path: PathLike, value: Mapping[str, Any]) -> Path:
    path = Path(path)
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read_vocab(path: PathLike, dims: Dims) -> bytes:
    """The bytes of ``vocab.txt``, checked to be UTF-8 with one token per line for every
    row of the token embeddings.

    Raises:
        ConversionError: the file is missing, not UTF-8, or its line count differs from
            ``vocab_size``.
    """
    path = Path(path)
    if not path.is_file():
        raise ConversionError("vocabulary file %s does not exist" % path)
    data = path.read_bytes()
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise ConversionError("vocabulary file %s is not UTF-8: %s" % (path, error)) from error
    if len(lines) != dims.vocab_size:
        raise ConversionError(
            "vocabulary file %s has %d lines but the config's vocab_size is %d"
            % (path, len(lines), dims.vocab_size)
        )
    return data


def write_vocab(directory: PathLike, vocab: bytes) -> Path:
    path = Path(directory) / VOCAB_FILE
    path.write_bytes(vocab)
    return path
