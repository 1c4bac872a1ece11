"""Load the official CLUE files of the 11 tasks into typed examples.

Which files make up a split, and how a file is parsed, are facts of each task's
:class:`~gau_alpha.clue.tasks.spec.TaskSpec` (``files`` and ``parse``; the table is in
``docs/clue-data.md``). This module finds the task's folder, picks the files of the
split and CLUE version, and runs the task's parser on each.

Train/dev/trial data must be labelled; test data is read without labels and must
carry the ids the submission needs. Anything malformed raises
:class:`~gau_alpha.errors.DataError` (``gau_alpha.clue.ClueDataError``) naming the
file and the line (JSON lines) or record (whole-document JSON).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

from gau_alpha.errors import ConfigError, DataError

from .examples import Example
from .jsonio import PathLike
from .tasks.registry import get_spec
from .tasks.spec import VERSIONS, FileName, TaskSpec, check_version

__all__ = ["SPLITS", "VERSIONS", "task_folder", "split_files", "load_split", "load_file"]

SPLITS = ("train", "dev", "test")
"""Splits every task has; cmrc2018 also has ``'trial'`` (``get_spec(task).files.splits``)."""


def task_folder(spec: TaskSpec, data_dir: PathLike) -> Path:
    """The task's folder under a CLUE root (``<task>/``, the release zip's ``<task>_public/``,
    or those of an alias such as ``cluewsc2020/``), else ``data_dir`` itself."""
    root = Path(data_dir)
    for name in spec.folder_names:
        if (root / name).is_dir():
            return root / name
    return root


def _pick(folder: Path, name: FileName) -> Path:
    """``folder / name``; for alternative names the first that exists."""
    if isinstance(name, str):
        return folder / name
    for alternative in name:
        if (folder / alternative).is_file():
            return folder / alternative
    raise DataError(folder / name[0], "file not found (nor %s beside it)" % " or ".join(name[1:]))


def split_files(task: str, data_dir: PathLike, split: str, *, version: str = "1.1") -> List[Path]:
    """The official data files that make up ``split`` of ``task``, in reading order.

    Args:
        task: a CLUE task (``'cluewsc2020'`` is accepted for ``'wsc'``).
        data_dir: the task's directory, or a root directory holding ``<task>/``
            (or the release zip's ``<task>_public/``; for wsc also ``cluewsc2020[_public]/``).
        split: ``'train'``, ``'dev'`` or ``'test'`` (``'trial'`` for cmrc2018).
        version: ``'1.1'`` (default) or ``'1.0'``; picks the test file of tnews, wsc, c3, chid.

    The files are not checked for existence here (except to choose among
    alternatives, such as OCNLI's training file); :func:`load_split` reports missing ones.

    Raises:
        ConfigError: (a ``ValueError``) unknown task, split or version.
        DataError: none of a file's alternative names exists.
    """
    spec = get_spec(task)
    check_version(version)
    if split not in spec.files.splits:
        raise ConfigError("unknown split %r for %s; expected one of %s" % (split, spec.name, spec.files.splits))
    folder = task_folder(spec, data_dir)
    return [_pick(folder, name) for name in spec.files.names(split, version)]


def load_split(task: str, data_dir: PathLike, split: str, *, version: str = "1.1") -> List[Example]:
    """Load one split of a CLUE task as a list of typed examples, in file order.

    See :func:`split_files` for the arguments. Test examples have ``label=None``.

    Raises:
        DataError: a file is missing, empty or malformed.
        ConfigError: (a ``ValueError``) unknown task, split or version.
    """
    examples: List[Example] = []
    for path in split_files(task, data_dir, split, version=version):
        examples.extend(load_file(task, path, split))
    return examples


def load_file(task: str, path: PathLike, split: str, *, answer_path: Optional[PathLike] = None) -> List[Any]:
    """Parse one official file of ``task`` with the task's parser.

    Args:
        task: a CLUE task name.
        path: the file.
        split: ``'test'`` reads it as unlabelled test data; any other value
            (``'train'``, ``'dev'``, ``'trial'``) as labelled data.
        answer_path: chid only: the answer file for labelled data (default:
            ``<stem>_answer.json`` beside ``path``).

    Raises:
        DataError: the file is missing, empty or malformed.
        ConfigError: (a ``ValueError``) unknown task.
    """
    spec = get_spec(task)
    options = {} if answer_path is None else {"answer_path": Path(answer_path)}  # the chid parser's option
    return spec.parse(spec, Path(path), split != "test", **options)
