"""``gau-alpha predict``: a fine-tuned CLUE model on new records, in the submission format.

::

    gau-alpha predict runs/tnews --input test.json --output predictions.json
    echo "北京今天下雨了吗" | gau-alpha predict runs/tnews --input -          # plain text lines
    gau-alpha predict runs/tnews --input test.json --runtime onnx --threads 2
    gau-alpha predict exports/tnews-onnx --input test.json               # an exported model

``RUN_DIR`` is a run directory of ``gau-alpha clue`` (or its ``best/`` directory, or a copy of
it), or an export directory of ``gau-alpha export``. The input is read as
:mod:`gau_alpha.deploy.inputs` describes (the task's test format; plain text lines for
iflytek, tnews, cluener); it is encoded exactly as the run encoded its test data (same
tokenizer, ``maxlen``, truncation, windows), batched by length, and decoded and written by the
run's own code (:func:`gau_alpha.clue.submission.write_submission`), so the run's test file
gives the run's submission file, byte for byte (``--runtime tf``, the default for a run).

``--runtime onnx`` runs the model in onnxruntime (graph optimisations on, ``--threads``):
an export directory's ``model.onnx`` (``model.int8.onnx`` when it was quantised, unless
``--fp32``), or, for a run directory, a conversion made on the fly (export it once with
``gau-alpha export --format onnx`` to skip that).

Everything is read and checked before the model runs, and the output is written atomically
once all predictions are made: a malformed record is one error line naming the file and line,
and no partial output is left. The summary (on stderr) counts the records cut to ``maxlen``.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Tuple

from gau_alpha.argtypes import positive_int
from gau_alpha.atomic import staging_directory
from gau_alpha.errors import ConfigError

__all__ = ["RUNTIMES", "add_arguments", "run", "write_predictions"]

RUNTIMES = ("tf", "onnx")
STDOUT = "-"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``gau-alpha predict``."""
    parser.add_argument("model", type=Path, metavar="RUN_DIR",
                        help="a run directory of gau-alpha clue (or its best/ directory, or a copy), "
                             "or an export directory of gau-alpha export")
    parser.add_argument("--input", "-i", required=True, metavar="FILE",
                        help="records in the task's test format (JSON lines, or the task's JSON document; "
                             "plain text lines for iflytek, tnews, cluener), or - for standard input")
    parser.add_argument("--output", "-o", default=STDOUT, metavar="FILE",
                        help="the predictions in the task's submission format: a file, a directory (the "
                             "official file name inside it), or - for standard output (default)")
    parser.add_argument("--runtime", choices=RUNTIMES, default=None,
                        help="tf (the Keras model: the run's own prediction path; default for a run) or "
                             "onnx (onnxruntime; default for an ONNX export)")
    parser.add_argument("--batch-size", type=positive_int, default=None,
                        help="records per batch (default: the run's evaluation batch size)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="onnxruntime intra-op threads (default: one per core)")
    parser.add_argument("--fp32", action="store_true",
                        help="an export quantised to int8: run its fp32 model.onnx instead")
    parser.add_argument("--no-xla", action="store_true",
                        help="tf runtime: no XLA compilation (default: as the run predicted)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def write_predictions(task: str, examples: Any, predictions: Any, output: str, version: str) -> Tuple[str, bytes]:
    """Write the submission-format file with the run's writer, atomically: to ``output`` (a
    file, or a directory: the official name inside it), or return its bytes for ``-``.

    Returns:
        ``(where it went, the bytes written)``.
    """
    from gau_alpha.clue.submission import submission_filename, write_submission

    if output == STDOUT:
        with tempfile.TemporaryDirectory(prefix="gau-alpha-predict-") as scratch:
            data = write_submission(task, examples, predictions, scratch, version=version).read_bytes()
        return "<stdout>", data
    target = Path(output)
    if target.is_dir():
        target = target / submission_filename(task, version)
    with staging_directory(target) as staging:
        written = write_submission(task, examples, predictions, staging, version=version)
        data = written.read_bytes()
        os.replace(written, target)
    return str(target), data


def _runner(args: argparse.Namespace) -> Tuple[Any, Any, str]:
    """``(finetuned, runtime, its name)`` for the model argument and ``--runtime``; the runtime is
    ``"tf"``, a batch runner (an export's), or None (a run to convert to ONNX first)."""
    from .export import EXPORT_FILE, open_export
    from .finetuned import load_finetuned

    model = Path(args.model)
    if (model / EXPORT_FILE).is_file():
        finetuned, runner = open_export(model, threads=args.threads, int8=False if args.fp32 else None)
        kind = "onnx" if hasattr(runner, "session") else "tf"
        if args.runtime is not None and args.runtime != kind:
            raise ConfigError("%s is an export to %s: it runs with --runtime %s"
                              % (model, "ONNX" if kind == "onnx" else "SavedModel", kind))
        name = "onnxruntime (%s)" % runner.path.name if kind == "onnx" else "tf (SavedModel)"
        return finetuned, runner, name
    finetuned = load_finetuned(model)
    if args.fp32:
        raise ConfigError("--fp32 applies to an export quantised to int8; %s is a run" % model)
    if args.runtime == "onnx":
        return finetuned, None, "onnxruntime (converted on the fly)"
    return finetuned, "tf", "tf"


def run(args: argparse.Namespace) -> int:
    """Run ``gau-alpha predict``; expected failures propagate as one-line errors (cli.py)."""
    from .inputs import STDIN, STDIN_NAME, read_examples

    started = time.time()
    finetuned, runtime, runtime_name = _runner(args)
    source = STDIN_NAME if args.input == STDIN else str(args.input)
    examples = read_examples(finetuned.task, args.input)
    encoded = finetuned.encode(examples, source)
    scratch = None
    try:
        if runtime is None:  # a run with --runtime onnx: convert it first
            from .export import ONNX_FILE, write_onnx
            from .runtime import OnnxRunner

            print("converting %s to ONNX (export it once with gau-alpha export --format onnx to skip this) ..."
                  % finetuned.directory, file=sys.stderr, flush=True)
            scratch = tempfile.TemporaryDirectory(prefix="gau-alpha-onnx-")
            write_onnx(finetuned, Path(scratch.name) / ONNX_FILE)
            runtime = OnnxRunner(Path(scratch.name) / ONNX_FILE, threads=args.threads)
        if runtime == "tf":
            finetuned.keras_model()  # built (and its weights loaded) before the clock starts
        predicting = time.time()
        result = finetuned.run(encoded, batch_size=args.batch_size, runtime=runtime, progress=not args.no_progress,
                               xla=False if args.no_xla else None)
        seconds = time.time() - predicting
    finally:
        if scratch is not None:
            scratch.cleanup()
    version = str(finetuned.description.get("clue_version", "1.1"))
    where, data = write_predictions(finetuned.task.name, result.examples, result.predictions, args.output, version)
    if args.output == STDOUT:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    count = len(result.examples)
    print("gau-alpha predict: %d %s records (%d sequences) -> %s in %.1fs (%.1f records/s, %s); "
          "%d truncated to maxlen %d; total %.1fs"
          % (count, finetuned.task.name, result.features, where, seconds, count / max(seconds, 1e-9), runtime_name,
             result.truncated, finetuned.params.maxlen, time.time() - started), file=sys.stderr, flush=True)
    return 0
