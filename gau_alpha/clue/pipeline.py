"""One CLUE fine-tuning run: data -> model -> epochs (dev evaluation, best weights,
checkpoints, logs) -> test predictions -> submission file.

:func:`run_clue` is what ``gau-alpha clue`` runs (see :mod:`gau_alpha.clue.runner`
for the command line). Files under ``output_dir``:

================================  ==================================================
``metrics.json`` / ``.csv``       per-epoch training loss and dev metrics, best epoch
``training_curve.png``            loss and dev main metric per epoch
``checkpoints/``                  per-epoch model + optimizer + run state (resumable)
``best/model.npz``, ``best.json`` weights of the best dev epoch, and which epoch that is;
``best/model.weights.h5`` etc.   ``best/`` is also a self-describing model (HDF5 weights,
                                  ``finetuned.json``, config, vocab): ``gau-alpha predict``,
                                  ``gau-alpha export``, ``gau_alpha.clue.load_finetuned``
``submission/<official name>``    test predictions of the best weights, test-file order
``random-model/``                 the small random GAU-alpha (when no ``--model-dir``)
``.gau-alpha.lock``               the directory's lock (:mod:`gau_alpha.locking`)
================================  ==================================================

Order of a run (:mod:`gau_alpha.clue.rundir` has the directory mechanics):

1. everything is validated before anything is written: the data (loaded and encoded,
   token ids checked against the embedding), the model directory, the settings, and for
   ``--resume`` the checkpoint's settings, data digest and batch order;
2. the output directory is locked (at once when it exists, so a second run on it fails
   before loading anything) and leftovers of killed runs are cleaned up;
3. a directory holding an earlier run is refused unless ``--resume`` (continue it) or
   ``--overwrite`` (set it aside; it is deleted once the new run has written its first
   checkpoint and put back if the new run fails before that);
4. TensorFlow starts, the model is built, the epochs run; each epoch ends with the best
   weights (if improved), the logs and a checkpoint;
5. the best weights predict the test set and the submission is written.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from gau_alpha import interrupts
from gau_alpha.atomic import discard
from gau_alpha.errors import ConfigError, GauAlphaError, RunError

from .features import Feature, epoch_batches
from .loaders import load_split
from .reporting import CURVE_PNG, plot_history, write_metrics
from .rundir import (
    BEST_DIR,
    CHECKPOINTS,
    RANDOM_MODEL_DIR,
    SUBMISSION_DIR,
    RunDirectory,
    claim_run_directory,
)
from .state import (
    BEST_WEIGHTS,
    create_optimizer_slots,
    latest_checkpoint,
    load_model_weights,
    read_best,
    restore_checkpoint,
    save_best,
    save_checkpoint,
)
from .submission import write_submission
from .tasks import Task, TaskParams, get_spec, get_task

__all__ = ["RunError", "RunOptions", "RunResult", "run_clue", "result_summary", "features_digest"]

logger = logging.getLogger(__name__)

# Settings that must match when resuming (the epoch count may change).
_RESUME_KEYS = ("task", "maxlen", "batch_size", "learning_rate", "grad_accum_steps", "doc_stride",
                "max_answer_len", "seed", "max_steps_per_epoch", "application", "model_config")


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
    allow_larger_embedding: bool = False
    max_steps_per_epoch: Optional[int] = None
    strategy: str = "default"
    resume: bool = False
    overwrite: bool = False
    application: str = "unilm"
    version: str = "1.1"
    eval_batch_size: Optional[int] = None
    deterministic: bool = False
    progress: bool = True
    xla: bool = True


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


# ---------------------------------------------------------------------------- validation
@dataclass
class _Inputs:
    """Everything a run needs that can be checked without writing or TensorFlow."""

    data: Dict[str, List[Any]]
    model: Any  # a ModelDir, or None: the small random model is to be created
    params: TaskParams  # for encoding (the head's sizes are filled in once the encoder exists)
    features: Dict[str, List[Feature]]
    settings: Dict[str, Any]


def _load_data(options: RunOptions) -> Dict[str, List[Any]]:
    if not options.data_dir.exists():
        raise RunError("data directory %s does not exist" % options.data_dir)
    splits = {}
    for split in ("train", "dev", "test"):
        splits[split] = load_split(options.task, options.data_dir, split, version=options.version)  # never empty
    return splits


def _encode(task: Task, split: str, examples: Sequence[Any], tokenizer: Any, params: TaskParams,
            options: RunOptions) -> List[Feature]:
    """Features of one split (train: with labels); a data problem becomes a :class:`RunError`."""
    try:
        return task.encode(examples, tokenizer, params, labelled=split == "train")
    except ValueError as error:
        raise RunError("%s %s data in %s: %s" % (task.name, split, options.data_dir, error)) from None


def _check_token_ids(task: Task, split: str, examples: Sequence[Any], features: Sequence[Feature],
                     vocab_size: int, vocab: Path) -> None:
    """Every token id must index the embedding (``0 <= id < vocab_size``); otherwise
    training would stop inside TensorFlow with an opaque error."""
    for feature in features:
        ids = feature.inputs["token_ids"]
        if not ids.size:
            continue
        lowest, highest = int(ids.min()), int(ids.max())
        if highest >= vocab_size or lowest < 0:
            bad = highest if highest >= vocab_size else lowest
            example = examples[feature.example_index]
            raise RunError("%s %s example %r: token id %d is outside the embedding (vocab_size %d); "
                           "%s does not belong to the model's config"
                           % (task.name, split, getattr(example, "id", feature.example_index), bad, vocab_size, vocab))


def _validate(options: RunOptions, task: Task) -> _Inputs:
    """Load and encode the data and open the model directory (no writes, no TensorFlow).

    Raises:
        DataError, RunError: unusable data; ModelDirError, ConfigError: an unusable
        ``--model-dir`` (missing files, bad config, vocab lines != vocab_size).
    """
    from gau_alpha.model_dir import TINY_CONFIG, open_model_dir
    from gau_alpha.resources import RELEASE_VOCAB
    from gau_alpha.tokenization import load_tokenizer

    data = _load_data(options)
    if options.model_dir is not None:
        model = open_model_dir(options.model_dir, allow_larger_embedding=options.allow_larger_embedding)
        config, vocab = model.load_config(), model.vocab
    else:  # what create_random_model_dir will write
        model, config, vocab = None, dict(TINY_CONFIG), Path(RELEASE_VOCAB)
    tokenizer = load_tokenizer(vocab, fast=True)
    params = TaskParams(maxlen=options.maxlen, doc_stride=options.doc_stride, max_answer_len=options.max_answer_len)
    features = {}
    for split, examples in data.items():
        features[split] = _encode(task, split, examples, tokenizer, params, options)
        _check_token_ids(task, split, examples, features[split], int(config["vocab_size"]), vocab)
    settings = {key: getattr(options, key) for key in _RESUME_KEYS if hasattr(options, key)}
    settings.update(model_config=config, train_digest=features_digest(features["train"]))
    return _Inputs(data, model, params, features, settings)


def _check_resume(state: Dict[str, Any], settings: Dict[str, Any]) -> None:
    saved = state.get("settings", {})
    different = [key for key in _RESUME_KEYS if saved.get(key) != settings.get(key)]
    if different:
        details = ", ".join("%s: %r -> %r" % (k, saved.get(k), settings.get(k)) for k in different)
        raise RunError("cannot --resume: settings differ from the interrupted run (%s)" % details)
    if state.get("train_digest") != settings["train_digest"]:
        raise RunError("cannot --resume: the training data differ from the interrupted run")


def _order_digest(features: Sequence[Feature], options: RunOptions, epoch: int) -> str:
    """SHA-1 of the batch order of ``epoch`` (stored in checkpoints, checked on resume)."""
    batches = epoch_batches(features, options.batch_size, options.seed, epoch)
    if options.max_steps_per_epoch is not None:
        batches = batches[: options.max_steps_per_epoch]
    return hashlib.sha1(json.dumps(batches).encode()).hexdigest()


# ---------------------------------------------------------------------------- the output directory
@dataclass
class _Start:
    """How the run starts: from a checkpoint, or afresh (setting an earlier run aside)."""

    resume_state: Optional[Dict[str, Any]]
    set_aside: List[str]


def _within(path: Path, directory: Path) -> bool:
    path, directory = Path(path).resolve(), Path(directory).resolve()
    return path == directory or directory in path.parents


def _plan(run_dir: RunDirectory, options: RunOptions, inputs: _Inputs) -> _Start:
    """Decide, from what ``output_dir`` holds, how the run starts (nothing is changed here).

    Raises:
        RunError: an earlier run without ``--resume``/``--overwrite``; ``--resume`` without
            anything to resume, or with different settings, data or batch order.
        CheckpointError: ``--resume`` with a damaged checkpoint.
    """
    output = options.output_dir
    entries = run_dir.entries()
    if options.resume:
        found = latest_checkpoint(output)
        if found is not None:
            directory, state = found
            random_model = output / RANDOM_MODEL_DIR
            if inputs.model is None and random_model.is_dir():
                from gau_alpha.model_dir import open_model_dir

                inputs.model = open_model_dir(random_model)
                inputs.settings["model_config"] = inputs.model.load_config()
            _check_resume(state, inputs.settings)
            epoch = int(state["epoch"])
            if state.get("rng", {}).get("next_order_digest") != _order_digest(inputs.features["train"], options, epoch):
                raise RunError("cannot --resume: the batch order of epoch %d differs from the interrupted run" % (epoch + 1))
            return _Start(dict(state, directory=str(directory)), [])
        if not entries and run_dir.writer:
            raise RunError("cannot --resume: no checkpoint in %s" % (output / CHECKPOINTS))
        start = _Start(None, entries)
        if entries:
            _say("--resume: %s has no checkpoint yet (the run stopped during its first epoch): starting it again"
                 % output)
    elif entries and not options.overwrite:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise RunError("%s holds an earlier run (%s): continue it with --resume, or replace it with --overwrite "
                       "(or choose another --output-dir); nothing was changed" % (output, shown))
    else:
        start = _Start(None, entries)
    if options.model_dir is not None:
        for name in start.set_aside:
            if _within(options.model_dir, output / name):
                raise ConfigError("the model directory --model-dir %s lies inside %s, which this run replaces; copy it elsewhere first"
                                  % (options.model_dir, output / name))
    return start


# ---------------------------------------------------------------------------- training
def _random_model(options: RunOptions, chief: bool):
    """The small random GAU-alpha, created under the output directory."""
    from gau_alpha.model_dir import create_random_model_dir

    if not chief:
        raise RunError("a multiworker run (several workers) needs --model-dir")
    directory = options.output_dir / RANDOM_MODEL_DIR
    _say("no --model-dir: creating a small random GAU-alpha in %s (a smoke run: its scores mean nothing; "
         "pass --model-dir weights/chinese_GAU-alpha-char_L-24_H-768 to fine-tune the release)" % directory)
    return create_random_model_dir(directory, seed=options.seed)


def _evaluate(task: Task, trainer: Any, examples: Sequence[Any], features: Sequence[Feature],
              params: TaskParams, batch_size: int, desc: str) -> List[Any]:
    summaries = trainer.predict(features, batch_size, desc=desc)
    return task.decode(examples, features, summaries, params)


def _build_model(task: Task, files: Any, options: RunOptions, strategy: Any, params: TaskParams):
    """``(model, optimizer, params)`` built under the strategy, seeded with ``options.seed``;
    ``params`` gain the encoder's key size and initializer."""
    import dataclasses

    import tensorflow as tf

    from gau_alpha.model_dir import build_encoder
    from .training import make_optimizer, seed_everything

    tf.keras.backend.clear_session()
    seed_everything(options.seed)
    with strategy.scope():
        encoder, transformer = build_encoder(files, application=options.application)
        params = dataclasses.replace(params, key_size=int(transformer.attention_key_size),
                                     kernel_initializer=transformer.initializer)
        model = task.build_model(encoder, params)
        optimizer = make_optimizer(options.learning_rate, options.grad_accum_steps)
    return model, optimizer, params


