"""Model-ready features and length-bucketed, per-batch-padded batches.

A :class:`Feature` is one row of model input built from one example: a whole
classification example, one sliding window of a cmrc2018 question, one blank of
a chid passage. Its ``inputs`` hold unpadded arrays; :func:`collate` stacks the
features of a batch and zero-pads every array to the longest one *in that
batch* (id 0 is ``[PAD]`` in the GAU-alpha vocab), so short batches stay short.

:func:`make_batches` groups features of similar length: for training it shuffles
(with a caller-supplied ``numpy`` generator, so the order is reproducible),
sorts within buckets of ``bucket_batches * batch_size`` features, cuts batches
and shuffles the batch order; for evaluation it sorts everything by length.

Bounded shapes (the XLA path of :class:`~gau_alpha.clue.training.Trainer`): XLA compiles
once per input shape, so per-batch padding would compile once per distinct batch length.
:func:`batches_ladder` fits at most ``max_buckets`` widths (multiples of
:data:`LADDER_MULTIPLE`, fewer for short passes: :func:`bucket_budget`) to the longest
feature of each batch so that the padding is least (:func:`length_ladder`),
:func:`bucket_width` rounds a batch's longest feature up to the ladder and
``collate_inputs(..., width=)`` pads the token axis to it. Padding positions are
padding tokens (id 0), masked like the per-batch padding, so the results of the real
positions do not change beyond float rounding.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

__all__ = [
    "Feature", "pad_arrays", "make_batches", "epoch_batches", "collate_inputs", "truncate_longest",
    "DEFAULT_MAX_BUCKETS", "LADDER_MULTIPLE", "MIN_BATCHES_PER_BUCKET", "length_ladder", "bucket_budget",
    "batches_ladder", "bucket_width", "padding_fraction",
]

DEFAULT_MAX_BUCKETS = 8
"""Widths in a length ladder: at most this many compiled shapes per function and batch size."""
LADDER_MULTIPLE = 4
"""Ladder widths are multiples of this."""
MIN_BATCHES_PER_BUCKET = 16
"""A ladder gets at most one width per this many batches (and at most ``max_buckets``):
each compilation (seconds on a CPU) must serve enough steps to pay for itself, so a short
run (the bundled samples, ``--max-steps-per-epoch``) compiles once or twice."""


@dataclass
class Feature:
    """One model input row set.

    Attributes:
        inputs: unpadded arrays by input name: ``token_ids`` (``(N,)``, or
            ``(K, N)`` for multiple choice), ``span_mask`` ``(N,)`` (cmrc2018),
            ``choice_mask`` ``(K,)`` (c3, chid), and ``segment_ids`` shaped like
            ``token_ids`` when they are not all 0 (:func:`collate_inputs` fills
            in zeros otherwise, which halves the memory the features take).
        label: the training target in the task's own form (class index, token
            ``(start, end)``, choice index, entity spans), or None when unlabelled.
        example_index: index of the source example in the example list.
        meta: what decoding needs (e.g. character offsets of the tokens).
    """

    inputs: Dict[str, np.ndarray]
    label: Any
    example_index: int
    meta: Dict[str, Any] = field(default_factory=dict)

    @property
    def length(self) -> int:
        """Sequence length ``N`` (the last axis of ``token_ids``)."""
        return int(self.inputs["token_ids"].shape[-1])


def pad_arrays(arrays: Sequence[np.ndarray], dtype: Any = np.int32, value: Any = 0) -> np.ndarray:
    """Stack arrays of equal rank into one, padding every axis to the largest size.

    Args:
        arrays: ``B`` arrays of shape ``(d1_i, ..., dk_i)``.
        dtype: dtype of the result.
        value: fill value for the padding.

    Returns:
        an array of shape ``(B, max_i d1_i, ..., max_i dk_i)``.
    """
    if not arrays:
        raise ValueError("pad_arrays: no arrays")
    ranks = {np.ndim(a) for a in arrays}
    if len(ranks) != 1:
        raise ValueError("pad_arrays: arrays of different ranks %s" % sorted(ranks))
    shape = tuple(max(s) for s in zip(*(np.shape(a) for a in arrays)))
    out = np.full((len(arrays),) + shape, value, dtype=dtype)
    for row, array in enumerate(arrays):
        array = np.asarray(array)
        out[(row,) + tuple(slice(0, n) for n in array.shape)] = array
    return out


def collate_inputs(features: Sequence[Feature], width: Optional[int] = None) -> Dict[str, np.ndarray]:
    """Stack and zero-pad the ``inputs`` of a batch: ``{name: (B, ...)}``.

    Masks (``span_mask``, ``choice_mask``) become float32, everything else int32;
    ``segment_ids`` are all 0 unless the features carry them.

    Args:
        features: the batch.
        width: pad the token axis (the last axis of ``token_ids`` and of every input
            shaped like it: ``segment_ids``, ``span_mask``) to this many positions
            instead of the batch's longest feature (:func:`bucket_width`).

    Raises:
        ValueError: an empty batch, or a feature longer than ``width``.
    """
    if not features:
        raise ValueError("collate_inputs: empty batch")
    names = list(features[0].inputs)
    batch = {}
    for name in names:
        dtype = np.float32 if name.endswith("_mask") else np.int32
        batch[name] = pad_arrays([f.inputs[name] for f in features], dtype=dtype)
    if width is not None:
        longest = batch["token_ids"].shape[-1]
        if width < longest:
            raise ValueError("collate_inputs: width %d is shorter than the batch's longest feature (%d)"
                             % (width, longest))
        token_shape = np.shape(features[0].inputs["token_ids"])
        for name in names:
            if np.shape(features[0].inputs[name]) == token_shape:  # token-aligned
                pad = [(0, 0)] * (batch[name].ndim - 1) + [(0, width - longest)]
                batch[name] = np.pad(batch[name], pad)
    if "segment_ids" not in batch:
        batch["segment_ids"] = np.zeros_like(batch["token_ids"])
    return batch


def length_ladder(lengths: Sequence[int], max_buckets: int = DEFAULT_MAX_BUCKETS,
                  multiple: int = LADDER_MULTIPLE, weights: Optional[Sequence[float]] = None) -> List[int]:
    """The at most ``max_buckets`` widths that pad ``lengths`` least, sorted ascending.

    Each length is padded to the smallest width >= it; the widths are chosen among the
    lengths rounded up to a multiple of ``multiple`` so that the total padding
    (``sum(weight * (width - length))``) is smallest (exact dynamic programme over the
    distinct rounded lengths). The top width is the longest length rounded up, so no width
    exceeds ``maxlen`` when ``maxlen`` is a multiple of ``multiple`` (every recipe's is).

    Args:
        lengths: the lengths to cover: batch maxima (what a batch is padded from), or
            feature lengths.
        max_buckets: the most widths to return (>= 1).
        multiple: rounding of the widths.
        weights: rows padded per length (e.g. rows per batch); default 1 each.

    Returns:
        the ladder; empty when ``lengths`` is.
    """
    if max_buckets < 1 or multiple < 1:
        raise ValueError("length_ladder: max_buckets and multiple must be >= 1, got %d, %d" % (max_buckets, multiple))
    lengths = np.asarray(lengths, dtype=np.int64)
    if not lengths.size:
        return []
    weights = np.ones(lengths.shape, np.float64) if weights is None else np.asarray(weights, np.float64)
    rounded = -(-lengths // multiple) * multiple
    widths, inverse = np.unique(rounded, return_inverse=True)
    count = len(widths)
    if count <= max_buckets:
        return [int(w) for w in widths]
    rows = np.concatenate([[0.0], np.cumsum(np.bincount(inverse, weights=weights, minlength=count))])
    total = np.concatenate([[0.0], np.cumsum(np.bincount(inverse, weights=weights * lengths, minlength=count))])
    first, last = np.arange(count)[:, None], np.arange(count)[None, :]
    # padding[i, j]: lengths of the distinct widths i..j all padded to widths[j]
    padding = np.where(last >= first, widths[None, :] * (rows[last + 1] - rows[first]) - (total[last + 1] - total[first]),
                       np.inf)
    best = padding[0].copy()  # best[j]: least padding of widths 0..j with the buckets so far, one ending at j
    starts = []
    for _ in range(1, max_buckets):
        before = np.concatenate([[np.inf], best[:-1]])  # before[i]: best[i - 1]
        candidates = before[:, None] + padding
        start = np.argmin(candidates, axis=0)
        starts.append(start)
        best = candidates[start, np.arange(count)]
    ladder, end = [], count - 1
    for start in reversed(starts):
        ladder.append(int(widths[end]))
        end = int(start[end]) - 1
        if end < 0:
            break
    if end >= 0:
        ladder.append(int(widths[end]))
    return sorted(ladder)


def bucket_budget(batches: int, max_buckets: int = DEFAULT_MAX_BUCKETS,
                  min_batches: int = MIN_BATCHES_PER_BUCKET) -> int:
    """Ladder widths for a pass of ``batches`` batches: ``min(max_buckets, max(1, batches // min_batches))``."""
    return max(1, min(int(max_buckets), int(batches) // max(1, int(min_batches))))


def batches_ladder(features: Sequence[Feature], batches: Sequence[Sequence[int]], rows: int,
                   max_buckets: int = DEFAULT_MAX_BUCKETS, min_batches: int = MIN_BATCHES_PER_BUCKET) -> List[int]:
    """The ladder fitted to ``batches`` (lists of feature indices), each padded from its
    longest feature and holding ``rows`` rows, with :func:`bucket_budget` widths."""
    maxima = [max(features[i].length for i in batch) for batch in batches]
    return length_ladder(maxima, bucket_budget(len(batches), max_buckets, min_batches), weights=[rows] * len(maxima))


def bucket_width(length: int, ladder: Sequence[int]) -> int:
    """The smallest ladder width >= ``length``; a length beyond the ladder is rounded up to a
    multiple of :data:`LADDER_MULTIPLE` (a ladder made from other features)."""
    for width in ladder:
        if width >= length:
            return int(width)
    return -(-int(length) // LADDER_MULTIPLE) * LADDER_MULTIPLE


def padding_fraction(token_batches: Sequence[np.ndarray]) -> float:
    """Fraction of padding (id 0) among the token positions of ``token_batches``."""
    total = sum(int(b.size) for b in token_batches)
    padded = sum(int((np.asarray(b) == 0).sum()) for b in token_batches)
    return padded / total if total else 0.0


def make_batches(
    lengths: Sequence[int],
    batch_size: int,
    rng: Optional[np.random.Generator] = None,
    bucket_batches: int = 100,
) -> List[List[int]]:
    """Cut feature indices into batches of similar length.

    Args:
        lengths: the length of each feature.
        batch_size: features per batch (the last batch may be smaller).
        rng: training: shuffle the features, sort each bucket of
            ``bucket_batches * batch_size`` by length, cut it into batches and
            shuffle the batches. ``None`` (evaluation): sort all features by
            length (stable), no shuffling.
        bucket_batches: bucket size in batches (training only).

    Returns:
        lists of feature indices; together they hold every index exactly once.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1, got %d" % batch_size)
    lengths = np.asarray(lengths)
    if rng is None:
        order = np.argsort(lengths, kind="stable")
        return [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    order = rng.permutation(len(lengths))
    bucket = max(1, bucket_batches) * batch_size
    batches: List[List[int]] = []
    for start in range(0, len(order), bucket):
        chunk = order[start : start + bucket]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size].tolist() for i in range(0, len(chunk), batch_size))
    permutation = rng.permutation(len(batches))
    return [batches[i] for i in permutation]


def epoch_batches(features: Sequence[Feature], batch_size: int, seed: int, epoch: int) -> List[List[int]]:
    """The training batches of ``epoch``: length-bucketed, shuffled with a generator
    seeded by ``(seed, epoch)`` (the same list on every run and after resuming)."""
    rng = np.random.default_rng([int(seed), int(epoch)])
    return make_batches([f.length for f in features], batch_size, rng)


def truncate_longest(lengths: Sequence[int], budget: int) -> List[int]:
    """Lengths after bert4keras's ``truncate_sequences`` rule, computed without a loop.

    bert4keras pops one item at a time from the currently longest sequence (the
    first one in order on ties) until the total fits ``budget``.

    Args:
        lengths: the sequence lengths, in priority order.
        budget: the largest allowed total.

    Returns:
        the kept length of each sequence.
    """
    lengths = [int(n) for n in lengths]
    if budget < 0:
        raise ValueError("budget must be >= 0, got %d" % budget)
    if sum(lengths) <= budget:
        return lengths
    # Largest level T with sum(min(n, T)) <= budget.
    low, high = 0, max(lengths)
    while low < high:
        mid = (low + high + 1) // 2
        if sum(min(n, mid) for n in lengths) <= budget:
            low = mid
        else:
            high = mid - 1
    kept = [min(n, low) for n in lengths]
    spare = budget - sum(kept)
    # Sequences cut to T: the first ones in order lost their last token first,
    # so the *last* `spare` of them keep one more.
    cut = [i for i, n in enumerate(lengths) if n > low]
    for i in cut[len(cut) - spare :] if spare else []:
        kept[i] += 1
    return kept
