"""The learning-rate schedule: a piecewise-linear multiplier of the base learning rate.

GAU-alpha's recipe: ``{0: 1, 160k: 0.5, 640k: 0.1, 1.28M: 0.01}`` (no warm-up): the
multiplier falls linearly from 1 at step 0 to 0.5 at step 160,000, to 0.1 at 640,000 and
to 0.01 at 1,280,000, and stays there. A shorter run keeps the shape: the step points are
scaled so that the last one is the run's last step (:func:`scaled_schedule`). A schedule can
also be given explicitly as ``"0:1,1000:0.5,4000:0.1"`` (:func:`parse_schedule`); before
its first point the multiplier rises linearly from 0 (a warm-up), as in bert4keras's
``piecewise_linear``.
"""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

from gau_alpha.errors import ConfigError

__all__ = ["RECIPE_SCHEDULE", "RECIPE_STEPS", "Schedule", "parse_schedule", "scaled_schedule", "multiplier",
           "tf_multiplier", "format_schedule"]

RECIPE_SCHEDULE: Dict[int, float] = {0: 1.0, 160_000: 0.5, 640_000: 0.1, 1_280_000: 0.01}
RECIPE_STEPS = 1_280_000
Schedule = List[Tuple[int, float]]
"""Sorted ``(step, multiplier)`` points."""


def parse_schedule(text: str) -> Schedule:
    """``"0:1,160000:0.5"`` -> ``[(0, 1.0), (160000, 0.5)]``.

    Raises:
        ConfigError: naming the bad item (not ``STEP:VALUE``, a negative step or value,
            a step given twice).
    """
    points: Dict[int, float] = {}
    for item in str(text).split(","):
        item = item.strip()
        try:
            step_text, value_text = item.split(":")
            step, value = int(step_text), float(value_text)
        except ValueError:
            raise ConfigError("learning-rate schedule %r: item %r is not STEP:MULTIPLIER" % (text, item)) from None
        if step < 0 or not value >= 0 or value == float("inf"):
            raise ConfigError("learning-rate schedule %r: item %r needs a step >= 0 and a finite multiplier >= 0"
                              % (text, item))
        if step in points:
            raise ConfigError("learning-rate schedule %r: step %d is given twice" % (text, step))
        points[step] = value
    return sorted(points.items())


def scaled_schedule(steps: int, schedule: Dict[int, float] = RECIPE_SCHEDULE) -> Schedule:
    """``schedule`` with its step points scaled so that its last point falls on ``steps``."""
    last = max(schedule)
    if last == 0:
        return sorted(schedule.items())
    return sorted({int(round(step * steps / last)): float(value) for step, value in schedule.items()}.items())


def format_schedule(schedule: Schedule) -> str:
    return ",".join("%d:%g" % (step, value) for step, value in schedule)


def multiplier(step: float, schedule: Schedule) -> float:
    """The multiplier at ``step`` (Python floats; the reference for :func:`tf_multiplier`)."""
    previous_step, previous_value = 0, 0.0
    for point, value in schedule:
        if step < point:
            return previous_value + (value - previous_value) * (step - previous_step) / (point - previous_step)
        previous_step, previous_value = point, value
    return previous_value


def tf_multiplier(step: Any, schedule: Schedule) -> Any:
    """:func:`multiplier` as TensorFlow ops of a scalar ``step`` tensor (float32 result)."""
    import tensorflow as tf

    step = tf.cast(step, tf.float32)
    result = tf.constant(schedule[-1][1], tf.float32)
    pieces = []  # (point, value of the line that holds below it)
    previous_step, previous_value = 0, 0.0
    for point, value in schedule:
        if point > previous_step:
            slope = (value - previous_value) / (point - previous_step)
            pieces.append((float(point), previous_value + slope * (step - float(previous_step))))
        previous_step, previous_value = point, value
    for point, value in reversed(pieces):  # the first point above ``step`` decides
        result = tf.where(step < point, tf.cast(value, tf.float32), result)
    return result
