"""Typed examples for the 11 CLUE tasks, one dataclass per task family.

Every example carries ``id``: the identifier the official submission needs for
test data (the test file's ``id``; WSC test ``id`` while train/dev use ``idx``;
the per-question ``id`` of c3 test; the cmrc2018 question ``id``). Where a
train/dev file has no identifier, ``id`` is the 0-based position of the record
in its file (c3: ``'<file stem>-<document index>-<question index>'``, e.g.
``'d-train-0-0'``; chid: ``'<line index>-<passage index>'``).

``label`` is the official label string (the task's ``TaskSpec.labels``), or
``None`` for unlabelled test data.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set, Tuple, Union

__all__ = [
    "ExampleId",
    "EntityLabel",
    "ClassificationExample",
    "SentencePairExample",
    "CslExample",
    "WscExample",
    "Cmrc2018Example",
    "C3Example",
    "ChidExample",
    "CluenerExample",
    "Example",
    "entity_spans",
]

ExampleId = Union[int, str]
EntityLabel = Dict[str, Dict[str, List[List[int]]]]
"""cluener label layout: ``{type: {entity_text: [[start, end], ...]}}``, ends inclusive."""


@dataclass(frozen=True)
class ClassificationExample:
    """Single-text classification: iflytek, tnews.

    Attributes:
        id: test ``id``, else the record's 0-based position in its file.
        text: the ``sentence`` field.
        label: the label code (``'0'``..``'118'`` iflytek, ``'100'``..``'116'`` tnews) or None.
        label_desc: the file's ``label_desc`` (tnews) / ``label_des`` (iflytek), if present.
        keywords: tnews ``keywords`` (comma-separated, may be empty); None for iflytek.
    """

    id: ExampleId
    text: str
    label: Optional[str]
    label_desc: Optional[str] = None
    keywords: Optional[str] = None


@dataclass(frozen=True)
class SentencePairExample:
    """Sentence-pair classification: afqmc, cmnli, ocnli.

    Attributes:
        id: the file's ``id`` (test files, ocnli), else the record's 0-based position.
        text_a: ``sentence1``.
        text_b: ``sentence2``.
        label: ``'0'``/``'1'`` (afqmc) or an NLI label (cmnli, ocnli), or None.
    """

    id: ExampleId
    text_a: str
    text_b: str
    label: Optional[str]


@dataclass(frozen=True)
class CslExample:
    """CSL keyword recognition: are all ``keywords`` true keywords of ``abstract``?

    Attributes:
        id: the file's ``id``.
        abstract: ``abst``.
        keywords: ``keyword`` list, in file order.
        label: ``'1'`` (all real keywords) / ``'0'``, or None.
    """

    id: ExampleId
    abstract: str
    keywords: Tuple[str, ...]
    label: Optional[str]


@dataclass(frozen=True)
class WscExample:
    """CLUEWSC2020 coreference: does the pronoun ``span2`` refer to ``span1``?

    Span indexes are 0-based character offsets into ``text``.

    Attributes:
        id: ``idx`` (train/dev) or ``id`` (test).
        label: ``'true'`` / ``'false'``, or None.
    """

    id: ExampleId
    text: str
    span1_index: int
    span1_text: str
    span2_index: int
    span2_text: str
    label: Optional[str]


@dataclass(frozen=True)
class Cmrc2018Example:
    """CMRC 2018 span extraction, one question.

    Attributes:
        id: the question ``id`` (e.g. ``'DEV_0_QUERY_0'``), the submission key.
        context: the paragraph text, as in the file.
        question: the question text.
        answers: reference answer texts in file order (dev has 3 per question,
            possibly repeated); empty for test data (its answers are placeholders).
        answer_starts: each answer's ``answer_start`` as in the file; the official
            data has ``-1`` (answer not verbatim in context) and off-by-one offsets.
        title: the article title.
    """

    id: str
    context: str
    question: str
    answers: Tuple[str, ...]
    answer_starts: Tuple[int, ...]
    title: str = ""

    @property
    def label(self) -> Optional[Tuple[str, ...]]:
        """The reference answers, or None for test data."""
        return self.answers or None


@dataclass(frozen=True)
class C3Example:
    """C3 multiple-choice reading comprehension, one question.

    Attributes:
        id: test: the question's ``id``; train/dev: ``'<file stem>-<document index>-<question index>'``.
        context: the document's paragraphs / dialogue turns.
        question: the question text.
        choices: the answer options (2 to 4).
        label: the answer text (one of ``choices``), or None.
        doc_id: the document id of train/dev files (e.g. ``'25-35'``); None for test.
    """

    id: ExampleId
    context: Tuple[str, ...]
    question: str
    choices: Tuple[str, ...]
    label: Optional[str]
    doc_id: Optional[str] = None

    @property
    def label_index(self) -> Optional[int]:
        """Index of ``label`` in ``choices`` (first match), or None when unlabelled."""
        return None if self.label is None else self.choices.index(self.label)


@dataclass(frozen=True)
class ChidExample:
    """ChID idiom cloze, one passage with one or more blanks.

    Attributes:
        id: ``'<line index>-<passage index>'`` within its file.
        text: the passage, blanks written as tags like ``'#idiom000001#'``.
        candidates: the candidate idioms shared by the passages of one file line.
        blanks: the blank tags in the order they occur in ``text`` (submission keys).
        label: per blank, the index of the right candidate; None for test data.
    """

    id: str
    text: str
    candidates: Tuple[str, ...]
    blanks: Tuple[str, ...]
    label: Optional[Tuple[int, ...]]


@dataclass(frozen=True)
class CluenerExample:
    """CLUENER2020 fine-grained NER, one sentence.

    Attributes:
        id: test ``id``, else the record's 0-based position in its file.
        text: the sentence.
        label: ``{type: {entity_text: [[start, end], ...]}}`` with inclusive ends
            (``text[start:end + 1] == entity_text``), or None.
    """

    id: ExampleId
    text: str
    label: Optional[EntityLabel] = field(default=None, compare=True)

    def spans(self) -> Set[Tuple[str, int, int]]:
        """The gold entities as a set of ``(type, start, end)`` (end inclusive); empty if unlabelled."""
        return entity_spans(self.label or {})


def entity_spans(label: EntityLabel) -> Set[Tuple[str, int, int]]:
    """Flatten a cluener label dict into a set of ``(type, start, end)`` (end inclusive)."""
    return {
        (etype, int(start), int(end))
        for etype, entities in label.items()
        for positions in entities.values()
        for start, end in positions
    }


Example = Union[
    ClassificationExample,
    SentencePairExample,
    CslExample,
    WscExample,
    Cmrc2018Example,
    C3Example,
    ChidExample,
    CluenerExample,
]
