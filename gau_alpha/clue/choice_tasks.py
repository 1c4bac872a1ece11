"""Multiple choice: c3 (reading comprehension) and chid (idiom cloze).

Each choice is scored as its own sequence; the ``K`` sequences of one feature
go through the encoder together, their [CLS] states are mapped to one score
each, and a softmax over the choices gives the training loss
(:func:`~gau_alpha.clue.heads.multiple_choice_scorer`). Features carry
``token_ids`` ``(K, N)`` and ``choice_mask`` ``(K,)`` (segment ids are all 0); missing
choices are placeholder ``[CLS] [SEP]`` rows with ``choice_mask = 0``.

c3: ``K = 4``; choice ``c`` of a question ``q`` on document ``d`` is
``[CLS] d [SEP] q [SEP] c [SEP]`` (document turns joined with ``|``); when too
long, the longest of choice/question/document loses tokens at its end first
(bert4keras's ``truncate_sequences`` rule, ties go to the choice, then the
question). Prediction: the highest-scoring choice. Metric: accuracy.

chid: one feature per blank, ``K`` = number of candidates (10 in CLUE).
Candidate ``c`` for blank ``b`` is ``[CLS] c [SEP] left [unused1] right [SEP]``
where the blank itself is the ``[unused1]`` marker, the passage's other blanks
are four ``[MASK]`` each, and ``left``/``right`` are cut to the tokens nearest
the blank (split evenly when both sides are long). Prediction: per file line
(all passages of one line share the candidate list and each candidate answers
at most one blank of the line), the joint assignment of distinct candidates to
blanks with the largest total score (Hungarian algorithm,
:mod:`gau_alpha.clue.assignment`). Metric: accuracy over blanks.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from .assignment import assign_candidates
from .base import Task, TaskParams
from .examples import C3Example, ChidExample
from .features import Feature, pad_arrays, truncate_longest
from .heads import classification_loss, multiple_choice_scorer
from .metrics import accuracy

__all__ = ["C3Task", "ChidTask", "C3_CHOICES", "C3_TURN_SEPARATOR", "CHID_BLANK_TOKEN", "CHID_OTHER_BLANK"]

C3_CHOICES = 4
"""Choices per c3 question in the model (CLUE c3 questions have 2 to 4)."""
C3_TURN_SEPARATOR = "|"
CHID_BLANK_TOKEN = "[unused1]"
"""Marks the blank being filled (a vocab token the pre-training never used)."""
CHID_OTHER_BLANK = ("[MASK]",) * 4
"""Stands for each other blank of the passage (idioms have four characters)."""
_CHID_TAG = re.compile(r"#idiom\d+#")


def _content_ids(tokenizer: Any, texts: Sequence[str]) -> List[List[int]]:
    """Token ids of each text without ``[CLS]``/``[SEP]`` (batch-encoded)."""
    if not texts:
        return []
    return [ids[1:-1] for ids, _ in tokenizer.encode_batch(list(texts))]


def _choice_feature(
    rows: List[List[int]], width: int, cls_id: int, sep_id: int, label: Any, index: int, meta: Dict[str, Any]
) -> Feature:
    """Pad ``rows`` to ``width`` choices with ``[CLS] [SEP]`` placeholders (masked out) and
    build the feature: ``token_ids`` ``(width, N)``, ``choice_mask`` ``(width,)``."""
    mask = np.zeros(width, dtype=np.float32)
    mask[: len(rows)] = 1.0
    rows = rows + [[cls_id, sep_id]] * (width - len(rows))
    token_ids = pad_arrays([np.asarray(r, dtype=np.int32) for r in rows])
    return Feature({"token_ids": token_ids, "choice_mask": mask}, label, index, meta)


class _ChoiceTask(Task):
    """Shared model, loss and label handling of c3 and chid."""

    main_metric = "accuracy"

    def input_names(self) -> List[str]:
        return ["token_ids", "segment_ids", "choice_mask"]

    def label_shape(self) -> tuple:
        return (None,)

    def collate_labels(self, features: Sequence[Feature], inputs: Dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray([f.label for f in features], dtype=np.int32)

    def build_model(self, encoder: Any, params: TaskParams) -> Any:
        return multiple_choice_scorer(encoder, params.kernel_initializer)

    def loss(self, labels: Any, outputs: Any) -> Any:
        return classification_loss(labels, outputs)

    def summarize(self, feature: Feature, output: np.ndarray) -> np.ndarray:
        """The scores of the real choices, ``(choices,)``."""
        count = int(feature.inputs["choice_mask"].sum())
        return np.asarray(output[:count], dtype=np.float32)


class C3Task(_ChoiceTask):
    """c3: the question's choices scored against the document (see the module docstring)."""

    def encode(
        self, examples: Sequence[C3Example], tokenizer: Any, params: TaskParams, labelled: bool
    ) -> List[Feature]:
        """One feature per question, ``(4, N)`` ids; label = index of the answer."""
        for example in examples:
            if len(example.choices) > C3_CHOICES:
                raise ValueError(
                    "c3 question %r has %d choices; at most %d are supported"
                    % (example.id, len(example.choices), C3_CHOICES)
                )
            if labelled and example.label is None:
                raise ValueError("c3 question %r has no answer" % (example.id,))
        documents = list(OrderedDict.fromkeys(C3_TURN_SEPARATOR.join(e.context) for e in examples))
        document_ids = dict(zip(documents, _content_ids(tokenizer, documents)))
        question_ids = _content_ids(tokenizer, [e.question for e in examples])
        choices = [choice for e in examples for choice in e.choices]
        choice_ids = iter(_content_ids(tokenizer, choices))
        cls_id, sep_id = tokenizer._token_start_id, tokenizer._token_end_id
        budget = params.maxlen - 4
        if budget < 3:
            raise ValueError("c3: maxlen %d is too small" % params.maxlen)
        features = []
        for index, (example, question) in enumerate(zip(examples, question_ids)):
            document = document_ids[C3_TURN_SEPARATOR.join(example.context)]
            rows = []
            for _ in example.choices:
                choice = next(choice_ids)
                keep_c, keep_q, keep_d = truncate_longest([len(choice), len(question), len(document)], budget)
                rows.append(
                    [cls_id] + document[:keep_d] + [sep_id] + question[:keep_q] + [sep_id] + choice[:keep_c] + [sep_id]
                )
            label = example.label_index if labelled else None
            features.append(_choice_feature(rows, C3_CHOICES, cls_id, sep_id, label, index, {}))
        return features

    def decode(
        self, examples: Sequence[C3Example], features: Sequence[Feature], summaries: Sequence[Any], params: TaskParams
    ) -> List[int]:
        """Index of the highest-scoring choice, per question."""
        predictions = [-1] * len(examples)
        for feature, scores in zip(features, summaries):
            predictions[feature.example_index] = int(np.argmax(scores))
        return predictions

    def score(self, examples: Sequence[C3Example], predictions: Sequence[Any]) -> Dict[str, float]:
        return {"accuracy": 100.0 * accuracy([e.label_index for e in examples], predictions)}


