"""Sequence classification: iflytek, tnews (one text), afqmc, cmnli, ocnli
(sentence pairs), wsc (one text with marked spans) and csl (keywords + abstract).

Input: ``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]``, truncated to ``maxlen``
with bert4keras's rule (the longer part loses tokens at its end). Segment ids
are all 0, as in the authors' recipe: with ``application='unilm'`` segment 1
would make the second text causal. Head: the first ([CLS]) token's hidden state
-> Dense softmax over the task's labels. Metric: accuracy. Each task differs only
in how an example becomes its text(s) (:meth:`SequenceClassificationTask.texts`).

WSC: the two spans are wrapped in marker characters that are single tokens of
the GAU-alpha vocab (the recipe's ``_`` is not in it): span1 (the antecedent
candidate) in ``【…】`` and span2 (the pronoun) in ``[…]``.

Files: JSON lines; labels are checked against the task's label set. Submission:
JSON lines ``{"id": <test id>, "label": "<label string>"}``.
"""
from __future__ import annotations

import abc
import dataclasses
import functools
import logging
from pathlib import Path
from types import MappingProxyType
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..examples import ClassificationExample, CslExample, SentencePairExample, WscExample
from ..features import Feature
from ..jsonio import Location, iter_example_records, nonempty, require, string_list
from ..metrics import accuracy
from .base import Task, TaskParams
from .spec import SplitFiles, SubmissionFormat, TaskDefaults, TaskSpec

__all__ = [
    "TNEWS_LABEL_DESCS",
    "NLI_LABELS",
    "WSC_MARKERS",
    "CSL_KEYWORD_SEPARATOR",
    "mark_wsc_spans",
    "SequenceClassificationTask",
    "SingleTextTask",
    "SentencePairTask",
    "WscTask",
    "CslTask",
    "IFLYTEK",
    "TNEWS",
    "AFQMC",
    "CMNLI",
    "OCNLI",
    "WSC",
    "CSL",
]

logger = logging.getLogger(__name__)

TNEWS_LABEL_DESCS: Mapping[str, str] = MappingProxyType(
    {
        "100": "news_story",
        "101": "news_culture",
        "102": "news_entertainment",
        "103": "news_sports",
        "104": "news_finance",
        "106": "news_house",
        "107": "news_car",
        "108": "news_edu",
        "109": "news_tech",
        "110": "news_military",
        "112": "news_travel",
        "113": "news_world",
        "114": "news_stock",
        "115": "news_agriculture",
        "116": "news_game",
    }
)
"""tnews label code -> ``label_desc``, as in ``tnews_public/labels.json`` (no 105 or 111)."""

NLI_LABELS: Tuple[str, ...] = ("entailment", "neutral", "contradiction")
NLI_UNLABELLED = "-"
"""The label of cmnli/ocnli rows without an annotator majority (dropped by the parser)."""

WSC_MARKERS: Tuple[Tuple[str, str], Tuple[str, str]] = (("【", "】"), ("[", "]"))
"""(opening, closing) markers of WSC span1 and span2; each is one token of the GAU-alpha vocab."""

CSL_KEYWORD_SEPARATOR = "；"
"""CSL keywords are joined with a full-width semicolon (as in the recipe) into the first text."""

TextPair = Tuple[str, Optional[str]]


# ---------------------------------------------------------------- parsers
def _label(spec: TaskSpec, record: dict, where: Location) -> str:
    """The record's ``label`` as a string, checked against the task's label set."""
    value = require(record, "label", (str, int), where)
    label = str(value)
    labels = spec.labels or ()
    if label not in labels:
        shown = ", ".join(repr(x) for x in labels) if len(labels) <= 20 else f"{labels[0]!r}..{labels[-1]!r}"
        raise where.error(f"unknown label {value!r} for {spec.name} (expected one of {shown})")
    return label


