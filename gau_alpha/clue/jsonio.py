"""Reading CLUE's JSON files with errors that say where the problem is.

Two layouts occur in the CLUE releases:

- JSON lines (one object per line): most tasks. Lines may end in LF or CRLF, the
  last line may lack its newline, and a UTF-8 byte-order mark at the start of the
  file is tolerated. Blank lines carry no record and are passed over.
- one JSON document per file: c3, cmrc2018 and the chid answer files.
"""
from __future__ import annotations

import codecs
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Tuple, Union

from .errors import ClueDataError

PathLike = Union[str, Path]


@dataclass(frozen=True)
class Location:
    """Where a value was read from: a file plus a line (JSON lines) or a record (documents)."""

    path: Path
    line: Optional[int] = None
    record: Optional[Union[int, str]] = None

    def error(self, reason: str) -> ClueDataError:
        """Return (not raise) a :class:`ClueDataError` for ``reason`` at this location."""
        return ClueDataError(self.path, reason, line=self.line, record=self.record)

    def at(self, record: Union[int, str]) -> "Location":
        """The same file and line, with ``record`` as the record."""
        return Location(self.path, self.line, record)


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise ClueDataError(path, "file not found")
    if not path.is_file():
        raise ClueDataError(path, "not a regular file")
    raw = path.read_bytes()
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    if not raw.strip():
        raise ClueDataError(path, "file is empty")
    return raw


def iter_json_lines(path: PathLike) -> Iterator[Tuple[int, dict]]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSON-lines file.

    Line numbers are 1-based. Only ``\\n`` separates lines (a trailing ``\\r`` is
    JSON whitespace), so Unicode line separators inside strings are safe.

    Raises:
        ClueDataError: missing or empty file, invalid UTF-8, invalid JSON, or a
            line that is not a JSON object.
    """
    path = Path(path)
    raw = _read_bytes(path)
    for number, chunk in enumerate(raw.split(b"\n"), start=1):
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ClueDataError(path, f"not valid UTF-8 (byte offset {exc.start} in the line)", line=number) from exc
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ClueDataError(path, f"invalid JSON: {exc.msg} (column {exc.colno})", line=number) from exc
        if not isinstance(obj, dict):
            raise ClueDataError(path, f"expected a JSON object, got {type(obj).__name__}", line=number)
        yield number, obj


def load_json_document(path: PathLike) -> Any:
    """Parse a file holding a single JSON document.

    Raises:
        ClueDataError: missing or empty file, invalid UTF-8, or invalid JSON (with
            the line of the syntax error).
    """
    path = Path(path)
    raw = _read_bytes(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ClueDataError(path, "not valid UTF-8", line=line) from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ClueDataError(path, f"invalid JSON: {exc.msg} (column {exc.colno})", line=exc.lineno) from exc


_TYPE_NAMES = {str: "a string", int: "an integer", list: "a list", dict: "an object"}


def require(obj: dict, key: str, kind: Union[type, Tuple[type, ...]], where: Location) -> Any:
    """Return ``obj[key]``, checking that it is present and of type ``kind``.

    ``bool`` is never accepted where ``int`` is asked for.

    Raises:
        ClueDataError: the field is missing or has the wrong type.
    """
    if key not in obj:
        raise where.error(f"missing field {key!r}")
    value = obj[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        wanted = " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
        raise where.error(f"field {key!r} should be {wanted}, got {type(value).__name__} {value!r:.60}")
    return value
