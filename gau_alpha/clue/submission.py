"""Write (and check) CLUE leaderboard submission files.

The file name and format of each task are facts of its
:class:`~gau_alpha.clue.tasks.spec.TaskSpec` (``submission`` and, for the version in
the name, ``files.test_1_0``); the table of names and formats is in
``docs/clue-data.md``. Names follow CLUE's submission rules (CLUEbenchmark/CLUE,
2021-09-04 update: ``<task><version>_predict.json`` for the tasks whose test set
changed in CLUE 1.1). Two layouts occur (UTF-8, non-ASCII written as is, in
test-file order):

- JSON lines ``{"id": <id as in the test file>, "label": <value>}`` (all tasks but two);
- one JSON object ``{key: value}``: cmrc2018 ``{question_id: answer_text}``, chid
  ``{"#idiomNNNNNN#": candidate_index}``.

Files are written atomically (:mod:`gau_alpha.atomic`): into a temporary file in the
output directory, then renamed over the target; on any error the temporary file is
removed and no (partial) submission file is left behind.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Sequence, Union

from gau_alpha.atomic import atomic_file
from gau_alpha.errors import SubmissionError

from .jsonio import DuplicateKeyError, PathLike, parse_json
from .tasks.registry import get_spec
from .tasks.spec import TaskSpec

__all__ = [
    "submission_filename",
    "write_submission",
    "write_atomically",
    "read_submission",
    "validate_submission",
]


def submission_filename(task: str, version: str = "1.1") -> str:
    """The official submission file name of ``task`` for CLUE ``version`` ('1.1' or '1.0')."""
    return get_spec(task).submission_filename(version)


def write_atomically(path: PathLike, chunks: Iterable[str]) -> Path:
    """Write the text ``chunks`` to ``path`` atomically (UTF-8, ``\\n`` newlines), with
    :func:`gau_alpha.atomic.atomic_file`.

    If anything fails (including the ``chunks`` iterator raising), the temporary file
    is deleted, ``path`` is left as it was, and the exception propagates.
    """
    with atomic_file(path, "w", encoding="utf-8", newline="\n") as handle:
        for chunk in chunks:
            handle.write(chunk)
    return Path(path)


def _check_examples(spec: TaskSpec, examples: Sequence[Any], predictions: Sequence[Any]) -> None:
    wanted = spec.example_type
    for index, example in enumerate(examples):
        if not isinstance(example, wanted):
            raise SubmissionError(
                f"{spec.name}: example {index} is a {type(example).__name__}, expected {wanted.__name__}"
            )
    if len(examples) != len(predictions):
        raise SubmissionError(f"{spec.name}: {len(examples)} test examples but {len(predictions)} predictions")
    if not examples:
        raise SubmissionError(f"{spec.name}: no test examples")


def _checked(spec: TaskSpec, example: Any, prediction: Any, where: str) -> Any:
    """The task's check of one prediction; its complaint becomes a :class:`SubmissionError` at ``where``."""
    try:
        return spec.submission.check(spec, example, prediction)
    except ValueError as exc:
        raise SubmissionError(f"{where}: {exc}") from exc


def _checked_values(spec: TaskSpec, examples: Sequence[Any], predictions: Sequence[Any]) -> Iterator[Any]:
    for index, (example, prediction) in enumerate(zip(examples, predictions)):
        yield _checked(spec, example, prediction, f"{spec.name} prediction {index} (id {example.id!r})")


def _json_lines(spec: TaskSpec, examples: Sequence[Any], predictions: Sequence[Any]) -> Iterator[str]:
    for example, value in zip(examples, _checked_values(spec, examples, predictions)):
        yield json.dumps({"id": example.id, "label": value}, ensure_ascii=False) + "\n"


def _json_object(spec: TaskSpec, examples: Sequence[Any], predictions: Sequence[Any]) -> Iterator[str]:
    mapping: Dict[str, Any] = {}
    for example, value in zip(examples, _checked_values(spec, examples, predictions)):
        for key, item in spec.submission.entries(example, value):
            if key in mapping:
                raise SubmissionError(f"{spec.name}: key {key!r} occurs twice among the test examples")
            mapping[key] = item
    yield json.dumps(mapping, ensure_ascii=False, indent=2) + "\n"


