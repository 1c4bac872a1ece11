"""A model directory in the release layout: its files, its config, and their agreement.

A model directory (like the release ``chinese_GAU-alpha-char_L-24_H-768``) holds::

    bert_config.json                        the bert4keras config
    vocab.txt                               one token per line, vocab_size lines
    bert_model.ckpt.index                   TF1 checkpoint with the release's names
    bert_model.ckpt.data-00000-of-00001     (see gau_alpha.spec)

This module is the one owner of that layout: the CLUE runner, the converter, fill-mask and
``verify`` open directories through :func:`open_model_dir`, which checks every file, the
config's keys and types, and that the vocab has ``vocab_size`` lines, and reports the first
problem as a :class:`~gau_alpha.errors.ModelDirError` or
:class:`~gau_alpha.errors.ConfigError` naming the file. Pure Python until a model is built.

:func:`create_random_model_dir` writes a small randomly initialised GAU-alpha in the same
layout (with the real vocab) through the same ``save_weights_as_checkpoint`` path as the
release, so smoke runs load it exactly like real weights.
"""
from __future__ import annotations

import json
import shutil
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from gau_alpha.atomic import PathLike, replace_directory, staging_directory, write_json
from gau_alpha.errors import ConfigError, ModelDirError
from gau_alpha.resources import RELEASE_VOCAB
from gau_alpha.spec import ModelDims

__all__ = [
    "CONFIG_FILE",
    "VOCAB_FILE",
    "CHECKPOINT_PREFIX",
    "REQUIRED_FILES",
    "OPTIONAL_FILES",
    "TINY_CONFIG",
    "ModelDir",
    "open_model_dir",
    "CONFIG_KEY_RULES",
    "validate_config",
    "read_config",
    "count_vocab_lines",
    "create_random_model_dir",
    "build_encoder",
]

CONFIG_FILE = "bert_config.json"
VOCAB_FILE = "vocab.txt"
CHECKPOINT_PREFIX = "bert_model.ckpt"
REQUIRED_FILES = (CONFIG_FILE, VOCAB_FILE, CHECKPOINT_PREFIX + ".index", CHECKPOINT_PREFIX + ".data-00000-of-00001")
#: written by tf.train.Saver next to a checkpoint; nothing here needs them
OPTIONAL_FILES = (CHECKPOINT_PREFIX + ".meta", "checkpoint")

TINY_CONFIG: Dict[str, Any] = {
    "hidden_act": "swish",
    "hidden_size": 128,
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "num_attention_heads": 1,
    "attention_key_size": 32,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "type_vocab_size": 2,
    "vocab_size": 12000,
}
"""The one small GAU-alpha of the project: the smoke run's random model, the tests' and the
benchmarks' tiny model (2 layers, hidden 128, key 32, expansion 256, the release vocab)."""

def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _non_negative_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _rate(value: Any) -> bool:
    return _number(value) and 0 <= value < 1


def _activation(value: Any) -> bool:
    names = value if isinstance(value, list) else [value]
    return bool(names) and all((isinstance(name, str) and name) or callable(name) for name in names)


#: config keys (and builder options) bert4keras reads -> (what they must be, check); a key
#: that is absent or null is not checked here (the sizes GAU-alpha needs are ModelDims')
CONFIG_KEY_RULES: Mapping[str, Tuple[str, Callable[[Any], bool]]] = {
    "hidden_act": ("an activation name (or a list of them)", _activation),
    "hidden_dropout_prob": ("a number in [0, 1)", _rate),
    "attention_probs_dropout_prob": ("a number in [0, 1)", _rate),
    "dropout_rate": ("a number in [0, 1)", _rate),
    "attention_dropout_rate": ("a number in [0, 1)", _rate),
    "initializer_range": ("a number", _number),
    "vocab_size": ("a positive integer", _positive_int),
    "hidden_size": ("a positive integer", _positive_int),
    "num_hidden_layers": ("a positive integer", _positive_int),
    "num_attention_heads": ("a positive integer", _positive_int),
    "intermediate_size": ("a positive integer", _positive_int),
    "attention_key_size": ("a positive integer", _positive_int),
    "attention_head_size": ("a positive integer", _positive_int),
    "embedding_size": ("a positive integer", _positive_int),
    "max_position_embeddings": ("a positive integer", _positive_int),
    "max_position": ("a positive integer", _positive_int),
    "sequence_length": ("a positive integer", _positive_int),
    "type_vocab_size": ("a non-negative integer", _non_negative_int),
    "segment_vocab_size": ("a non-negative integer", _non_negative_int),
}


