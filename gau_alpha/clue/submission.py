"""Write (and check) CLUE leaderboard submission files.

File names follow CLUE's submission rules (CLUEbenchmark/CLUE, 2021-09-04 update:
``<task><version>_predict.json`` for the tasks whose test set changed in CLUE 1.1):

============  ============================  ===========================
task          CLUE 1.1 (default)            CLUE 1.0
============  ============================  ===========================
iflytek       iflytek_predict.json          (same)
tnews         tnews11_predict.json          tnews10_predict.json
afqmc         afqmc_predict.json            (same)
cmnli         cmnli_predict.json            (same)
ocnli         ocnli_50k_predict.json        (same)
wsc           cluewsc11_predict.json        cluewsc10_predict.json
csl           csl_predict.json              (same)
cmrc2018      cmrc2018_predict.json         (same)
c3            c311_predict.json             c310_predict.json
chid          chid11_predict.json           chid10_predict.json
cluener       cluener_predict.json          (same)
============  ============================  ===========================

Formats (UTF-8, non-ASCII written as is, in test-file order):

- iflytek, tnews, afqmc, cmnli, ocnli, wsc, csl: JSON lines
  ``{"id": <id as in the test file>, "label": "<label string>"}``;
- c3: JSON lines ``{"id": <question id>, "label": <index of the chosen choice>}``;
- cluener: JSON lines ``{"id": <id>, "label": {type: {entity: [[start, end], ...]}}}``;
- cmrc2018: one JSON object ``{question_id: answer_text}``;
- chid: one JSON object ``{"#idiomNNNNNN#": candidate_index}``.

Files are written atomically: into a temporary file in the output directory,
then renamed over the target with :func:`os.replace`; on any error the temporary
file is removed and no (partial) submission file is left behind.
"""
from __future__ import annotations

import json
import numbers
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Sequence, Type, Union

from gau_alpha.atomic import atomic_file

from .entities import check_entity_label
from .errors import ClueSubmissionError
from .examples import (
    C3Example,
    ChidExample,
    ClassificationExample,
    CluenerExample,
    Cmrc2018Example,
    CslExample,
    SentencePairExample,
    WscExample,
)
from .jsonio import PathLike
from .labels import TASKS, canonical_task

__all__ = [
    "submission_filename",
    "write_submission",
    "write_atomically",
    "read_submission",
    "validate_submission",
]

_VERSIONED_NAMES: Dict[str, str] = {"tnews": "tnews", "wsc": "cluewsc", "c3": "c3", "chid": "chid"}
_FIXED_NAMES: Dict[str, str] = {"ocnli": "ocnli_50k_predict.json"}

_EXAMPLE_TYPES: Dict[str, Type[Any]] = {
    "iflytek": ClassificationExample,
    "tnews": ClassificationExample,
    "afqmc": SentencePairExample,
    "cmnli": SentencePairExample,
    "ocnli": SentencePairExample,
    "wsc": WscExample,
    "csl": CslExample,
    "cmrc2018": Cmrc2018Example,
    "c3": C3Example,
    "chid": ChidExample,
    "cluener": CluenerExample,
}
_OBJECT_TASKS = ("cmrc2018", "chid")  # one JSON object; the others are JSON lines


def submission_filename(task: str, version: str = "1.1") -> str:
    """The official submission file name of ``task`` for CLUE ``version`` ('1.1' or '1.0')."""
    task = canonical_task(task)
    if version not in ("1.1", "1.0"):
        raise ValueError(f"unknown CLUE version {version!r}; expected '1.1' or '1.0'")
    if task in _VERSIONED_NAMES:
        return f"{_VERSIONED_NAMES[task]}{version.replace('.', '')}_predict.json"
    return _FIXED_NAMES.get(task, f"{task}_predict.json")


