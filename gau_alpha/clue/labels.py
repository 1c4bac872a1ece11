"""The 11 CLUE tasks and their official label sets.

Labels are kept as the strings found in the official files:

- tnews: the codes ``'100'``..``'116'`` with gaps (no 105 or 111), as listed in
  ``tnews_public/labels.json`` (:data:`TNEWS_LABEL_DESCS` maps each to its
  ``label_desc``);
- iflytek: the codes ``'0'``..``'118'``;
- afqmc and csl: ``'0'`` / ``'1'``;
- cmnli and ocnli: ``'entailment'``, ``'neutral'``, ``'contradiction'`` (rows
  labelled ``'-'`` have no gold label and are dropped by the loader);
- wsc (CLUEWSC2020): ``'true'`` / ``'false'``;
- cluener: the 10 entity types of :data:`CLUENER_TYPES`.

c3 (label = the answer text, one of the question's own choices), chid (label = a
candidate index per blank) and cmrc2018 (span answers) have no fixed label set:
their entry in :data:`TASKS` is ``None``.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Dict, List, Mapping, Optional, Tuple

TNEWS_LABEL_DESCS: Mapping[str, str] = MappingProxyType(
    {
        "100": "news_story",
        "101": "news_culture",
        "102": "news_entertainment",
        "103": "news_sports",
        "104": "news_finance",
        "106": "news_house",
        "107": "news_car",
        "108": "news_edu",
        "109": "news_tech",
        "110": "news_military",
        "112": "news_travel",
        "113": "news_world",
        "114": "news_stock",
        "115": "news_agriculture",
        "116": "news_game",
    }
)

NLI_LABELS: Tuple[str, ...] = ("entailment", "neutral", "contradiction")

CLUENER_TYPES: Tuple[str, ...] = (
    "address",
    "book",
    "company",
    "game",
    "government",
    "movie",
    "name",
    "organization",
    "position",
    "scene",
)

TASKS: Mapping[str, Optional[Tuple[str, ...]]] = MappingProxyType(
    {
        "iflytek": tuple(str(i) for i in range(119)),
        "tnews": tuple(TNEWS_LABEL_DESCS),
        "afqmc": ("0", "1"),
        "cmnli": NLI_LABELS,
        "ocnli": NLI_LABELS,
        "wsc": ("true", "false"),
        "csl": ("0", "1"),
        "cmrc2018": None,
        "c3": None,
        "chid": None,
        "cluener": CLUENER_TYPES,
    }
)
"""Task name -> its label strings in a fixed order (the class index order), or None."""

TASK_ALIASES: Mapping[str, str] = MappingProxyType({"cluewsc2020": "wsc", "cluewsc": "wsc"})


def canonical_task(task: str) -> str:
    """Return the canonical task name (``'cluewsc2020'`` -> ``'wsc'``).

    Raises:
        ValueError: ``task`` is not one of the 11 CLUE tasks.
    """
    name = TASK_ALIASES.get(task.lower(), task.lower())
    if name not in TASKS:
        raise ValueError(f"unknown CLUE task {task!r}; expected one of {sorted(TASKS)}")
    return name


def label_list(task: str) -> List[str]:
    """The label strings of ``task`` in class-index order (entity types for cluener).

    Raises:
        ValueError: unknown task, or a task without a fixed label set (c3, chid, cmrc2018).
    """
    name = canonical_task(task)
    labels = TASKS[name]
    if labels is None:
        raise ValueError(f"CLUE task {name!r} has no fixed label set")
    return list(labels)


def label_to_index(task: str) -> Dict[str, int]:
    """Map each label string of ``task`` to its class index (see :func:`label_list`)."""
    return {label: index for index, label in enumerate(label_list(task))}
