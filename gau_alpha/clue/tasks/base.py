"""The interface every CLUE task implements, and the run-time parameters it sees.

A task turns examples into :class:`~gau_alpha.clue.features.Feature` rows
(``encode``), puts a head on the GAU-alpha encoder (``build_model``), defines
the per-example training loss (``loss``), stacks the labels of a batch
(``collate_labels``), reduces each output row to what decoding needs
(``summarize``, called batch by batch so large outputs are never kept),
turns the summaries into official predictions (``decode``) and scores them
(``score``, every metric in percent, like the published GAU-alpha scores).

The defaults here fit tasks whose label is one class index per feature (the
classification and multiple-choice families); the others override them. Heads and
losses import TensorFlow when called, so a task object itself is pure Python.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Dict, List, Sequence

import numpy as np

from ..features import Feature
from .spec import TaskDefaults, TaskSpec, label_index

__all__ = ["TaskParams", "Task"]


@dataclass(frozen=True)
class TaskParams:
    """Run-time parameters the task code needs.

    Attributes:
        maxlen: tokens per sequence (per choice sequence for c3/chid, per window for cmrc2018).
        doc_stride: cmrc2018 window step in tokens.
        max_answer_len: cmrc2018 longest answer in tokens.
        key_size: the encoder's attention key size (GlobalPointer head size for cluener).
        kernel_initializer: initializer for the head's kernels (GAU-alpha's own).
    """

    maxlen: int
    doc_stride: int = 128
    max_answer_len: int = 100
    key_size: int = 64
    kernel_initializer: Any = "glorot_uniform"


class Task(abc.ABC):
    """One CLUE task: data -> features -> model -> predictions -> metrics.

    Args:
        spec: the task's definition.

    Attributes:
        spec: the task's definition (files, labels, recipe, submission, published score).
        name: the canonical task name.
        defaults: the recipe's hyper-parameters.
        labels: the label strings in class-index order (empty for tasks without a label set).
        label_index: ``{label: class index}``.
        main_metric: the metric that selects the best epoch (a key of :meth:`score`).
    """

    main_metric: str = "accuracy"

    def __init__(self, spec: TaskSpec):
        self.spec = spec
        self.name: str = spec.name
        self.defaults: TaskDefaults = spec.defaults
        self.labels: List[str] = list(spec.labels or ())
        self.label_index: Dict[str, int] = label_index(self.labels)

    def require_labels(self, examples: Sequence[Any]) -> None:
        """Raise ``ValueError`` naming the first example without a label (training data)."""
        for example in examples:
            if example.label is None:
                raise ValueError("%s example %r has no label" % (self.name, example.id))

    # ------------------------------------------------------------------ data
    @abc.abstractmethod
    def encode(
        self, examples: Sequence[Any], tokenizer: Any, params: TaskParams, labelled: bool
    ) -> List[Feature]:
        """Features of ``examples`` (with their training labels when ``labelled``)."""

    def label_shape(self) -> tuple:
        """Shape of a batch of labels with ``None`` for variable sizes; default ``(None,)``."""
        return (None,)

    def label_dtype(self) -> str:
        """dtype of the labels (``int32`` unless overridden)."""
        return "int32"

    def collate_labels(self, features: Sequence[Feature], inputs: Dict[str, np.ndarray]) -> np.ndarray:
        """Stack the labels of a batch; ``inputs`` are the padded inputs of the same batch.

        Default: one class index per feature, ``(B,)`` int32.
        """
        return np.asarray([f.label for f in features], dtype=np.int32)

    def input_names(self) -> List[str]:
        """Names of the model inputs, in the model's input order."""
        return ["token_ids", "segment_ids"]

    # ------------------------------------------------------------------ model
    @abc.abstractmethod
    def build_model(self, encoder: Any, params: TaskParams) -> Any:
        """The task model: the encoder (inputs token/segment ids ``(B, N)``, output
        ``(B, N, H)``) plus the head. Its inputs are named like the feature inputs."""

    def loss(self, labels: Any, outputs: Any) -> Any:
        """Per-example training loss, shape ``(B,)`` (TensorFlow tensors).

        Default: softmax cross-entropy of class-index labels ``(B,)`` and logits ``(B, C)``.
        """
        from ..heads import classification_loss

        return classification_loss(labels, outputs)

    # ------------------------------------------------------------------ predictions
    @abc.abstractmethod
    def summarize(self, feature: Feature, output: np.ndarray) -> Any:
        """Reduce the model output of one feature (padding included) to what decoding needs."""

    @abc.abstractmethod
    def decode(
        self, examples: Sequence[Any], features: Sequence[Feature], summaries: Sequence[Any], params: TaskParams
    ) -> List[Any]:
        """One prediction per example in the form the submission writer takes."""

    @abc.abstractmethod
    def score(self, examples: Sequence[Any], predictions: Sequence[Any]) -> Dict[str, float]:
        """Metrics in percent; includes :attr:`main_metric`."""
