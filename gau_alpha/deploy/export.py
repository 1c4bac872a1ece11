"""``gau-alpha export``: a fine-tuned CLUE run as a SavedModel or an ONNX model (+ int8).

::

    gau-alpha export runs/tnews exports/tnews --format savedmodel
    gau-alpha export runs/tnews exports/tnews-onnx --format onnx --quantize int8

``OUT_DIR`` holds::

    saved_model.pb, variables/   (savedmodel) the TF Serving layout; signature serving_default
    model.onnx                   (onnx) the fp32 model; model.int8.onnx with --quantize int8
    labels.json                  JSON list: entry i is the label of output index i ([] for
                                 tasks without a label set)
    vocab.txt                    the tokenizer's vocab
    export.json                  inputs, outputs, maxlen, task, how to tokenise, the check's
                                 result, the fine-tuned model's description

Inputs are ``token_ids`` and ``segment_ids``, int32 ``(batch, length)`` with dynamic batch and
length (cmrc2018 adds ``span_mask`` float32 ``(batch, length)``; c3/chid take ``(batch,
choices, length)`` ids and ``choice_mask`` ``(batch, choices)``). The output is named by the
head (:data:`gau_alpha.deploy.finetuned.OUTPUT_SHAPES`): ``logits`` ``(batch, num_labels)`` for
the classification tasks.

After writing, the export is loaded back (TensorFlow for the SavedModel, onnxruntime for
ONNX) and run on the task's dev records in padded batches of mixed lengths; it must match
the Keras model within ``--tolerance`` (1e-4). ``--quantize int8`` also writes
``model.int8.onnx`` (``onnxruntime.quantization.quantize_dynamic``: MatMul weights int8,
activations quantised on the fly) and reports how often its predictions agree with fp32 on
the same records. The directory is assembled beside ``OUT_DIR`` and moved into place only
when everything passed: a failed export leaves nothing behind.
"""
from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from gau_alpha.argtypes import positive_int
from gau_alpha.atomic import replace_directory, staging_directory, write_json
from gau_alpha.errors import ConfigError, DataError, RunError

__all__ = [
    "FORMATS",
    "EXPORT_FILE",
    "LABELS_FILE",
    "ONNX_FILE",
    "INT8_FILE",
    "DEFAULT_TOLERANCE",
    "ExportReport",
    "export_finetuned",
    "write_onnx",
    "quantize_int8",
    "check_examples",
    "compare_outputs",
    "open_export",
    "add_arguments",
    "run",
]

FORMATS = ("savedmodel", "onnx")
EXPORT_FILE = "export.json"
LABELS_FILE = "labels.json"
ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
EXPORT_FORMAT = "gau-alpha-export"
DEFAULT_TOLERANCE = 1e-4
DEFAULT_OPSET = 17
CHECK_EXAMPLES = 200
ENCODER_NAME = "gau_alpha_encoder"  # the encoder's Keras name (finetuned.build_task_model): in its ops' names

logger = logging.getLogger(__name__)


@dataclass
class ExportReport:
    """What an export wrote and measured.

    Attributes:
        directory: the export directory.
        format: ``savedmodel`` or ``onnx``.
        max_abs_diff: largest difference from the Keras model over the check's finite outputs.
        check_examples: records checked; check_batches: their batches; check_source: where from.
        int8_agreement: fraction of the check's records whose int8 prediction equals fp32's.
        seconds: time taken.
    """

    directory: Path
    format: str
    max_abs_diff: float
    check_examples: int
    check_batches: int
    check_source: str
    int8_agreement: Optional[float] = None
    seconds: float = 0.0
    files: List[str] = field(default_factory=list)


# ---------------------------------------------------------------------------- the check
def check_examples(finetuned: Any, data: Optional[Path] = None, limit: int = CHECK_EXAMPLES):
    """``(examples, source)`` for the export check: the dev records of ``data`` (a task data
    directory, or a file in the test format), else of the run's data directory when it still
    exists, else of the task's bundled sample; at most ``limit`` of them."""
    from gau_alpha.clue.loaders import load_split
    from gau_alpha.resources import clue_sample_dir

    from .inputs import read_examples

    task = finetuned.task
    if data is not None and Path(data).is_file():
        examples = read_examples(task, str(data))
        source = str(data)
    else:
        candidates = [Path(data)] if data is not None else []
        recorded = finetuned.description.get("data_dir")
        if data is None and recorded and Path(recorded).is_dir():
            candidates.append(Path(recorded))
        if data is None:
            candidates.append(clue_sample_dir(task.name))
        directory = candidates[0]
        if not directory.is_dir():
            raise DataError(directory, "no such data directory or file (--check-data)")
        examples = load_split(task.name, directory, "dev")
        source = "%s dev split of %s" % (task.name, directory)
    return list(examples)[:limit], source


