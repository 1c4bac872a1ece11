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
question). Prediction: the highest-scoring choice. Metric: accuracy. Files: a JSON
array of documents per file, train/dev = the ``d-`` (dialogue) and ``m-`` (mixed)
files; submission: JSON lines ``{"id": <question id>, "label": <choice index>}``.

chid: one feature per blank, ``K`` = number of candidates (10 in CLUE).
Candidate ``c`` for blank ``b`` is ``[CLS] c [SEP] left [unused1] right [SEP]``
where the blank itself is the ``[unused1]`` marker, the passage's other blanks
are four ``[MASK]`` each, and ``left``/``right`` are cut to the tokens nearest
the blank (split evenly when both sides are long). Prediction: per file line
(all passages of one line share the candidate list and each candidate answers
at most one blank of the line), the joint assignment of distinct candidates to
blanks with the largest total score (Hungarian algorithm,
:mod:`gau_alpha.clue.assignment`). Metric: accuracy over blanks. Files: JSON lines
of passages with ``#idiomNNNNNN#`` blanks, answers of train/dev in
``<stem>_answer.json``; submission: one JSON object ``{blank tag: candidate index}``.
"""
from __future__ import annotations

import logging
import numbers
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

import numpy as np

from gau_alpha.errors import DataError

from ..assignment import assign_candidates
from ..examples import C3Example, ChidExample, ExampleId
from ..features import Feature, pad_arrays, truncate_longest
from ..jsonio import (
    Location,
    UniqueIds,
    iter_json_lines,
    load_json_document,
    nonempty,
    record_id,
    require,
    string_list,
)
from ..metrics import accuracy
from .base import Task, TaskParams
from .spec import SplitFiles, SubmissionFormat, TaskDefaults, TaskSpec

__all__ = [
    "C3Task",
    "ChidTask",
    "C3_CHOICES",
    "C3_TURN_SEPARATOR",
    "CHID_BLANK",
    "CHID_BLANK_TOKEN",
    "CHID_OTHER_BLANK",
    "chid_line",
    "parse_c3",
    "parse_chid",
    "C3",
    "CHID",
]

logger = logging.getLogger(__name__)

C3_CHOICES = 4
"""Choices per c3 question in the model (CLUE c3 questions have 2 to 4)."""
C3_TURN_SEPARATOR = "|"
CHID_BLANK = re.compile(r"#idiom\d+#")
"""A blank of a chid passage: a tag like ``#idiom000001#`` (the submission key)."""
CHID_BLANK_TOKEN = "[unused1]"
"""Marks the blank being filled (a vocab token the pre-training never used)."""
CHID_OTHER_BLANK = ("[MASK]",) * 4
"""Stands for each other blank of the passage (idioms have four characters)."""


# ---------------------------------------------------------------- parsers
def parse_c3(spec: TaskSpec, path: Path, labelled: bool) -> List[C3Example]:
    """C3: a JSON array of documents ``[paragraphs, questions, doc_id]`` (test: no doc_id, per-question ``id``)."""
    document = load_json_document(path, list, "a JSON array of documents")
    top = Location(path)
    examples: List[C3Example] = []
    test_ids = UniqueIds("question id")
    for d, doc in enumerate(document):
        where = top.at(d)
        if not isinstance(doc, list) or len(doc) not in ((3,) if labelled else (2, 3)):
            wanted = "[paragraphs, questions, doc_id]" if labelled else "[paragraphs, questions(, doc_id)]"
            raise where.error(f"document should be a list {wanted}")
        paragraphs, questions = doc[0], doc[1]
        if not isinstance(paragraphs, list) or not paragraphs or not all(isinstance(x, str) for x in paragraphs):
            raise where.error("document[0] should be a non-empty list of strings")
        if not isinstance(questions, list) or not questions:
            raise where.error("document[1] should be a non-empty list of questions")
        doc_id = None
        if len(doc) == 3:
            doc_id = doc[2]
            if not isinstance(doc_id, str):
                raise where.error("document[2] (the document id) should be a string")
        for q, item in enumerate(questions):
            qwhere = top.at(f"{d} question {q}")
            if not isinstance(item, dict):
                raise qwhere.error("question should be an object")
            question = require(item, "question", str, qwhere)
            choices = string_list(item, "choice", qwhere)
            if labelled:
                answer = require(item, "answer", str, qwhere)
                if answer not in choices:
                    raise qwhere.error(f"answer {answer!r} is not one of the choices {list(choices)}")
                example_id: ExampleId = f"{path.stem}-{d}-{q}"
            else:
                answer = None
                example_id = test_ids.add(record_id(item, ("id",), 0, qwhere, required=True), qwhere)
            examples.append(C3Example(example_id, tuple(paragraphs), question, choices, answer, doc_id))
    return nonempty(examples, path)


