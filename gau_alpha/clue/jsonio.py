"""Reading CLUE's JSON files with errors that say where the problem is.

Two layouts occur in the CLUE releases:

- JSON lines (one object per line): most tasks. Lines may end in LF or CRLF, the
  last line may lack its newline, and a UTF-8 byte-order mark at the start of the
  file is tolerated. Blank lines carry no record and are passed over.
- one JSON document per file: c3, cmrc2018 and the chid answer files.

An object with the same key twice is an error (JSON parsers differ on which value
wins; CLUE's files never repeat a key), reported with the line where the object starts.

The field readers (:func:`require`, :func:`record_id`, :func:`string_list`) and the
duplicate-id check (:class:`UniqueIds`) are what every task's parser uses; errors are
:class:`~gau_alpha.errors.DataError` (also importable as ``gau_alpha.clue.DataError``)
naming the file and the line or record.
"""
from __future__ import annotations

import codecs
import json
import json.scanner
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from gau_alpha.errors import DataError

__all__ = [
    "PathLike",
    "Location",
    "iter_json_lines",
    "load_json_document",
    "require",
    "record_id",
    "string_list",
    "nonempty",
    "UniqueIds",
    "DuplicateKeyError",
    "parse_json",
]

PathLike = Union[str, Path]


@dataclass(frozen=True)
class Location:
    """Where a value was read from: a file plus a line (JSON lines) or a record (documents)."""

    path: Path
    line: Optional[int] = None
    record: Optional[Union[int, str]] = None

    def error(self, reason: str) -> DataError:
        """Return (not raise) a :class:`DataError` for ``reason`` at this location."""
        return DataError(self.path, reason, line=self.line, record=self.record)

    def at(self, record: Union[int, str]) -> "Location":
        """The same file and line, with ``record`` as the record."""
        return Location(self.path, self.line, record)

    def describe(self) -> str:
        """``line N`` or ``record R`` (for messages that point back at it)."""
        if self.line is not None:
            return "line %d" % self.line if self.record is None else "line %d, record %s" % (self.line, self.record)
        return "record %s" % self.record if self.record is not None else str(self.path)


class DuplicateKeyError(ValueError):
    """An object holds ``key`` twice; ``position`` is the offset of that object's ``{``."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key
        self.position: Optional[int] = None


def _unique_pairs(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    """``object_pairs_hook`` that refuses a repeated key."""
    obj: Dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise DuplicateKeyError(key)
        obj[key] = value
    return obj


def parse_json(text: str) -> Any:
    """``json.loads`` that refuses an object with a repeated key.

    Raises:
        json.JSONDecodeError: invalid JSON.
        DuplicateKeyError: (a ``ValueError``) an object holds a key twice (``.key``).
    """
    return json.loads(text, object_pairs_hook=_unique_pairs)


def _duplicate_key_line(text: str) -> Optional[int]:
    """The 1-based line where the first object with a repeated key starts (a second,
    slower parse with the pure-Python scanner, which reports positions)."""
    decoder = json.JSONDecoder(object_pairs_hook=_unique_pairs)
    parse_object = decoder.parse_object

    def located(s_and_end, *args, **kwargs):
        try:
            return parse_object(s_and_end, *args, **kwargs)
        except DuplicateKeyError as exc:
            if exc.position is None:  # the innermost object holding the repeat
                exc.position = s_and_end[1] - 1
            raise

    decoder.parse_object = located
    decoder.scan_once = json.scanner.py_make_scanner(decoder)
    try:
        decoder.decode(text)
    except DuplicateKeyError as exc:
        return text.count("\n", 0, exc.position or 0) + 1
    except ValueError:
        return None
    return None


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise DataError(path, "file not found")
    if not path.is_file():
        raise DataError(path, "not a regular file")
    raw = path.read_bytes()
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    if not raw.strip():
        raise DataError(path, "file is empty")
    return raw


def iter_json_lines(path: PathLike) -> Iterator[Tuple[int, dict]]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSON-lines file.

    Line numbers are 1-based. Only ``\\n`` separates lines (a trailing ``\\r`` is
    JSON whitespace), so Unicode line separators inside strings are safe.

    Raises:
        DataError: missing or empty file, invalid UTF-8, invalid JSON, an object
            with a repeated key, or a line that is not a JSON object.
    """
    path = Path(path)
    raw = _read_bytes(path)
    for number, chunk in enumerate(raw.split(b"\n"), start=1):
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(path, f"not valid UTF-8 (byte offset {exc.start} in the line)", line=number) from exc
        if not text.strip():
            continue
        try:
            obj = parse_json(text)
        except json.JSONDecodeError as exc:
            raise DataError(path, f"invalid JSON: {exc.msg} (column {exc.colno})", line=number) from exc
        except DuplicateKeyError as exc:
            raise DataError(path, f"duplicate key {exc.key!r} in a JSON object", line=number) from None
        if not isinstance(obj, dict):
            raise DataError(path, f"expected a JSON object, got {type(obj).__name__}", line=number)
        yield number, obj