def write_atomically(path: PathLike, chunks: Iterable[str]) -> Path:
    """Write the text ``chunks`` to ``path`` atomically (UTF-8, ``\\n`` newlines).

    The chunks go to a temporary file in the same directory, which is flushed,
    synced and then renamed over ``path``. If anything fails (including the
    ``chunks`` iterator raising), the temporary file is deleted, ``path`` is left
    as it was, and the exception propagates.
    """
    with atomic_file(path, "w", encoding="utf-8", newline="\n") as handle:
        for chunk in chunks:
            handle.write(chunk)
    return Path(path)


def _check_examples(task: str, examples: Sequence[Any], predictions: Sequence[Any]) -> None:
    wanted = _EXAMPLE_TYPES[task]
    for index, example in enumerate(examples):
        if not isinstance(example, wanted):
            raise ClueSubmissionError(
                f"{task}: example {index} is a {type(example).__name__}, expected {wanted.__name__}"
            )
    if len(examples) != len(predictions):
        raise ClueSubmissionError(f"{task}: {len(examples)} test examples but {len(predictions)} predictions")
    if not examples:
        raise ClueSubmissionError(f"{task}: no test examples")


def _is_index(value: Any, size: int) -> bool:
    """True for an integer (Python or NumPy, not bool) in ``0..size-1``."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and 0 <= int(value) < size


def _checked_prediction(task: str, example: Any, prediction: Any, where: str) -> Any:
    """Validate one prediction for ``example``; return it in the form written to the file."""
    labels = TASKS[task]
    if task == "c3":
        if not _is_index(prediction, len(example.choices)):
            raise ClueSubmissionError(
                f"{where}: c3 prediction should be a choice index 0..{len(example.choices) - 1}, got {prediction!r}"
            )
        return int(prediction)
    if task == "cmrc2018":
        if not isinstance(prediction, str):
            raise ClueSubmissionError(f"{where}: cmrc2018 prediction should be the answer text, got {prediction!r}")
        return prediction
    if task == "chid":
        sequence = hasattr(prediction, "__len__") and not isinstance(prediction, (str, bytes, dict))
        values = list(prediction) if sequence else None
        if values is None or len(values) != len(example.blanks):
            raise ClueSubmissionError(
                f"{where}: chid prediction should list one candidate index per blank "
                f"({len(example.blanks)}), got {prediction!r}"
            )
        for value in values:
            if not _is_index(value, len(example.candidates)):
                raise ClueSubmissionError(
                    f"{where}: chid candidate index should be 0..{len(example.candidates) - 1}, got {value!r}"
                )
        return [int(value) for value in values]
    if task == "cluener":
        try:
            return check_entity_label(prediction, example.text)
        except ValueError as exc:
            raise ClueSubmissionError(f"{where}: {exc}") from exc
    if not isinstance(prediction, str) or prediction not in labels:
        raise ClueSubmissionError(f"{where}: {prediction!r} is not a valid {task} label")
    return prediction


def _lines(task: str, examples: Sequence[Any], predictions: Sequence[Any]) -> Iterator[str]:
    for index, (example, prediction) in enumerate(zip(examples, predictions)):
        label = _checked_prediction(task, example, prediction, f"{task} prediction {index} (id {example.id!r})")
        yield json.dumps({"id": example.id, "label": label}, ensure_ascii=False) + "\n"


def _object_chunks(task: str, examples: Sequence[Any], predictions: Sequence[Any]) -> Iterator[str]:
    mapping: Dict[str, Any] = {}
    for index, (example, prediction) in enumerate(zip(examples, predictions)):
        value = _checked_prediction(task, example, prediction, f"{task} prediction {index} (id {example.id!r})")
        pairs = [(example.id, value)] if task == "cmrc2018" else list(zip(example.blanks, value))
        for key, item in pairs:
            if key in mapping:
                raise ClueSubmissionError(f"{task}: key {key!r} occurs twice among the test examples")
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
        ClueSubmissionError: wrong example type, count mismatch, or an invalid
            prediction (no file is written).
    """
    task = canonical_task(task)
    _check_examples(task, examples, predictions)
    path = Path(output_dir) / submission_filename(task, version)
    chunks = _object_chunks if task in _OBJECT_TASKS else _lines
    return write_atomically(path, chunks(task, examples, predictions))


