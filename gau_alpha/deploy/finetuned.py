"""The self-describing fine-tuned model directory, and :func:`load_finetuned`.

A run of ``gau-alpha clue`` keeps the weights of its best dev epoch in ``RUN_DIR/best/``;
that directory is a complete model that can be copied anywhere and reloaded without the run
or the code that trained it::

    best/model.weights.h5    the task model's weights (Keras HDF5, by layer name)
    best/finetuned.json      what the weights are: task, labels, head, maxlen, tokenisation,
                             batch size, the encoder's application (see :func:`describe_run`)
    best/bert_config.json    the encoder's config
    best/vocab.txt           the tokenizer's vocab
    best/best.json           which epoch, and its dev scores
    best/model.npz           the same weights by position (read back by ``--resume``)

Runs written before this layout (``best/model.npz`` only) stay readable: their settings come
from ``metrics.json`` and their config and vocab from the model directory the run names
(or ``random-model/``).

:func:`load_finetuned` takes a run directory or a ``best/`` directory (or a copy of it) and
returns a :class:`FinetunedModel`; ``model.predict(records)`` returns predictions in the
submission's form (label strings, entity dicts, answer texts, choice indexes). Pure Python
until a model is built or run.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from gau_alpha.atomic import PathLike, write_json
from gau_alpha.errors import ConfigError, DataError, ModelDirError

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "DESCRIPTION_FILE",
    "WEIGHTS_FILE",
    "LEGACY_WEIGHTS",
    "OUTPUT_SHAPES",
    "output_name",
    "describe_run",
    "ModelCard",
    "Encoded",
    "Predictions",
    "FinetunedModel",
    "load_finetuned",
    "count_truncated",
]

FORMAT = "gau-alpha-finetuned"
FORMAT_VERSION = 1
DESCRIPTION_FILE = "finetuned.json"
WEIGHTS_FILE = "model.weights.h5"
LEGACY_WEIGHTS = "model.npz"
CONFIG_FILE = "bert_config.json"  # as in gau_alpha.model_dir
VOCAB_FILE = "vocab.txt"
BEST_DIR = "best"  # as in gau_alpha.clue.rundir
RANDOM_MODEL_DIR = "random-model"

#: output name -> its shape, per head (the names of the exported models' outputs)
OUTPUT_SHAPES: Dict[str, List[str]] = {
    "logits": ["batch", "num_labels"],
    "entity_logits": ["batch", "num_types", "length", "length"],
    "span_logits": ["batch", "length", "2"],
    "choice_logits": ["batch", "num_choices"],
}

_REQUIRED_KEYS = ("task", "maxlen", "application")


def output_name(task: Any) -> str:
    """The name of the task model's output: ``logits`` (classification, ``(B, C)``),
    ``entity_logits`` (cluener, ``(B, types, N, N)``, ``-inf`` where no span can be),
    ``span_logits`` (cmrc2018, ``(B, N, 2)`` start/end), ``choice_logits`` (c3, chid, ``(B, K)``)."""
    from gau_alpha.clue.tasks.choice import C3Task, ChidTask
    from gau_alpha.clue.tasks.ner import CluenerTask
    from gau_alpha.clue.tasks.span import Cmrc2018Task

    if isinstance(task, CluenerTask):
        return "entity_logits"
    if isinstance(task, Cmrc2018Task):
        return "span_logits"
    if isinstance(task, (C3Task, ChidTask)):
        return "choice_logits"
    return "logits"


def describe_run(task: Any, params: Any, *, application: str, clue_version: str, batch_size: int,
                 model_config: Dict[str, Any], data_dir: Optional[PathLike] = None,
                 runtime: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The ``finetuned.json`` of a run: everything needed to rebuild and use the model.

    Args:
        task: the :class:`~gau_alpha.clue.tasks.base.Task`.
        params: the run's :class:`~gau_alpha.clue.tasks.base.TaskParams` (after the encoder
            was built: ``key_size`` is the head's).
        application: the encoder's attention mask (``unilm`` or ``encoder``).
        clue_version: names the submission file.
        batch_size: the evaluation batch size (predictions use the same batches).
        model_config: the encoder's config (recorded for reference; the file is copied).
        data_dir: the run's data (the export check reads its dev split when it still exists).
        runtime: prediction settings of the run that predictions must repeat (e.g. ``xla``).
    """
    name = output_name(task)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "task": task.name,
        "labels": list(task.labels) or None,
        "inputs": list(task.input_names()),
        "output": {"name": name, "shape": OUTPUT_SHAPES[name]},
        "head": {"family": type(task).__name__, "key_size": int(params.key_size)},
        "maxlen": int(params.maxlen),
        "doc_stride": int(params.doc_stride),
        "max_answer_len": int(params.max_answer_len),
        "application": application,
        "clue_version": clue_version,
        "batch_size": int(batch_size),
        "runtime": dict(runtime or {}),
        "tokenizer": {"vocab": VOCAB_FILE, "lowercase": True,
                      "kind": "bert4keras character tokenizer (CJK characters split, lower-cased); "
                              "padding id 0"},
        "config": CONFIG_FILE,
        "weights": WEIGHTS_FILE,
        "model_config": dict(model_config),
        "data_dir": None if data_dir is None else str(data_dir),
    }


