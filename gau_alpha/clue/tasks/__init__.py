"""The CLUE tasks: one :class:`TaskSpec` per task, declared beside its family's Task class.

============================  =========================================================
module                        tasks and family
============================  =========================================================
:mod:`.classification`        iflytek, tnews, afqmc, cmnli, ocnli, wsc, csl: [CLS] + Dense
:mod:`.span`                  cmrc2018: sliding windows, start/end logits
:mod:`.choice`                c3, chid: every choice scored as its own sequence
:mod:`.ner`                   cluener: GlobalPointer
:mod:`.registry`              ``TASKS`` (CLUE order), ``get_spec``, ``get_task``, aliases
:mod:`.spec`                  :class:`TaskSpec`, :class:`SplitFiles`, :class:`SubmissionFormat`,
                              :class:`TaskDefaults`
:mod:`.base`                  the :class:`Task` interface and :class:`TaskParams`
============================  =========================================================

Pure Python: heads and losses import TensorFlow only when a model is built.
"""
from __future__ import annotations

from . import base, registry, spec
from .base import *  # noqa: F401,F403
from .registry import *  # noqa: F401,F403
from .spec import *  # noqa: F401,F403

__all__ = [*base.__all__, *spec.__all__, *registry.__all__]