def read_submission(task: str, path: PathLike) -> Union[List[Dict[str, Any]], Dict[str, Any]]:
    """Parse a submission file: a list of ``{"id", "label"}`` rows (JSON-lines tasks)
    or the single JSON object (cmrc2018, chid).

    Raises:
        ClueSubmissionError: missing file, bad JSON (with the line), or rows that
            are not ``{"id": ..., "label": ...}`` objects.
    """
    task = canonical_task(task)
    path = Path(path)
    if not path.is_file():
        raise ClueSubmissionError(f"{path}: file not found")
    text = path.read_text(encoding="utf-8")
    if task in _OBJECT_TASKS:
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ClueSubmissionError(f"{path}, line {exc.lineno}: invalid JSON: {exc.msg}") from exc
        if not isinstance(obj, dict):
            raise ClueSubmissionError(f"{path}: expected one JSON object, got {type(obj).__name__}")
        return obj
    rows = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ClueSubmissionError(f"{path}, line {number}: invalid JSON: {exc.msg}") from exc
        if not isinstance(row, dict) or set(row) != {"id", "label"}:
            raise ClueSubmissionError(
                f"{path}, line {number}: expected {{\"id\": ..., \"label\": ...}}, got {row!r:.80}"
            )
        rows.append(row)
    return rows


def validate_submission(task: str, path: PathLike, examples: Sequence[Any]) -> List[Any]:
    """Check a submission file field by field against the test examples.

    JSON-lines tasks: one row per example, ids equal to the examples' ids in
    order, each label valid for its example. cmrc2018: exactly the question ids,
    string answers. chid: exactly the blank tags, in order, valid candidate
    indexes.

    Returns:
        the predictions in example order, in the form :func:`write_submission` takes.

    Raises:
        ClueSubmissionError: naming the file, and the line or key at fault.
    """
    task = canonical_task(task)
    path = Path(path)
    parsed = read_submission(task, path)
    if not examples:
        raise ClueSubmissionError(f"{task}: no test examples to validate against")
    if task == "cmrc2018":
        assert isinstance(parsed, dict)
        expected = [example.id for example in examples]
        if list(parsed) != expected:
            missing = [k for k in expected if k not in parsed]
            extra = [k for k in parsed if k not in set(expected)]
            raise ClueSubmissionError(
                f"{path}: question ids differ from the test file (missing {missing[:3]}, unexpected {extra[:3]}, "
                "or out of order)"
            )
        return [_checked_prediction(task, ex, parsed[ex.id], f"{path}, key {ex.id!r}") for ex in examples]
    if task == "chid":
        assert isinstance(parsed, dict)
        expected = [tag for example in examples for tag in example.blanks]
        if list(parsed) != expected:
            raise ClueSubmissionError(
                f"{path}: blank tags differ from the test file ({len(parsed)} keys, {len(expected)} blanks)"
            )
        return [
            _checked_prediction(task, ex, [parsed[tag] for tag in ex.blanks], f"{path}, blanks of {ex.id!r}")
            for ex in examples
        ]
    assert isinstance(parsed, list)
    if len(parsed) != len(examples):
        raise ClueSubmissionError(f"{path}: {len(parsed)} rows but {len(examples)} test examples")
    result = []
    for number, (row, example) in enumerate(zip(parsed, examples), start=1):
        where = f"{path}, row {number}"
        if row["id"] != example.id:
            raise ClueSubmissionError(f"{where}: id {row['id']!r}, expected {example.id!r} (test-file order)")
        result.append(_checked_prediction(task, example, row["label"], where))
    return result
