"""``gau-alpha clue``: fine-tune GAU-alpha on one CLUE task and write its submission.

With no arguments it fine-tunes a small random GAU-alpha on the bundled tnews
sample (a smoke run of the whole pipeline in a couple of minutes on a CPU)::

    gau-alpha clue
    gau-alpha clue cmrc2018 --data-dir /data/clue --model-dir weights/chinese_GAU-alpha-char_L-24_H-768
    gau-alpha clue cmrc2018 --data-dir /data/clue --model-dir ... --resume   # after an interruption
    gau-alpha clue cmrc2018 --data-dir /data/clue --model-dir ... --overwrite  # replace an earlier run

An output directory belongs to one run at a time (a lock; a second run fails at once,
naming the first one's pid) and an earlier run in it is never destroyed before the new
run has written its first checkpoint (see :mod:`gau_alpha.clue.rundir`). Exit status: 0
done, 2 bad input (nothing written), 1 failed run, 130 interrupted (Ctrl-C).

Hyper-parameters default to the authors' recipe for the task (its
``TaskSpec.defaults``, :mod:`gau_alpha.clue.tasks`); on the bundled samples (no ``--data-dir``) the
default is :data:`SAMPLE_EPOCHS` epochs instead, and without ``--model-dir`` (a random model
trained from scratch) :data:`SCRATCH_EPOCHS` epochs at :data:`SCRATCH_LEARNING_RATE`.
"""
from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from gau_alpha.errors import ConfigError, RunError
from gau_alpha.argtypes import non_negative_int, positive_float, positive_int
from gau_alpha.resources import clue_sample_dir

from .tasks import TASKS, get_spec
from .tasks.spec import VERSIONS

__all__ = ["add_arguments", "run", "options_from_args", "SAMPLE_EPOCHS", "DEFAULT_TASK"]

DEFAULT_TASK = "tnews"
SAMPLE_EPOCHS = 3
"""Default epochs on the bundled samples (they hold at most a few hundred records)."""
SCRATCH_EPOCHS = 20
SCRATCH_LEARNING_RATE = 2e-2
"""Defaults without ``--model-dir``: the small random model learns from scratch, for which
the recipe's fine-tuning learning rate (5e-4) is far too small (measured on the bundled
tnews sample: 0.5% dev accuracy after 3 epochs at 5e-4, 19% after 20 epochs at 2e-2, in
about a minute on 2 CPU cores; chance is 6.7%)."""
STRATEGY_CHOICES = ("default", "mirrored", "multiworker")
KERAS3_BACKENDS = ("jax", "tensorflow", "torch")
KERAS3_CLUE_TASKS = ("tnews", "iflytek", "afqmc", "cmnli", "ocnli")
"""What ``--backend`` runs (the owner is :mod:`gau_alpha.keras3.clue`, which needs Keras 3 to
import; a test checks that these copies agree)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``gau-alpha clue``."""
    parser.add_argument("task", nargs="?", default=DEFAULT_TASK,
                        help="CLUE task: %s (default: %s)" % (", ".join(TASKS), DEFAULT_TASK))
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="CLUE data: the task's directory or a root holding <task>/ "
                             "(default: the bundled sample of the task, installed with the package)")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="release-layout model directory (bert_config.json, bert_model.ckpt.*, vocab.txt); "
                             "default: a small random GAU-alpha created under the output directory")
    parser.add_argument("--allow-larger-embedding", action="store_true",
                        help="accept a vocab.txt with fewer lines than the config's vocab_size (an embedding "
                             "padded beyond the vocab); by default they must be equal")
    parser.add_argument("--output-dir", type=Path, default=None, help="default: runs/<task>")
    parser.add_argument("--epochs", type=positive_int, default=None,
                        help="default: the recipe's (%d on the bundled samples; %d without --model-dir)" % (SAMPLE_EPOCHS, SCRATCH_EPOCHS))
    parser.add_argument("--batch-size", type=positive_int, default=None, help="default: the recipe's")
    parser.add_argument("--eval-batch-size", type=positive_int, default=None, help="default: --batch-size")
    parser.add_argument("--maxlen", type=positive_int, default=None, help="default: the recipe's")
    parser.add_argument("--learning-rate", type=positive_float, default=None, help="default: 5e-4 (AdaFactor; %g without --model-dir)" % SCRATCH_LEARNING_RATE)
    parser.add_argument("--grad-accum-steps", type=positive_int, default=None,
                        help="gradient accumulation steps (default: the recipe's)")
    parser.add_argument("--doc-stride", type=positive_int, default=None,
                        help="cmrc2018: tokens between window starts (default 128)")
    parser.add_argument("--max-answer-len", type=positive_int, default=None,
                        help="cmrc2018: longest answer in tokens (default 100)")
    parser.add_argument("--seed", type=non_negative_int, default=42, help="random seed (default 42)")
    parser.add_argument("--max-steps-per-epoch", type=positive_int, default=None,
                        help="stop each epoch after this many steps (smoke runs)")
    parser.add_argument("--strategy", choices=STRATEGY_CHOICES, default="default",
                        help="tf.distribute strategy (mirrored: all local GPUs, or the CPU)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted run in --output-dir from its last checkpoint")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier run in --output-dir (it is deleted only once this run has "
                             "written its first checkpoint, and put back if this run fails before)")
    parser.add_argument("--application", choices=("unilm", "encoder"), default="unilm",
                        help="attention mask of the encoder (recipe: unilm, all segment ids 0)")
    parser.add_argument("--deterministic", action="store_true",
                        help="tf.config.experimental.enable_op_determinism() (for bit-exact resuming on GPUs; "
                             "CPU runs are exact without it)")
    parser.add_argument("--clue-version", choices=VERSIONS, default=VERSIONS[0],
                        help="test file and submission name version (default 1.1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--backend", choices=KERAS3_BACKENDS, default=None,
                        help="run on Keras 3 (gau_alpha.keras3) with this backend instead of tf-keras + "
                             "bert4keras; classification tasks only (%s)" % ", ".join(KERAS3_CLUE_TASKS))
    parser.add_argument("--no-xla", action="store_true",
                        help="no XLA: dynamic shapes, each batch padded to its longest feature (by default the "
                             "train step and prediction are compiled with XLA, lengths padded to at most 8 buckets)")


