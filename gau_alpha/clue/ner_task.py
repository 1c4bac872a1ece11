"""cluener: fine-grained NER with a GlobalPointer head.

Features: the sentence is tokenized with character offsets (``[CLS] text [SEP]``,
cut to ``maxlen``). A gold entity ``(type, start, end)`` (end inclusive) becomes
the token pair ``(i, j)`` whose tokens start at ``start`` and end at ``end``;
entities whose boundaries fall inside a token or beyond ``maxlen`` cannot be
represented and are left out of the training labels (their number is logged).

Head: GlobalPointer (bert4keras) with one head per entity type, scoring every
token pair ``i <= j``; loss: multi-label categorical cross-entropy (as in the
recipe). Decoding: every pair of content tokens with a positive score becomes
the entity ``text[offset(i).start : offset(j).end]`` with inclusive character
span ``[offset(i).start, offset(j).end - 1]`` (nested and overlapping entities
are allowed, as in the recipe; at most one entity per token is kept, the
highest-scoring ones, which only bounds what an untrained model emits). Metric: entity-level micro F1 (percent), plus
precision and recall.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Sequence, Set, Tuple

import numpy as np

from .base import Task, TaskDefaults, TaskParams
from .examples import CluenerExample, EntityLabel
from .features import Feature
from .heads import global_pointer_loss, global_pointer_tagger
from .labels import CLUENER_TYPES
from .metrics import cluener_scores

__all__ = ["CluenerTask", "entities_from_spans"]

logger = logging.getLogger(__name__)

CharSpan = Tuple[str, int, int]
"""``(type, start, end)`` with an inclusive character ``end``."""


def entities_from_spans(text: str, spans: Set[CharSpan]) -> EntityLabel:
    """The official label dict ``{type: {entity text: [[start, end], ...]}}`` of ``spans``.

    Types, entity texts and positions are sorted, so the result does not depend
    on the order of ``spans``.
    """
    label: EntityLabel = {}
    for etype, start, end in sorted(spans):
        label.setdefault(etype, {}).setdefault(text[start : end + 1], []).append([start, end])
    return label


class CluenerTask(Task):
    """GlobalPointer NER (see the module docstring)."""

    main_metric = "f1"

    def __init__(self, name: str, defaults: TaskDefaults):
        super().__init__(name, defaults)
        self.types: List[str] = list(CLUENER_TYPES)
        self.type_index = {t: i for i, t in enumerate(self.types)}

    def encode(
        self, examples: Sequence[CluenerExample], tokenizer: Any, params: TaskParams, labelled: bool
    ) -> List[Feature]:
        """One feature per sentence: ``token_ids`` ``(N,)``; label = the
        gold ``(type index, first token, last token)`` triples; meta: token offsets."""
        features = []
        total = dropped = 0
        for index, example in enumerate(examples):
            ids, _, spans = tokenizer.encode_with_offsets(example.text, maxlen=params.maxlen)
            offsets = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
            label = None
            if labelled:
                if example.label is None:
                    raise ValueError("cluener sentence %r has no label" % (example.id,))
                starts = {int(offsets[t, 0]): t for t in range(1, len(ids) - 1)}
                ends = {int(offsets[t, 1]) - 1: t for t in range(1, len(ids) - 1)}
                label = []
                for etype, start, end in sorted(example.spans()):
                    total += 1
                    if start in starts and end in ends and starts[start] <= ends[end]:
                        label.append((self.type_index[etype], starts[start], ends[end]))
                    else:
                        dropped += 1
            token_ids = np.asarray(ids, dtype=np.int32)
            features.append(
                Feature({"token_ids": token_ids}, label, index,
                        {"offsets": offsets})
            )
        if dropped:
            logger.warning(
                "cluener: %d of %d gold entities do not start and end on token boundaries within "
                "maxlen=%d and are left out of the training labels", dropped, total, params.maxlen
            )
        return features

    def label_shape(self) -> tuple:
        return (None, len(self.types), None, None)

    def label_dtype(self) -> str:
        return "float32"

    def collate_labels(self, features: Sequence[Feature], inputs: Dict[str, np.ndarray]) -> np.ndarray:
        """Dense ``(B, types, N, N)`` 0/1 matrix."""
        width = inputs["token_ids"].shape[1]
        labels = np.zeros((len(features), len(self.types), width, width), dtype=np.float32)
        for row, feature in enumerate(features):
            for etype, start, end in feature.label:
                labels[row, etype, start, end] = 1.0
        return labels

    def build_model(self, encoder: Any, params: TaskParams) -> Any:
        return global_pointer_tagger(encoder, len(self.types), params.key_size, params.kernel_initializer)

    def loss(self, labels: Any, outputs: Any) -> Any:
        return global_pointer_loss(labels, outputs)

    def summarize(self, feature: Feature, output: np.ndarray) -> Set[CharSpan]:
        """Entities ``(type, start, end)`` (inclusive character span) scored above 0.

        At most one span per content token is kept (the highest-scoring ones), which
        bounds the output of an untrained model; a trained one predicts far fewer.
        """
        length = feature.length
        offsets = feature.meta["offsets"]
        scores = np.asarray(output)[:, 1 : length - 1, 1 : length - 1]
        etypes, firsts, lasts = np.nonzero(scores > 0)  # lower triangle and padding are -inf
        keep = (lasts >= firsts).nonzero()[0]
        limit = max(length - 2, 0)
        if len(keep) > limit:
            values = scores[etypes[keep], firsts[keep], lasts[keep]]
            keep = keep[np.argsort(-values, kind="stable")[:limit]]
        starts = offsets[firsts[keep] + 1, 0].tolist()
        ends = (offsets[lasts[keep] + 1, 1] - 1).tolist()
        names = [self.types[t] for t in etypes[keep].tolist()]
        return set(zip(names, starts, ends))

    def decode(
        self,
        examples: Sequence[CluenerExample],
        features: Sequence[Feature],
        summaries: Sequence[Any],
        params: TaskParams,
    ) -> List[EntityLabel]:
        """The official label dict of each sentence."""
        spans: List[Set[CharSpan]] = [set() for _ in examples]
        for feature, found in zip(features, summaries):
            spans[feature.example_index] |= found
        return [entities_from_spans(e.text, s) for e, s in zip(examples, spans)]

    def score(self, examples: Sequence[CluenerExample], predictions: Sequence[Any]) -> Dict[str, float]:
        scores = cluener_scores([e.label for e in examples], predictions)
        return {
            "f1": 100.0 * scores.micro.f1,
            "precision": 100.0 * scores.micro.precision,
            "recall": 100.0 * scores.micro.recall,
        }