def validate_config(config: Any, source: str, *, gau_alpha_sizes: bool = True) -> Dict[str, Any]:
    """Check config values (a ``bert_config.json``'s, or a builder's overrides).

    With ``gau_alpha_sizes`` the sizes GAU-alpha needs (:class:`ModelDims`) are required;
    every key of :data:`CONFIG_KEY_RULES` that is present must have the right type and range.

    Returns:
        ``config``.

    Raises:
        ConfigError: naming ``source`` and every bad key (``<source>: 'hidden_act' must be
            an activation name ..., got 3``).
    """
    if not isinstance(config, dict):
        raise ConfigError("%s: a model config must be a JSON object, got %s" % (source, type(config).__name__))
    if gau_alpha_sizes:
        ModelDims.from_config(config, source)
    problems = [
        "%r must be %s, got %r" % (key, what, config[key])
        for key, (what, ok) in CONFIG_KEY_RULES.items()
        if config.get(key) is not None and not ok(config[key])
    ]
    if problems:
        raise ConfigError("%s: %s" % (source, "; ".join(problems)))
    return config


def read_config(path: PathLike, *, gau_alpha_sizes: bool = True) -> Dict[str, Any]:
    """Read and check a ``bert_config.json`` (:func:`validate_config`).

    With ``gau_alpha_sizes`` (the default) the sizes GAU-alpha needs (:class:`ModelDims`) are
    required; without, any JSON object with well-typed known keys passes (BERT-family
    configs for bert4keras's models).

    Raises:
        ModelDirError: the file does not exist.
        ConfigError: not JSON, not an object, or a size key missing, of the wrong type or
            not positive, or a known optional key of the wrong type (naming the file and key).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelDirError("model config %s does not exist" % path)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError("%s is not valid JSON: %s" % (path, error)) from None
    return validate_config(config, str(path), gau_alpha_sizes=gau_alpha_sizes)


def count_vocab_lines(path: PathLike) -> int:
    """Number of tokens in a ``vocab.txt`` (one per ``\\n``-terminated line).

    Raises:
        ModelDirError: missing or not UTF-8 (naming the file and line).
    """
    return len(read_vocab_lines(path)[1])


def read_vocab_lines(path: PathLike) -> Tuple[bytes, list]:
    """A ``vocab.txt``'s bytes and its lines (split at ``\\n`` only), read once.

    Raises:
        ModelDirError: missing or not UTF-8 (naming the file and line).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelDirError("vocab file %s does not exist" % path)
    data = path.read_bytes()
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the final newline ends the last line, it does not start another
    for number, line in enumerate(lines, 1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            raise ModelDirError("%s, line %d: not UTF-8 text" % (path, number)) from None
    return data, lines


@dataclass(frozen=True)
class ModelDir:
    """The files of a release-layout model directory (see the module docstring)."""

    directory: Path
    config: Path
    checkpoint: Path  # the prefix: bert_model.ckpt
    vocab: Path
    #: the config as :func:`open_model_dir` read and checked it (None: read on demand)
    values: Optional[Dict[str, Any]] = field(default=None, repr=False, compare=False)

    def load_config(self) -> Dict[str, Any]:
        """The checked ``bert_config.json`` (see :func:`read_config`), read once."""
        return dict(self.values) if self.values is not None else read_config(self.config)

    @property
    def dims(self) -> ModelDims:
        """The model sizes of the config."""
        return ModelDims.from_config(self.load_config(), str(self.config))


def open_model_dir(
    directory: PathLike, *, require_checkpoint: bool = True, allow_larger_embedding: bool = False
) -> ModelDir:
    """Check that ``directory`` is a usable model directory and return its files.

    Checks: the directory and its files exist; the config is valid (:func:`read_config`);
    ``vocab.txt`` has exactly ``vocab_size`` lines (or at most that many with
    ``allow_larger_embedding``, for an embedding padded beyond the vocab).

    Raises:
        ModelDirError: the directory or a file is missing, or the vocab does not match.
        ConfigError: the config is invalid.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelDirError("model directory %s does not exist or is not a directory" % directory)
    files = ModelDir(directory, directory / CONFIG_FILE, directory / CHECKPOINT_PREFIX, directory / VOCAB_FILE)
    needed = [files.config, files.vocab]
    if require_checkpoint:
        needed.append(Path(str(files.checkpoint) + ".index"))
    missing = [path.name for path in needed if not path.is_file()]
    if missing:
        raise ModelDirError(
            "model directory %s lacks %s (expected %s, %s and %s.*)"
            % (directory, ", ".join(missing), CONFIG_FILE, VOCAB_FILE, CHECKPOINT_PREFIX)
        )
    config = read_config(files.config)
    lines = count_vocab_lines(files.vocab)
    vocab_size = config["vocab_size"]
    if lines != vocab_size and not (allow_larger_embedding and lines < vocab_size):
        raise ModelDirError(
            "%s has %d tokens but %s says vocab_size %d%s"
            % (files.vocab, lines, files.config, vocab_size,
               "" if lines > vocab_size else " (pass --allow-larger-embedding if the embedding is padded)")
        )
    return dataclasses.replace(files, values=config)


def create_random_model_dir(
    directory: PathLike,
    config: Optional[Mapping[str, Any]] = None,
    seed: int = 0,
    vocab: PathLike = RELEASE_VOCAB,
) -> ModelDir:
    """Write a randomly initialised GAU-alpha in the release layout into ``directory``.

    The weights come from GAU-alpha's own initializer (seeded with ``seed``) and are saved
    with ``Transformer.save_weights_as_checkpoint``. The directory is assembled next to its
    final place and renamed into it, replacing an older one, so it is never half-written.

    Args:
        directory: the model directory to create.
        config: the ``bert_config.json`` values (default :data:`TINY_CONFIG`).
        seed: seed of the initial weights.
        vocab: the ``vocab.txt`` to copy (default: the release's).
    """
    import tensorflow as tf

    from gau_alpha.models import build_transformer_model

    directory = Path(directory)
    config = dict(TINY_CONFIG if config is None else config)
    with staging_directory(directory) as staging:
        write_json(staging / CONFIG_FILE, config)
        shutil.copyfile(vocab, staging / VOCAB_FILE)
        tf.keras.utils.set_random_seed(seed)
        transformer = build_transformer_model(str(staging / CONFIG_FILE), None, return_keras_model=False)
        transformer.save_weights_as_checkpoint(str(staging / CHECKPOINT_PREFIX))
        del transformer
        tf.keras.backend.clear_session()
        replace_directory(staging, directory)
    return open_model_dir(directory)


def build_encoder(files: ModelDir, application: str = "unilm", **overrides: Any):
    """The GAU-alpha encoder with the directory's weights (strict loading).

    With ``application='unilm'`` (or ``'lm'``) bert4keras always appends the MLM head; the
    encoder returned here ends at the last GAU block's norm instead.

    Returns:
        ``(keras_model, transformer)``: the model maps token ids and segment ids ``(B, N)``
        to hidden states ``(B, N, H)``; the bert4keras ``Transformer`` gives access to the
        configuration (``attention_key_size``, ``initializer``).
    """
    import tensorflow as tf

    from gau_alpha.models import build_transformer_model

    transformer = build_transformer_model(
        str(files.config), str(files.checkpoint), model="gau_alpha", application=application,
        return_keras_model=False, **overrides,
    )
    last = "Transformer-%d-GatedAttentionUnit-Norm" % (transformer.num_hidden_layers - 1)
    hidden = transformer.model.get_layer(transformer.prefixed(last)).output
    encoder = tf.keras.Model(transformer.model.inputs, hidden, name="gau_alpha_encoder")
    return encoder, transformer
