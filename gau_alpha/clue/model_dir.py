"""Model directories in the release layout, and the GAU-alpha encoder built from one.

A model directory holds ``bert_config.json``, ``bert_model.ckpt.index`` +
``bert_model.ckpt.data-*`` (TF1 checkpoint with the release's variable names)
and ``vocab.txt``, like ``chinese_GAU-alpha-char_L-24_H-768``.
:func:`create_random_model_dir` writes a small randomly initialised GAU-alpha in
that layout (with the real vocab) through the same ``save_weights_as_checkpoint``
path as the release, so smoke runs load it exactly like real weights.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Union

from gau_alpha.atomic import replace_directory
from gau_alpha.paths import RELEASE_VOCAB

__all__ = ["SMALL_RANDOM_CONFIG", "ModelFiles", "model_files", "create_random_model_dir", "build_encoder"]

SMALL_RANDOM_CONFIG: Dict[str, Any] = {
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
"""The default smoke-run model: GAU-alpha with 2 layers, hidden 128, key 32, 256 units."""

PathLike = Union[str, os.PathLike]


@dataclass(frozen=True)
class ModelFiles:
    """The files of a release-layout model directory."""

    directory: Path
    config: Path
    checkpoint: Path  # the prefix: bert_model.ckpt
    vocab: Path

    def load_config(self) -> Dict[str, Any]:
        """The parsed ``bert_config.json``."""
        try:
            return json.loads(self.config.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError("%s is not valid JSON: %s" % (self.config, error)) from None


def model_files(directory: PathLike) -> ModelFiles:
    """Check that ``directory`` has the release layout and return its files.

    Raises:
        FileNotFoundError: the directory or one of its files is missing (named).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError("model directory %s does not exist" % directory)
    files = ModelFiles(
        directory, directory / "bert_config.json", directory / "bert_model.ckpt", directory / "vocab.txt"
    )
    missing = [
        str(path)
        for path in (files.config, Path(str(files.checkpoint) + ".index"), files.vocab)
        if not path.is_file()
    ]
    if missing:
        raise FileNotFoundError(
            "model directory %s lacks %s (expected bert_config.json, bert_model.ckpt.* and vocab.txt)"
            % (directory, ", ".join(missing))
        )
    return files


def create_random_model_dir(
    directory: PathLike,
    config: Optional[Dict[str, Any]] = None,
    seed: int = 0,
    vocab: PathLike = RELEASE_VOCAB,
) -> ModelFiles:
    """Write a randomly initialised GAU-alpha in the release layout into ``directory``.

    The weights come from GAU-alpha's own initializer (seeded with ``seed``) and
    are saved with ``Transformer.save_weights_as_checkpoint``. The directory is
    assembled next to its final place and renamed into it, replacing an older
    one, so it is never half-written.

    Args:
        directory: the model directory to create.
        config: the ``bert_config.json`` values (default :data:`SMALL_RANDOM_CONFIG`).
        seed: seed of the initial weights.
        vocab: the ``vocab.txt`` to copy (default: the release's).
    """
    import tensorflow as tf

    from gau_alpha.models import build_transformer_model

    directory = Path(directory)
    config = dict(SMALL_RANDOM_CONFIG if config is None else config)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=".%s." % directory.name))
    try:
        os.chmod(staging, 0o755)
        (staging / "bert_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        shutil.copyfile(vocab, staging / "vocab.txt")
        tf.keras.utils.set_random_seed(seed)
        transformer = build_transformer_model(str(staging / "bert_config.json"), None, return_keras_model=False)
        transformer.save_weights_as_checkpoint(str(staging / "bert_model.ckpt"))
        del transformer
        tf.keras.backend.clear_session()
        replace_directory(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return model_files(directory)


def build_encoder(files: ModelFiles, application: str = "unilm", **overrides: Any):
    """The GAU-alpha encoder with the directory's weights (strict loading).

    With ``application='unilm'`` (or ``'lm'``) bert4keras always appends the MLM
    head; the encoder returned here ends at the last GAU block's norm instead.

    Returns:
        ``(keras_model, transformer)``: the model maps token ids and segment ids
        ``(B, N)`` to hidden states ``(B, N, H)``; the bert4keras ``Transformer``
        gives access to the configuration (``attention_key_size``, ``initializer``).
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
