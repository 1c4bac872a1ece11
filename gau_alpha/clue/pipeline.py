"""One CLUE fine-tuning run: data -> model -> epochs (dev evaluation, best weights,
checkpoints, logs) -> test predictions -> submission file.

:func:`run_clue` is what ``gau-alpha clue`` runs (see :mod:`gau_alpha.clue.runner`
for the command line). Files under ``output_dir``:

================================  ==================================================
``metrics.json`` / ``.csv``       per-epoch training loss and dev metrics, best epoch
``training_curve.png``            loss and dev main metric per epoch
``checkpoints/``                  per-epoch model + optimizer + run state (resumable)
``best/model.npz``                weights of the best dev epoch
``submission/<official name>``    test predictions of the best weights, test-file order
``random-model/``                 the small random GAU-alpha (when no ``--model-dir``)
================================  ==================================================
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from .base import Task, TaskParams
from .features import Feature
from .loaders import load_split
from .reporting import CURVE_PNG, plot_history, write_metrics
from .state import (
    CHECKPOINTS,
    create_optimizer_slots,
    latest_checkpoint,
    load_model_weights,
    restore_checkpoint,
    save_checkpoint,
    save_model_weights,
    write_json,
)
from .submission import write_submission
from .tasks import PUBLISHED_DEV_SCORES, get_task

__all__ = ["RunError", "RunOptions", "RunResult", "run_clue", "features_digest"]

logger = logging.getLogger(__name__)

RANDOM_MODEL_DIR = "random-model"
BEST_DIR = "best"
SUBMISSION_DIR = "submission"

# Settings that must match when resuming (the epoch count may grow).
_RESUME_KEYS = ("task", "maxlen", "batch_size", "learning_rate", "grad_accum_steps", "doc_stride",
                "max_answer_len", "seed", "max_steps_per_epoch", "application", "model_config")


class RunError(RuntimeError):
    """A problem with the run's inputs or settings, reported without a traceback."""


@dataclass
class RunOptions:
    """Fully resolved settings of one run (see ``gau-alpha clue --help``)."""

    task: str
    data_dir: Path
    output_dir: Path
    epochs: int
    batch_size: int
    maxlen: int
    learning_rate: float
    grad_accum_steps: int = 1
    doc_stride: int = 128
    max_answer_len: int = 100
    seed: int = 42
    model_dir: Optional[Path] = None
    max_steps_per_epoch: Optional[int] = None
    strategy: str = "default"
    resume: bool = False
    application: str = "unilm"
    version: str = "1.1"
    eval_batch_size: Optional[int] = None
    deterministic: bool = False
    progress: bool = True


@dataclass
class RunResult:
    """What a finished run produced."""

    task: str
    main_metric: str
    best_score: float
    best_epoch: int
    history: List[Dict[str, Any]]
    submission: Path
    output_dir: Path
    files: Dict[str, Path] = field(default_factory=dict)


def features_digest(features: Sequence[Feature]) -> str:
    """SHA-1 of the features' token ids and labels (detects changed training data on resume)."""
    digest = hashlib.sha1()
    for feature in features:
        for name in sorted(feature.inputs):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(feature.inputs[name]).tobytes())
        digest.update(repr(feature.label).encode())
    return digest.hexdigest()


def _say(message: str) -> None:
    print(message, flush=True)


def _load_data(options: RunOptions) -> Dict[str, List[Any]]:
    if not options.data_dir.exists():
        raise RunError("data directory %s does not exist" % options.data_dir)
    splits = {}
    for split in ("train", "dev", "test"):
        splits[split] = load_split(options.task, options.data_dir, split, version=options.version)
        if not splits[split]:
            raise RunError("%s %s split in %s has no examples" % (options.task, split, options.data_dir))
    return splits


def _prepare_output(options: RunOptions, chief: bool = True) -> Optional[Dict[str, Any]]:
    """Create the output directory (chief only: clear an earlier run unless resuming);
    return the checkpoint state to resume from (or None)."""
    if chief:
        options.output_dir.mkdir(parents=True, exist_ok=True)
    found = latest_checkpoint(options.output_dir)
    if options.resume:
        if found is None:
            raise RunError("--resume: no checkpoint in %s" % (options.output_dir / CHECKPOINTS))
        directory, state = found
        state["directory"] = str(directory)
        return state
    if found is not None and chief:
        logger.warning("%s holds an earlier run; starting afresh (use --resume to continue it)",
                       options.output_dir)
        shutil.rmtree(options.output_dir / CHECKPOINTS, ignore_errors=True)
        shutil.rmtree(options.output_dir / BEST_DIR, ignore_errors=True)
    return None


