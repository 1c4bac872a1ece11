"""The interface every CLUE task implements, and the run-time parameters it sees.

A task turns examples into :class:`~gau_alpha.clue.features.Feature` rows
(``encode``), puts a head on the GAU-alpha encoder (``build_model``), defines
the per-example training loss (``loss``), stacks the labels of a batch
(``collate_labels``), reduces each output row to what decoding needs
(``summarize``, called batch by batch so large outputs are never kept),
turns the summaries into official predictions (``decode``) and scores them
(``score``, every metric in percent, like the published GAU-alpha scores).
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .features import Feature

__all__ = ["TaskDefaults", "TaskParams", "Task"]


@dataclass(frozen=True)
class TaskDefaults:
    """Per-task hyper-parameters of the authors' CLUE recipe (bojone/CLUE-bert4keras).

    Attributes:
        maxlen: tokens per sequence.
        batch_size: examples per step (questions for c3, blanks for chid: each
            brings one sequence per choice).
        epochs: training epochs.
        learning_rate: AdaFactor learning rate.
        grad_accum_steps: gradient accumulation (the recipe's optimizer2/optimizer4).
        doc_stride: cmrc2018: tokens between the starts of consecutive windows.
        max_answer_len: cmrc2018: longest answer in tokens.
    """

    maxlen: int = 128
    batch_size: int = 32
    epochs: int = 10
    learning_rate: float = 5e-4
    grad_accum_steps: int = 1
    doc_stride: Optional[int] = None
    max_answer_len: Optional[int] = None


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

    Attributes:
        name: the canonical task name.
        main_metric: the metric that selects the best epoch (a key of :meth:`score`).
        defaults: the recipe's hyper-parameters.
    """

    name: str
    main_metric: str = "accuracy"
    defaults: TaskDefaults

    def __init__(self, name: str, defaults: TaskDefaults):
        self.name = name
        self.defaults = defaults

    # ------------------------------------------------------------------ data
    @abc.abstractmethod
    def encode(
        self, examples: Sequence[Any], tokenizer: Any, params: TaskParams, labelled: bool
    ) -> List[Feature]:
        """Features of ``examples`` (with their training labels when ``labelled``)."""

    @abc.abstractmethod
    def label_shape(self) -> tuple:
        """Shape of a batch of labels with ``None`` for variable sizes, e.g. ``(None,)``."""

    def label_dtype(self) -> str:
        """dtype of the labels (``int32`` unless overridden)."""
        return "int32"

    @abc.abstractmethod
    def collate_labels(self, features: Sequence[Feature], inputs: Dict[str, np.ndarray]) -> np.ndarray:
        """Stack the labels of a batch; ``inputs`` are the padded inputs of the same batch."""

    # ------------------------------------------------------------------ model
    @abc.abstractmethod
    def build_model(self, encoder: Any, params: TaskParams) -> Any:
        """The task model: the encoder (inputs token/segment ids ``(B, N)``, output
        ``(B, N, H)``) plus the head. Its inputs are named like the feature inputs."""

    @abc.abstractmethod
    def loss(self, labels: Any, outputs: Any) -> Any:
        """Per-example training loss, shape ``(B,)`` (TensorFlow tensors)."""

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

    def input_names(self) -> List[str]:
        """Names of the model inputs, in the model's input order."""
        return ["token_ids", "segment_ids"]
