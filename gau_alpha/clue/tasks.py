"""Registry of the 11 CLUE tasks: implementation and the recipe's default hyper-parameters.

Defaults follow the GAU-alpha authors' CLUE code (bojone/CLUE-bert4keras, also
used for RoFormerV2): AdaFactor (``beta1=0.9``, no factoring below 10^6 rows),
learning rate 5e-4, first-token pooling, ``application='unilm'`` with all-zero
segment ids, and per task:

=========  ======  ==========  ======  ===========  =========================================
task       maxlen  batch size  epochs  grad. accum  head
=========  ======  ==========  ======  ===========  =========================================
iflytek    128     32          10      1            [CLS] + Dense softmax (119 classes)
tnews      128     32          10      1            [CLS] + Dense softmax (15 classes)
afqmc      128     32          10      1            pair, [CLS] + Dense softmax (2)
cmnli      128     32          10      1            pair, [CLS] + Dense softmax (3)
ocnli      128     32          10      1            pair, [CLS] + Dense softmax (3)
wsc        128     32          30      1            marked spans, [CLS] + Dense softmax (2)
csl        128     32          10      1            keywords + abstract, [CLS] + Dense (2)
cmrc2018   512     16          10      2            start/end logits, windows every 128 tokens
c3         512     4           10      4            choices scored separately (4 per question)
chid       64      12          5       2            candidates scored separately (10 per blank)
cluener    256     32          10      1            GlobalPointer (10 types)
=========  ======  ==========  ======  ===========  =========================================

(cmrc2018 in the recipe uses a one-head GlobalPointer over (start, end) pairs;
here it has independent start/end logits, decoded with a maximum answer length
of 100 tokens, so the longest answers of the dev data fit.)
"""
from __future__ import annotations

from typing import Callable, Dict, List

from .base import Task, TaskDefaults
from .choice_tasks import C3Task, ChidTask
from .labels import canonical_task
from .ner_task import CluenerTask
from .span_task import Cmrc2018Task
from .text_tasks import SequenceClassificationTask

__all__ = ["TASK_NAMES", "RECIPE_DEFAULTS", "get_task", "PUBLISHED_DEV_SCORES"]

RECIPE_DEFAULTS: Dict[str, TaskDefaults] = {
    "iflytek": TaskDefaults(maxlen=128, batch_size=32, epochs=10),
    "tnews": TaskDefaults(maxlen=128, batch_size=32, epochs=10),
    "afqmc": TaskDefaults(maxlen=128, batch_size=32, epochs=10),
    "cmnli": TaskDefaults(maxlen=128, batch_size=32, epochs=10),
    "ocnli": TaskDefaults(maxlen=128, batch_size=32, epochs=10),
    "wsc": TaskDefaults(maxlen=128, batch_size=32, epochs=30),
    "csl": TaskDefaults(maxlen=128, batch_size=32, epochs=10),
    "cmrc2018": TaskDefaults(
        maxlen=512, batch_size=16, epochs=10, grad_accum_steps=2, doc_stride=128, max_answer_len=100
    ),
    "c3": TaskDefaults(maxlen=512, batch_size=4, epochs=10, grad_accum_steps=4),
    "chid": TaskDefaults(maxlen=64, batch_size=12, epochs=5, grad_accum_steps=2),
    "cluener": TaskDefaults(maxlen=256, batch_size=32, epochs=10),
}
"""The recipe's per-task hyper-parameters (learning rate 5e-4 everywhere)."""

PUBLISHED_DEV_SCORES: Dict[str, float] = {
    "iflytek": 61.41,
    "tnews": 57.76,
    "afqmc": 74.17,
    "cmnli": 81.82,
    "ocnli": 75.86,
    "wsc": 79.93,
    "csl": 85.67,
    "cmrc2018": 58.09,
    "c3": 68.24,
    "chid": 87.91,
    "cluener": 80.01,
}
"""Dev scores of the released GAU-alpha (base) in the authors' README (ZhuiyiTechnology/GAU-alpha)."""

_FACTORIES: Dict[str, Callable[[str, TaskDefaults], Task]] = {
    "iflytek": SequenceClassificationTask,
    "tnews": SequenceClassificationTask,
    "afqmc": SequenceClassificationTask,
    "cmnli": SequenceClassificationTask,
    "ocnli": SequenceClassificationTask,
    "wsc": SequenceClassificationTask,
    "csl": SequenceClassificationTask,
    "cmrc2018": Cmrc2018Task,
    "c3": C3Task,
    "chid": ChidTask,
    "cluener": CluenerTask,
}

TASK_NAMES: List[str] = list(_FACTORIES)
"""The 11 tasks, in CLUE's order."""


def get_task(name: str) -> Task:
    """The task object for ``name`` (aliases such as ``'cluewsc2020'`` accepted).

    Raises:
        ValueError: not a CLUE task.
    """
    canonical = canonical_task(name)
    return _FACTORIES[canonical](canonical, RECIPE_DEFAULTS[canonical])