def options_from_args(args: argparse.Namespace):
    """Resolve defaults (recipe, bundled sample) into :class:`~gau_alpha.clue.pipeline.RunOptions`.

    Raises:
        ConfigError: unknown task; RunError: a data/model directory that does not exist.
    """
    from .pipeline import RunOptions

    spec = get_spec(args.task)
    task, defaults = spec.name, spec.defaults
    bundled = args.data_dir is None
    data_dir = clue_sample_dir(task) if bundled else Path(args.data_dir)
    if not data_dir.is_dir():
        raise RunError("no CLUE data: --data-dir %s does not exist or is not a directory" % data_dir)
    if args.model_dir is not None and not Path(args.model_dir).is_dir():
        raise RunError("no model: --model-dir %s does not exist or is not a directory" % args.model_dir)

    def pick(value, default):
        return default if value is None else value

    scratch = args.model_dir is None
    default_epochs = SCRATCH_EPOCHS if scratch else (SAMPLE_EPOCHS if bundled else defaults.epochs)

    return RunOptions(
        task=task,
        data_dir=data_dir,
        output_dir=Path(pick(args.output_dir, Path("runs") / task)),
        epochs=pick(args.epochs, default_epochs),
        batch_size=pick(args.batch_size, defaults.batch_size),
        maxlen=pick(args.maxlen, defaults.maxlen),
        learning_rate=pick(args.learning_rate, SCRATCH_LEARNING_RATE if scratch else defaults.learning_rate),
        grad_accum_steps=pick(args.grad_accum_steps, defaults.grad_accum_steps),
        doc_stride=pick(args.doc_stride, defaults.doc_stride or 128),
        max_answer_len=pick(args.max_answer_len, defaults.max_answer_len or 100),
        seed=args.seed,
        model_dir=None if args.model_dir is None else Path(args.model_dir),
        allow_larger_embedding=getattr(args, "allow_larger_embedding", False),
        max_steps_per_epoch=args.max_steps_per_epoch,
        strategy=args.strategy,
        resume=args.resume,
        overwrite=getattr(args, "overwrite", False),
        application=args.application,
        version=args.clue_version,
        eval_batch_size=args.eval_batch_size,
        deterministic=args.deterministic,
        progress=not args.no_progress,
        xla=not getattr(args, "no_xla", False),
    )


