"""One pre-training run, start to end: check, build, train, checkpoint, resume, export.

:func:`run_pretraining` is ``gau-alpha pretrain`` without the command line:

1. every input is checked (:func:`gau_alpha.pretrain.settings.resolve`: options, config,
   vocab, ``--init-from``, the whole corpus) and the model is built (``--init-from`` loaded
   strictly) **before** the output directory is touched: bad input leaves nothing behind;
2. the output directory ``D`` is locked (:mod:`gau_alpha.locking`; one run at a time). An
   earlier run there is continued with ``resume`` (its last checkpoint: weights, optimizer,
   stream position, logs; the settings that define the run must be the same) or replaced
   with ``overwrite``; otherwise the run refuses to start;
3. training: every ``save_every`` steps a checkpoint (:mod:`gau_alpha.pretrain.checkpoint`),
   ``metrics.json`` and ``pretrain_curve.png``; validation every ``eval_every`` steps;
4. at the end ``D`` holds the release's layout (``bert_config.json``, ``vocab.txt``,
   ``bert_model.ckpt.*``), usable by ``gau-alpha clue --model-dir D``, ``fill-mask`` and
   ``convert``.

If a fresh run fails before its first checkpoint, what it wrote is removed (and ``D`` itself
when the run created it). Under ``multiworker`` only the chief (worker 0) writes; every worker
reads the corpus and builds the same global batches, and on ``resume`` reads the chief's
checkpoint, so ``D`` must be on storage that all workers share.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from gau_alpha import interrupts
from gau_alpha.atomic import atomic_file, discard, write_json
from gau_alpha.errors import RunError
from gau_alpha.locking import LOCK_FILE, directory_lock
from gau_alpha.model_dir import CHECKPOINT_PREFIX, CONFIG_FILE, VOCAB_FILE

from .checkpoint import CHECKPOINTS, latest_checkpoint, load_checkpoint_arrays, save_checkpoint
from .reporting import CURVE_PNG, METRICS_JSON, plot_curves, write_metrics
from .settings import RESUME_KEYS, Inputs, PretrainSettings, output_config, resolve

__all__ = ["RUN_ENTRIES", "PretrainResult", "run_pretraining"]

RUN_ENTRIES = (CHECKPOINTS, METRICS_JSON, CURVE_PNG, CONFIG_FILE, VOCAB_FILE, CHECKPOINT_PREFIX + ".index",
               CHECKPOINT_PREFIX + ".data-00000-of-00001", "checkpoint")
"""What a run writes into its output directory (anything else there is left alone)."""


def _say(message: str) -> None:
    print("gau-alpha pretrain: %s" % message, file=sys.stderr, flush=True)


@dataclass
class PretrainResult:
    """What a run did: steps done, its logs, where it wrote, whether it finished."""

    output_dir: Path
    steps_done: int
    history: List[Dict[str, Any]]
    valid: List[Dict[str, Any]]
    finished: bool
    exact_resume: Optional[bool] = None
    files: Dict[str, Path] = field(default_factory=dict)


def _entries(directory: Path) -> List[str]:
    return [name for name in RUN_ENTRIES if (directory / name).exists()]


def _check_same_run(stored: Dict[str, Any], record: Dict[str, Any], directory: Path) -> None:
    for key in RESUME_KEYS:
        if stored.get(key) != record.get(key):
            raise RunError("cannot --resume %s: its %s was %r, this run's is %r (continue with the same settings, "
                           "or start afresh with --overwrite)" % (directory, key, stored.get(key), record.get(key)))


class _Window:
    """Sums of the training steps since the last history row."""

    def __init__(self, state: Optional[Dict[str, float]] = None) -> None:
        self.loss, self.correct, self.tokens, self.steps, self.seconds = (
            (state or {}).get(k, 0.0) for k in ("loss", "correct", "tokens", "steps", "seconds"))

    def add(self, loss: float, correct: float, tokens: float, seconds: float) -> None:
        self.loss += loss
        self.correct += correct
        self.tokens += tokens
        self.steps += 1
        self.seconds += seconds

    def row(self, step: int, learning_rate: float) -> Dict[str, Any]:
        tokens = max(self.tokens, 1.0)
        return {"step": step, "loss": self.loss / tokens, "mlm_accuracy": 100.0 * self.correct / tokens,
                "learning_rate": learning_rate, "seconds": self.seconds}

    def state(self) -> Dict[str, float]:
        return {"loss": self.loss, "correct": self.correct, "tokens": self.tokens, "steps": self.steps,
                "seconds": self.seconds}


def _writes_output(strategy: str) -> bool:
    """Whether this process will be the one that writes (read from ``TF_CONFIG`` for
    ``multiworker``: the chief, or worker 0 of a cluster without one), before TensorFlow loads;
    the strategy's own answer decides later."""
    if strategy != "multiworker":
        return True
    try:
        config = json.loads(os.environ.get("TF_CONFIG") or "{}")
        task, cluster = config.get("task", {}), config.get("cluster", {})
        kind, index = task.get("type", "worker"), int(task.get("index", 0))
    except (ValueError, TypeError, AttributeError):
        return True  # the strategy reports a malformed TF_CONFIG
    return kind == "chief" or (kind == "worker" and index == 0 and "chief" not in cluster)


