"""cluener: fine-grained NER (CLUENER2020, 10 entity types) with a GlobalPointer head.

Files: JSON lines ``{"text", "label": {type: {entity_text: [[start, end], ...]}}}``
with **inclusive** ends (checked against the text: :func:`check_entity_label`); test
``{"id", "text"}``. Submission: JSON lines ``{"id": <id>, "label": <the same dict>}``.

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
highest-scoring ones, which only bounds what an untrained model emits). Metric:
entity-level micro F1 (percent), plus precision and recall.
"""
from __future__ import annotations

import logging
import numbers
from pathlib import Path
from typing import Any, Dict, List, Sequence, Set, Tuple

import numpy as np

from ..examples import CluenerExample, EntityLabel
from ..features import Feature
from ..jsonio import iter_example_records, nonempty, require
from ..metrics import cluener_scores
from .base import Task, TaskParams
from .spec import SubmissionFormat, TaskDefaults, TaskSpec

__all__ = [
    "CLUENER_TYPES",
    "CluenerTask",
    "check_entity_label",
    "entities_from_spans",
    "parse_cluener",
    "CLUENER",
]

logger = logging.getLogger(__name__)

CLUENER_TYPES: Tuple[str, ...] = (
    "address",
    "book",
    "company",
    "game",
    "government",
    "movie",
    "name",
    "organization",
    "position",
    "scene",
)
"""The 10 CLUENER2020 entity types, in class-index order."""

CharSpan = Tuple[str, int, int]
"""``(type, start, end)`` with an inclusive character ``end``."""


# ---------------------------------------------------------------- labels
def check_entity_label(label: Any, text: str) -> EntityLabel:
    """Check a cluener label against its sentence and return a normalised copy.

    Checks: ``label`` is an object whose keys are CLUENER types, each mapping
    entity texts to a non-empty list of ``[start, end]`` integer pairs (lists or
    tuples; NumPy integers are accepted and converted to ``int``) with
    ``0 <= start <= end < len(text)`` and ``text[start:end + 1] == entity_text``
    (ends are inclusive).

    Raises:
        ValueError: with a message saying which entity and span is wrong.
    """
    if not isinstance(label, dict):
        raise ValueError(f"label should be an object {{type: {{entity: [[start, end]]}}}}, got {type(label).__name__}")
    checked: EntityLabel = {}
    for etype, entities in label.items():
        if etype not in CLUENER_TYPES:
            raise ValueError(f"unknown entity type {etype!r} (expected one of {', '.join(CLUENER_TYPES)})")
        if not isinstance(entities, dict):
            raise ValueError(f"label[{etype!r}] should be an object, got {type(entities).__name__}")
        checked[etype] = {}
        for entity, positions in entities.items():
            if not isinstance(positions, list) or not positions:
                raise ValueError(f"label[{etype!r}][{entity!r}] should be a non-empty list of [start, end]")
            spans = []
            for pair in positions:
                if (
                    not isinstance(pair, (list, tuple))
                    or len(pair) != 2
                    or not all(isinstance(x, numbers.Integral) and not isinstance(x, bool) for x in pair)
                ):
                    raise ValueError(f"label[{etype!r}][{entity!r}]: {pair!r} is not a [start, end] pair of integers")
                start, end = int(pair[0]), int(pair[1])
                if not 0 <= start <= end < len(text):
                    raise ValueError(
                        f"{etype} {entity!r}: span [{start}, {end}] is outside the text (length {len(text)})"
                    )
                if text[start : end + 1] != entity:
                    raise ValueError(
                        f"{etype} {entity!r}: span [{start}, {end}] (inclusive end) covers "
                        f"{text[start:end + 1]!r}, not the entity text"
                    )
                spans.append([start, end])
            checked[etype][entity] = spans
    return checked


def entities_from_spans(text: str, spans: Set[CharSpan]) -> EntityLabel:
    """The official label dict ``{type: {entity text: [[start, end], ...]}}`` of ``spans``.

    Types, entity texts and positions are sorted, so the result does not depend
    on the order of ``spans``.
    """
    label: EntityLabel = {}
    for etype, start, end in sorted(spans):
        label.setdefault(etype, {}).setdefault(text[start : end + 1], []).append([start, end])
    return label