def compare_outputs(expected: np.ndarray, got: np.ndarray) -> float:
    """Largest absolute difference of two outputs; non-finite entries (the ``-inf`` of masked
    spans) must be the same in both and are left out. Returns ``inf`` when they differ."""
    expected, got = np.asarray(expected, dtype=np.float64), np.asarray(got, dtype=np.float64)
    if expected.shape != got.shape:
        return float("inf")
    finite = np.isfinite(expected)
    if not np.array_equal(finite, np.isfinite(got)) or not np.array_equal(expected[~finite], got[~finite]):
        return float("inf")
    return float(np.max(np.abs(expected[finite] - got[finite]), initial=0.0))


def _max_difference(reference: Any, candidate: Any, features: List[Any], batch_size: int):
    from gau_alpha.clue.features import collate_inputs, make_batches

    worst, batches = 0.0, make_batches([f.length for f in features], batch_size)
    for indices in batches:
        inputs = collate_inputs([features[i] for i in indices])
        worst = max(worst, compare_outputs(reference(inputs), candidate(inputs)))
    return worst, len(batches)


# ---------------------------------------------------------------------------- writers
def _serving_function(finetuned: Any):
    """A ``tf.function`` with the export's input signature, returning ``{output name: output}``."""
    import tensorflow as tf

    from .runtime import tensor_specs

    model, name = finetuned.keras_model(), finetuned.output_name
    specs = tensor_specs(finetuned.task)

    @tf.function(input_signature=specs, autograph=False)
    def serve(*inputs):
        return {name: tf.identity(model(list(inputs), training=False), name=name)}

    return serve, specs


def write_savedmodel(finetuned: Any, directory: Path) -> None:
    """The task model as a SavedModel in ``directory`` with a ``serving_default`` signature."""
    import tensorflow as tf

    serve, _ = _serving_function(finetuned)
    holder = tf.Module()
    holder.weights = list(finetuned.keras_model().weights)  # what the signature captures
    holder.serve = serve
    tf.saved_model.save(holder, str(directory), signatures={"serving_default": serve.get_concrete_function()})


def _broadcast_args(ctx: Any, node: Any, name: str, args: Any) -> Any:
    """TensorFlow's ``BroadcastArgs`` (the broadcast of two shapes; bert4keras's ``where``
    uses it, e.g. in GlobalPointer's masking), which tf2onnx lacks, in ONNX ops: both shapes
    are left-padded with 1s to the same rank, then each dimension is the second shape's where
    the first's is 1, else the first's (shapes that broadcast)."""
    from onnx import TensorProto, helper

    first, second = node.input
    dtype, shapes = ctx.get_dtype(node.output[0]), node.output_shapes
    ctx.remove_node(node.name)

    def output(op: str, inputs: List[str], **attributes: Any) -> str:
        return ctx.make_node(op, inputs, attr=attributes).output[0]

    shapes64 = [output("Cast", [shape], to=TensorProto.INT64) for shape in (first, second)]
    ranks = [output("Shape", [shape]) for shape in shapes64]
    rank = output("Max", ranks)
    one = helper.make_tensor("value", TensorProto.INT64, [1], [1])
    padded = [output("Concat", [output("ConstantOfShape", [output("Sub", [rank, r])], value=one), s], axis=0)
              for s, r in zip(shapes64, ranks)]
    is_one = output("Equal", [padded[0], output("ConstantOfShape", [output("Shape", [padded[0]])], value=one)])
    result = output("Where", [is_one, padded[1], padded[0]])
    return ctx.make_node("Cast", [result], attr={"to": dtype}, name=node.name, outputs=node.output,
                         shapes=shapes, dtypes=[dtype])


def _select_v2(ctx: Any, node: Any, name: str, args: Any) -> Any:
    """TensorFlow's ``SelectV2`` as ONNX ``Where`` (same broadcasting). tf2onnx's own
    conversion computes ``cond * x + (1 - cond) * y``, which turns the ``-inf`` of masked
    spans into NaN (``0 * -inf``)."""
    node.type = "Where"
    return node


