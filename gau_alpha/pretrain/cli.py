"""``gau-alpha pretrain``: whole-word MLM pre-training, from scratch or from the release.

Examples::

    # a small GAU-alpha from scratch on the bundled corpus slice (a smoke run)
    gau-alpha pretrain --output-dir runs/pretrain --steps 50 --maxlen 64 --batch-size 8

    # continue pre-training the release on your own corpus (the recipe's LAMB + schedule)
    gau-alpha pretrain --init-from weights/chinese_GAU-alpha-char_L-24_H-768 \\
        --corpus my_domain.jsonl --valid my_domain_valid.jsonl --output-dir runs/domain \\
        --steps 20000 --batch-size 128 --grad-accum-steps 4 --maxlen 512

    # after an interruption (kill -9 included): the same command plus --resume

Without ``--corpus`` the bundled slice of the project's corpus is used
(:data:`gau_alpha.resources.PRETRAIN_SAMPLE_DIR`). See ``docs/pretraining.md``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from gau_alpha.argtypes import non_negative_int, positive_float, positive_int
from gau_alpha.resources import PRETRAIN_SAMPLE_DIR

from .settings import MODELS, OPTIMIZERS, PRECISIONS, RECIPE_LEARNING_RATE, RECIPE_WEIGHT_DECAY, RESIDUAL_MODES

__all__ = ["add_arguments", "run", "settings_from_args"]

STRATEGIES = ("default", "mirrored", "multiworker")


def _rate(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError("expected a number in [0, 1), got %r" % text)
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``gau-alpha pretrain``."""
    data = parser.add_argument_group("data")
    data.add_argument("--corpus", type=Path, nargs="+", default=None, metavar="FILE",
                      help="training documents: JSON lines with a \"text\" field, or plain text with one document "
                           "a line (streamed, never loaded whole). Default: the bundled corpus slice")
    data.add_argument("--valid", type=Path, nargs="*", default=None, metavar="FILE",
                      help="validation documents (same formats); default: the bundled slice's valid.jsonl when "
                           "--corpus is not given, else none")
    data.add_argument("--valid-sequences", type=positive_int, default=64,
                      help="validation sequences evaluated (the first ones of the valid files; default 64)")
    data.add_argument("--maxlen", type=positive_int, default=512, help="tokens per packed sequence (default 512)")
    data.add_argument("--window", type=positive_int, default=512,
                      help="sequences per shuffling window (default 512)")
    data.add_argument("--segmenter", choices=("rjieba", "jieba"), default="rjieba",
                      help="Chinese word segmenter of whole-word masking (default rjieba)")
    model = parser.add_argument_group("model")
    model.add_argument("--model", choices=MODELS, default="gau_alpha", help="architecture (default gau_alpha)")
    model.add_argument("--residual-attention", choices=RESIDUAL_MODES, default=None,
                       help="RealFormer residual attention: cumulative (the paper), mean, or previous (bert4keras)")
    model.add_argument("--config", type=Path, default=None,
                       help="bert_config.json of the model (default: --init-from's, else the release's GAU-alpha base)")
    model.add_argument("--vocab", type=Path, default=None,
                       help="vocab.txt (default: --init-from's, else the release vocab); must have vocab_size lines")
    model.add_argument("--init-from", type=Path, default=None, metavar="MODEL_DIR",
                       help="continue pre-training a release-layout model directory (strict loading)")
    model.add_argument("--dropout", type=_rate, default=None,
                       help="dropout rate of every dropout layer (default: the config's)")
    model.add_argument("--mixed-precision", choices=PRECISIONS, default="off",
                       help="mixed precision: float16 (with loss scaling) or bfloat16 (default off)")
    training = parser.add_argument_group("training")
    training.add_argument("--output-dir", type=Path, required=True, help="the run's directory (the model ends up here)")
    training.add_argument("--steps", type=positive_int, default=1000, help="optimizer steps (default 1000)")
    training.add_argument("--batch-size", type=positive_int, default=32,
                          help="global batch size of one micro-batch, all workers together (default 32)")
    training.add_argument("--grad-accum-steps", type=positive_int, default=1,
                          help="micro-batches per optimizer step (the recipe: 4)")
    training.add_argument("--learning-rate", type=positive_float, default=RECIPE_LEARNING_RATE,
                          help="base learning rate (default %g, the recipe's LAMB)" % RECIPE_LEARNING_RATE)
    training.add_argument("--lr-schedule", default=None, metavar="STEP:MULT,...",
                          help="piecewise-linear multipliers (default: the recipe's 0:1,160k:0.5,640k:0.1,1.28M:0.01 "
                               "scaled so that 1.28M falls on --steps)")
    training.add_argument("--optimizer", choices=OPTIMIZERS, default="lamb", help="default lamb (the recipe's)")
    training.add_argument("--weight-decay", type=float, default=RECIPE_WEIGHT_DECAY,
                          help="LAMB's decoupled weight decay (default %g)" % RECIPE_WEIGHT_DECAY)
    training.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default 0)")
    training.add_argument("--strategy", choices=STRATEGIES, default="default",
                          help="tf.distribute strategy: mirrored (local GPUs) or multiworker (TF_CONFIG)")
    training.add_argument("--save-every", type=positive_int, default=None,
                          help="steps between checkpoints (default min(1000, --steps))")
    training.add_argument("--eval-every", type=positive_int, default=None,
                          help="steps between validation evaluations (default --save-every)")
    training.add_argument("--log-every", type=positive_int, default=10, help="steps per history row (default 10)")
    training.add_argument("--resume", action="store_true", help="continue the run in --output-dir")
    training.add_argument("--overwrite", action="store_true", help="replace an earlier run in --output-dir")
    training.add_argument("--no-progress", action="store_true", help="no progress bar")