def _plan(output: Path, s: PretrainSettings, record: Dict[str, Any], writer: bool):
    """The checkpoint to resume (``(directory, state)``) or None for a fresh run.

    Raises:
        RunError: ``--resume`` without a checkpoint, or with settings that differ from the
            run it would continue; an earlier run in ``output`` without ``--resume`` or
            ``--overwrite`` (only for the process that writes).
        CheckpointError: a damaged ``latest.json``.
    """
    if s.resume:
        latest = latest_checkpoint(output) if output.is_dir() else None
        if latest is None:
            raise RunError("cannot --resume: no checkpoint in %s" % (output / CHECKPOINTS))
        _check_same_run(latest[1]["settings"], record, output)
        return latest
    if writer and output.is_dir() and _entries(output) and not s.overwrite:
        raise RunError("%s holds an earlier run (%s): continue it with --resume, or replace it with --overwrite; "
                       "nothing was changed" % (output, ", ".join(_entries(output)[:3])))
    return None


def run_pretraining(settings: PretrainSettings, *, stop_after: Optional[int] = None,
                    on_checkpoint: Optional[Callable[[int], None]] = None) -> PretrainResult:
    """Run (or resume) one pre-training run (see the module docstring).

    Args:
        settings: the run's settings.
        stop_after: stop (as if interrupted) once this many steps are done in total and
            checkpointed, without the final export (tests of resuming).
        on_checkpoint: called with the step after each checkpoint is written.

    Raises:
        ConfigError, ModelDirError, DataError, CheckpointError: bad input (nothing written).
        RunError: an earlier run in the output directory without ``resume``/``overwrite``,
            different settings on ``resume``, a loss that became NaN; DirectoryLockedError:
            another run holds the directory.
    """
    started = time.time()
    s = settings
    # pure Python first: bad input and a wrong output directory fail fast, before TensorFlow loads
    inputs = resolve(settings)
    output = Path(s.output_dir)
    record = inputs.record()
    resume_from = _plan(output, s, record, _writes_output(s.strategy))

    from gau_alpha.clue.training import is_chief, make_strategy
    from gau_alpha.tokenization import load_tokenizer

    from .masking import Segmenter, WholeWordMasker
    from .packing import BatchMaker, Packer, SequenceStream, fixed_batches
    from .trainer import Pretrainer

    strategy = make_strategy(s.strategy)
    chief = is_chief(strategy)

    tokenizer = load_tokenizer(inputs.vocab, fast=True)
    segmenter = Segmenter(s.segmenter)
    masker = WholeWordMasker(tokenizer._token_dict, tokenizer.mask_id)
    valid_batches = (fixed_batches(s.valid, tokenizer, segmenter, masker, s.maxlen, s.batch_size,
                                   s.valid_sequences, s.seed) if s.valid else [])
    trainer = Pretrainer(inputs, strategy)  # strict --init-from loading: fails before D is touched
    interrupts.check()

    created = not output.exists()
    lock = directory_lock(output, "another gau-alpha pretrain run") if chief else contextlib.nullcontext()
    checkpointed = False
    try:
        with lock:
            if chief and s.overwrite:
                for name in _entries(output):
                    discard(output / name)
            stream = SequenceStream(Packer(s.corpus, tokenizer, segmenter, s.maxlen), s.window, s.seed)
            maker = BatchMaker(stream, masker, s.batch_size, s.grad_accum_steps)
            history: List[Dict[str, Any]] = []
            valid_rows: List[Dict[str, Any]] = []
            window = _Window()
            if resume_from is not None:
                directory, state = resume_from
                trainer.restore(load_checkpoint_arrays(directory, "model", trainer.model_shapes()),
                                load_checkpoint_arrays(directory, "optimizer", trainer.optimizer_shapes()))
                stream.restore(state["stream"])
                history, valid_rows, window = state["history"], state["valid"], _Window(state["window"])
                checkpointed = True
                _say("resuming %s at step %d of %d" % (output, state["step"], s.steps))
            step = trainer.step
            save_every = s.save_every or min(1000, s.steps)
            eval_every = s.eval_every or save_every

            def summary(finished: bool) -> Dict[str, Any]:
                return {"settings": record, "corpus": {"train": inputs.corpus.files,
                                                       "valid": inputs.valid.files if inputs.valid else []},
                        "steps_done": step, "finished": finished, "exact_resume": trainer.exact_resume,
                        "seconds": time.time() - started, "history": history, "valid": valid_rows}

            def write_logs(finished: bool) -> None:
                write_metrics(output, summary(finished))
                plot_curves(output / CURVE_PNG, history, valid_rows, title="%s%s pre-training" % (
                    s.model, "" if s.residual_attention is None else " + %s residual attention" % s.residual_attention))

            if valid_batches and chief and step == 0:
                valid_rows.append(dict(step=0, **trainer.evaluate(valid_batches)))  # the untrained baseline
            from tqdm import tqdm

            bar = tqdm(total=s.steps, initial=step, desc="pretrain", unit="step", disable=not s.progress,
                       file=sys.stderr, dynamic_ncols=True)
            while step < s.steps:
                interrupts.check()
                batch = maker.next_batch()
                tick = time.time()
                loss, correct, tokens = trainer.train_step(batch, step)
                step += 1
                if not math.isfinite(loss):
                    error = RunError("the MLM loss became %s at step %d (try a lower --learning-rate)" % (loss, step))
                    error.exit_code = 1
                    raise error
                window.add(loss, correct, tokens, time.time() - tick)
                bar.update(1)
                if step % s.log_every == 0 or step == s.steps:
                    history.append(window.row(step, trainer.learning_rate()))
                    window = _Window()
                    bar.set_postfix(loss="%.3f" % history[-1]["loss"], acc="%.1f" % history[-1]["mlm_accuracy"])
                if valid_batches and chief and (step % eval_every == 0 or step == s.steps):
                    valid_rows.append(dict(step=step, **trainer.evaluate(valid_batches)))
                if step % save_every == 0 or step == s.steps:
                    if chief:
                        model_arrays, model_names = trainer.weights()
                        optimizer_arrays, optimizer_names = trainer.optimizer_state()
                        save_checkpoint(output, step, model_arrays, model_names, optimizer_arrays, optimizer_names,
                                        {"settings": record, "stream": stream.state(), "history": history,
                                         "valid": valid_rows, "window": window.state()})
                        write_logs(finished=False)
                    checkpointed = True
                    if on_checkpoint is not None:
                        on_checkpoint(step)
                    if stop_after is not None and step >= stop_after:
                        bar.close()
                        return PretrainResult(output, step, history, valid_rows, False, trainer.exact_resume)
            bar.close()
            files: Dict[str, Path] = {}
            if chief:
                _export(trainer, inputs, output)
                write_logs(finished=True)
                files = {"model": output, "metrics": output / METRICS_JSON, "curve": output / CURVE_PNG}
            return PretrainResult(output, step, history, valid_rows, True, trainer.exact_resume, files)
    except BaseException:
        if chief and not checkpointed:
            _remove_partial(output, created)
        raise


def _export(trainer: Any, inputs: Inputs, output: Path) -> None:
    """The release layout in ``output``: TF1 checkpoint, vocab, config (each written atomically)."""
    trainer.export_checkpoint(output / CHECKPOINT_PREFIX)
    with atomic_file(output / VOCAB_FILE, "wb") as handle, open(inputs.vocab, "rb") as source:
        shutil.copyfileobj(source, handle)
    write_json(output / CONFIG_FILE, output_config(inputs))


def _remove_partial(output: Path, created: bool) -> None:
    """After a failure before the first checkpoint: remove what the run wrote."""
    if not output.is_dir():
        return
    if created:
        discard(output)
        return
    for name in _entries(output):
        discard(output / name)
    lock = output / LOCK_FILE
    if lock.is_file() and len(list(output.iterdir())) == 1:
        lock.unlink()
