"""CLUE: loaders, typed examples, metrics, submission writers and the task registry
for the 11 CLUE tasks (iflytek, tnews, afqmc, cmnli, ocnli, wsc, csl, cmrc2018, c3,
chid, cluener). Pure Python: importing this package loads no TensorFlow (training
modules import it when a run starts). See ``docs/clue.md`` and ``docs/clue-data.md``.

Every fact about a task (files, parser, labels, recipe, head, submission format,
published score) is in its :class:`~gau_alpha.clue.tasks.TaskSpec`: ``TASKS[name]``.
"""
from __future__ import annotations

from gau_alpha.errors import DataError, SubmissionError

from . import examples, loaders, metrics, submission
from .examples import *  # noqa: F401,F403
from .loaders import *  # noqa: F401,F403
from .metrics import *  # noqa: F401,F403
from .submission import *  # noqa: F401,F403
from .tasks import TASKS, TaskSpec, canonical_task, get_spec, label_list, label_to_index
from .tasks.classification import TNEWS_LABEL_DESCS
from .tasks.ner import CLUENER_TYPES
from gau_alpha.deploy.finetuned import FinetunedModel, load_finetuned  # noqa: E402  (a run's best/ reloaded)

ClueDataError = DataError
"""A CLUE data file is missing, empty or malformed (:class:`gau_alpha.errors.DataError`)."""
ClueSubmissionError = SubmissionError
"""Predictions do not fit CLUE's submission format (:class:`gau_alpha.errors.SubmissionError`)."""

__all__ = [
    "ClueDataError",
    "ClueSubmissionError",
    "TASKS",
    "TaskSpec",
    "canonical_task",
    "get_spec",
    "label_list",
    "label_to_index",
    "TNEWS_LABEL_DESCS",
    "CLUENER_TYPES",
    "load_finetuned",
    "FinetunedModel",
    *examples.__all__,
    *loaders.__all__,
    *metrics.__all__,
    *submission.__all__,
]
