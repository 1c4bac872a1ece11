"""Documents packed into fixed-length sequences, shuffled in windows, cut into masked batches.

A sequence is ``[CLS] doc_a [SEP] doc_b [SEP] ...`` cut at ``maxlen`` tokens (all segment
ids 0, the recipe's). A document that does not fit goes on in the next sequence; it is cut
between two units (whole words, :mod:`gau_alpha.pretrain.masking`) unless a single unit is
longer than a whole sequence. A sequence therefore ends in padding only when the next word
does not fit in what is left of it (fewer pad tokens than that word has), or at the end of a
single-pass stream (the validation set).

The corpus files are usually grouped (by source, by date); sequences are therefore
shuffled in windows of ``window`` consecutive sequences, each window permuted by a generator
seeded with ``(seed, window index)``. Masking draws from a generator seeded with ``(seed,
sequence number)``. Every draw is thus a function of the stream position, and the whole
position is a small JSON object (:meth:`SequenceStream.state`): the corpus cursor at the
start of the current window, the part of a document carried over into the next sequence
there, the window's index and how many of its sequences were taken. Restoring it (``restore``)
re-reads that window and skips what was taken: the batches after a resume are exactly those
an uninterrupted run would have seen.

Every worker of a distributed run builds the same global batches (the stream is read by
each); each replica trains on its own slice (:mod:`gau_alpha.pretrain.trainer`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .corpus import Cursor, iter_documents
from .masking import Segmenter, WholeWordMasker, encode_document

__all__ = ["Packer", "SequenceStream", "Batch", "BatchMaker", "fixed_batches", "DEFAULT_WINDOW"]

DEFAULT_WINDOW = 512
"""Sequences per shuffling window."""
_VALID_STREAM = 1 << 30
"""Offset of the validation sequences' masking seeds (never a training sequence's number)."""


class Packer:
    """Packs documents read from ``paths`` into sequences of exactly ``maxlen`` tokens.

    Args:
        paths: the corpus files.
        tokenizer: :class:`gau_alpha.tokenization.FastTokenizer` (``cls_id``, ``sep_id``).
        segmenter: the word segmenter.
        maxlen: tokens per sequence (>= 8).
        single_pass: stop after one pass over the corpus (validation); else endless.
    """

    def __init__(self, paths: Sequence[Path], tokenizer: Any, segmenter: Segmenter, maxlen: int,
                 single_pass: bool = False) -> None:
        if maxlen < 8:
            raise ValueError("maxlen must be at least 8, got %d" % maxlen)
        self.paths = [Path(p) for p in paths]
        self.tokenizer, self.segmenter, self.maxlen, self.single_pass = tokenizer, segmenter, int(maxlen), single_pass
        self.cursor = Cursor()
        self.carry_ids: List[int] = []
        self.carry_units: List[int] = []
        self._documents: Optional[Iterator] = None
        self.exhausted = False

    # ------------------------------------------------------------------ state
    def state(self) -> Dict[str, Any]:
        """The position: the cursor of the next document and the carried-over tokens."""
        return {"cursor": self.cursor.to_json(), "carry_ids": list(map(int, self.carry_ids)),
                "carry_units": list(map(int, self.carry_units))}

    def restore(self, state: Dict[str, Any]) -> None:
        self.cursor = Cursor.from_json(state["cursor"])
        self.carry_ids = [int(i) for i in state["carry_ids"]]
        self.carry_units = [int(u) for u in state["carry_units"]]
        self._documents = None
        self.exhausted = False

    # ------------------------------------------------------------------ packing
    def _next_document(self) -> bool:
        """Load the next document into the carry; False at the end of a single pass."""
        if self._documents is None:
            self._documents = iter_documents(self.paths, self.cursor)
        document = next(self._documents)
        if self.single_pass and document.next_cursor.pass_index > 0:
            self.exhausted = True
            return False
        self.cursor = document.next_cursor
        encoded = encode_document(document.text, self.tokenizer, self.segmenter)
        self.carry_ids = encoded.token_ids.tolist() + [self.tokenizer.sep_id]
        self.carry_units = encoded.units.tolist() + [-1]
        return True

    def next_sequence(self) -> Optional[Tuple[np.ndarray, np.ndarray]]:
        """``(token_ids (maxlen,) int32, units (maxlen,) int32)``: the next packed sequence,
        units numbered within it (``-1``: ``[CLS]``, ``[SEP]``, padding); None when a
        single-pass stream is exhausted."""
        ids, units = [self.tokenizer.cls_id], [-1]
        next_unit = 0
        while len(ids) < self.maxlen:
            if not self.carry_ids:
                if self.exhausted or not self._next_document():
                    break
            room = self.maxlen - len(ids)
            take = len(self.carry_ids)
            if take > room:
                take = room
                while take > 0 and self.carry_units[take] >= 0 and self.carry_units[take] == self.carry_units[take - 1]:
                    take -= 1  # do not cut a unit
                if take == 0:
                    if len(ids) > 1:
                        break  # close this sequence; the unit starts the next one
                    take = room  # a unit longer than a whole sequence: cut it
            piece_units = self.carry_units[:take]
            first = min((u for u in piece_units if u >= 0), default=0)
            shifted = [u - first + next_unit if u >= 0 else -1 for u in piece_units]
            next_unit = max(shifted + [next_unit - 1]) + 1
            ids.extend(self.carry_ids[:take])
            units.extend(shifted)
            del self.carry_ids[:take], self.carry_units[:take]
        if len(ids) == 1:
            return None
        pad = self.maxlen - len(ids)
        return (np.asarray(ids + [0] * pad, np.int32), np.asarray(units + [-1] * pad, np.int32))


class SequenceStream:
    """Endless packed sequences in shuffled windows, with an exact JSON position.

    Yields ``(number, token_ids, units)``: ``number`` counts the sequences from the start of
    the run (window index * window + position), the seed of its masking.
    """

    def __init__(self, packer: Packer, window: int = DEFAULT_WINDOW, seed: int = 0) -> None:
        self.packer, self.window, self.seed = packer, int(window), int(seed)
        self.window_index = 0
        self.taken = 0
        self.window_start: Dict[str, Any] = packer.state()
        self._buffer: Optional[List[Tuple[np.ndarray, np.ndarray]]] = None
        self._order: Optional[np.ndarray] = None

    def state(self) -> Dict[str, Any]:
        return {"window": self.window, "window_index": self.window_index, "taken": self.taken,
                "window_start": self.window_start}

    def restore(self, state: Dict[str, Any]) -> None:
        if int(state["window"]) != self.window:
            raise ValueError("the saved stream used windows of %s sequences, not %d" % (state["window"], self.window))
        self.window_index, self.taken = int(state["window_index"]), int(state["taken"])
        self.window_start = state["window_start"]
        self._buffer = None

    def _fill(self) -> None:
        self.packer.restore(self.window_start)
        self._buffer = [self.packer.next_sequence() for _ in range(self.window)]
        rng = np.random.default_rng([self.seed, 0x5EED, self.window_index])
        self._order = rng.permutation(self.window)

    def next(self) -> Tuple[int, np.ndarray, np.ndarray]:
        if self._buffer is not None and self.taken == self.window:
            self.window_index += 1
            self.taken = 0
            self.window_start = self.packer.state()
            self._buffer = None
        if self._buffer is None:
            self._fill()
        ids, units = self._buffer[self._order[self.taken]]
        number = self.window_index * self.window + self.taken
        self.taken += 1
        return number, ids, units


@dataclass(frozen=True)
class Batch:
    """One optimizer step's data, each array ``(A, B, N)``: ``A`` gradient-accumulation
    micro-batches of the global batch size ``B``; ``input_ids`` int32, ``target_ids`` int32,
    ``weights`` float32 (1 on the tokens to predict)."""

    input_ids: np.ndarray
    target_ids: np.ndarray
    weights: np.ndarray


def _mask_one(masker: WholeWordMasker, seed: int, number: int, ids: np.ndarray, units: np.ndarray):
    return masker(ids, units, np.random.default_rng([seed, 0x3A5C, number]))


class BatchMaker:
    """Global batches from a :class:`SequenceStream`, masked by :class:`WholeWordMasker`."""

    def __init__(self, stream: SequenceStream, masker: WholeWordMasker, batch_size: int, accum_steps: int = 1) -> None:
        self.stream, self.masker = stream, masker
        self.batch_size, self.accum_steps = int(batch_size), int(accum_steps)

    def next_batch(self) -> Batch:
        rows = self.batch_size * self.accum_steps
        masked = [_mask_one(self.masker, self.stream.seed, *self.stream.next()) for _ in range(rows)]
        shape = (self.accum_steps, self.batch_size, -1)
        return Batch(np.stack([m.input_ids for m in masked]).reshape(shape),
                     np.stack([m.target_ids for m in masked]).reshape(shape),
                     np.stack([m.weights for m in masked]).reshape(shape))


def fixed_batches(paths: Sequence[Path], tokenizer: Any, segmenter: Segmenter, masker: WholeWordMasker,
                  maxlen: int, batch_size: int, max_sequences: int, seed: int) -> List[Batch]:
    """The validation set: the first ``max_sequences`` packed sequences of one pass over
    ``paths`` (in order, not shuffled), masked with fixed seeds, in batches of ``batch_size``
    (each :class:`Batch` with ``A = 1``; the last may be smaller)."""
    packer = Packer(paths, tokenizer, segmenter, maxlen, single_pass=True)
    masked = []
    while len(masked) < max_sequences:
        sequence = packer.next_sequence()
        if sequence is None:
            break
        masked.append(_mask_one(masker, seed, _VALID_STREAM + len(masked), *sequence))
    batches = []
    for start in range(0, len(masked), batch_size):
        part = masked[start:start + batch_size]
        batches.append(Batch(np.stack([m.input_ids for m in part])[None], np.stack([m.target_ids for m in part])[None],
                             np.stack([m.weights for m in part])[None]))
    return batches
