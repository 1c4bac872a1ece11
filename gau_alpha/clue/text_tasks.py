"""Sequence classification tasks: iflytek, tnews (one text), afqmc, cmnli, ocnli
(sentence pairs), wsc (one text with marked spans) and csl (keywords + abstract).

Input: ``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]``, truncated to ``maxlen``
with bert4keras's rule (the longer part loses tokens at its end). Segment ids
are all 0, as in the authors' recipe: with ``application='unilm'`` segment 1
would make the second text causal. Head: the first ([CLS]) token's hidden state
-> Dense softmax over the task's labels. Metric: accuracy.

WSC: the two spans are wrapped in marker characters that are single tokens of
the GAU-alpha vocab (the recipe's ``_`` is not in it): span1 (the antecedent
candidate) in ``【…】`` and span2 (the pronoun) in ``[…]``.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .base import Task, TaskDefaults, TaskParams
from .examples import ClassificationExample, CslExample, SentencePairExample, WscExample
from .features import Feature
from .heads import classification_loss, first_token_classifier
from .labels import label_list
from .metrics import accuracy

__all__ = ["SequenceClassificationTask", "WSC_MARKERS", "mark_wsc_spans", "CSL_KEYWORD_SEPARATOR"]

WSC_MARKERS: Tuple[Tuple[str, str], Tuple[str, str]] = (("【", "】"), ("[", "]"))
"""(opening, closing) markers of WSC span1 and span2; each is one token of the GAU-alpha vocab."""

CSL_KEYWORD_SEPARATOR = "；"
"""CSL keywords are joined with a full-width semicolon (as in the recipe) into the first text."""

TextPair = Tuple[str, Optional[str]]


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


def _classification_texts(example: ClassificationExample) -> TextPair:
    return example.text, None


def _pair_texts(example: SentencePairExample) -> TextPair:
    return example.text_a, example.text_b


def _wsc_texts(example: WscExample) -> TextPair:
    return mark_wsc_spans(example), None


def _csl_texts(example: CslExample) -> TextPair:
    return CSL_KEYWORD_SEPARATOR.join(example.keywords), example.abstract


TEXTS: Dict[str, Callable[[Any], TextPair]] = {
    "iflytek": _classification_texts,
    "tnews": _classification_texts,
    "afqmc": _pair_texts,
    "cmnli": _pair_texts,
    "ocnli": _pair_texts,
    "wsc": _wsc_texts,
    "csl": _csl_texts,
}


class SequenceClassificationTask(Task):
    """[CLS] pooling + Dense softmax over the task's labels (see the module docstring)."""

    main_metric = "accuracy"

    def __init__(self, name: str, defaults: TaskDefaults):
        super().__init__(name, defaults)
        self.labels: List[str] = label_list(name)
        self.label_index = {label: i for i, label in enumerate(self.labels)}
        self.texts = TEXTS[name]

    def _check_vocab(self, tokenizer: Any) -> None:
        if self.name != "wsc":
            return
        unk = tokenizer._token_unk_id
        for marker in (m for pair in WSC_MARKERS for m in pair):
            if tokenizer.token_to_id(marker) == unk:
                raise ValueError("wsc span marker %r is not a token of the vocab" % marker)

    def encode(
        self, examples: Sequence[Any], tokenizer: Any, params: TaskParams, labelled: bool
    ) -> List[Feature]:
        """One feature per example: ``token_ids`` ``(N,)``, label = class index."""
        self._check_vocab(tokenizer)
        pairs = [self.texts(example) for example in examples]
        firsts = [first for first, _ in pairs]
        seconds = [second for _, second in pairs]
        has_second = any(second is not None for second in seconds)
        encoded = tokenizer.encode_batch(firsts, seconds if has_second else None, maxlen=params.maxlen)
        features = []
        for index, (example, (token_ids, _)) in enumerate(zip(examples, encoded)):
            label = None
            if labelled:
                if example.label is None:
                    raise ValueError("%s example %r has no label" % (self.name, example.id))
                label = self.label_index[example.label]
            ids = np.asarray(token_ids, dtype=np.int32)
            features.append(Feature({"token_ids": ids}, label, index))
        return features

    def label_shape(self) -> tuple:
        return (None,)

    def collate_labels(self, features: Sequence[Feature], inputs: Dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray([f.label for f in features], dtype=np.int32)

    def build_model(self, encoder: Any, params: TaskParams) -> Any:
        return first_token_classifier(encoder, len(self.labels), params.kernel_initializer)

    def loss(self, labels: Any, outputs: Any) -> Any:
        return classification_loss(labels, outputs)

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
