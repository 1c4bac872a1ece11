"""Load the official CLUE files of the 11 tasks into typed examples.

``load_split(task, data_dir, split)`` maps a split to the official file names:

============  =========================  ===================  ==================================
task          train                      dev                  test (CLUE 1.1 / 1.0)
============  =========================  ===================  ==================================
iflytek       train.json                 dev.json             test.json
tnews         train.json                 dev.json             test.json / test1.0.json
afqmc         train.json                 dev.json             test.json
cmnli         train.json                 dev.json             test.json
ocnli         train.50k.json, else       dev.json             test.json
              train.json
wsc           train.json                 dev.json             test.json / test1.0.json
csl           train.json                 dev.json             test.json
cmrc2018      train.json                 dev.json             test.json  (also split 'trial': trial.json)
c3            d-train.json + m-train     d-dev + m-dev.json   test1.1.json / test1.0.json
chid          train.json (+ answers in   dev.json (+          test1.1.json / test1.0.json
              train_answer.json)         dev_answer.json)
cluener       train.json                 dev.json             test.json
============  =========================  ===================  ==================================

OCNLI: the CLUE training set is the 50k file, named ``train.50k.json`` in the
current OCNLI release and ``train.json`` in older ones; ``train.3k.json`` (an
official 3k subset) is never picked by ``load_split`` but can be read with
:func:`load_file`.

Train/dev/trial data must be labelled; test data is read without labels (the
cmrc2018 test file's placeholder answers are dropped) and must carry the ids the
submission needs. Rows of cmnli/ocnli labelled ``'-'`` (no annotator majority)
are dropped and their count is logged as a warning. Anything malformed raises
:class:`~gau_alpha.clue.errors.ClueDataError` naming the file and the line (JSON
lines) or record (whole-document JSON).
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

from .entities import check_entity_label
from .errors import ClueDataError
from .examples import (
    C3Example,
    ChidExample,
    ClassificationExample,
    CluenerExample,
    Cmrc2018Example,
    CslExample,
    Example,
    ExampleId,
    SentencePairExample,
    WscExample,
)
from .jsonio import Location, PathLike, iter_json_lines, load_json_document, require
from .labels import TASKS, TNEWS_LABEL_DESCS, canonical_task, label_list

__all__ = ["SPLITS", "VERSIONS", "TASKS", "label_list", "split_files", "load_split", "load_file"]

logger = logging.getLogger(__name__)

SPLITS: Tuple[str, ...] = ("train", "dev", "test")
"""Splits every task has; cmrc2018 also has ``'trial'``."""

VERSIONS: Tuple[str, ...] = ("1.1", "1.0")
"""CLUE versions: 1.1 replaced the test sets of tnews, wsc, c3 and chid."""

_VERSIONED_TEST_FILES: Dict[str, Dict[str, str]] = {
    "tnews": {"1.1": "test.json", "1.0": "test1.0.json"},
    "wsc": {"1.1": "test.json", "1.0": "test1.0.json"},
    "c3": {"1.1": "test1.1.json", "1.0": "test1.0.json"},
    "chid": {"1.1": "test1.1.json", "1.0": "test1.0.json"},
}
_OCNLI_TRAIN_CANDIDATES: Tuple[str, ...] = ("train.50k.json", "train.json")
_NLI_UNLABELLED = "-"
_CHID_BLANK = re.compile(r"#idiom\d+#")


def _task_dir(task: str, data_dir: PathLike) -> Path:
    """The task's folder under a CLUE root (``<task>/`` or the zip's ``<task>_public/``;
    wsc also ``cluewsc2020/``, ``cluewsc2020_public/``), else ``data_dir`` itself."""
    root = Path(data_dir)
    names = [task, f"{task}_public"] + (["cluewsc2020", "cluewsc2020_public"] if task == "wsc" else [])
    for name in names:
        if (root / name).is_dir():
            return root / name
    return root


def split_files(task: str, data_dir: PathLike, split: str, *, version: str = "1.1") -> List[Path]:
    """The official data files that make up ``split`` of ``task``, in reading order.

    Args:
        task: one of :data:`TASKS` (``'cluewsc2020'`` is accepted for ``'wsc'``).
        data_dir: the task's directory, or a root directory holding ``<task>/``
            (or the release zip's ``<task>_public/``; for wsc also ``cluewsc2020[_public]/``).
        split: ``'train'``, ``'dev'`` or ``'test'`` (``'trial'`` for cmrc2018).
        version: ``'1.1'`` (default) or ``'1.0'``; picks the test file of tnews, wsc, c3, chid.

    The files are not checked for existence here (except to choose the OCNLI
    training file); :func:`load_split` reports missing ones.

    Raises:
        ValueError: unknown task, split or version.
        ClueDataError: OCNLI train requested and neither train.50k.json nor train.json exists.
    """
    task = canonical_task(task)
    if version not in VERSIONS:
        raise ValueError(f"unknown CLUE version {version!r}; expected one of {VERSIONS}")
    allowed = SPLITS + (("trial",) if task == "cmrc2018" else ())
    if split not in allowed:
        raise ValueError(f"unknown split {split!r} for {task}; expected one of {allowed}")
    folder = _task_dir(task, data_dir)
    if task == "c3" and split != "test":
        return [folder / f"d-{split}.json", folder / f"m-{split}.json"]
    if split == "test" and task in _VERSIONED_TEST_FILES:
        return [folder / _VERSIONED_TEST_FILES[task][version]]
    if task == "ocnli" and split == "train":
        for name in _OCNLI_TRAIN_CANDIDATES:
            if (folder / name).is_file():
                return [folder / name]
        raise ClueDataError(folder / _OCNLI_TRAIN_CANDIDATES[0], "file not found (nor train.json beside it)")
    return [folder / f"{split}.json"]


def load_split(task: str, data_dir: PathLike, split: str, *, version: str = "1.1") -> List[Example]:
    """Load one split of a CLUE task as a list of typed examples, in file order.

    See the module docstring for the files read per task and :func:`split_files`
    for the arguments. Test examples have ``label=None``.

    Raises:
        ClueDataError: a file is missing, empty or malformed.
        ValueError: unknown task, split or version.
    """
    task = canonical_task(task)
    examples: List[Example] = []
    for path in split_files(task, data_dir, split, version=version):
        examples.extend(load_file(task, path, split))
    return examples


def load_file(task: str, path: PathLike, split: str, *, answer_path: Optional[PathLike] = None) -> List[Example]:
    """Parse one official file of ``task``.

    Args:
        task: a CLUE task name.
        path: the file.
        split: ``'test'`` reads it as unlabelled test data; any other value
            (``'train'``, ``'dev'``, ``'trial'``) as labelled data.
        answer_path: chid only: the answer file for labelled data (default:
            ``<stem>_answer.json`` beside ``path``).

    Raises:
        ClueDataError: the file is missing, empty or malformed.
    """
    task = canonical_task(task)
    path = Path(path)
    labelled = split != "test"
    if task == "chid":
        answers = None
        if labelled:
            answers = Path(answer_path) if answer_path is not None else path.with_name(f"{path.stem}_answer.json")
        return _parse_chid(path, answers)
    parser = _PARSERS[task]
    return parser(task, path, labelled)


# ---------------------------------------------------------------- field helpers


def _record_id(record: dict, keys: Sequence[str], fallback: int, where: Location, required: bool) -> ExampleId:
    """The record's id from the first present key of ``keys``; ``fallback`` if none and not required."""
    for key in keys:
        if key in record:
            return require(record, key, (int, str), where)
    if required:
        raise where.error(f"missing field {keys[0]!r} (test data needs the id for the submission)")
    return fallback


def _label(record: dict, task: str, where: Location) -> str:
    """The record's ``label`` as a string, checked against the task's label set."""
    value = require(record, "label", (str, int), where)
    label = str(value)
    labels = TASKS[task]
    if labels is not None and label not in labels:
        shown = ", ".join(repr(x) for x in labels) if len(labels) <= 20 else f"{labels[0]!r}..{labels[-1]!r}"
        raise where.error(f"unknown label {value!r} for {task} (expected one of {shown})")
    return label


def _string_list(record: dict, key: str, where: Location, *, allow_empty: bool = False) -> Tuple[str, ...]:
    values = require(record, key, list, where)
    if not values and not allow_empty:
        raise where.error(f"field {key!r} is an empty list")
    for position, value in enumerate(values):
        if not isinstance(value, str):
            raise where.error(f"field {key!r}[{position}] should be a string, got {type(value).__name__}")
    return tuple(values)


def _nonempty(examples: List[Any], path: Path) -> List[Any]:
    if not examples:
        raise ClueDataError(path, "no examples in file")
    return examples


# ---------------------------------------------------------------- parsers


def _parse_classification(task: str, path: Path, labelled: bool) -> List[ClassificationExample]:
    """iflytek / tnews JSON lines: ``sentence``, ``label``, ``label_des(c)``, tnews ``keywords``; test: ``id``."""
    desc_key = "label_desc" if task == "tnews" else "label_des"
    examples = []
    for index, (line, record) in enumerate(iter_json_lines(path)):
        where = Location(path, line)
        text = require(record, "sentence", str, where)
        example_id = _record_id(record, ("id",), index, where, required=not labelled)
        label = desc = None
        if labelled:
            label = _label(record, task, where)
            if desc_key in record:
                desc = require(record, desc_key, str, where)
                if task == "tnews" and TNEWS_LABEL_DESCS[label] != desc:
                    raise where.error(
                        f"label_desc {desc!r} does not match label {label!r} ({TNEWS_LABEL_DESCS[label]!r})"
                    )
        keywords = require(record, "keywords", str, where) if task == "tnews" and "keywords" in record else None
        examples.append(ClassificationExample(example_id, text, label, desc, keywords))
    return _nonempty(examples, path)


def _parse_sentence_pair(task: str, path: Path, labelled: bool) -> List[SentencePairExample]:
    """afqmc / cmnli / ocnli JSON lines: ``sentence1``, ``sentence2``, ``label``; ``id`` where present."""
    examples = []
    dropped = 0
    for index, (line, record) in enumerate(iter_json_lines(path)):
        where = Location(path, line)
        text_a = require(record, "sentence1", str, where)
        text_b = require(record, "sentence2", str, where)
        example_id = _record_id(record, ("id",), index, where, required=not labelled)
        label = None
        if labelled:
            if task in ("cmnli", "ocnli") and record.get("label") == _NLI_UNLABELLED:
                dropped += 1
                continue
            label = _label(record, task, where)
        examples.append(SentencePairExample(example_id, text_a, text_b, label))
    if dropped:
        logger.warning(
            "%s %s: dropped %d of %d records labelled %r (no gold label)",
            task,
            path,
            dropped,
            dropped + len(examples),
            _NLI_UNLABELLED,
        )
    return _nonempty(examples, path)


def _parse_csl(task: str, path: Path, labelled: bool) -> List[CslExample]:
    """csl JSON lines: ``id``, ``abst``, ``keyword`` (list of strings), ``label``."""
    examples = []
    for index, (line, record) in enumerate(iter_json_lines(path)):
        where = Location(path, line)
        example_id = _record_id(record, ("id",), index, where, required=not labelled)
        abstract = require(record, "abst", str, where)
        keywords = _string_list(record, "keyword", where)
        label = _label(record, task, where) if labelled else None
        examples.append(CslExample(example_id, abstract, keywords, label))
    return _nonempty(examples, path)


def _parse_wsc(task: str, path: Path, labelled: bool) -> List[WscExample]:
    """CLUEWSC2020 JSON lines: ``text``, ``target`` spans, ``label``; id is ``idx`` (train/dev) or ``id`` (test).

    A span index outside the text is an error; a span text that does not match
    the text at its index is logged as a warning (the example is kept).
    """
    examples = []
    mismatches: List[str] = []
    for index, (line, record) in enumerate(iter_json_lines(path)):
        where = Location(path, line)
        text = require(record, "text", str, where)
        target = require(record, "target", dict, where)
        spans = []
        for k in ("1", "2"):
            start = require(target, f"span{k}_index", int, where)
            span_text = require(target, f"span{k}_text", str, where)
            if not 0 <= start < len(text):
                raise where.error(f"span{k}_index {start} is outside the text (length {len(text)})")
            if text[start : start + len(span_text)] != span_text:
                mismatches.append(f"line {line} span{k}")
            spans += [start, span_text]
        keys = ("idx", "id") if labelled else ("id", "idx")
        example_id = _record_id(record, keys, index, where, required=not labelled)
        label = _label(record, task, where) if labelled else None
        examples.append(WscExample(example_id, text, spans[0], spans[1], spans[2], spans[3], label))
    if mismatches:
        logger.warning(
            "wsc %s: %d span texts differ from the text at their index (kept): %s",
            path,
            len(mismatches),
            ", ".join(mismatches[:5]) + (" ..." if len(mismatches) > 5 else ""),
        )
    return _nonempty(examples, path)


def _parse_cluener(task: str, path: Path, labelled: bool) -> List[CluenerExample]:
    """CLUENER2020 JSON lines: ``text`` and ``label`` = {type: {entity: [[start, end], ...]}}, ends inclusive."""
    examples = []
    for index, (line, record) in enumerate(iter_json_lines(path)):
        where = Location(path, line)
        text = require(record, "text", str, where)
        example_id = _record_id(record, ("id",), index, where, required=not labelled)
        label = None
        if labelled:
            try:
                label = check_entity_label(require(record, "label", dict, where), text)
            except ValueError as exc:
                raise where.error(str(exc)) from exc
        examples.append(CluenerExample(example_id, text, label))
    return _nonempty(examples, path)


def _parse_cmrc2018(task: str, path: Path, labelled: bool) -> List[Cmrc2018Example]:
    """CMRC 2018, SQuAD layout: ``{"data": [{"title", "paragraphs": [{"context", "qas": [...]}]}]}``."""
    document = load_json_document(path)
    top = Location(path)
    if not isinstance(document, dict):
        raise top.error(f"expected a JSON object with a 'data' list, got {type(document).__name__}")
    articles = require(document, "data", list, top)
    examples: List[Cmrc2018Example] = []
    seen: Set[str] = set()
    misplaced = total_answers = 0
    for a, article in enumerate(articles):
        where = top.at(f"data[{a}]")
        if not isinstance(article, dict):
            raise where.error("article should be an object")
        title = article.get("title", "")
        if not isinstance(title, str):
            raise where.error("field 'title' should be a string")
        for p, paragraph in enumerate(require(article, "paragraphs", list, where)):
            where = top.at(f"data[{a}].paragraphs[{p}]")
            if not isinstance(paragraph, dict):
                raise where.error("paragraph should be an object")
            context = require(paragraph, "context", str, where)
            for q, qa in enumerate(require(paragraph, "qas", list, where)):
                where = top.at(f"data[{a}].paragraphs[{p}].qas[{q}]")
                if not isinstance(qa, dict):
                    raise where.error("question should be an object")
                qid = require(qa, "id", str, where)
                if qid in seen:
                    raise where.error(f"duplicate question id {qid!r}")
                seen.add(qid)
                question = require(qa, "question", str, where)
                answers: List[str] = []
                starts: List[int] = []
                if labelled:
                    raw_answers = require(qa, "answers", list, where)
                    if not raw_answers:
                        raise where.error(f"question {qid!r} has no answers")
                    for n, answer in enumerate(raw_answers):
                        if not isinstance(answer, dict):
                            raise where.error(f"answers[{n}] should be an object")
                        answers.append(require(answer, "text", str, where))
                        starts.append(require(answer, "answer_start", int, where))
                        total_answers += 1
                        if context[starts[-1] : starts[-1] + len(answers[-1])] != answers[-1] or starts[-1] < 0:
                            misplaced += 1
                examples.append(Cmrc2018Example(qid, context, question, tuple(answers), tuple(starts), title))
    if misplaced:
        logger.info(
            "cmrc2018 %s: %d of %d reference answers are not at their answer_start in the context "
            "(kept as in the file; the official data has -1 and off-by-one starts)",
            path,
            misplaced,
            total_answers,
        )
    return _nonempty(examples, path)


def _parse_c3(task: str, path: Path, labelled: bool) -> List[C3Example]:
    """C3: a JSON array of documents ``[paragraphs, questions, doc_id]`` (test: no doc_id, per-question ``id``)."""
    document = load_json_document(path)
    top = Location(path)
    if not isinstance(document, list):
        raise top.error(f"expected a JSON array of documents, got {type(document).__name__}")
    examples: List[C3Example] = []
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
            choices = _string_list(item, "choice", qwhere)
            if labelled:
                answer = require(item, "answer", str, qwhere)
                if answer not in choices:
                    raise qwhere.error(f"answer {answer!r} is not one of the choices {list(choices)}")
                example_id: ExampleId = f"{path.stem}-{d}-{q}"
            else:
                answer = None
                example_id = _record_id(item, ("id",), 0, qwhere, required=True)
            examples.append(C3Example(example_id, tuple(paragraphs), question, choices, answer, doc_id))
    return _nonempty(examples, path)


def _parse_chid(path: Path, answer_path: Optional[Path]) -> List[ChidExample]:
    """ChID JSON lines ``{"candidates": [...], "content": [passage, ...]}``, one example per passage.

    Blanks are tags ``#idiomNNNNNN#``; labelled data takes each blank's candidate
    index from the answer file ``{tag: index}``. Answer-file tags that no passage
    uses are logged as a warning.
    """
    answers: Optional[Dict[str, Any]] = None
    if answer_path is not None:
        answers = load_json_document(answer_path)
        if not isinstance(answers, dict):
            raise ClueDataError(answer_path, f"expected a JSON object {{tag: index}}, got {type(answers).__name__}")
    examples: List[ChidExample] = []
    seen: Set[str] = set()
    for index, (line, record) in enumerate(iter_json_lines(path)):
        where = Location(path, line)
        candidates = _string_list(record, "candidates", where)
        passages = _string_list(record, "content", where)
        for p, text in enumerate(passages):
            blanks = tuple(_CHID_BLANK.findall(text))
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
                "chid %s: %d answers have no blank in %s (e.g. %s)", answer_path, len(unused), path, unused[0]
            )
    return _nonempty(examples, path)


def _chid_answer(answers: Dict[str, Any], tag: str, n_candidates: int, answer_path: Path, where: Location) -> int:
    if tag not in answers:
        raise where.error(f"blank {tag} has no answer in {answer_path}")
    value = answers[tag]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < n_candidates:
        raise ClueDataError(
            answer_path, f"answer for {tag} should be a candidate index 0..{n_candidates - 1}, got {value!r}"
        )
    return value


_PARSERS: Dict[str, Callable[[str, Path, bool], List[Any]]] = {
    "iflytek": _parse_classification,
    "tnews": _parse_classification,
    "afqmc": _parse_sentence_pair,
    "cmnli": _parse_sentence_pair,
    "ocnli": _parse_sentence_pair,
    "wsc": _parse_wsc,
    "csl": _parse_csl,
    "cmrc2018": _parse_cmrc2018,
    "c3": _parse_c3,
    "cluener": _parse_cluener,
}