@dataclass
class ModelCard:
    """What a run writes beside its best weights to make ``best/`` self-describing.

    Attributes:
        description: the ``finetuned.json`` content (:func:`describe_run`).
        config: the encoder's ``bert_config.json`` to copy.
        vocab: the ``vocab.txt`` to copy.
    """

    description: Dict[str, Any]
    config: Path
    vocab: Path

    def write(self, directory: Path, model: Any) -> None:
        """Write ``model.weights.h5``, ``finetuned.json``, the config and the vocab into
        ``directory`` (a staging directory that is swapped in as a whole)."""
        directory = Path(directory)
        model.save_weights(str(directory / WEIGHTS_FILE))
        shutil.copyfile(self.config, directory / CONFIG_FILE)
        shutil.copyfile(self.vocab, directory / VOCAB_FILE)
        write_json(directory / DESCRIPTION_FILE, self.description)


@dataclass
class Encoded:
    """Model-ready features of some examples.

    Attributes:
        examples: the examples, in input order.
        features: their features (``Feature.example_index`` points into ``examples``).
        truncated: how many examples lost tokens to ``maxlen`` (as in training).
    """

    examples: List[Any]
    features: List[Any]
    truncated: int


@dataclass
class Predictions:
    """Predictions of some examples, in the submission's form, in input order."""

    examples: List[Any]
    predictions: List[Any]
    features: int
    truncated: int
    summaries: List[Any] = field(default_factory=list, repr=False)


def _read_json(path: Path) -> Dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ModelDirError("%s: cannot be read (%s)" % (path, error.strerror or error)) from None
    except ValueError as error:
        raise ConfigError("%s: not valid JSON (%s)" % (path, error)) from None
    if not isinstance(value, dict):
        raise ConfigError("%s: expected a JSON object, got %s" % (path, type(value).__name__))
    return value


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise ModelDirError("%s lacks %s (%s)" % (path.parent, path.name, what))
    return path