def parse_chid(spec: TaskSpec, path: Path, labelled: bool, *, answer_path: Optional[Path] = None) -> List[ChidExample]:
    """ChID JSON lines ``{"candidates": [...], "content": [passage, ...]}``, one example per passage.

    Blanks are tags ``#idiomNNNNNN#``; labelled data takes each blank's candidate
    index from the answer file ``{tag: index}`` (default ``<stem>_answer.json``
    beside ``path``). Answer-file tags that no passage uses are logged as a warning.
    """
    answers: Optional[Dict[str, Any]] = None
    if labelled:
        answer_path = Path(answer_path) if answer_path is not None else path.with_name(f"{path.stem}_answer.json")
        answers = load_json_document(answer_path, dict, "a JSON object {tag: index}")
    examples: List[ChidExample] = []
    seen: Set[str] = set()
    for index, (line, record) in enumerate(iter_json_lines(path)):
        where = Location(path, line)
        candidates = string_list(record, "candidates", where)
        passages = string_list(record, "content", where)
        for p, text in enumerate(passages):
            blanks = tuple(CHID_BLANK.findall(text))
            if not blanks:
                raise where.error(f"content[{p}] has no #idiomNNNNNN# blank")
            for tag in blanks:
                if tag in seen:
                    raise where.error(f"blank {tag} occurs more than once in the file")
                seen.add(tag)
            label = None
            if answers is not None:
                label = tuple(_chid_answer(answers, tag, len(candidates), answer_path, where) for tag in blanks)
            examples.append(ChidExample(f"{index}-{p}", text, candidates, blanks, label))
    if answers is not None:
        unused = sorted(set(answers) - seen)
        if unused:
            logger.warning(
                "%s %s: %d answers have no blank in %s (e.g. %s)", spec.name, answer_path, len(unused), path, unused[0]
            )
    return nonempty(examples, path)


def _chid_answer(answers: Dict[str, Any], tag: str, n_candidates: int, answer_path: Path, where: Location) -> int:
    if tag not in answers:
        raise where.error(f"blank {tag} has no answer in {answer_path}")
    value = answers[tag]
    if not _is_index(value, n_candidates):
        raise DataError(
            answer_path, f"answer for {tag} should be a candidate index 0..{n_candidates - 1}, got {value!r}"
        )
    return value


# ---------------------------------------------------------------- submissions
def _is_index(value: Any, size: int) -> bool:
    """True for an integer (Python or NumPy, not bool) in ``0..size-1``."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and 0 <= int(value) < size


def check_choice_prediction(spec: TaskSpec, example: C3Example, prediction: Any) -> int:
    """A submitted c3 answer: the index of one of the question's choices."""
    if not _is_index(prediction, len(example.choices)):
        raise ValueError(
            f"{spec.name} prediction should be a choice index 0..{len(example.choices) - 1}, got {prediction!r}"
        )
    return int(prediction)


def check_candidates_prediction(spec: TaskSpec, example: ChidExample, prediction: Any) -> List[int]:
    """A submitted chid passage: one candidate index per blank."""
    sequence = hasattr(prediction, "__len__") and not isinstance(prediction, (str, bytes, dict))
    values = list(prediction) if sequence else None
    if values is None or len(values) != len(example.blanks):
        raise ValueError(
            f"{spec.name} prediction should list one candidate index per blank "
            f"({len(example.blanks)}), got {prediction!r}"
        )
    for value in values:
        if not _is_index(value, len(example.candidates)):
            raise ValueError(
                f"{spec.name} candidate index should be 0..{len(example.candidates) - 1}, got {value!r}"
            )
    return [int(value) for value in values]


