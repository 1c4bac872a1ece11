"""Value types for the commands' ``argparse`` options: each rejects a bad value with
argparse's one-line usage error (exit 2) naming the option and the value."""
from __future__ import annotations

import argparse

__all__ = ["positive_int", "non_negative_int", "positive_float"]


def _number(text: str, kind: type, what: str, ok) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected %s, got %r" % (what, text)) from None
    if not ok(value):
        raise argparse.ArgumentTypeError("expected %s, got %r" % (what, text))
    return value


def positive_int(text: str) -> int:
    """An integer >= 1."""
    return int(_number(text, int, "a positive integer", lambda v: v >= 1))


def non_negative_int(text: str) -> int:
    """An integer >= 0 (seeds)."""
    return int(_number(text, int, "a non-negative integer", lambda v: v >= 0))


def positive_float(text: str) -> float:
    """A finite number > 0."""
    return float(_number(text, float, "a positive number", lambda v: v > 0 and v != float("inf")))