class FinetunedModel:
    """A fine-tuned CLUE model loaded from its directory (see the module docstring).

    Attributes:
        directory: the directory holding the files (``best/`` or a copy of it).
        description: the ``finetuned.json`` values.
        weights: ``model.weights.h5`` (or ``model.npz`` of an older run); None for an export
            directory (:func:`gau_alpha.deploy.export.open_export`), which runs without Keras.
        config: the encoder's ``bert_config.json`` (None for an export directory).
        vocab: the ``vocab.txt``.
    """

    def __init__(self, directory: Path, description: Dict[str, Any], weights: Optional[Path],
                 config: Optional[Path], vocab: Path) -> None:
        from gau_alpha.clue.tasks import TaskParams, get_task

        self.directory, self.description = Path(directory), description
        self.weights = None if weights is None else Path(weights)
        self.config = None if config is None else Path(config)
        self.vocab = Path(vocab)
        source = self.directory / DESCRIPTION_FILE
        for key in _REQUIRED_KEYS:
            if key not in description:
                raise ConfigError("%s: missing key %r" % (source, key))
        self.task = get_task(str(description["task"]))  # ConfigError for an unknown task
        try:
            self.params = TaskParams(maxlen=int(description["maxlen"]),
                                     doc_stride=int(description.get("doc_stride", 128)),
                                     max_answer_len=int(description.get("max_answer_len", 100)))
            self.batch_size = int(description.get("batch_size") or 32)
        except (TypeError, ValueError) as error:
            raise ConfigError("%s: %s" % (source, error)) from None
        labels = description.get("labels")
        if labels is not None and list(labels) != list(self.task.labels):
            raise ConfigError("%s: its labels differ from the %s task's label set" % (source, self.task.name))
        self.output_name = output_name(self.task)
        self._tokenizer = None
        self._model = None
        self._trainers: Dict[Any, Any] = {}  # gau_alpha.deploy.runtime.trainer_for

    # ------------------------------------------------------------------ facts
    @property
    def labels(self) -> List[str]:
        """The label strings in output-index order (entity types for cluener; empty for
        cmrc2018, c3, chid)."""
        return list(self.task.labels)

    @property
    def application(self) -> str:
        return str(self.description["application"])

    @property
    def runtime_settings(self) -> Dict[str, Any]:
        """Prediction settings recorded by the run (``{"xla": bool}`` when it had the choice)."""
        return dict(self.description.get("runtime") or {})

    def __repr__(self) -> str:
        return "FinetunedModel(%s, task=%s, maxlen=%d)" % (self.directory, self.task.name, self.params.maxlen)

    # ------------------------------------------------------------------ data
    @property
    def tokenizer(self) -> Any:
        """The fast tokenizer of the run (same ids and offsets as bert4keras's)."""
        if self._tokenizer is None:
            from gau_alpha.tokenization import load_tokenizer

            self._tokenizer = load_tokenizer(self.vocab, fast=True)
        return self._tokenizer

    def encode(self, examples: Sequence[Any], source: PathLike = "<records>") -> Encoded:
        """Features of ``examples`` exactly as the run encoded its test data.

        Raises:
            DataError: an example the task cannot encode (naming ``source``).
        """
        examples = list(examples)
        if not examples:
            raise DataError(source, "no records")
        try:
            features = self.task.encode(examples, self.tokenizer, self.params, labelled=False)
        except ValueError as error:
            raise DataError(source, str(error)) from None
        return Encoded(examples, features, count_truncated(self.task, examples, features, self.tokenizer,
                                                           self.params))

    # ------------------------------------------------------------------ the model
    def keras_model(self) -> Any:
        """The task model (tf-keras) with the fine-tuned weights, built on first use.

        Raises:
            CheckpointError: the weights do not fit the model described.
        """
        if self._model is None:
            if self.weights is None or self.config is None:
                raise ModelDirError("%s is an export: it has no Keras weights (predict with its own runtime)"
                                    % self.directory)
            self._model = build_task_model(self)
        return self._model

    def predict(self, records: Sequence[Any], *, batch_size: Optional[int] = None, runtime: Any = "tf",
                progress: bool = False) -> List[Any]:
        """Predictions of ``records`` in the submission's form, in order.

        Args:
            records: the task's examples (``load_split``/``load_file``), dicts in the task's
                test-file format, or plain strings (single-text tasks: iflytek, tnews, cluener).
            batch_size: default: the run's evaluation batch size.
            runtime: ``"tf"`` (the Keras model, the run's own prediction path), or a batch
                runner (:mod:`gau_alpha.deploy.runtime`, e.g. an ONNX session).
            progress: a progress bar on stderr.
        """
        from .inputs import examples_from_records

        examples = examples_from_records(self.task, records)
        return self.run(self.encode(examples), batch_size=batch_size, runtime=runtime,
                        progress=progress).predictions

    def run(self, encoded: Encoded, *, batch_size: Optional[int] = None, runtime: Any = "tf",
            progress: bool = False, desc: str = "predict", xla: Optional[bool] = None) -> Predictions:
        """Run the model on encoded examples and decode (see :meth:`predict`; ``xla``: the tf
        runtime's XLA setting, default the run's)."""
        batch_size = batch_size or self.batch_size
        if runtime == "tf":
            from .runtime import trainer_for

            summaries = trainer_for(self, progress, xla).predict(encoded.features, batch_size, desc=desc)
        else:
            from .runtime import run_batches

            summaries = run_batches(runtime, self.task, encoded.features, batch_size, desc=desc, progress=progress)
        predictions = self.task.decode(encoded.examples, encoded.features, summaries, self.params)
        return Predictions(encoded.examples, predictions, len(encoded.features), encoded.truncated, summaries)