# ---------------------------------------------------------------- the family
def _content_ids(tokenizer: Any, texts: Sequence[str]) -> List[List[int]]:
    """Token ids of each text without ``[CLS]``/``[SEP]`` (batch-encoded)."""
    if not texts:
        return []
    return [ids[1:-1] for ids, _ in tokenizer.encode_batch(list(texts))]


def _choice_feature(
    rows: List[List[int]], width: int, tokenizer: Any, label: Any, index: int, meta: Dict[str, Any]
) -> Feature:
    """Pad ``rows`` to ``width`` choices with ``[CLS] [SEP]`` placeholders (masked out) and
    build the feature: ``token_ids`` ``(width, N)``, ``choice_mask`` ``(width,)``."""
    mask = np.zeros(width, dtype=np.float32)
    mask[: len(rows)] = 1.0
    rows = rows + [[tokenizer.cls_id, tokenizer.sep_id]] * (width - len(rows))
    token_ids = pad_arrays([np.asarray(r, dtype=np.int32) for r in rows])
    return Feature({"token_ids": token_ids, "choice_mask": mask}, label, index, meta)


class _ChoiceTask(Task):
    """Shared model, inputs and summaries of c3 and chid (labels: the right choice's index)."""

    main_metric = "accuracy"

    def input_names(self) -> List[str]:
        return ["token_ids", "segment_ids", "choice_mask"]

    def build_model(self, encoder: Any, params: TaskParams) -> Any:
        from ..heads import multiple_choice_scorer

        return multiple_choice_scorer(encoder, params.kernel_initializer)

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
        if labelled:
            self.require_labels(examples)
        documents = list(OrderedDict.fromkeys(C3_TURN_SEPARATOR.join(e.context) for e in examples))
        document_ids = dict(zip(documents, _content_ids(tokenizer, documents)))
        question_ids = _content_ids(tokenizer, [e.question for e in examples])
        choices = [choice for e in examples for choice in e.choices]
        choice_ids = iter(_content_ids(tokenizer, choices))
        cls_id, sep_id = tokenizer.cls_id, tokenizer.sep_id
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
            features.append(_choice_feature(rows, C3_CHOICES, tokenizer, label, index, {}))
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
        unk = tokenizer.unk_id
        blank_id = tokenizer.token_to_id(CHID_BLANK_TOKEN)
        other_ids = [tokenizer.token_to_id(t) for t in CHID_OTHER_BLANK]
        if blank_id == unk or unk in other_ids:
            raise ValueError(
                "chid markers %s / %s are not tokens of the vocab" % (CHID_BLANK_TOKEN, CHID_OTHER_BLANK[0])
            )
        if labelled:
            self.require_labels(examples)
        cls_id, sep_id = tokenizer.cls_id, tokenizer.sep_id
        width = max((len(e.candidates) for e in examples), default=1)
        candidate_cache: Dict[Tuple[str, ...], List[List[int]]] = {}
        features = []
        for index, example in enumerate(examples):
            if example.candidates not in candidate_cache:
                candidate_cache[example.candidates] = _content_ids(tokenizer, example.candidates)
            candidates = candidate_cache[example.candidates]
            pieces = _content_ids(tokenizer, CHID_BLANK.split(example.text))
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
                features.append(_choice_feature(rows, width, tokenizer, label, index, {"blank": blank}))
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


# ---------------------------------------------------------------- the tasks
C3 = TaskSpec(
    name="c3",
    family=C3Task,
    example_type=C3Example,
    parse=parse_c3,
    files=SplitFiles(
        train=("d-train.json", "m-train.json"),
        dev=("d-dev.json", "m-dev.json"),
        test=("test1.1.json",),
        test_1_0=("test1.0.json",),
    ),
    defaults=TaskDefaults(maxlen=512, batch_size=4, epochs=10, grad_accum_steps=4),
    submission=SubmissionFormat(check=check_choice_prediction),
    published_dev_score=68.24,
)

CHID = TaskSpec(
    name="chid",
    family=ChidTask,
    example_type=ChidExample,
    parse=parse_chid,
    files=SplitFiles(test=("test1.1.json",), test_1_0=("test1.0.json",)),
    defaults=TaskDefaults(maxlen=64, batch_size=12, epochs=5, grad_accum_steps=2),
    submission=SubmissionFormat(
        check=check_candidates_prediction, keys=lambda example: example.blanks, values_per_key=True, key_noun="blanks"
    ),
    published_dev_score=87.91,
)