class ChidTask(_ChoiceTask):
    """chid: candidates scored per blank, jointly assigned per file line (see the module docstring)."""

    def encode(
        self, examples: Sequence[ChidExample], tokenizer: Any, params: TaskParams, labelled: bool
    ) -> List[Feature]:
        """One feature per blank, ``(K, N)`` ids; label = index of the right candidate."""
        unk = tokenizer._token_unk_id
        blank_id = tokenizer.token_to_id(CHID_BLANK_TOKEN)
        other_ids = [tokenizer.token_to_id(t) for t in CHID_OTHER_BLANK]
        if blank_id == unk or unk in other_ids:
            raise ValueError(
                "chid markers %s / %s are not tokens of the vocab" % (CHID_BLANK_TOKEN, CHID_OTHER_BLANK[0])
            )
        cls_id, sep_id = tokenizer._token_start_id, tokenizer._token_end_id
        width = max((len(e.candidates) for e in examples), default=1)
        candidate_cache: Dict[Tuple[str, ...], List[List[int]]] = {}
        features = []
        for index, example in enumerate(examples):
            if labelled and example.label is None:
                raise ValueError("chid passage %r has no answers" % (example.id,))
            if example.candidates not in candidate_cache:
                candidate_cache[example.candidates] = _content_ids(tokenizer, example.candidates)
            candidates = candidate_cache[example.candidates]
            pieces = _content_ids(tokenizer, _CHID_TAG.split(example.text))
            if len(pieces) != len(example.blanks) + 1:
                raise ValueError("chid passage %r: %d blank tags but %d blanks listed"
                                 % (example.id, len(pieces) - 1, len(example.blanks)))
            budget = params.maxlen - max(len(c) for c in candidates) - 4  # [CLS] c [SEP] .. [unused1] .. [SEP]
            if budget < 2:
                raise ValueError("chid: maxlen %d is too small" % params.maxlen)
            for blank in range(len(example.blanks)):
                left: List[int] = []
                for position, piece in enumerate(pieces[: blank + 1]):
                    left += (other_ids if position else []) + piece
                right: List[int] = []
                for position, piece in enumerate(pieces[blank + 1 :]):
                    right += (other_ids if position else []) + piece
                keep_left, keep_right = _around_blank(len(left), len(right), budget)
                context = left[len(left) - keep_left :] + [blank_id] + right[:keep_right] + [sep_id]
                rows = [[cls_id] + candidate + [sep_id] + context for candidate in candidates]
                label = int(example.label[blank]) if labelled else None
                features.append(_choice_feature(rows, width, cls_id, sep_id, label, index, {"blank": blank}))
        return features

    def decode(
        self, examples: Sequence[ChidExample], features: Sequence[Feature], summaries: Sequence[Any], params: TaskParams
    ) -> List[List[int]]:
        """Per passage, the candidate index of each blank, from the joint assignment over its file line."""
        scores: List[List[Any]] = [[None] * len(e.blanks) for e in examples]
        for feature, summary in zip(features, summaries):
            scores[feature.example_index][feature.meta["blank"]] = summary
        groups: Dict[Tuple[str, Tuple[str, ...]], List[int]] = OrderedDict()
        for index, example in enumerate(examples):
            if any(s is None for s in scores[index]):
                raise ValueError("chid passage %r: some blanks were not scored" % (example.id,))
            groups.setdefault((chid_line(example), example.candidates), []).append(index)
        predictions: List[List[int]] = [[] for _ in examples]
        for members in groups.values():
            matrix = np.stack([row for i in members for row in scores[i]])
            choice = iter(assign_candidates(matrix))
            for i in members:
                predictions[i] = [next(choice) for _ in examples[i].blanks]
        return predictions

    def score(self, examples: Sequence[ChidExample], predictions: Sequence[Any]) -> Dict[str, float]:
        golds = [g for e in examples for g in e.label]
        flat = [p for prediction in predictions for p in prediction]
        return {"accuracy": 100.0 * accuracy(golds, flat)}


def chid_line(example: ChidExample) -> str:
    """The file line of a chid passage (its id is ``'<line>-<passage>'``)."""
    return str(example.id).rsplit("-", 1)[0]


def _around_blank(left: int, right: int, budget: int) -> Tuple[int, int]:
    """How many tokens to keep left and right of a blank: all when they fit, else
    ``budget`` in total, split evenly unless one side is shorter than its half."""
    if left + right <= budget:
        return left, right
    half = budget // 2
    if left <= half:
        return left, budget - left
    if right <= budget - half:
        return budget - right, right
    return half, budget - half
