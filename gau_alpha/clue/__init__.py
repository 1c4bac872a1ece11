"""CLUE data layer: loaders, typed examples, metrics and submission writers for
the 11 CLUE tasks (iflytek, tnews, afqmc, cmnli, ocnli, wsc, csl, cmrc2018, c3,
chid, cluener). Pure Python: no TensorFlow here. See ``docs/clue-data.md``.
"""
from __future__ import annotations

from .errors import ClueDataError, ClueSubmissionError
from .examples import (
    C3Example,
    ChidExample,
    ClassificationExample,
    CluenerExample,
    Cmrc2018Example,
    CslExample,
    Example,
    SentencePairExample,
    WscExample,
    entity_spans,
)
from .labels import CLUENER_TYPES, TASKS, TNEWS_LABEL_DESCS, canonical_task, label_list, label_to_index
from .loaders import SPLITS, VERSIONS, load_file, load_split, split_files
from .metrics import (
    NerScores,
    PRF,
    Cmrc2018Scores,
    accuracy,
    cluener_scores,
    cmrc2018_em,
    cmrc2018_f1,
    cmrc2018_scores,
    cmrc_mixed_segmentation,
)
from .submission import (
    read_submission,
    submission_filename,
    validate_submission,
    write_atomically,
    write_submission,
)

__all__ = [
    "ClueDataError",
    "ClueSubmissionError",
    "C3Example",
    "ChidExample",
    "ClassificationExample",
    "CluenerExample",
    "Cmrc2018Example",
    "CslExample",
    "Example",
    "SentencePairExample",
    "WscExample",
    "entity_spans",
    "CLUENER_TYPES",
    "TASKS",
    "TNEWS_LABEL_DESCS",
    "canonical_task",
    "label_list",
    "label_to_index",
    "SPLITS",
    "VERSIONS",
    "load_file",
    "load_split",
    "split_files",
    "NerScores",
    "PRF",
    "Cmrc2018Scores",
    "accuracy",
    "cluener_scores",
    "cmrc2018_em",
    "cmrc2018_f1",
    "cmrc2018_scores",
    "cmrc_mixed_segmentation",
    "read_submission",
    "submission_filename",
    "validate_submission",
    "write_atomically",
    "write_submission",
]