def load_json_document(path: PathLike, kind: Optional[type] = None, wanted: str = "") -> Any:
    """Parse a file holding a single JSON document.

    Args:
        path: the file.
        kind: if given, the document must be of this type (``dict`` or ``list``).
        wanted: what the document should be, for the error message
            (e.g. ``"a JSON array of documents"``).

    Raises:
        DataError: missing or empty file, invalid UTF-8, invalid JSON (with
            the line of the syntax error), an object with a repeated key (with the
            line where that object starts), or a document that is not a ``kind``.
    """
    path = Path(path)
    raw = _read_bytes(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(path, "not valid UTF-8", line=line) from exc
    try:
        document = parse_json(text)
    except json.JSONDecodeError as exc:
        raise DataError(path, f"invalid JSON: {exc.msg} (column {exc.colno})", line=exc.lineno) from exc
    except DuplicateKeyError as exc:
        raise DataError(path, f"duplicate key {exc.key!r} in the JSON object starting here",
                        line=_duplicate_key_line(text)) from None
    if kind is not None and not isinstance(document, kind):
        raise DataError(path, f"expected {wanted or _TYPE_NAMES[kind]}, got {type(document).__name__}")
    return document


_TYPE_NAMES = {str: "a string", int: "an integer", list: "a list", dict: "an object"}


def require(obj: dict, key: str, kind: Union[type, Tuple[type, ...]], where: Location) -> Any:
    """Return ``obj[key]``, checking that it is present and of type ``kind``.

    ``bool`` is never accepted where ``int`` is asked for.

    Raises:
        DataError: the field is missing or has the wrong type.
    """
    if key not in obj:
        raise where.error(f"missing field {key!r}")
    value = obj[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        wanted = " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
        raise where.error(f"field {key!r} should be {wanted}, got {type(value).__name__} {value!r:.60}")
    return value


def record_id(record: dict, keys: Sequence[str], fallback: Any, where: Location, required: bool) -> Any:
    """The record's id from the first present key of ``keys`` (an int or a string).

    Returns ``fallback`` (the record's position) when no key is present and the id is
    not ``required``.

    Raises:
        DataError: an id of the wrong type, or a required id (test data) missing.
    """
    for key in keys:
        if key in record:
            return require(record, key, (int, str), where)
    if required:
        raise where.error(f"missing field {keys[0]!r} (test data needs the id for the submission)")
    return fallback


def string_list(record: dict, key: str, where: Location, *, allow_empty: bool = False) -> Tuple[str, ...]:
    """``record[key]`` checked to be a (non-empty, unless ``allow_empty``) list of strings.

    Raises:
        DataError: missing field, not a list, empty, or an item that is not a string.
    """
    values = require(record, key, list, where)
    if not values and not allow_empty:
        raise where.error(f"field {key!r} is an empty list")
    for position, value in enumerate(values):
        if not isinstance(value, str):
            raise where.error(f"field {key!r}[{position}] should be a string, got {type(value).__name__}")
    return tuple(values)


def nonempty(examples: List[Any], path: PathLike) -> List[Any]:
    """``examples`` unless there are none.

    Raises:
        DataError: the file held no examples.
    """
    if not examples:
        raise DataError(path, "no examples in file")
    return examples


class UniqueIds:
    """The ids met so far in one file (or split), for data whose ids must be unique
    (test data: the submission is keyed by them).

    Example::

        ids = UniqueIds("id")
        for line, record in iter_json_lines(path):
            where = Location(path, line)
            ids.add(record_id(record, ("id",), None, where, required=True), where)
    """

    def __init__(self, what: str = "id") -> None:
        self.what = what
        self._first: Dict[Tuple[type, Any], Location] = {}

    def add(self, value: Any, where: Location) -> Any:
        """Record ``value`` read at ``where`` and return it.

        Raises:
            DataError: ``value`` was met before (naming both places).
        """
        key = (type(value), value)
        first = self._first.get(key)
        if first is not None:
            before = first.describe() if first.path == where.path else "%s, %s" % (first.path, first.describe())
            raise where.error(f"duplicate {self.what} {value!r} (first at {before})")
        self._first[key] = where
        return value


def iter_example_records(
    path: PathLike, labelled: bool, id_keys: Sequence[str] = ("id",)
) -> Iterator[Tuple[dict, Location, Any]]:
    """The records of a JSON-lines file as ``(record, location, example id)``.

    The id is read from the first of ``id_keys`` present (the 0-based record index when
    absent from labelled data; required in test data, where ids must also be unique because
    the submission is keyed by them).

    Raises:
        DataError: a missing or repeated test id (naming file and line), or malformed JSON.
    """
    test_ids = None if labelled else UniqueIds()
    for index, (line, record) in enumerate(iter_json_lines(path)):
        where = Location(Path(path), line)
        example_id = record_id(record, id_keys, index, where, required=not labelled)
        if test_ids is not None:
            test_ids.add(example_id, where)
        yield record, where, example_id