class _Run:
    """The mutable state of a run between epochs, and how it is written to disk."""

    def __init__(self, options: RunOptions, task: Task, settings: Dict[str, Any], chief: bool):
        self.options, self.task, self.settings, self.chief = options, task, settings, chief
        self.history: List[Dict[str, Any]] = []
        self.best: Dict[str, Any] = {"epoch": 0, "score": float("-inf"), "dev": {}}
        self.best_dir = options.output_dir / BEST_DIR
        self.card: Any = None  # makes best/ a self-describing model (gau_alpha.deploy.finetuned)
        self.summary = {
            "task": task.name,
            "main_metric": task.main_metric,
            "published_gau_alpha_dev": task.spec.published_dev_score,
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()},
        }

    def record(self, row: Dict[str, Any], model: Any, optimizer: Any, next_order: str) -> bool:
        """Add an epoch; save best weights, logs and the checkpoint. Returns whether it is the best.

        Order matters: a submission made from the best weights is removed before they are
        replaced (it would describe weights that are gone); the best weights are written
        before the checkpoint that names their epoch, so a checkpoint never refers to best
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
            discard(output / SUBMISSION_DIR)
            save_best(self.best_dir, model, self.best, card=self.card)
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

    def best_weights(self) -> Optional[Path]:
        """The file holding the best epoch's weights: ``best/model.npz`` when ``best.json``
        names that epoch, else the epoch's checkpoint if still kept; None when no epoch
        scored (the final weights are used).

        Raises:
            RunError: the best epoch's weights are nowhere (exit status 1).
        """
        epoch = self.best["epoch"]
        if not epoch:
            return None
        info = read_best(self.best_dir)
        if info is not None and info.get("epoch") == epoch and (self.best_dir / BEST_WEIGHTS).is_file():
            return self.best_dir / BEST_WEIGHTS
        kept = self.options.output_dir / CHECKPOINTS / ("epoch-%04d" % epoch) / "model.npz"
        if kept.is_file():
            return kept
        error = RunError("the weights of the best epoch (%d) are neither in %s nor in %s; rerun with --overwrite"
                         % (epoch, self.best_dir, kept.parent))
        error.exit_code = 1
        raise error


def run_clue(options: RunOptions, on_epoch_end: Optional[Callable[[int, Dict[str, Any]], None]] = None) -> RunResult:
    """Fine-tune, evaluate and predict one CLUE task (see the module docstring).

    Args:
        options: the run's settings.
        on_epoch_end: called with ``(epochs done, history row)`` after each epoch's
            checkpoint is saved (tests use it to interrupt a run).

    Raises:
        RunError: bad settings or inputs, an earlier run in ``output_dir`` (without
            ``resume``/``overwrite``); DirectoryLockedError (a RunError): another run
            holds ``output_dir``; DataError: malformed data files; ModelDirError,
            ConfigError: an unusable ``model_dir``; CheckpointError: a checkpoint that
            cannot be resumed (all :mod:`gau_alpha.errors`); OSError: the output cannot be
            written (its message names the output directory when the system's does not).
        KeyboardInterrupt: Ctrl-C; its message says whether the run can be resumed.
    """
    started = time.time()
    task = get_task(options.task)  # ConfigError for an unknown task
    options.task = task.name
    if options.resume and options.overwrite:
        raise ConfigError("give --resume (continue the run in %s) or --overwrite (replace it), not both"
                          % options.output_dir)
    strategy, chief = None, True
    if options.strategy == "multiworker":  # only the chief writes (and locks) the output directory
        from .training import is_chief, make_strategy

        strategy = make_strategy(options.strategy)
        chief = is_chief(strategy)
    run_dir = None
    try:
        with claim_run_directory(options.output_dir, writer=chief) as run_dir:
            inputs = _validate(options, task)
            if options.resume and run_dir.writer and not options.output_dir.exists():
                raise RunError("cannot --resume: no checkpoint in %s (no such directory)" % options.output_dir)
            run_dir.lock()
            for note in run_dir.notes:
                _say("%s: %s" % (options.output_dir, note))
            start = _plan(run_dir, options, inputs)
            if start.resume_state is not None:
                run_dir.commit()  # a failure from now on leaves the checkpoints for --resume
            else:
                run_dir.set_aside(start.set_aside)
            return _fine_tune(options, task, inputs, start, run_dir, strategy, chief, on_epoch_end, started)
    except KeyboardInterrupt as interrupt:
        if run_dir is not None and run_dir.committed:
            interrupt.args = ("continue with the same command plus --resume",)
        elif run_dir is not None and run_dir.restored:
            interrupt.args = ("stopped before the first checkpoint; the earlier run in %s was put back"
                              % options.output_dir,)
        else:
            interrupt.args = ("stopped before this run's first checkpoint: nothing of it was kept; "
                              "run the command again",)
        raise
    except OSError as error:
        if isinstance(error, GauAlphaError) or error.filename is not None or error.errno is None:
            raise
        raise OSError(error.errno, error.strerror, str(options.output_dir)) from error


def _fine_tune(options: RunOptions, task: Task, inputs: _Inputs, start: _Start, run_dir: RunDirectory,
               strategy: Any, chief: bool, on_epoch_end: Optional[Callable[[int, Dict[str, Any]], None]],
               started: float) -> RunResult:
    """The TensorFlow part of :func:`run_clue`: build, train, predict, write."""
    import tensorflow as tf

    from .training import Trainer, make_strategy

    if options.deterministic:
        tf.config.experimental.enable_op_determinism()
    if strategy is None:
        strategy = make_strategy(options.strategy)
    files = inputs.model if inputs.model is not None else _random_model(options, chief)
    model, optimizer, params = _build_model(task, files, options, strategy, inputs.params)
    interrupts.check()  # a Ctrl-C that TensorFlow swallowed while building
    data, features = inputs.data, inputs.features

    run = _Run(options, task, inputs.settings, chief)
    run.card = model_card(task, options, params, files)
    start_epoch = 0
    if start.resume_state is not None:
        state = start.resume_state
        start_epoch = int(state["epoch"])
        with strategy.scope():
            create_optimizer_slots(optimizer, model)
            restore_checkpoint(Path(state["directory"]), model, optimizer)
        run.history, run.best = state["history"], state["best"]
        _say("resuming %s after epoch %d of %d" % (task.name, start_epoch, options.epochs))

    trainer = Trainer(task, model, optimizer, strategy, progress=options.progress, xla=options.xla)
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
        run_dir.commit()  # the first checkpoint of this run is on disk: the earlier run may go
        _say("epoch %d/%d: train loss %.4f, dev %s%s (%.1fs)" % (
            epoch + 1, options.epochs, stats["loss"],
            ", ".join("%s %.2f" % kv for kv in scores.items()), " *best*" if improved else "", row["seconds"]))
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, row)

    best_weights = run.best_weights() if chief else None
    if best_weights is not None:
        load_model_weights(best_weights, model)
    elif not chief and (run.best_dir / BEST_WEIGHTS).is_file():
        load_model_weights(run.best_dir / BEST_WEIGHTS, model)
    test_predictions = _evaluate(task, trainer, data["test"], features["test"], params, eval_batch, "test")
    submission = options.output_dir / SUBMISSION_DIR
    files_written: Dict[str, Path] = {}
    if chief:
        submission = write_submission(task.name, data["test"], test_predictions, submission,
                                      version=options.version)
        summary = dict(run.summary, best=run.best, epochs_done=len(run.history), submission=str(submission),
                       compilations=trainer.compilations(),
                       seconds=time.time() - started)
        files_written = write_metrics(options.output_dir, summary, run.history)
        files_written.update(curve=options.output_dir / CURVE_PNG, best=run.best_dir / BEST_WEIGHTS,
                             submission=submission)
    return RunResult(task.name, task.main_metric, run.best["score"], run.best["epoch"], run.history,
                     submission, options.output_dir, files_written)


def model_card(task: Task, options: RunOptions, params: TaskParams, files: Any):
    """What makes the run's ``best/`` a self-describing model (:mod:`gau_alpha.deploy.finetuned`):
    task, labels, head, maxlen, tokenisation, evaluation batch size, the encoder's config and vocab."""
    from gau_alpha.deploy.finetuned import ModelCard, describe_run

    runtime = {"xla": bool(options.xla)} if hasattr(options, "xla") else {}
    description = describe_run(task, params, application=options.application, clue_version=options.version,
                               batch_size=options.eval_batch_size or options.batch_size,
                               model_config=files.load_config(), data_dir=options.data_dir, runtime=runtime)
    return ModelCard(description, Path(files.config), Path(files.vocab))


def result_summary(result: RunResult, seconds: float) -> str:
    """The final report printed by the command line."""
    published = get_spec(result.task).published_dev_score
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