def write_submission(
    task: str,
    examples: Sequence[Any],
    predictions: Sequence[Any],
    output_dir: PathLike,
    *,
    version: str = "1.1",
) -> Path:
    """Write the official submission file of ``task`` into ``output_dir``; return its path.

    Args:
        task: a CLUE task.
        examples: the test examples, in test-file order (``load_split(task, dir, 'test')``).
        predictions: one per example: a label string (classification tasks), a
            choice index (c3), the answer text (cmrc2018), a candidate index per
            blank (chid), or a label dict with inclusive spans (cluener).
        output_dir: created if missing.
        version: CLUE version for the file name ('1.1' default, or '1.0').

    Raises:
        SubmissionError: (``ClueSubmissionError``) wrong example type, count mismatch,
            or an invalid prediction (no file is written).
    """
    spec = get_spec(task)
    _check_examples(spec, examples, predictions)
    path = Path(output_dir) / spec.submission_filename(version)
    chunks = _json_lines if spec.submission.json_lines else _json_object
    return write_atomically(path, chunks(spec, examples, predictions))


def read_submission(task: str, path: PathLike) -> Union[List[Dict[str, Any]], Dict[str, Any]]:
    """Parse a submission file: a list of ``{"id", "label"}`` rows (JSON-lines tasks)
    or the single JSON object (cmrc2018, chid).

    Raises:
        SubmissionError: missing file, bad JSON (with the line), a repeated key, or
            rows that are not ``{"id": ..., "label": ...}`` objects.
    """
    spec = get_spec(task)
    path = Path(path)
    if not path.is_file():
        raise SubmissionError(f"{path}: file not found")
    text = path.read_text(encoding="utf-8")
    if not spec.submission.json_lines:
        try:
            obj = parse_json(text)
        except json.JSONDecodeError as exc:
            raise SubmissionError(f"{path}, line {exc.lineno}: invalid JSON: {exc.msg}") from exc
        except DuplicateKeyError as exc:
            raise SubmissionError(f"{path}: key {exc.key!r} occurs twice") from None
        if not isinstance(obj, dict):
            raise SubmissionError(f"{path}: expected one JSON object, got {type(obj).__name__}")
        return obj
    rows = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = parse_json(line)
        except json.JSONDecodeError as exc:
            raise SubmissionError(f"{path}, line {number}: invalid JSON: {exc.msg}") from exc
        except DuplicateKeyError as exc:
            raise SubmissionError(f"{path}, line {number}: key {exc.key!r} occurs twice") from None
        if not isinstance(row, dict) or set(row) != {"id", "label"}:
            raise SubmissionError(
                f"{path}, line {number}: expected {{\"id\": ..., \"label\": ...}}, got {row!r:.80}"
            )
        rows.append(row)
    return rows


def validate_submission(task: str, path: PathLike, examples: Sequence[Any]) -> List[Any]:
    """Check a submission file field by field against the test examples.

    JSON-lines tasks: one row per example, ids equal to the examples' ids in
    order, each label valid for its example. JSON-object tasks: exactly the
    examples' keys (cmrc2018 question ids, chid blank tags), in order, each value
    valid.

    Returns:
        the predictions in example order, in the form :func:`write_submission` takes.

    Raises:
        SubmissionError: naming the file, and the line or key at fault.
    """
    spec = get_spec(task)
    path = Path(path)
    parsed = read_submission(spec.name, path)
    if not examples:
        raise SubmissionError(f"{spec.name}: no test examples to validate against")
    layout = spec.submission
    if not layout.json_lines:
        assert isinstance(parsed, dict)
        expected = [key for example in examples for key in layout.keys(example)]
        if list(parsed) != expected:
            known = set(expected)
            missing = [k for k in expected if k not in parsed]
            extra = [k for k in parsed if k not in known]
            raise SubmissionError(
                f"{path}: keys differ from the test file ({len(parsed)} keys, {len(expected)} {layout.key_noun}; "
                f"missing {missing[:3]}, unexpected {extra[:3]}, or out of order)"
            )
        return [_checked(spec, ex, layout.gather(ex, parsed), f"{path}, keys of {ex.id!r}") for ex in examples]
    assert isinstance(parsed, list)
    if len(parsed) != len(examples):
        raise SubmissionError(f"{path}: {len(parsed)} rows but {len(examples)} test examples")
    result = []
    for number, (row, example) in enumerate(zip(parsed, examples), start=1):
        where = f"{path}, row {number}"
        if row["id"] != example.id:
            raise SubmissionError(f"{where}: id {row['id']!r}, expected {example.id!r} (test-file order)")
        result.append(_checked(spec, example, row["label"], where))
    return result
