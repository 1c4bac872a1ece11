"""``GAUAlphaTokenizer``: keras-hub's WordPiece tokenizer set up to give bert4keras's ids.

GAU-alpha was trained with bert4keras's ``Tokenizer(vocab, do_lower_case=True)``. keras-hub's
``WordPieceTokenizer(lowercase=True)`` case-folds with NFKC, which maps full-width
punctuation (``，`` ``？``) to ASCII and so gives other ids on most Chinese text. This class
therefore turns keras-hub's own normalisation off and applies bert4keras's first
(``str.lower``, NFD, no ``Mn`` marks, no NUL / U+FFFD / ``Cc`` ``Cf`` controls except tab and
newlines):

- on the Python path (direct calls, Grain) with :func:`gau_alpha.tokenization.normalize`;
- inside ``tf.data`` / ``tf.function`` with TensorFlow string ops. ``tf.strings.lower`` has no
  Greek final-sigma rule, the one known difference from bert4keras on that path.

Splitting on spaces, punctuation and CJK characters and the greedy WordPiece lookup are
keras-hub's. The ids equal :func:`gau_alpha.tokenization.load_tokenizer`'s on the bundled CLUE
samples (tests/test_keras3_tokenizer.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
from keras_hub.src.tokenizers.word_piece_tokenizer import WordPieceTokenizer

from gau_alpha.keras3.backbone import GAUAlphaBackbone

__all__ = ["GAUAlphaTokenizer"]

# controls bert4keras drops (tab, newline and carriage return are spaces, kept), the
# replacement character, and (with lower-casing) combining marks after NFD
_DROP_PATTERN = r"[\x{0}-\x{8}\x{B}\x{C}\x{E}-\x{1F}\x{7F}-\x{9F}\p{Cf}\x{FFFD}\p{Mn}]"


def _normalize_tf(inputs):
    import tensorflow as tf
    import tensorflow_text as tf_text

    # controls first: tf.strings.lower stops at a NUL character
    text = tf.strings.regex_replace(inputs, _DROP_PATTERN, "")
    text = tf_text.normalize_utf8(tf.strings.lower(text, encoding="utf-8"), "NFD")
    return tf.strings.regex_replace(text, _DROP_PATTERN, "")


def _normalize_python(inputs):
    from gau_alpha.tokenization import normalize

    if isinstance(inputs, (str, bytes)):
        return normalize(inputs.decode("utf-8") if isinstance(inputs, bytes) else inputs)
    if isinstance(inputs, (list, tuple)):
        return [_normalize_python(item) for item in inputs]
    import numpy as np

    array = np.asarray(keras.ops.convert_to_numpy(inputs) if keras.ops.is_tensor(inputs) else inputs, dtype=object)
    return np.vectorize(lambda s: _normalize_python(s), otypes=[object])(array).tolist()


@keras.saving.register_keras_serializable(package="gau_alpha")
class GAUAlphaTokenizer(WordPieceTokenizer):
    """The GAU-alpha tokenizer (character-level BERT WordPiece with bert4keras's normalisation).

    Args:
        vocabulary: a ``vocab.txt`` path or a list of tokens; default the release vocab
            (:data:`gau_alpha.resources.RELEASE_VOCAB`).

    Special tokens: ``[CLS]`` (start), ``[SEP]`` (end), ``[PAD]``, ``[MASK]``, ``[UNK]``.
    ``tokenizer("text")`` gives the ids without ``[CLS]``/``[SEP]`` (the preprocessors add them).
    """

    backbone_cls = GAUAlphaBackbone

    def __init__(self, vocabulary: Any = None, **kwargs):
        self._add_special_token("[CLS]", "cls_token")
        self._add_special_token("[SEP]", "sep_token")
        self._add_special_token("[PAD]", "pad_token")
        self._add_special_token("[MASK]", "mask_token")
        self._add_special_token("[CLS]", "start_token")
        self._add_special_token("[SEP]", "end_token")
        if vocabulary is None:
            from gau_alpha.resources import RELEASE_VOCAB

            vocabulary = RELEASE_VOCAB
        if isinstance(vocabulary, Path):
            vocabulary = str(vocabulary)
        for fixed in ("lowercase", "strip_accents", "split", "split_on_cjk"):
            kwargs.pop(fixed, None)
        super().__init__(vocabulary=vocabulary, lowercase=False, strip_accents=False, split=True,
                         split_on_cjk=True, oov_token="[UNK]", **kwargs)

    def set_vocabulary(self, vocabulary):
        if isinstance(vocabulary, (str, Path)) and Path(str(vocabulary)).is_file():
            from gau_alpha.tokenization import load_vocab

            vocab = load_vocab(vocabulary)  # checked: no blank or duplicate lines (bert4keras's ids)
            vocabulary = sorted(vocab, key=vocab.get)
        super().set_vocabulary(vocabulary)

    def tokenize(self, inputs):
        if self._use_tf_workflow():
            inputs = _normalize_tf(inputs)
        else:
            inputs = _normalize_python(inputs)
        return super().tokenize(inputs)

    def get_config(self):
        config = super().get_config()
        for fixed in ("lowercase", "strip_accents", "split", "split_on_cjk", "oov_token"):
            config.pop(fixed, None)
        return config

    @classmethod
    def from_preset(cls, preset: Any, config_file: str = "tokenizer.json", **kwargs):
        """The tokenizer of a release or torch directory (its ``vocab.txt``) or a keras-hub preset."""
        from gau_alpha.keras3 import presets

        if presets.preset_format(preset) == presets.KERAS_HUB:
            return super().from_preset(preset, config_file=config_file, **kwargs)
        return cls(vocabulary=str(presets.vocabulary_path(preset)), **kwargs)
