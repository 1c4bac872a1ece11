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
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

__all__ = ["Feature", "pad_arrays", "make_batches", "epoch_batches", "collate_inputs", "truncate_longest"]


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


def collate_inputs(features: Sequence[Feature]) -> Dict[str, np.ndarray]:
    """Stack and zero-pad the ``inputs`` of a batch: ``{name: (B, ...)}``.

    Masks (``span_mask``, ``choice_mask``) become float32, everything else int32;
    ``segment_ids`` are all 0 unless the features carry them.
    """
    if not features:
        raise ValueError("collate_inputs: empty batch")
    names = list(features[0].inputs)
    batch = {}
    for name in names:
        dtype = np.float32 if name.endswith("_mask") else np.int32
        batch[name] = pad_arrays([f.inputs[name] for f in features], dtype=dtype)
    if "segment_ids" not in batch:
        batch["segment_ids"] = np.zeros_like(batch["token_ids"])
    return batch


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