def run(args: argparse.Namespace) -> int:
    """Run ``gau-alpha clue``; returns the exit status.

    Expected failures (any :class:`gau_alpha.errors.GauAlphaError`: bad task, data, model
    directory, checkpoint, an earlier run or another live run in the output directory; or
    an ``OSError``: the output cannot be written) propagate to the command line
    (:mod:`gau_alpha.cli`), which prints them as one line and exits with their
    ``exit_code`` (2 bad input, 1 failed run). Ctrl-C prints one line saying whether the
    run can be resumed and returns 130.
    """
    if getattr(args, "backend", None):
        return run_keras3(args)
    from .pipeline import result_summary, run_clue

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started = time.time()
    options = options_from_args(args)
    try:
        result = run_clue(options)
    except KeyboardInterrupt as interrupt:
        hint = str(interrupt) or "continue with the same command plus --resume"
        print("\ngau-alpha clue: interrupted: %s" % hint, file=sys.stderr, flush=True)
        return 130
    print(result_summary(result, time.time() - started), flush=True)
    return 0


def run_keras3(args: argparse.Namespace) -> int:
    """``gau-alpha clue TASK --backend B``: fine-tune with :mod:`gau_alpha.keras3` on Keras 3.

    Keras 3 cannot share a process with bert4keras (which replaces ``keras`` in
    ``sys.modules``), so without ``--model-dir`` the small random model is written by a
    child process; the Keras 3 run itself happens here, before anything imports bert4keras.
    """
    unsupported = [flag for flag, used in (
        ("--resume", args.resume), ("--overwrite", args.overwrite),
        ("--strategy %s" % args.strategy, args.strategy != "default"),
        ("--grad-accum-steps", args.grad_accum_steps is not None),
        ("--max-steps-per-epoch", args.max_steps_per_epoch is not None)) if used]
    if args.task not in KERAS3_CLUE_TASKS:
        raise ConfigError("--backend runs the classification tasks %s, not %r"
                          % (", ".join(KERAS3_CLUE_TASKS), args.task))
    if unsupported:
        raise ConfigError("%s: not supported with --backend (Keras 3 runs have no checkpoints to resume)"
                          % ", ".join(unsupported))
    output_dir = args.output_dir or Path("runs") / args.task
    model_dir = args.model_dir
    if model_dir is None:
        model_dir = output_dir / "random-model"
        script = ("import sys; from gau_alpha.model_dir import create_random_model_dir; "
                  "create_random_model_dir(sys.argv[1], seed=int(sys.argv[2]))")
        status = subprocess.call([sys.executable, "-c", script, str(model_dir), str(args.seed)])
        if status != 0:
            raise RunError("could not create the random model in %s (exit status %d)" % (model_dir, status))
    os.environ["KERAS_BACKEND"] = args.backend  # before gau_alpha.keras3 imports keras
    from gau_alpha.keras3.clue import run_keras3_clue

    overrides = {name: value for name, value in (
        ("epochs", args.epochs), ("batch_size", args.batch_size), ("sequence_length", args.maxlen),
        ("learning_rate", args.learning_rate)) if value is not None}
    started = time.time()
    result = run_keras3_clue(args.task, output_dir, model_dir, data_dir=args.data_dir, backend=args.backend,
                             seed=args.seed, version=args.clue_version, **overrides)
    print("gau-alpha clue %s on Keras 3 (%s): dev accuracy %.4f, submission %s (%.0f s)"
          % (args.task, args.backend, result["dev_accuracy"], result["submission"], time.time() - started),
          flush=True)
    return 0


def main(argv: Optional[list] = None) -> int:
    """``python -m gau_alpha.clue.runner [args]``: the same as ``gau-alpha clue [args]``."""
    from gau_alpha import cli

    return cli.main(["clue", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
