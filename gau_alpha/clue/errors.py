"""Exceptions raised by the CLUE data layer.

Every error names where the problem is: the file, then the 1-based line of a
JSON-lines file or the 0-based record index of a whole-document JSON file, then
what is wrong.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union


class ClueDataError(ValueError):
    """A CLUE data file is missing, empty or malformed.

    Attributes:
        path: the offending file.
        line: 1-based line number in a JSON-lines file (or of a JSON syntax error), if known.
        record: 0-based record index in a whole-document JSON file, if known.
        reason: what is wrong, without the location.
    """

    def __init__(
        self,
        path: Union[str, Path],
        reason: str,
        *,
        line: Optional[int] = None,
        record: Optional[Union[int, str]] = None,
    ) -> None:
        self.path = Path(path)
        self.line = line
        self.record = record
        self.reason = reason
        where = str(self.path)
        if line is not None:
            where += f", line {line}"
        if record is not None:
            where += f", record {record}"
        super().__init__(f"{where}: {reason}")


class ClueSubmissionError(ValueError):
    """Predictions or a submission file do not fit CLUE's submission format."""