def _model_files(options: RunOptions, resuming: bool, chief: bool = True):
    """The model directory's files; without ``--model-dir``, the small random model
    under the output directory (created unless resuming with it in place)."""
    from gau_alpha.model_dir import create_random_model_dir, open_model_dir

    if options.model_dir is not None:
        try:
            return open_model_dir(options.model_dir)
        except FileNotFoundError as error:
            raise RunError(str(error)) from None
    directory = options.output_dir / RANDOM_MODEL_DIR
    if resuming and directory.is_dir():
        return open_model_dir(directory)
    if not chief:
        raise RunError("--strategy multiworker with several workers needs --model-dir")
    _say("no --model-dir: creating a small random GAU-alpha in %s (a smoke run: its scores mean nothing; "
         "pass --model-dir weights/chinese_GAU-alpha-char_L-24_H-768 to fine-tune the release)" % directory)
    return create_random_model_dir(directory, seed=options.seed)


def _check_resume(state: Dict[str, Any], settings: Dict[str, Any]) -> None:
    saved = state.get("settings", {})
    different = [key for key in _RESUME_KEYS if saved.get(key) != settings.get(key)]
    if different:
        details = ", ".join("%s: %r -> %r" % (k, saved.get(k), settings.get(k)) for k in different)
        raise RunError("--resume: settings differ from the interrupted run (%s)" % details)
    if state.get("train_digest") != settings["train_digest"]:
        raise RunError("--resume: the training data differ from the interrupted run")


def _encode(task: Task, split: str, examples: Sequence[Any], tokenizer: Any, params: TaskParams,
            options: RunOptions) -> List[Feature]:
    """Features of one split (train: with labels); a data problem becomes a :class:`RunError`."""
    try:
        return task.encode(examples, tokenizer, params, labelled=split == "train")
    except ValueError as error:
        raise RunError("%s %s data in %s: %s" % (task.name, split, options.data_dir, error)) from None


def _evaluate(task: Task, trainer: Any, examples: Sequence[Any], features: Sequence[Feature],
              params: TaskParams, batch_size: int, desc: str) -> List[Any]:
    summaries = trainer.predict(features, batch_size, desc=desc)
    return task.decode(examples, features, summaries, params)


def _build_model(task: Task, files: Any, options: RunOptions, strategy: Any):
    """``(model, optimizer, params)`` built under the strategy, seeded with ``options.seed``."""
    import tensorflow as tf

    from gau_alpha.model_dir import build_encoder
    from .training import make_optimizer, seed_everything

    tf.keras.backend.clear_session()
    seed_everything(options.seed)
    with strategy.scope():
        encoder, transformer = build_encoder(files, application=options.application)
        params = TaskParams(
            maxlen=options.maxlen,
            doc_stride=options.doc_stride,
            max_answer_len=options.max_answer_len,
            key_size=int(transformer.attention_key_size),
            kernel_initializer=transformer.initializer,
        )
        model = task.build_model(encoder, params)
        optimizer = make_optimizer(options.learning_rate, options.grad_accum_steps)
    return model, optimizer, params


def _order_digest(features: Sequence[Feature], options: RunOptions, epoch: int) -> str:
    """SHA-1 of the batch order of ``epoch`` (stored in checkpoints, checked on resume)."""
    from .training import epoch_batches

    batches = epoch_batches(features, options.batch_size, options.seed, epoch)
    if options.max_steps_per_epoch is not None:
        batches = batches[: options.max_steps_per_epoch]
    return hashlib.sha1(json.dumps(batches).encode()).hexdigest()


class _Run:
    """The mutable state of a run between epochs, and how it is written to disk."""

    def __init__(self, options: RunOptions, task: Task, settings: Dict[str, Any], chief: bool):
        self.options, self.task, self.settings, self.chief = options, task, settings, chief
        self.history: List[Dict[str, Any]] = []
        self.best: Dict[str, Any] = {"epoch": 0, "score": float("-inf"), "dev": {}}
        self.best_path = options.output_dir / BEST_DIR / "model.npz"
        self.summary = {
            "task": task.name,
            "main_metric": task.main_metric,
            "published_gau_alpha_dev": PUBLISHED_DEV_SCORES.get(task.name),
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()},
        }

    def record(self, row: Dict[str, Any], model: Any, optimizer: Any, next_order: str) -> bool:
        """Add an epoch; save best weights, logs and the checkpoint. Returns whether it is the best.

        Order matters for resuming: the best weights are written before the
        checkpoint that names their epoch, so a checkpoint never refers to best
        weights that are not on disk.
        """
        self.history.append(row)
        score = row["dev"][self.task.main_metric]
        improved = score > self.best["score"]
        if improved:
            self.best = {"epoch": row["epoch"], "score": score, "dev": row["dev"]}
        if not self.chief:
            return improved
        output = self.options.output_dir
        if improved:
            save_model_weights(self.best_path, model)
            write_json(output / BEST_DIR / "best.json", self.best)
        write_metrics(output, dict(self.summary, best=self.best, epochs_done=row["epoch"]), self.history)
        plot_history(output / CURVE_PNG, self.history, self.task.main_metric,
                     title="%s (GAU-alpha)" % self.task.name)
        rng = {"scheme": "python/numpy/tensorflow seeds = seed + epoch; batch order from "
                         "numpy default_rng((seed, epoch))",
               "seed": self.options.seed, "next_epoch": row["epoch"], "next_order_digest": next_order}
        save_checkpoint(output, row["epoch"], model, optimizer,
                        {"history": self.history, "best": self.best, "settings": self.settings,
                         "train_digest": self.settings["train_digest"], "rng": rng})
        return improved


