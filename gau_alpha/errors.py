"""The project's exceptions: one base class, one subclass per kind of failure.

Every error the package raises for an expected failure (bad input, a file that does not fit,
a run that cannot continue) derives from :class:`GauAlphaError`, and its message names the
file, line, variable or setting at fault. The command line prints such errors as one line
(``gau-alpha <command>: error: <message>``) and exits with :attr:`GauAlphaError.exit_code`.

Hierarchy::

    GauAlphaError
    ├── ConfigError          a model config or a setting is wrong (missing key, bad type, unknown override)
    ├── ModelDirError        a model/release directory is missing files or is inconsistent
    ├── CheckpointError      a checkpoint cannot be read or does not fit the model
    │   └── ConversionError  a checkpoint cannot be converted between formats
    ├── ManifestError        a release manifest is malformed
    ├── DownloadError        downloading or unpacking a release failed (nothing was installed)
    ├── DataError            a data file (CLUE, corpus) is missing or malformed
    ├── SubmissionError      predictions do not fit CLUE's submission format
    └── RunError             a run's settings or state do not allow it to go on

The classes also derive from the built-in exception that callers caught before (mostly
``ValueError``), so ``except ValueError`` keeps working.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

__all__ = [
    "GauAlphaError",
    "ConfigError",
    "ModelDirError",
    "CheckpointError",
    "ConversionError",
    "ManifestError",
    "DownloadError",
    "DestinationExistsError",
    "DataError",
    "SubmissionError",
    "RunError",
]


class GauAlphaError(Exception):
    """Base of every expected failure; the message is one line naming what is wrong."""

    #: exit status of the command line for this error: 2 bad input, 1 a failed run
    exit_code: int = 2


class ConfigError(GauAlphaError, ValueError):
    """A model config or a setting is invalid (names the key and the file)."""


class ModelDirError(GauAlphaError, FileNotFoundError):
    """A model directory lacks files or its files do not agree (names the directory and file)."""


class CheckpointError(GauAlphaError, ValueError):
    """A checkpoint cannot be read, or does not fit the model. The message names the file
    or every offending variable."""


class ConversionError(CheckpointError):
    """A checkpoint cannot be read, written or converted; the message names the file and
    every offending variable."""


class ManifestError(GauAlphaError, ValueError):
    """A manifest file, or a config given to build one, is malformed."""


class DownloadError(GauAlphaError, RuntimeError):
    """Downloading, checking or unpacking the release archive failed; nothing was installed."""

    exit_code = 1


class DestinationExistsError(DownloadError, FileExistsError):
    """The destination directory exists and ``overwrite`` was not given."""

    exit_code = 2


class DataError(GauAlphaError, ValueError):
    """A data file is missing, empty or malformed.

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


class SubmissionError(GauAlphaError, ValueError):
    """Predictions or a submission file do not fit CLUE's submission format."""


class RunError(GauAlphaError, RuntimeError):
    """A problem with a run's inputs, settings or saved state, reported without a traceback."""
