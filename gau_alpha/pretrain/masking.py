"""Whole-word masking: words from a Chinese word segmenter, masked as wholes.

GAU-alpha's recipe (its ``train.py``): segment each text into words (Baidu LAC there;
here rjieba, a maintained Rust build of jieba, or jieba itself), choose 15% of the words,
and replace every token of a chosen word by ``[MASK]`` (80% of the chosen words), by random
tokens (10%) or leave it (10%); the loss covers exactly the tokens of the chosen words.

A document becomes an :class:`EncodedDocument`: its token ids (GAU-alpha's character
tokenizer, :class:`gau_alpha.tokenization.FastTokenizer`, no ``[CLS]``/``[SEP]``) and, per
token, the index of its **unit**: the segmenter word its characters belong to. A token
whose characters straddle two words (a WordPiece run such as ``gau-alpha`` cut by the
segmenter) joins those words into one unit, so a unit is always a whole word (or a run of
whole words) and whole tokens. Packed sequences (:mod:`gau_alpha.pretrain.packing`) mark
``[CLS]``, ``[SEP]`` and padding with unit ``-1``: they are never chosen.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, List, Mapping, Tuple

import numpy as np

from gau_alpha.errors import ConfigError

__all__ = [
    "MASK_RATE", "MASK_TOKEN_FRACTION", "RANDOM_TOKEN_FRACTION", "SEGMENTERS",
    "Segmenter", "EncodedDocument", "encode_document", "WholeWordMasker", "MaskedSequence",
]

MASK_RATE = 0.15
"""Share of the words (units) of a sequence chosen for prediction."""
MASK_TOKEN_FRACTION = 0.8
RANDOM_TOKEN_FRACTION = 0.1
"""Of the chosen words: 80% become ``[MASK]``, 10% random tokens, 10% stay as they are."""
SEGMENTERS = ("rjieba", "jieba")
_SPECIAL_TOKEN = re.compile(r"^(\[[^\[\]]+\]|<[A-Z]>)$")


class Segmenter:
    """A Chinese word segmenter: ``spans(text)`` -> ``[(start, end), ...]`` character spans
    of its words, in order, covering the text.

    Args:
        name: ``"rjieba"`` (default; Rust jieba) or ``"jieba"``.
    """

    def __init__(self, name: str = "rjieba") -> None:
        if name not in SEGMENTERS:
            raise ConfigError("unknown word segmenter %r; expected one of %s" % (name, ", ".join(SEGMENTERS)))
        self.name = name
        if name == "rjieba":
            import rjieba

            self._tokenize: Callable[[str], Any] = rjieba.tokenize
        else:
            import logging

            import jieba

            jieba.setLogLevel(logging.WARNING)
            self._tokenize = jieba.tokenize

    def spans(self, text: str) -> List[Tuple[int, int]]:
        """The words of ``text`` as ``(start, end)`` character offsets."""
        return [(int(start), int(end)) for _, start, end in self._tokenize(text)]

    def words(self, text: str) -> List[str]:
        """The words of ``text``."""
        return [text[start:end] for start, end in self.spans(text)]


@dataclass(frozen=True)
class EncodedDocument:
    """A document as tokens: ``token_ids`` (L,) int32 and ``units`` (L,) int32, the unit
    (whole-word group) of each token, numbered 0, 1, ... in order; ``spans`` (L, 2) the
    characters of the text each token came from."""

    token_ids: np.ndarray
    units: np.ndarray
    spans: np.ndarray

    def __len__(self) -> int:
        return int(self.token_ids.shape[0])


def encode_document(text: str, tokenizer: Any, segmenter: Segmenter) -> EncodedDocument:
    """Tokenize ``text`` (no ``[CLS]``/``[SEP]``) and group its tokens into whole-word units.

    Args:
        tokenizer: a :class:`gau_alpha.tokenization.FastTokenizer` (needs
            ``encode_with_offsets``).
        segmenter: the word segmenter.
    """
    ids, _, spans = tokenizer.encode_with_offsets(text)
    ids, spans = ids[1:-1], spans[1:-1]  # drop [CLS] and [SEP]
    word_of = np.zeros(len(text) + 1, dtype=np.int64)
    for index, (start, end) in enumerate(segmenter.spans(text)):
        word_of[start:end] = index
    units = np.empty(len(ids), dtype=np.int32)
    unit, last_word = -1, -1
    for position, (start, end) in enumerate(spans):
        first, last = int(word_of[start]), int(word_of[max(start, end - 1)])
        if first > last_word:  # a new word: a new unit
            unit += 1
        last_word = max(last_word, last)
        units[position] = unit
    return EncodedDocument(np.asarray(ids, dtype=np.int32), units,
                           np.asarray(spans, dtype=np.int32).reshape(-1, 2))


@dataclass(frozen=True)
class MaskedSequence:
    """One masked sequence, each array (N,): ``input_ids`` (what the model sees),
    ``target_ids`` (the original tokens) and ``weights`` (1.0 on the chosen tokens: the loss
    covers exactly those), plus ``chosen_units`` and what became of each (``"mask"``,
    ``"random"``, ``"keep"``) for inspection."""

    input_ids: np.ndarray
    target_ids: np.ndarray
    weights: np.ndarray
    chosen_units: Tuple[int, ...]
    actions: Tuple[str, ...]


class WholeWordMasker:
    """Chooses ``rate`` of the units of a sequence and masks their tokens 80/10/10.

    The number of chosen units is ``round(rate * units)`` (at least 1 when there is a
    unit), drawn without replacement; each chosen unit is then, as a whole, replaced by
    ``[MASK]`` tokens, by random tokens (uniform over the vocab's ordinary tokens: no
    ``[...]`` names, no ``<S>``/``<T>``) or left as it is.

    Args:
        vocab: the ``{token: id}`` of the tokenizer.
        mask_id: the ``[MASK]`` id.
    """

    def __init__(self, vocab: Mapping[str, int], mask_id: int, rate: float = MASK_RATE,
                 mask_fraction: float = MASK_TOKEN_FRACTION, random_fraction: float = RANDOM_TOKEN_FRACTION) -> None:
        if not 0 < rate < 1:
            raise ConfigError("the masking rate must be in (0, 1), got %r" % rate)
        self.rate, self.mask_fraction, self.random_fraction = rate, mask_fraction, random_fraction
        self.mask_id = int(mask_id)
        self.ordinary_ids = np.array(sorted(i for t, i in vocab.items() if not _SPECIAL_TOKEN.match(t)), np.int32)
        self.special_ids = np.array(sorted(i for t, i in vocab.items() if _SPECIAL_TOKEN.match(t)), np.int32)

    def __call__(self, token_ids: np.ndarray, units: np.ndarray, rng: np.random.Generator) -> MaskedSequence:
        """Mask one sequence.

        Args:
            token_ids: (N,) int32, the packed sequence.
            units: (N,) int32, each token's unit, ``-1`` for ``[CLS]``/``[SEP]``/padding.
            rng: the sequence's own generator (its draws depend on nothing else).
        """
        token_ids = np.asarray(token_ids, np.int32)
        units = np.asarray(units, np.int32)
        present = np.unique(units[units >= 0])
        inputs = token_ids.copy()
        weights = np.zeros(token_ids.shape, np.float32)
        if present.size == 0:
            return MaskedSequence(inputs, token_ids.copy(), weights, (), ())
        count = max(1, int(round(self.rate * present.size)))
        chosen = np.sort(rng.choice(present, size=count, replace=False))
        draws = rng.random(count)
        actions = []
        for unit, draw in zip(chosen, draws):
            where = units == unit
            weights[where] = 1.0
            if draw < self.mask_fraction:
                inputs[where] = self.mask_id
                actions.append("mask")
            elif draw < self.mask_fraction + self.random_fraction:
                inputs[where] = rng.choice(self.ordinary_ids, size=int(where.sum()))
                actions.append("random")
            else:
                actions.append("keep")
        return MaskedSequence(inputs, token_ids.copy(), weights, tuple(int(u) for u in chosen), tuple(actions))
