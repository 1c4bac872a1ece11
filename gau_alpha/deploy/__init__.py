"""Fine-tuned CLUE models in use: reload, predict on new text, export, fast CPU inference.

=============================  ==========================================================
module                         its one job
=============================  ==========================================================
:mod:`.finetuned`              the self-describing fine-tuned model directory (``best/`` of
                               a run: weights, ``finetuned.json``, config, vocab) and
                               :func:`load_finetuned`
:mod:`.inputs`                 new records in the task's test format (or plain text lines)
:mod:`.runtime`                running a model on length-bucketed batches: Keras, a
                               SavedModel, or onnxruntime
:mod:`.export`                 ``gau-alpha export``: SavedModel / ONNX (+ int8), checked
:mod:`.predict`                ``gau-alpha predict``
=============================  ==========================================================

Importing this package loads no TensorFlow; see ``docs/deploy.md``.
"""
from __future__ import annotations

from typing import Any

__all__ = ["load_finetuned", "FinetunedModel"]


def __getattr__(name: str) -> Any:  # PEP 562: the light names resolve on first use
    if name in __all__:
        from . import finetuned

        return getattr(finetuned, name)
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
