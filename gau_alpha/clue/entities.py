"""Validation of CLUENER2020 entity labels ``{type: {entity_text: [[start, end], ...]}}``."""
from __future__ import annotations

import numbers
from typing import Any, Dict, List

from .labels import CLUENER_TYPES


def check_entity_label(label: Any, text: str) -> Dict[str, Dict[str, List[List[int]]]]:
    """Check a cluener label against its sentence and return a normalised copy.

    Checks: ``label`` is an object whose keys are CLUENER types, each mapping
    entity texts to a non-empty list of ``[start, end]`` integer pairs (lists or
    tuples; NumPy integers are accepted and converted to ``int``) with
    ``0 <= start <= end < len(text)`` and ``text[start:end + 1] == entity_text``
    (ends are inclusive).

    Raises:
        ValueError: with a message saying which entity and span is wrong.
    """
    if not isinstance(label, dict):
        raise ValueError(f"label should be an object {{type: {{entity: [[start, end]]}}}}, got {type(label).__name__}")
    checked: Dict[str, Dict[str, List[List[int]]]] = {}
    for etype, entities in label.items():
        if etype not in CLUENER_TYPES:
            raise ValueError(f"unknown entity type {etype!r} (expected one of {', '.join(CLUENER_TYPES)})")
        if not isinstance(entities, dict):
            raise ValueError(f"label[{etype!r}] should be an object, got {type(entities).__name__}")
        checked[etype] = {}
        for entity, positions in entities.items():
            if not isinstance(positions, list) or not positions:
                raise ValueError(f"label[{etype!r}][{entity!r}] should be a non-empty list of [start, end]")
            spans = []
            for pair in positions:
                if (
                    not isinstance(pair, (list, tuple))
                    or len(pair) != 2
                    or not all(isinstance(x, numbers.Integral) and not isinstance(x, bool) for x in pair)
                ):
                    raise ValueError(f"label[{etype!r}][{entity!r}]: {pair!r} is not a [start, end] pair of integers")
                start, end = int(pair[0]), int(pair[1])
                if not 0 <= start <= end < len(text):
                    raise ValueError(
                        f"{etype} {entity!r}: span [{start}, {end}] is outside the text (length {len(text)})"
                    )
                if text[start : end + 1] != entity:
                    raise ValueError(
                        f"{etype} {entity!r}: span [{start}, {end}] (inclusive end) covers "
                        f"{text[start:end + 1]!r}, not the entity text"
                    )
                spans.append([start, end])
            checked[etype][entity] = spans
    return checked