def parse_single_text(
    spec: TaskSpec,
    path: Path,
    labelled: bool,
    *,
    desc_key: str,
    descriptions: Optional[Mapping[str, str]] = None,
    keywords: bool = False,
) -> List[ClassificationExample]:
    """iflytek / tnews JSON lines: ``sentence``, ``label``, the label description; test: ``id``.

    Args:
        desc_key: the description field (``label_des`` iflytek, ``label_desc`` tnews).
        descriptions: label -> the description it must have (tnews), if checked.
        keywords: read the ``keywords`` field (tnews).
    """
    examples = []
    for record, where, example_id in iter_example_records(path, labelled):
        text = require(record, "sentence", str, where)
        label = desc = None
        if labelled:
            label = _label(spec, record, where)
            if desc_key in record:
                desc = require(record, desc_key, str, where)
                if descriptions is not None and descriptions[label] != desc:
                    raise where.error(
                        f"{desc_key} {desc!r} does not match label {label!r} ({descriptions[label]!r})"
                    )
        words = require(record, "keywords", str, where) if keywords and "keywords" in record else None
        examples.append(ClassificationExample(example_id, text, label, desc, words))
    return nonempty(examples, path)


def parse_sentence_pair(
    spec: TaskSpec, path: Path, labelled: bool, *, unlabelled: Optional[str] = None
) -> List[SentencePairExample]:
    """afqmc / cmnli / ocnli JSON lines: ``sentence1``, ``sentence2``, ``label``; ``id`` where present.

    Args:
        unlabelled: a label marking rows without a gold label (cmnli/ocnli ``'-'``):
            they are dropped and counted in a warning.
    """
    examples = []
    dropped = 0
    for record, where, example_id in iter_example_records(path, labelled):
        text_a = require(record, "sentence1", str, where)
        text_b = require(record, "sentence2", str, where)
        label = None
        if labelled:
            if unlabelled is not None and record.get("label") == unlabelled:
                dropped += 1
                continue
            label = _label(spec, record, where)
        examples.append(SentencePairExample(example_id, text_a, text_b, label))
    if dropped:
        logger.warning(
            "%s %s: dropped %d of %d records labelled %r (no gold label)",
            spec.name,
            path,
            dropped,
            dropped + len(examples),
            unlabelled,
        )
    return nonempty(examples, path)


def parse_csl(spec: TaskSpec, path: Path, labelled: bool) -> List[CslExample]:
    """csl JSON lines: ``id``, ``abst``, ``keyword`` (list of strings), ``label``."""
    examples = []
    for record, where, example_id in iter_example_records(path, labelled):
        abstract = require(record, "abst", str, where)
        keywords = string_list(record, "keyword", where)
        label = _label(spec, record, where) if labelled else None
        examples.append(CslExample(example_id, abstract, keywords, label))
    return nonempty(examples, path)


def parse_wsc(spec: TaskSpec, path: Path, labelled: bool) -> List[WscExample]:
    """CLUEWSC2020 JSON lines: ``text``, ``target`` spans, ``label``; id is ``idx`` (train/dev) or ``id`` (test).

    A span index outside the text is an error; a span text that does not match
    the text at its index is logged as a warning (the example is kept).
    """
    examples = []
    mismatches: List[str] = []
    keys = ("idx", "id") if labelled else ("id", "idx")
    for record, where, example_id in iter_example_records(path, labelled, keys):
        text = require(record, "text", str, where)
        target = require(record, "target", dict, where)
        spans: List[Any] = []
        for k in ("1", "2"):
            start = require(target, f"span{k}_index", int, where)
            span_text = require(target, f"span{k}_text", str, where)
            if not 0 <= start < len(text):
                raise where.error(f"span{k}_index {start} is outside the text (length {len(text)})")
            if text[start : start + len(span_text)] != span_text:
                mismatches.append(f"line {where.line} span{k}")
            spans += [start, span_text]
        label = _label(spec, record, where) if labelled else None
        examples.append(WscExample(example_id, text, spans[0], spans[1], spans[2], spans[3], label))
    if mismatches:
        logger.warning(
            "%s %s: %d span texts differ from the text at their index (kept): %s",
            spec.name,
            path,
            len(mismatches),
            ", ".join(mismatches[:5]) + (" ..." if len(mismatches) > 5 else ""),
        )
    return nonempty(examples, path)