def parse_cluener(spec: TaskSpec, path: Path, labelled: bool) -> List[CluenerExample]:
    """CLUENER2020 JSON lines: ``text`` and ``label`` = {type: {entity: [[start, end], ...]}}, ends inclusive."""
    examples = []
    for record, where, example_id in iter_example_records(path, labelled):
        text = require(record, "text", str, where)
        label = None
        if labelled:
            try:
                label = check_entity_label(require(record, "label", dict, where), text)
            except ValueError as exc:
                raise where.error(str(exc)) from exc
        examples.append(CluenerExample(example_id, text, label))
    return nonempty(examples, path)


def check_entities_prediction(spec: TaskSpec, example: CluenerExample, prediction: Any) -> EntityLabel:
    """A submitted sentence: a label dict whose spans match the test text."""
    return check_entity_label(prediction, example.text)


# ---------------------------------------------------------------- the family
class CluenerTask(Task):
    """GlobalPointer NER (see the module docstring); :attr:`labels` are the entity types."""

    main_metric = "f1"

    def encode(
        self, examples: Sequence[CluenerExample], tokenizer: Any, params: TaskParams, labelled: bool
    ) -> List[Feature]:
        """One feature per sentence: ``token_ids`` ``(N,)``; label = the
        gold ``(type index, first token, last token)`` triples; meta: token offsets."""
        if labelled:
            self.require_labels(examples)
        features = []
        total = dropped = 0
        for index, example in enumerate(examples):
            ids, _, spans = tokenizer.encode_with_offsets(example.text, maxlen=params.maxlen)
            offsets = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
            label = None
            if labelled:
                starts = {int(offsets[t, 0]): t for t in range(1, len(ids) - 1)}
                ends = {int(offsets[t, 1]) - 1: t for t in range(1, len(ids) - 1)}
                label = []
                for etype, start, end in sorted(example.spans()):
                    total += 1
                    if start in starts and end in ends and starts[start] <= ends[end]:
                        label.append((self.label_index[etype], starts[start], ends[end]))
                    else:
                        dropped += 1
            token_ids = np.asarray(ids, dtype=np.int32)
            features.append(Feature({"token_ids": token_ids}, label, index, {"offsets": offsets}))
        if dropped:
            logger.warning(
                "cluener: %d of %d gold entities do not start and end on token boundaries within "
                "maxlen=%d and are left out of the training labels", dropped, total, params.maxlen
            )
        return features

    def label_shape(self) -> tuple:
        return (None, len(self.labels), None, None)

    def label_dtype(self) -> str:
        return "float32"

    def collate_labels(self, features: Sequence[Feature], inputs: Dict[str, np.ndarray]) -> np.ndarray:
        """Dense ``(B, types, N, N)`` 0/1 matrix."""
        width = inputs["token_ids"].shape[1]
        labels = np.zeros((len(features), len(self.labels), width, width), dtype=np.float32)
        for row, feature in enumerate(features):
            for etype, start, end in feature.label:
                labels[row, etype, start, end] = 1.0
        return labels

    def build_model(self, encoder: Any, params: TaskParams) -> Any:
        from ..heads import global_pointer_tagger

        return global_pointer_tagger(encoder, len(self.labels), params.key_size, params.kernel_initializer)

    def loss(self, labels: Any, outputs: Any) -> Any:
        from ..heads import global_pointer_loss

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
        names = [self.labels[t] for t in etypes[keep].tolist()]
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


# ---------------------------------------------------------------- the task
CLUENER = TaskSpec(
    name="cluener",
    family=CluenerTask,
    example_type=CluenerExample,
    parse=parse_cluener,
    labels=CLUENER_TYPES,
    defaults=TaskDefaults(maxlen=256, batch_size=32, epochs=10),
    submission=SubmissionFormat(check=check_entities_prediction),
    published_dev_score=80.01,
)