#: operations converted here rather than by tf2onnx (see each function)
ONNX_HANDLERS = {"BroadcastArgs": (_broadcast_args, []), "SelectV2": (_select_v2, [])}


def write_onnx(finetuned: Any, path: Path, opset: int = DEFAULT_OPSET) -> None:
    """The task model as ONNX (tf2onnx from a ``tf.function`` with the input signature).

    Raises:
        RunError: the graph holds an operation tf2onnx cannot convert (exit status 1).
    """
    import tf2onnx

    for name in ("tf2onnx", "tf2onnx.tfonnx", "tf2onnx.optimizer"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    serve, specs = _serving_function(finetuned)
    try:
        tf2onnx.convert.from_function(serve, input_signature=specs, opset=opset, output_path=str(path),
                                      custom_op_handlers=dict(ONNX_HANDLERS))
    except Exception as error:  # tf2onnx raises plain exceptions for graphs it cannot convert
        failure = RunError("converting the %s model to ONNX failed: %s" % (finetuned.task.name,
                                                                           str(error).splitlines()[0][:300]))
        failure.exit_code = 1
        raise failure from None


def quantize_int8(source: Path, destination: Path) -> None:
    """Dynamic int8 quantisation of the MatMul weights (activations quantised at run time).

    Weights are quantised per output channel to 7 bits (``reduce_range``): measured on a
    fine-tuned tnews model here, full 8-bit per-channel weights moved the logits by up to 0.27
    (u8 x s8 products saturating in onnxruntime's kernels), 7-bit ones by 0.04. The task head's
    MatMul (outside the encoder; a sliver of the work) stays fp32: quantising it moved the
    logits most directly (max change 0.039 -> 0.023, label agreement 93% -> 96.5% on a
    barely trained model)."""
    import onnx

    from onnxruntime.quantization import QuantType, quantize_dynamic

    head = [node.name for node in onnx.load(str(source), load_external_data=False).graph.node
            if node.op_type == "MatMul" and ENCODER_NAME not in node.name]
    logging.disable(logging.WARNING)  # its advice to pre-process first, logged on the root logger
    try:
        quantize_dynamic(str(source), str(destination), op_types_to_quantize=["MatMul"],
                         weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
                         nodes_to_exclude=head)
    finally:
        logging.disable(logging.NOTSET)


def _tokenization(finetuned: Any) -> Dict[str, Any]:
    return {
        "vocab": "vocab.txt",
        "lowercase": True,
        "how": "bert4keras's character tokenizer: lower-case, split CJK characters and punctuation, WordPiece "
               "over the vocab; [CLS] text [SEP] (pairs: [CLS] a [SEP] b [SEP]); segment ids all 0",
        "truncation": "to maxlen tokens: the longer text loses tokens at its end first (bert4keras's rule)",
        "padding": "token id 0 to the longest sequence of the batch",
        "maxlen": finetuned.params.maxlen,
    }


def _io(finetuned: Any) -> Dict[str, Any]:
    from .finetuned import OUTPUT_SHAPES
    from .runtime import input_specs

    axes = {2: ["batch", "length"], 3: ["batch", "choices", "length"]}
    inputs = [{"name": name, "dtype": np.dtype(dtype).name,
               "shape": ["batch", "choices"] if name == "choice_mask" else axes[rank]}
              for name, dtype, rank in input_specs(finetuned.task)]
    outputs = [{"name": finetuned.output_name, "dtype": "float32", "shape": OUTPUT_SHAPES[finetuned.output_name]}]
    return {"inputs": inputs, "outputs": outputs}


def _check_destination(out_dir: Path, source: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError("%s exists and is not a directory" % out_dir)
    resolved, model = out_dir.resolve(), source.resolve()
    if resolved == model or resolved in model.parents:
        raise ConfigError("OUT_DIR %s would replace the model it exports (%s): choose another directory"
                          % (out_dir, source))
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not (out_dir / EXPORT_FILE).is_file():
            raise ConfigError("%s exists and is not an export of gau-alpha (no %s): choose another OUT_DIR; "
                              "nothing was changed" % (out_dir, EXPORT_FILE))
        if not overwrite:
            raise ConfigError("%s holds an earlier export: replace it with --overwrite; nothing was changed" % out_dir)


def export_finetuned(finetuned: Any, out_dir: Path, fmt: str, *, quantize: Optional[str] = None,
                     check_data: Optional[Path] = None, check_limit: int = CHECK_EXAMPLES,
                     tolerance: float = DEFAULT_TOLERANCE, threads: Optional[int] = None,
                     opset: int = DEFAULT_OPSET, overwrite: bool = False, say=print) -> ExportReport:
    """Export a :class:`~gau_alpha.deploy.finetuned.FinetunedModel` (see the module docstring).

    Raises:
        ConfigError: an unknown format, int8 without ONNX, an ``out_dir`` that is not an
            earlier export (or is one, without ``overwrite``); DataError: unusable check data;
        RunError: the reloaded export differs from the Keras model by more than ``tolerance``
            (exit status 1; nothing is written).
    """
    from .runtime import KerasRunner, OnnxRunner, SavedModelRunner, run_batches

    started = time.time()
    if fmt not in FORMATS:
        raise ConfigError("unknown export format %r; expected one of %s" % (fmt, ", ".join(FORMATS)))
    if quantize not in (None, "int8"):
        raise ConfigError("unknown quantisation %r; expected int8" % quantize)
    if quantize and fmt != "onnx":
        raise ConfigError("--quantize int8 needs --format onnx")
    out_dir = Path(out_dir)
    _check_destination(out_dir, finetuned.directory, overwrite)
    examples, source = check_examples(finetuned, check_data, check_limit)
    encoded = finetuned.encode(examples, source)
    reference = KerasRunner(finetuned.keras_model(), finetuned.task)
    with staging_directory(out_dir) as staging:
        say("exporting %s (%s) to %s ..." % (finetuned.directory, finetuned.task.name, fmt))
        if fmt == "savedmodel":
            write_savedmodel(finetuned, staging)
            reloaded: Any = SavedModelRunner(staging)
        else:
            write_onnx(finetuned, staging / ONNX_FILE, opset=opset)
            reloaded = OnnxRunner(staging / ONNX_FILE, threads=threads)
        difference, batches = _max_difference(reference, reloaded, encoded.features, finetuned.batch_size)
        if not difference <= tolerance:
            error = RunError("the %s export differs from the Keras model by %.3g (> %g) on %s; nothing was written"
                             % (fmt, difference, tolerance, source))
            error.exit_code = 1
            raise error
        report = ExportReport(out_dir, fmt, difference, len(examples), batches, source)
        details: Dict[str, Any] = {}
        if quantize:
            quantize_int8(staging / ONNX_FILE, staging / INT8_FILE)
            int8 = OnnxRunner(staging / INT8_FILE, threads=threads)
            fp32_predictions = finetuned.task.decode(encoded.examples, encoded.features, run_batches(
                reloaded, finetuned.task, encoded.features, finetuned.batch_size), finetuned.params)
            int8_predictions = finetuned.task.decode(encoded.examples, encoded.features, run_batches(
                int8, finetuned.task, encoded.features, finetuned.batch_size), finetuned.params)
            same = sum(a == b for a, b in zip(fp32_predictions, int8_predictions))
            report.int8_agreement = same / len(examples)
            details["int8"] = {"file": INT8_FILE, "method": "onnxruntime quantize_dynamic: MatMul weights int8 "
                               "(7-bit range, per channel; the task head's stays fp32), activations uint8 "
                               "quantised at run time",
                               "agreement_with_fp32": report.int8_agreement, "examples": len(examples)}
        labels = finetuned.labels
        write_json(staging / LABELS_FILE, labels)
        shutil.copyfile(finetuned.vocab, staging / "vocab.txt")
        model_file = (INT8_FILE if quantize else ONNX_FILE) if fmt == "onnx" else None
        write_json(staging / EXPORT_FILE, {
            "format": EXPORT_FORMAT,
            "format_version": 1,
            "export_format": fmt,
            "model": model_file,
            "files": {"fp32": ONNX_FILE, "int8": INT8_FILE if quantize else None} if fmt == "onnx"
            else {"saved_model": "saved_model.pb", "signature": "serving_default"},
            "task": finetuned.task.name,
            "maxlen": finetuned.params.maxlen,
            **_io(finetuned),
            "labels": LABELS_FILE,
            "tokenization": _tokenization(finetuned),
            "batch_size": finetuned.batch_size,
            "check": {"max_abs_diff": difference, "tolerance": tolerance, "examples": len(examples),
                      "batches": batches, "source": source},
            **details,
            "finetuned": finetuned.description,
        })
        report.files = sorted(p.name for p in staging.iterdir())
        replace_directory(staging, out_dir)
    report.seconds = time.time() - started
    return report


# ---------------------------------------------------------------------------- reading an export
def open_export(directory: Path, threads: Optional[int] = None, int8: Optional[bool] = None):
    """``(finetuned, runner)`` of an export directory: the model's description (task, labels,
    maxlen, tokenizer; no Keras weights) and a batch runner on its model (onnxruntime for
    ONNX, ``model.int8.onnx`` when it was quantised unless ``int8=False``; TensorFlow for a
    SavedModel).

    Raises:
        ModelDirError: a file is missing; ConfigError: ``export.json`` is not an export's.
    """
    from .finetuned import FinetunedModel, _read_json, _require_file
    from .runtime import OnnxRunner, SavedModelRunner

    directory = Path(directory)
    info = _read_json(_require_file(directory / EXPORT_FILE, "the export's description"))
    if info.get("format") != EXPORT_FORMAT or not isinstance(info.get("finetuned"), dict):
        raise ConfigError("%s: not a gau-alpha export description" % (directory / EXPORT_FILE))
    vocab = _require_file(directory / "vocab.txt", "the tokenizer's vocab")
    finetuned = FinetunedModel(directory, info["finetuned"], None, None, vocab)
    if info.get("export_format") == "onnx":
        files = info.get("files") or {}
        name = files.get("int8") if int8 is not False and files.get("int8") else files.get("fp32", ONNX_FILE)
        if int8 and not files.get("int8"):
            raise ConfigError("%s has no int8 model (export it with --quantize int8)" % directory)
        return finetuned, OnnxRunner(_require_file(directory / name, "the ONNX model"), threads=threads)
    _require_file(directory / "saved_model.pb", "the SavedModel")
    return finetuned, SavedModelRunner(directory)


# ---------------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``gau-alpha export``."""
    parser.add_argument("model", type=Path, metavar="RUN_DIR",
                        help="a run directory of gau-alpha clue (or its best/ directory, or a copy of it)")
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="the export directory to write")
    parser.add_argument("--format", choices=FORMATS, required=True, help="savedmodel (TF Serving) or onnx")
    parser.add_argument("--quantize", choices=("int8",), default=None,
                        help="also write model.int8.onnx (dynamic quantisation of the MatMul weights; onnx only)")
    parser.add_argument("--check-data", type=Path, default=None,
                        help="records for the check: a task data directory (its dev split) or a file in the "
                             "test format (default: the run's dev data, else the bundled sample's)")
    parser.add_argument("--check-examples", type=positive_int, default=CHECK_EXAMPLES,
                        help="records checked (default %d)" % CHECK_EXAMPLES)
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help="largest allowed difference from the Keras model (default %g)" % DEFAULT_TOLERANCE)
    parser.add_argument("--threads", type=positive_int, default=None, help="onnxruntime threads for the check")
    parser.add_argument("--opset", type=positive_int, default=DEFAULT_OPSET, help="ONNX opset (default %d)" % DEFAULT_OPSET)
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier export in OUT_DIR")


def run(args: argparse.Namespace) -> int:
    """Run ``gau-alpha export``; expected failures propagate as one-line errors (cli.py)."""
    from .finetuned import load_finetuned

    finetuned = load_finetuned(args.model)
    report = export_finetuned(finetuned, args.out_dir, args.format, quantize=args.quantize,
                              check_data=args.check_data, check_limit=args.check_examples,
                              tolerance=args.tolerance, threads=args.threads, opset=args.opset,
                              overwrite=args.overwrite)
    print("exported %s to %s (%s) in %.0fs: %s" % (finetuned.task.name, report.directory, report.format,
                                                   report.seconds, ", ".join(report.files)))
    print("  check: max |export - keras| = %.2g over %d %s records (%d batches of mixed lengths)"
          % (report.max_abs_diff, report.check_examples, finetuned.task.name, report.check_batches))
    if report.int8_agreement is not None:
        print("  int8: %s agrees with fp32 on %.1f%% of those records" % (INT8_FILE, 100 * report.int8_agreement))
    sys.stdout.flush()
    return 0
