"""The definition of a CLUE task: one :class:`TaskSpec` holds every fact about it.

A spec names the task's official files per split and CLUE version (:class:`SplitFiles`),
the parser that reads them, the example type and label set, the recipe's
hyper-parameters (:class:`TaskDefaults`), the :class:`~gau_alpha.clue.tasks.base.Task`
class that implements features, head, loss and decoding, the submission file
(:class:`SubmissionFormat`) and the published GAU-alpha dev score. The generic modules
(loaders, submission, runner, pipeline) read these facts from the spec and keep none of
their own. The specs are declared next to their family's Task class
(``classification.py``, ``span.py``, ``choice.py``, ``ner.py``) and listed in
:mod:`gau_alpha.clue.tasks.registry`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Type, Union

from gau_alpha.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from .base import Task

__all__ = [
    "VERSIONS",
    "check_version",
    "FileName",
    "SplitFiles",
    "SubmissionFormat",
    "TaskDefaults",
    "TaskSpec",
]

VERSIONS: Tuple[str, ...] = ("1.1", "1.0")
"""CLUE versions: 1.1 (the default) replaced the test sets of tnews, wsc, c3 and chid."""

FileName = Union[str, Tuple[str, ...]]
"""One file of a split: a name, or alternative names of which the first that exists is read."""


def check_version(version: str) -> str:
    """``version`` if it is one of :data:`VERSIONS`.

    Raises:
        ConfigError: (a ``ValueError``) any other value.
    """
    if version not in VERSIONS:
        raise ConfigError("unknown CLUE version %r; expected one of %s" % (version, VERSIONS))
    return version


@dataclass(frozen=True)
class SplitFiles:
    """The official file names of a task's splits, in reading order.

    Attributes:
        train, dev: the files of the split.
        test: the CLUE 1.1 test files.
        test_1_0: the CLUE 1.0 test files, for the tasks whose test set CLUE 1.1
            replaced (``None``: the same files in both versions). It also makes the
            submission file name carry the version (``tnews11_predict.json``).
        extra: further splits (cmrc2018's ``trial``).
    """

    train: Tuple[FileName, ...] = ("train.json",)
    dev: Tuple[FileName, ...] = ("dev.json",)
    test: Tuple[FileName, ...] = ("test.json",)
    test_1_0: Optional[Tuple[FileName, ...]] = None
    extra: Mapping[str, Tuple[FileName, ...]] = field(default_factory=dict)

    @property
    def splits(self) -> Tuple[str, ...]:
        """The split names: train, dev, test, then the extra ones."""
        return ("train", "dev", "test") + tuple(self.extra)

    @property
    def versioned(self) -> bool:
        """Whether the test files (and the submission name) depend on the CLUE version."""
        return self.test_1_0 is not None

    def names(self, split: str, version: str = "1.1") -> Tuple[FileName, ...]:
        """The files of ``split`` for CLUE ``version`` (split and version already checked)."""
        if split == "test":
            return self.test_1_0 if version == "1.0" and self.test_1_0 is not None else self.test
        if split in ("train", "dev"):
            return getattr(self, split)
        return self.extra[split]


@dataclass(frozen=True)
class SubmissionFormat:
    """How a task's test predictions are written (see :mod:`gau_alpha.clue.submission`).

    Attributes:
        check: ``check(spec, example, prediction)`` -> the value written for the example;
            raises ``ValueError`` saying what is wrong (the caller adds where).
        keys: ``None``: the file is JSON lines, one ``{"id": example id, "label": value}``
            per example. Otherwise the file is one JSON object and ``keys(example)`` are
            the example's keys in it.
        values_per_key: with ``keys``: the prediction lists one value per key (chid
            blanks) rather than being the value of the example's one key (cmrc2018).
        key_noun: what the keys are, for messages (``"questions"``, ``"blanks"``).
        stem: the file name before ``_predict.json`` (default: the task name); tasks with
            versioned test files append the version digits (``tnews11``).
    """

    check: Callable[["TaskSpec", Any, Any], Any]
    keys: Optional[Callable[[Any], Sequence[str]]] = None
    values_per_key: bool = False
    key_noun: str = "keys"
    stem: Optional[str] = None

    @property
    def json_lines(self) -> bool:
        """Whether the file is JSON lines (else one JSON object)."""
        return self.keys is None

    def entries(self, example: Any, value: Any) -> List[Tuple[str, Any]]:
        """The ``(key, value)`` pairs of one example in a JSON-object file."""
        keys = list(self.keys(example))
        return list(zip(keys, value)) if self.values_per_key else [(keys[0], value)]

    def gather(self, example: Any, mapping: Mapping[str, Any]) -> Any:
        """The prediction of one example read back from a JSON-object file."""
        keys = list(self.keys(example))
        return [mapping[key] for key in keys] if self.values_per_key else mapping[keys[0]]


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
class TaskSpec:
    """Everything about one CLUE task.

    Attributes:
        name: the canonical task name (``'wsc'``).
        family: the :class:`~gau_alpha.clue.tasks.base.Task` subclass implementing it
            (features, head, loss, decoding, metric); instantiated with the spec.
        example_type: the example dataclass its parser returns.
        parse: ``parse(spec, path, labelled, **options)`` -> examples of one official file
            (raises :class:`~gau_alpha.errors.DataError` naming file and line or record).
        defaults: the recipe's hyper-parameters.
        submission: the submission file's name and format.
        published_dev_score: dev score of the released GAU-alpha (base) in the authors'
            README (ZhuiyiTechnology/GAU-alpha), percent; ``None`` if there is none.
        labels: the label strings in class-index order, or ``None`` (c3, chid, cmrc2018).
        files: the official files of each split.
        aliases: other accepted names (``'cluewsc2020'``); also folder names of the data.
    """

    name: str
    family: Type["Task"]
    example_type: type
    parse: Callable[..., List[Any]]
    defaults: TaskDefaults
    submission: SubmissionFormat
    published_dev_score: Optional[float] = None
    labels: Optional[Tuple[str, ...]] = None
    files: SplitFiles = SplitFiles()
    aliases: Tuple[str, ...] = ()

    @property
    def folder_names(self) -> Tuple[str, ...]:
        """Folder names of the task's data under a CLUE root: ``<name>``, the release zip's
        ``<name>_public``, and the same for each alias."""
        return tuple(folder for name in (self.name,) + self.aliases for folder in (name, name + "_public"))

    def submission_filename(self, version: str = "1.1") -> str:
        """The official submission file name for CLUE ``version`` (``'1.1'`` or ``'1.0'``)."""
        check_version(version)
        stem = self.submission.stem or self.name
        if self.files.versioned:
            stem += version.replace(".", "")
        return stem + "_predict.json"

    def create_task(self) -> "Task":
        """The task object (:attr:`family` instantiated with this spec)."""
        return self.family(self)


def label_index(labels: Sequence[str]) -> Dict[str, int]:
    """``{label: class index}`` for labels in class-index order."""
    return {label: index for index, label in enumerate(labels)}
