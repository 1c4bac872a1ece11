"""``gau-alpha clue``: fine-tune GAU-alpha on one CLUE task and write its submission.

With no arguments it fine-tunes a small random GAU-alpha on the bundled tnews
sample (a smoke run of the whole pipeline in a couple of minutes on a CPU)::

    gau-alpha clue
    gau-alpha clue cmrc2018 --data-dir /data/clue --model-dir weights/chinese_GAU-alpha-char_L-24_H-768
    gau-alpha clue cmrc2018 --data-dir /data/clue --model-dir ... --resume   # after an interruption

Hyper-parameters default to the authors' recipe for the task (see
:mod:`gau_alpha.clue.tasks`); on the bundled samples (no ``--data-dir``) the
default is :data:`SAMPLE_EPOCHS` epochs instead, and without ``--model-dir`` (a random model
trained from scratch) :data:`SCRATCH_EPOCHS` epochs at :data:`SCRATCH_LEARNING_RATE`.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Optional

from gau_alpha.resources import CLUE_SAMPLES_DIR

from .errors import ClueDataError, ClueSubmissionError
from .labels import TASKS, canonical_task

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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a positive integer, got %r" % text) from None
    if value < 1:
        raise argparse.ArgumentTypeError("expected a positive integer, got %r" % text)
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a positive number, got %r" % text) from None
    if not value > 0:
        raise argparse.ArgumentTypeError("expected a positive number, got %r" % text)
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``gau-alpha clue``."""
    parser.add_argument("task", nargs="?", default=DEFAULT_TASK,
                        help="CLUE task: %s (default: %s)" % (", ".join(TASKS), DEFAULT_TASK))
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="CLUE data: the task's directory or a root holding <task>/ "
                             "(default: the bundled sample examples/clue/samples/<task>)")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="release-layout model directory (bert_config.json, bert_model.ckpt.*, vocab.txt); "
                             "default: a small random GAU-alpha created under the output directory")
    parser.add_argument("--output-dir", type=Path, default=None, help="default: runs/<task>")
    parser.add_argument("--epochs", type=_positive_int, default=None,
                        help="default: the recipe's (%d on the bundled samples; %d without --model-dir)" % (SAMPLE_EPOCHS, SCRATCH_EPOCHS))
    parser.add_argument("--batch-size", type=_positive_int, default=None, help="default: the recipe's")
    parser.add_argument("--eval-batch-size", type=_positive_int, default=None, help="default: --batch-size")
    parser.add_argument("--maxlen", type=_positive_int, default=None, help="default: the recipe's")
    parser.add_argument("--learning-rate", type=_positive_float, default=None, help="default: 5e-4 (AdaFactor; %g without --model-dir)" % SCRATCH_LEARNING_RATE)
    parser.add_argument("--grad-accum-steps", type=_positive_int, default=None,
                        help="gradient accumulation steps (default: the recipe's)")
    parser.add_argument("--doc-stride", type=_positive_int, default=None,
                        help="cmrc2018: tokens between window starts (default 128)")
    parser.add_argument("--max-answer-len", type=_positive_int, default=None,
                        help="cmrc2018: longest answer in tokens (default 100)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--max-steps-per-epoch", type=_positive_int, default=None,
                        help="stop each epoch after this many steps (smoke runs)")
    parser.add_argument("--strategy", choices=STRATEGY_CHOICES, default="default",
                        help="tf.distribute strategy (mirrored: all local GPUs, or the CPU)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted run in --output-dir from its last checkpoint")
    parser.add_argument("--application", choices=("unilm", "encoder"), default="unilm",
                        help="attention mask of the encoder (recipe: unilm, all segment ids 0)")
    parser.add_argument("--deterministic", action="store_true",
                        help="tf.config.experimental.enable_op_determinism() (for bit-exact resuming on GPUs; "
                             "CPU runs are exact without it)")
    parser.add_argument("--clue-version", choices=("1.1", "1.0"), default="1.1",
                        help="test file and submission name version (default 1.1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def options_from_args(args: argparse.Namespace):
    """Resolve defaults (recipe, bundled sample) into :class:`~gau_alpha.clue.pipeline.RunOptions`.

    Raises:
        RunError: unknown task, or a data/model directory that does not exist.
    """
    from .pipeline import RunError, RunOptions
    from .tasks import RECIPE_DEFAULTS

    try:
        task = canonical_task(args.task)
    except ValueError as error:
        raise RunError(str(error)) from None
    defaults = RECIPE_DEFAULTS[task]
    bundled = args.data_dir is None
    data_dir = CLUE_SAMPLES_DIR / task if bundled else Path(args.data_dir)
    if not data_dir.is_dir():
        raise RunError("--data-dir %s does not exist or is not a directory" % data_dir)
    if args.model_dir is not None and not Path(args.model_dir).is_dir():
        raise RunError("--model-dir %s does not exist or is not a directory" % args.model_dir)

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
        max_steps_per_epoch=args.max_steps_per_epoch,
        strategy=args.strategy,
        resume=args.resume,
        application=args.application,
        version=args.clue_version,
        eval_batch_size=args.eval_batch_size,
        deterministic=args.deterministic,
        progress=not args.no_progress,
    )


def _error(message: str) -> int:
    print("gau-alpha clue: error: %s" % message, file=sys.stderr, flush=True)
    return 2


def run(args: argparse.Namespace) -> int:
    """Run ``gau-alpha clue``; returns the exit status (2 for bad input, with a one-line reason)."""
    from .pipeline import RunError, result_summary, run_clue
    from .state import CheckpointError

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started = time.time()
    try:
        options = options_from_args(args)
        result = run_clue(options)
    except (RunError, ClueDataError, ClueSubmissionError, CheckpointError, FileNotFoundError) as error:
        return _error(str(error))
    except KeyboardInterrupt:
        print("\ninterrupted: continue with the same command plus --resume", file=sys.stderr)
        return 130
    print(result_summary(result, time.time() - started), flush=True)
    return 0


def main(argv: Optional[list] = None) -> int:
    """``python -m gau_alpha.clue.runner [args]``."""
    parser = argparse.ArgumentParser(prog="gau-alpha clue", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