def run_clue(options: RunOptions, on_epoch_end: Optional[Callable[[int, Dict[str, Any]], None]] = None) -> RunResult:
    """Fine-tune, evaluate and predict one CLUE task (see the module docstring).

    Args:
        options: the run's settings.
        on_epoch_end: called with ``(epochs done, history row)`` after each epoch's
            checkpoint is saved (tests use it to interrupt a run).

    Raises:
        RunError: bad settings or inputs; ClueDataError: malformed data files;
        CheckpointError: a checkpoint that cannot be resumed.
    """
    import tensorflow as tf

    from gau_alpha.tokenization import load_tokenizer

    from .training import Trainer, is_chief, make_strategy

    started = time.time()
    try:
        task = get_task(options.task)
    except ValueError as error:
        raise RunError(str(error)) from None
    options.task = task.name
    if options.deterministic:
        tf.config.experimental.enable_op_determinism()
    strategy = make_strategy(options.strategy)
    chief = is_chief(strategy)
    data = _load_data(options)
    resume_state = _prepare_output(options, chief)
    files = _model_files(options, resuming=resume_state is not None, chief=chief)
    tokenizer = load_tokenizer(files.vocab, fast=True)
    model, optimizer, params = _build_model(task, files, options, strategy)
    features = {split: _encode(task, split, data[split], tokenizer, params, options) for split in data}
    settings = {key: getattr(options, key) for key in _RESUME_KEYS if hasattr(options, key)}
    settings.update(model_config=files.load_config(), train_digest=features_digest(features["train"]))

    run = _Run(options, task, settings, chief)
    start_epoch = 0
    if resume_state is not None:
        _check_resume(resume_state, settings)
        start_epoch = int(resume_state["epoch"])
        if resume_state.get("rng", {}).get("next_order_digest") != _order_digest(features["train"], options,
                                                                                   start_epoch):
            raise RunError("--resume: the batch order of epoch %d differs from the interrupted run"
                           % (start_epoch + 1))
        with strategy.scope():
            create_optimizer_slots(optimizer, model)
            restore_checkpoint(Path(resume_state["directory"]), model, optimizer)
        run.history, run.best = resume_state["history"], resume_state["best"]
        _say("resuming %s after epoch %d of %d" % (task.name, start_epoch, options.epochs))

    trainer = Trainer(task, model, optimizer, strategy, progress=options.progress)
    eval_batch = options.eval_batch_size or options.batch_size
    for epoch in range(start_epoch, options.epochs):
        epoch_started = time.time()
        stats = trainer.train_epoch(features["train"], options.batch_size, options.seed, epoch,
                                    options.max_steps_per_epoch)
        predictions = _evaluate(task, trainer, data["dev"], features["dev"], params, eval_batch, "dev")
        scores = task.score(data["dev"], predictions)
        row = {"epoch": epoch + 1, "train_loss": stats["loss"], "steps": int(stats["steps"]),
               "seconds": time.time() - epoch_started, "dev": scores}
        improved = run.record(row, model, optimizer, _order_digest(features["train"], options, epoch + 1))
        _say("epoch %d/%d: train loss %.4f, dev %s%s (%.1fs)" % (
            epoch + 1, options.epochs, stats["loss"],
            ", ".join("%s %.2f" % kv for kv in scores.items()), " *best*" if improved else "", row["seconds"]))
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, row)

    if run.best_path.is_file():
        load_model_weights(run.best_path, model)
    test_predictions = _evaluate(task, trainer, data["test"], features["test"], params, eval_batch, "test")
    submission = options.output_dir / SUBMISSION_DIR
    files_written: Dict[str, Path] = {}
    if chief:
        submission = write_submission(task.name, data["test"], test_predictions, submission,
                                      version=options.version)
        summary = dict(run.summary, best=run.best, epochs_done=len(run.history), submission=str(submission),
                       seconds=time.time() - started)
        files_written = write_metrics(options.output_dir, summary, run.history)
        files_written.update(curve=options.output_dir / CURVE_PNG, best=run.best_path, submission=submission)
    return RunResult(task.name, task.main_metric, run.best["score"], run.best["epoch"], run.history,
                     submission, options.output_dir, files_written)


def result_summary(result: RunResult, seconds: float) -> str:
    """The final report printed by the command line."""
    published = PUBLISHED_DEV_SCORES.get(result.task)
    lines = [
        "CLUE %s done in %.0fs: best dev %s %.2f at epoch %d%s" % (
            result.task, seconds, result.main_metric, result.best_score, result.best_epoch,
            " (published GAU-alpha base: %.2f)" % published if published is not None else ""),
    ]
    for label, key in (("metrics", "json"), ("metrics (CSV)", "csv"), ("training curve", "curve"),
                       ("best weights", "best"), ("submission", "submission")):
        if key in result.files:
            lines.append("  %-15s %s" % (label + ":", result.files[key]))
    return "\n".join(lines)