def build_task_model(finetuned: FinetunedModel) -> Any:
    """The encoder (no checkpoint) plus the task's head, as the run built them, with the
    fine-tuned weights loaded (HDF5 by layer name, or an older run's positional ``.npz``)."""
    import tensorflow as tf

    from gau_alpha.clue.state import load_model_weights
    from gau_alpha.errors import CheckpointError
    from gau_alpha.models import build_transformer_model

    transformer = build_transformer_model(str(finetuned.config), None, model="gau_alpha",
                                          application=finetuned.application, return_keras_model=False)
    last = "Transformer-%d-GatedAttentionUnit-Norm" % (transformer.num_hidden_layers - 1)  # as model_dir.build_encoder
    hidden = transformer.model.get_layer(transformer.prefixed(last)).output
    encoder = tf.keras.Model(transformer.model.inputs, hidden, name="gau_alpha_encoder")
    params = dataclasses.replace(finetuned.params, key_size=int(transformer.attention_key_size),
                                 kernel_initializer=transformer.initializer)
    recorded = (finetuned.description.get("head") or {}).get("key_size")
    if recorded is not None and int(recorded) != params.key_size:
        raise ConfigError("%s: head key_size %s, but the config gives %d"
                          % (finetuned.directory / DESCRIPTION_FILE, recorded, params.key_size))
    model = finetuned.task.build_model(encoder, params)
    try:
        load_model_weights(finetuned.weights, model)  # CheckpointError: a file that does not fit
    except CheckpointError:
        raise
    except (OSError, ValueError) as error:  # anything else h5py or Keras may raise
        raise CheckpointError("%s: does not fit the %s model described in %s (%s)"
                              % (finetuned.weights, finetuned.task.name, finetuned.directory, error)) from None
    return model