def settings_from_args(args: argparse.Namespace):
    """The :class:`~gau_alpha.pretrain.settings.PretrainSettings` of the parsed options."""
    from .settings import PretrainSettings

    bundled = args.corpus is None
    corpus = [PRETRAIN_SAMPLE_DIR / "train.jsonl"] if bundled else list(args.corpus)
    if args.valid is not None:
        valid = list(args.valid)
    else:
        valid = [PRETRAIN_SAMPLE_DIR / "valid.jsonl"] if bundled else []
    return PretrainSettings(
        corpus=corpus, valid=valid, output_dir=args.output_dir, config=args.config, vocab=args.vocab,
        init_from=args.init_from, model=args.model, residual_attention=args.residual_attention,
        steps=args.steps, batch_size=args.batch_size, grad_accum_steps=args.grad_accum_steps, maxlen=args.maxlen,
        learning_rate=args.learning_rate, lr_schedule=args.lr_schedule, optimizer=args.optimizer,
        weight_decay=args.weight_decay, dropout=args.dropout, seed=args.seed, mixed_precision=args.mixed_precision,
        strategy=args.strategy, resume=args.resume, overwrite=args.overwrite, save_every=args.save_every,
        log_every=args.log_every, eval_every=args.eval_every, valid_sequences=args.valid_sequences,
        window=args.window, segmenter=args.segmenter, progress=not args.no_progress,
    )


def run(args: argparse.Namespace) -> int:
    """Run ``gau-alpha pretrain``; expected failures propagate to :mod:`gau_alpha.cli` (one line)."""
    from .run import run_pretraining

    started = time.time()
    try:
        result = run_pretraining(settings_from_args(args))
    except KeyboardInterrupt:
        output = Path(args.output_dir)
        resumable = (output / "checkpoints" / "latest.json").is_file()
        hint = ("continue with the same command plus --resume" if resumable
                else "stopped before the first checkpoint: nothing of it was kept")
        print("\ngau-alpha pretrain: interrupted: %s" % hint, file=sys.stderr, flush=True)
        return 130
    last = result.history[-1] if result.history else {}
    valid = result.valid[-1] if result.valid else None
    lines = ["pre-training done in %.0fs: %d steps, train MLM loss %.4f, accuracy %.2f%%" % (
        time.time() - started, result.steps_done, last.get("loss", float("nan")), last.get("mlm_accuracy", float("nan")))]
    if valid is not None:
        lines.append("  valid MLM loss %.4f, accuracy %.2f%% (step %d)" % (valid["loss"], valid["mlm_accuracy"], valid["step"]))
    for label, key in (("model (release layout)", "model"), ("metrics", "metrics"), ("curve", "curve")):
        if key in result.files:
            lines.append("  %-23s %s" % (label + ":", result.files[key]))
    print("\n".join(lines), flush=True)
    return 0