def check_label_prediction(spec: TaskSpec, example: Any, prediction: Any) -> str:
    """A submitted label: one of the task's label strings."""
    if not isinstance(prediction, str) or prediction not in (spec.labels or ()):
        raise ValueError(f"{prediction!r} is not a valid {spec.name} label")
    return prediction


# ---------------------------------------------------------------- texts
def mark_wsc_spans(example: WscExample) -> str:
    """The WSC text with span1 wrapped in ``【】`` and span2 in ``[]``.

    Spans are located by their index and the length of their text (as in the
    official data and the recipe).

    Raises:
        ValueError: the spans overlap (naming the example id).
    """
    spans = [
        (example.span1_index, example.span1_index + len(example.span1_text), WSC_MARKERS[0]),
        (example.span2_index, example.span2_index + len(example.span2_text), WSC_MARKERS[1]),
    ]
    spans.sort()
    if spans[0][1] > spans[1][0]:
        raise ValueError(
            "wsc example %r: span1 %r at %d and span2 %r at %d overlap"
            % (example.id, example.span1_text, example.span1_index, example.span2_text, example.span2_index)
        )
    text, pieces, position = example.text, [], 0
    for start, end, (left, right) in spans:
        pieces.extend([text[position:start], left, text[start:end], right])
        position = end
    pieces.append(text[position:])
    return "".join(pieces)


# ---------------------------------------------------------------- the family
class SequenceClassificationTask(Task):
    """[CLS] pooling + Dense softmax over the task's labels (see the module docstring)."""

    main_metric = "accuracy"

    @abc.abstractmethod
    def texts(self, example: Any) -> TextPair:
        """The first text and the second one (or ``None``) of an example."""

    def check_vocab(self, tokenizer: Any) -> None:
        """Raise ``ValueError`` if the vocab lacks a token the task's input needs (default: none)."""

    def encode(
        self, examples: Sequence[Any], tokenizer: Any, params: TaskParams, labelled: bool
    ) -> List[Feature]:
        """One feature per example: ``token_ids`` ``(N,)``, label = class index."""
        self.check_vocab(tokenizer)
        if labelled:
            self.require_labels(examples)
        pairs = [self.texts(example) for example in examples]
        firsts = [first for first, _ in pairs]
        seconds = [second for _, second in pairs]
        has_second = any(second is not None for second in seconds)
        encoded = tokenizer.encode_batch(firsts, seconds if has_second else None, maxlen=params.maxlen)
        features = []
        for index, (example, (token_ids, _)) in enumerate(zip(examples, encoded)):
            label = self.label_index[example.label] if labelled else None
            features.append(Feature({"token_ids": np.asarray(token_ids, dtype=np.int32)}, label, index))
        return features

    def build_model(self, encoder: Any, params: TaskParams) -> Any:
        from ..heads import cls_classifier

        return cls_classifier(encoder, len(self.labels), params.kernel_initializer)

    def summarize(self, feature: Feature, output: np.ndarray) -> np.ndarray:
        """The ``(C,)`` logits."""
        return np.asarray(output, dtype=np.float32)

    def decode(
        self, examples: Sequence[Any], features: Sequence[Feature], summaries: Sequence[Any], params: TaskParams
    ) -> List[str]:
        """The label string of the highest logit, per example."""
        predictions: List[Optional[str]] = [None] * len(examples)
        for feature, logits in zip(features, summaries):
            predictions[feature.example_index] = self.labels[int(np.argmax(logits))]
        missing = [examples[i].id for i, p in enumerate(predictions) if p is None]
        if missing:
            raise ValueError("%s: no prediction for examples %s" % (self.name, missing[:5]))
        return predictions  # type: ignore[return-value]

    def score(self, examples: Sequence[Any], predictions: Sequence[Any]) -> Dict[str, float]:
        return {"accuracy": 100.0 * accuracy([e.label for e in examples], predictions)}


class SingleTextTask(SequenceClassificationTask):
    """iflytek, tnews: ``[CLS] sentence [SEP]``."""

    def texts(self, example: ClassificationExample) -> TextPair:
        return example.text, None


