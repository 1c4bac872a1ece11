"""Documents of a pre-training corpus, streamed line by line and resumable at a cursor.

A corpus is one or more files, each holding one document a line, in one of two formats:

- **JSON lines** (``.jsonl``/``.json``, or any file whose first non-blank line starts with
  ``{``): each line a JSON object with the document in ``"text"`` (``"content"``, the field
  of GAU-alpha's own ``train.py``, is accepted too). Other fields are ignored.
- **plain text** (anything else): each non-blank line is a document.

Blank lines are no documents (in either format), nor is a JSON record whose text is empty
or only whitespace; every other line must be valid, or :class:`~gau_alpha.errors.DataError`
names the file and the line. Files are never loaded whole: :func:`iter_documents` reads one
line at a time from a byte offset, so a run resumes reading exactly where it stopped
(:class:`Cursor`), and :func:`check_corpus` validates every line before a run writes
anything.

The stream is endless: after the last file it starts over at the first one (the cursor's
``pass_index`` counts the passes).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from gau_alpha.errors import DataError

__all__ = ["TEXT_FIELDS", "Cursor", "Document", "CorpusSummary", "file_format", "iter_documents", "check_corpus"]

TEXT_FIELDS = ("text", "content")
"""The JSON fields that hold a document, in order of preference."""
JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")
PLAIN_SUFFIXES = (".txt", ".text")


@dataclass(frozen=True)
class Cursor:
    """Where the next document starts: the ``file_index``-th corpus file, at byte ``offset``,
    which is the start of line ``line`` (1-based), in pass ``pass_index`` over the corpus."""

    pass_index: int = 0
    file_index: int = 0
    offset: int = 0
    line: int = 1

    def to_json(self) -> Dict[str, int]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: Dict[str, Any]) -> "Cursor":
        return cls(**{k: int(value[k]) for k in ("pass_index", "file_index", "offset", "line")})


@dataclass(frozen=True)
class Document:
    """One document: its text, where it came from, and the cursor just after it."""

    text: str
    path: Path
    line: int
    next_cursor: Cursor


@dataclass
class CorpusSummary:
    """What :func:`check_corpus` found: documents and characters per file, and in all."""

    files: List[Dict[str, Any]] = field(default_factory=list)

    @property
    def documents(self) -> int:
        return sum(f["documents"] for f in self.files)

    @property
    def characters(self) -> int:
        return sum(f["characters"] for f in self.files)


def file_format(path: Path) -> str:
    """``"jsonl"`` or ``"text"``: by the suffix, else by the first non-blank line.

    Raises:
        DataError: the file does not exist or cannot be read.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "corpus file not found")
    suffix = path.suffix.lower()
    if suffix in JSON_SUFFIXES:
        return "jsonl"
    if suffix in PLAIN_SUFFIXES:
        return "text"
    with open(path, "rb") as handle:
        for raw in handle:
            stripped = raw.strip()
            if stripped:
                return "jsonl" if stripped.lstrip(b"\xef\xbb\xbf").startswith(b"{") else "text"
    return "text"


def _decode(raw: bytes, path: Path, line: int) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(path, "not UTF-8 text (byte 0x%02x at byte %d of the line)"
                        % (raw[error.start], error.start), line=line) from None
    if line == 1 and text.startswith("\ufeff"):
        text = text[1:]
    return text


def _document_text(line_text: str, fmt: str, path: Path, line: int) -> Optional[str]:
    """The document a decoded line holds, or None for a blank line / empty record."""
    if not line_text.strip():
        return None
    if fmt == "text":
        return line_text.rstrip("\r\n")
    try:
        record = json.loads(line_text)
    except json.JSONDecodeError as error:
        raise DataError(path, "not a JSON object (%s at column %d)" % (error.msg, error.colno), line=line) from None
    if not isinstance(record, dict):
        raise DataError(path, "expected a JSON object with a \"text\" field, got %s" % type(record).__name__, line=line)
    for name in TEXT_FIELDS:
        if name in record:
            value = record[name]
            if not isinstance(value, str):
                raise DataError(path, "field %r must be a string, got %s" % (name, type(value).__name__), line=line)
            return value if value.strip() else None
    raise DataError(path, "JSON record has no \"text\" field (fields: %s)" % ", ".join(sorted(record)[:8]), line=line)


def _read_lines(path: Path, offset: int, line: int) -> Iterator[Tuple[int, bytes, int]]:
    """``(line number, raw line, offset after it)`` from byte ``offset`` (line ``line``) on."""
    with open(path, "rb") as handle:
        handle.seek(offset)
        while True:
            raw = handle.readline()
            if not raw:
                return
            offset += len(raw)
            yield line, raw, offset
            line += 1


def iter_documents(paths: Sequence[Path], start: Cursor = Cursor()) -> Iterator[Document]:
    """Documents from ``start`` on, forever (pass after pass over ``paths``).

    Raises:
        DataError: a line that is not UTF-8 or not a valid record (naming file and line),
            a missing file, or a whole pass without a single document (an empty corpus).
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise DataError(Path("."), "no corpus files given")
    formats = [file_format(p) for p in paths]
    cursor = start
    found_in_pass = start.offset > 0 or start.file_index > 0  # a resumed pass has had documents
    while True:
        path, fmt = paths[cursor.file_index], formats[cursor.file_index]
        for number, raw, after in _read_lines(path, cursor.offset, cursor.line):
            text = _document_text(_decode(raw, path, number), fmt, path, number)
            if text is None:
                continue
            found_in_pass = True
            yield Document(text, path, number, Cursor(cursor.pass_index, cursor.file_index, after, number + 1))
        if cursor.file_index + 1 < len(paths):
            cursor = Cursor(cursor.pass_index, cursor.file_index + 1, 0, 1)
            continue
        if not found_in_pass:
            raise DataError(paths[0] if len(paths) == 1 else Path(paths[0]).parent,
                            "the corpus holds no documents (%s: only blank lines or empty texts)"
                            % ", ".join(str(p) for p in paths))
        cursor, found_in_pass = Cursor(cursor.pass_index + 1, 0, 0, 1), False


def check_corpus(paths: Sequence[Path]) -> CorpusSummary:
    """Read every line of every file once (streamed) and check it, before a run starts.

    Returns:
        documents and characters per file.

    Raises:
        DataError: the first bad line (file and line named), a missing file, or a corpus
            without any document.
    """
    summary = CorpusSummary()
    if not paths:
        raise DataError(Path("."), "no corpus files given")
    for path in map(Path, paths):
        fmt = file_format(path)
        documents = characters = 0
        for number, raw, _ in _read_lines(path, 0, 1):
            text = _document_text(_decode(raw, path, number), fmt, path, number)
            if text is not None:
                documents += 1
                characters += len(text)
        summary.files.append({"path": str(path), "format": fmt, "documents": documents, "characters": characters})
    if summary.documents == 0:
        where = paths[0] if len(paths) == 1 else ", ".join(str(p) for p in paths)
        raise DataError(where, "the corpus holds no documents (only blank lines or empty texts)")
    return summary