def count_truncated(task: Any, examples: Sequence[Any], features: Sequence[Any], tokenizer: Any,
                    params: Any) -> int:
    """How many examples lost tokens to ``params.maxlen``.

    An example counts when its features without a length limit are longer than its features
    as encoded (for cmrc2018, whose contexts are cut into overlapping windows and never lose
    tokens: when its question is longer than ``maxlen // 2`` tokens).
    """
    from gau_alpha.clue.tasks.span import Cmrc2018Task

    if isinstance(task, Cmrc2018Task):
        limit = max(1, params.maxlen // 2)
        return sum(1 for example in examples if len(tokenizer.encode(example.question)[0]) - 2 > limit)
    unlimited = task.encode(examples, tokenizer, dataclasses.replace(params, maxlen=10**7), labelled=False)

    def longest(rows: Sequence[Any]) -> List[int]:
        lengths = [0] * len(examples)
        for feature in rows:
            lengths[feature.example_index] = max(lengths[feature.example_index], feature.length)
        return lengths

    return sum(1 for full, kept in zip(longest(unlimited), longest(features)) if full > kept)


# ---------------------------------------------------------------------------- loading
def _legacy_description(run_dir: Path) -> Dict[str, Any]:
    """``finetuned.json`` values of a run written before ``best/`` described itself."""
    metrics = run_dir / "metrics.json"
    if not metrics.is_file():
        raise ModelDirError("%s is not a fine-tuned run: it has best/%s but neither best/%s nor metrics.json"
                            % (run_dir, LEGACY_WEIGHTS, DESCRIPTION_FILE))
    settings = _read_json(metrics).get("settings")
    if not isinstance(settings, dict) or "task" not in settings or "maxlen" not in settings:
        raise ConfigError("%s: no run settings (task, maxlen) in it" % metrics)
    return {
        "format": FORMAT,
        "format_version": 0,
        "task": settings["task"],
        "maxlen": settings["maxlen"],
        "doc_stride": settings.get("doc_stride", 128),
        "max_answer_len": settings.get("max_answer_len", 100),
        "application": settings.get("application", "unilm"),
        "clue_version": settings.get("version", "1.1"),
        "batch_size": settings.get("eval_batch_size") or settings.get("batch_size") or 32,
        "runtime": {"xla": settings["xla"]} if "xla" in settings else {},
        "data_dir": settings.get("data_dir"),
        "model_dir": settings.get("model_dir"),
    }


def load_finetuned(path: PathLike) -> FinetunedModel:
    """Open a fine-tuned model: a run directory of ``gau-alpha clue`` (its ``best/``), or a
    ``best/`` directory itself (or a copy of it). Nothing is built until it is used.

    Raises:
        ModelDirError: no such directory, or a file it needs is missing (naming the file);
        ConfigError: an unreadable or inconsistent ``finetuned.json``.
    """
    path = Path(path)
    if not path.exists():
        raise ModelDirError("%s: no such directory" % path)
    if not path.is_dir():
        raise ModelDirError("%s is not a directory (expected a run directory of gau-alpha clue)" % path)
    if (path / DESCRIPTION_FILE).is_file():
        directory = path
    elif (path / BEST_DIR / DESCRIPTION_FILE).is_file():
        directory = path / BEST_DIR
    elif (path / BEST_DIR / LEGACY_WEIGHTS).is_file():
        return _load_legacy(path)
    elif (path / BEST_DIR).is_dir():
        raise ModelDirError("%s lacks %s (the fine-tuned model's description)" % (path / BEST_DIR, DESCRIPTION_FILE))
    else:
        raise ModelDirError("%s is not a fine-tuned run: it has no %s/ directory and no %s"
                            % (path, BEST_DIR, DESCRIPTION_FILE))
    description = _read_json(directory / DESCRIPTION_FILE)
    if description.get("format") != FORMAT:
        raise ConfigError("%s: not a %s description (format %r)" % (directory / DESCRIPTION_FILE, FORMAT,
                                                                      description.get("format")))
    if int(description.get("format_version", 0)) > FORMAT_VERSION:
        raise ConfigError("%s: format_version %s is newer than this gau-alpha reads (%d)"
                          % (directory / DESCRIPTION_FILE, description.get("format_version"), FORMAT_VERSION))
    weights = _require_file(directory / str(description.get("weights", WEIGHTS_FILE)), "the fine-tuned weights")
    config = _require_file(directory / str(description.get("config", CONFIG_FILE)), "the encoder's config")
    vocab = _require_file(directory / VOCAB_FILE, "the tokenizer's vocab")
    return FinetunedModel(directory, description, weights, config, vocab)


def _load_legacy(run_dir: Path) -> FinetunedModel:
    description = _legacy_description(run_dir)
    model_dir = description.get("model_dir")
    files = Path(model_dir) if model_dir else run_dir / RANDOM_MODEL_DIR
    if not files.is_dir():
        raise ModelDirError("%s: the run's model directory %s no longer exists (its config and vocab are needed)"
                            % (run_dir, files))
    config = _require_file(files / CONFIG_FILE, "the encoder's config")
    vocab = _require_file(files / VOCAB_FILE, "the tokenizer's vocab")
    return FinetunedModel(run_dir / BEST_DIR, description, run_dir / BEST_DIR / LEGACY_WEIGHTS, config, vocab)
