"""New records for a fine-tuned model: the task's CLUE test format, or plain text lines.

Accepted input (a file, or ``-`` for standard input):

- the task's test-file format, read by the task's own parser (:mod:`gau_alpha.clue.tasks`):
  JSON lines (most tasks: one ``{"id": ..., ...}`` object per line) or the task's JSON
  document (cmrc2018 ``{"data": [...]}``, c3 ``[[paragraphs, questions], ...]``);
- for the single-text tasks (:data:`PLAIN_TEXT_TASKS`: iflytek, tnews, cluener) also plain
  text, one record per non-blank line, whose id is its 0-based record index (as in the CLUE
  test files). A file is plain text when its first non-blank character is not ``{``.

Every problem is a :class:`~gau_alpha.errors.DataError` naming the file (``<stdin>`` for
standard input) and the line.
"""
from __future__ import annotations

import codecs
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from gau_alpha.errors import DataError

__all__ = ["STDIN", "PLAIN_TEXT_TASKS", "read_examples", "examples_from_records", "plain_text_examples"]

STDIN = "-"
STDIN_NAME = "<stdin>"


def _classification(example_id: int, text: str) -> Any:
    from gau_alpha.clue.examples import ClassificationExample

    return ClassificationExample(example_id, text, None)


def _cluener(example_id: int, text: str) -> Any:
    from gau_alpha.clue.examples import CluenerExample

    return CluenerExample(example_id, text, None)


#: tasks whose record is one text -> how a text line becomes an example
PLAIN_TEXT_TASKS: Dict[str, Callable[[int, str], Any]] = {
    "iflytek": _classification,
    "tnews": _classification,
    "cluener": _cluener,
}

#: tasks whose test file is one JSON document -> the document holding some records
_DOCUMENTS: Dict[str, Callable[[List[Any]], Any]] = {
    "cmrc2018": lambda records: {"version": "", "data": records},
    "c3": lambda records: records,
}


def plain_text_examples(task: Any, raw: bytes, source: str) -> List[Any]:
    """One example per non-blank line of ``raw`` (ids 0, 1, ... in order).

    Raises:
        DataError: the task has more than one text per record, invalid UTF-8, or no lines.
    """
    make = PLAIN_TEXT_TASKS.get(task.name)
    if make is None:
        raise DataError(source, "%s records are not plain text: give them in the task's test-file format "
                                "(JSON)" % task.name, line=1)
    examples = []
    for number, chunk in enumerate(raw.split(b"\n"), start=1):
        try:
            text = chunk.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as error:
            raise DataError(source, "not valid UTF-8 (byte offset %d in the line)" % error.start, line=number) from None
        if text.strip():
            examples.append(make(len(examples), text))
    if not examples:
        raise DataError(source, "no records")
    return examples


def _is_plain_text(raw: bytes) -> bool:
    start = raw.lstrip()
    return bool(start) and not start.startswith(b"{")  # the plain-text tasks' test files are JSON lines


def _parse(task: Any, raw: bytes, source: str, path: Optional[Path]) -> List[Any]:
    """The task's parser on ``raw`` (test data: unlabelled, ids required and unique)."""
    spec = task.spec
    if path is not None:
        return spec.parse(spec, path, False)
    with tempfile.TemporaryDirectory(prefix="gau-alpha-input-") as scratch:
        copy = Path(scratch) / "input.json"
        copy.write_bytes(raw)
        try:
            return spec.parse(spec, copy, False)
        except DataError as error:  # name what the user gave, not the scratch copy
            raise DataError(source, error.reason, line=error.line, record=error.record) from None


def read_examples(task: Any, source: str, stdin: Any = None) -> List[Any]:
    """The examples in ``source`` (a path, or ``-``: standard input), in input order.

    Raises:
        DataError: a missing, empty or malformed input (naming the file and line).
    """
    if source == STDIN:
        stream = stdin if stdin is not None else sys.stdin.buffer
        raw, name, path = stream.read(), STDIN_NAME, None
    else:
        path = Path(source)
        if not path.exists():
            raise DataError(path, "file not found")
        if not path.is_file():
            raise DataError(path, "not a regular file")
        raw, name = path.read_bytes(), str(path)
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    if not raw.strip():
        raise DataError(name, "file is empty")
    if task.name in PLAIN_TEXT_TASKS and _is_plain_text(raw):
        return plain_text_examples(task, raw, name)
    return _parse(task, raw, name, path)


def examples_from_records(task: Any, records: Sequence[Any]) -> List[Any]:
    """The task's examples from ``records``: examples already (returned as they are), dicts
    in the task's test-file format (articles for cmrc2018, documents for c3), or strings
    (:data:`PLAIN_TEXT_TASKS`, ids 0, 1, ...).

    Raises:
        DataError: a record of the wrong kind or a malformed one (``<records>``, its line).
    """
    records = list(records)
    source = "<records>"
    if not records:
        raise DataError(source, "no records")
    if all(isinstance(record, task.spec.example_type) for record in records):
        return records
    if all(isinstance(record, str) for record in records):
        make = PLAIN_TEXT_TASKS.get(task.name)
        if make is None:
            raise DataError(source, "%s records are not plain text: give dicts in the task's test-file format"
                            % task.name)
        return [make(index, text) for index, text in enumerate(records)]
    if not all(isinstance(record, (dict, list)) for record in records):
        kinds = sorted({type(record).__name__ for record in records})
        raise DataError(source, "expected %s examples, test-format dicts or strings, got %s"
                        % (task.name, ", ".join(kinds)))
    document = _DOCUMENTS.get(task.name)
    if document is not None:
        text = json.dumps(document(records), ensure_ascii=False)
    else:
        text = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    return _parse(task, text.encode("utf-8"), source, None)
