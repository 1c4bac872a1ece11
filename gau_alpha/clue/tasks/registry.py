"""The 11 CLUE tasks, in CLUE's order: name -> :class:`~gau_alpha.clue.tasks.spec.TaskSpec`.

Adding a task: declare its spec next to its family's Task class (or in a new module
with a new family) and list it in ``_SPECS`` below; see ``docs/clue.md``, "Adding a task".
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Dict, List, Mapping

from gau_alpha.errors import ConfigError

from .base import Task
from .choice import C3, CHID
from .classification import AFQMC, CMNLI, CSL, IFLYTEK, OCNLI, TNEWS, WSC
from .ner import CLUENER
from .span import CMRC2018
from .spec import TaskSpec, label_index

__all__ = ["TASKS", "canonical_task", "get_spec", "get_task", "label_list", "label_to_index"]

_SPECS = (
    IFLYTEK,
    TNEWS,
    AFQMC,
    CMNLI,
    OCNLI,
    WSC,
    CSL,
    CMRC2018,
    C3,
    CHID,
    CLUENER,
)

TASKS: Mapping[str, TaskSpec] = MappingProxyType({spec.name: spec for spec in _SPECS})
"""Task name -> its spec, in CLUE's order."""

_ALIASES: Mapping[str, str] = MappingProxyType({alias: spec.name for spec in _SPECS for alias in spec.aliases})


def canonical_task(task: str) -> str:
    """The canonical task name (``'cluewsc2020'`` -> ``'wsc'``; case-insensitive).

    Raises:
        ConfigError: (a ``ValueError``) ``task`` is not one of the CLUE tasks.
    """
    name = _ALIASES.get(task.lower(), task.lower())
    if name not in TASKS:
        raise ConfigError("unknown CLUE task %r; expected one of %s" % (task, sorted(TASKS)))
    return name


def get_spec(task: str) -> TaskSpec:
    """The spec of ``task`` (aliases accepted; see :func:`canonical_task`)."""
    return TASKS[canonical_task(task)]


def get_task(task: str) -> Task:
    """A new task object for ``task`` (aliases accepted).

    Raises:
        ConfigError: (a ``ValueError``) not a CLUE task.
    """
    return get_spec(task).create_task()


def label_list(task: str) -> List[str]:
    """The label strings of ``task`` in class-index order (entity types for cluener).

    Raises:
        ConfigError: (a ``ValueError``) unknown task, or a task without a fixed label set
            (c3, chid, cmrc2018).
    """
    spec = get_spec(task)
    if spec.labels is None:
        raise ConfigError("CLUE task %r has no fixed label set" % spec.name)
    return list(spec.labels)


def label_to_index(task: str) -> Dict[str, int]:
    """Map each label string of ``task`` to its class index (see :func:`label_list`)."""
    return label_index(label_list(task))