class SentencePairTask(SequenceClassificationTask):
    """afqmc, cmnli, ocnli: ``[CLS] sentence1 [SEP] sentence2 [SEP]``."""

    def texts(self, example: SentencePairExample) -> TextPair:
        return example.text_a, example.text_b


class WscTask(SequenceClassificationTask):
    """wsc: the text with its two spans marked (:func:`mark_wsc_spans`)."""

    def texts(self, example: WscExample) -> TextPair:
        return mark_wsc_spans(example), None

    def check_vocab(self, tokenizer: Any) -> None:
        for marker in (m for pair in WSC_MARKERS for m in pair):
            if tokenizer.token_to_id(marker) == tokenizer.unk_id:
                raise ValueError("wsc span marker %r is not a token of the vocab" % marker)


class CslTask(SequenceClassificationTask):
    """csl: ``[CLS] keyword；keyword… [SEP] abstract [SEP]``."""

    def texts(self, example: CslExample) -> TextPair:
        return CSL_KEYWORD_SEPARATOR.join(example.keywords), example.abstract


# ---------------------------------------------------------------- the tasks
_LABEL_SUBMISSION = SubmissionFormat(check=check_label_prediction)
_RECIPE = TaskDefaults(maxlen=128, batch_size=32, epochs=10)

IFLYTEK = TaskSpec(
    name="iflytek",
    family=SingleTextTask,
    example_type=ClassificationExample,
    parse=functools.partial(parse_single_text, desc_key="label_des"),
    labels=tuple(str(i) for i in range(119)),
    defaults=_RECIPE,
    submission=_LABEL_SUBMISSION,
    published_dev_score=61.41,
)

TNEWS = TaskSpec(
    name="tnews",
    family=SingleTextTask,
    example_type=ClassificationExample,
    parse=functools.partial(parse_single_text, desc_key="label_desc", descriptions=TNEWS_LABEL_DESCS, keywords=True),
    labels=tuple(TNEWS_LABEL_DESCS),
    files=SplitFiles(test_1_0=("test1.0.json",)),  # CLUE 1.1 replaced the test set
    defaults=_RECIPE,
    submission=_LABEL_SUBMISSION,
    published_dev_score=57.76,
)

AFQMC = TaskSpec(
    name="afqmc",
    family=SentencePairTask,
    example_type=SentencePairExample,
    parse=parse_sentence_pair,
    labels=("0", "1"),
    defaults=_RECIPE,
    submission=_LABEL_SUBMISSION,
    published_dev_score=74.17,
)

CMNLI = TaskSpec(
    name="cmnli",
    family=SentencePairTask,
    example_type=SentencePairExample,
    parse=functools.partial(parse_sentence_pair, unlabelled=NLI_UNLABELLED),
    labels=NLI_LABELS,
    defaults=_RECIPE,
    submission=_LABEL_SUBMISSION,
    published_dev_score=81.82,
)

OCNLI = dataclasses.replace(
    CMNLI,
    name="ocnli",
    # The CLUE training set is the 50k file: train.50k.json in the current OCNLI release,
    # train.json in older ones (train.3k.json, an official subset, only via load_file).
    files=SplitFiles(train=(("train.50k.json", "train.json"),)),
    submission=SubmissionFormat(check=check_label_prediction, stem="ocnli_50k"),
    published_dev_score=75.86,
)
"""Read and trained like cmnli; its own training file, submission name and score."""

WSC = TaskSpec(
    name="wsc",
    family=WscTask,
    example_type=WscExample,
    parse=parse_wsc,
    labels=("true", "false"),
    files=SplitFiles(test_1_0=("test1.0.json",)),  # CLUE 1.1 replaced the test set
    aliases=("cluewsc2020", "cluewsc"),
    defaults=TaskDefaults(maxlen=128, batch_size=32, epochs=30),
    submission=SubmissionFormat(check=check_label_prediction, stem="cluewsc"),
    published_dev_score=79.93,
)

CSL = TaskSpec(
    name="csl",
    family=CslTask,
    example_type=CslExample,
    parse=parse_csl,
    labels=("0", "1"),
    defaults=_RECIPE,
    submission=_LABEL_SUBMISSION,
    published_dev_score=85.67,
)
