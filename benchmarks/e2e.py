"""End-to-end fine-tuning throughput: our CLUE pipeline (as ``gau-alpha clue`` runs it) against
the CLUE-bert4keras way, on tnews, afqmc (sentence pairs) and cmrc2018.

Both pipelines train the *same* Keras model (one model object, the recipe's AdaFactor from
``make_optimizer``, the recipe's batch size and maxlen, ``application='unilm'``); only the
path from records to optimizer steps differs:

- reference (as bojone/CLUE-bert4keras does it): records prepared once (cmrc2018: the
  recipe's character-level sliding windows), then every epoch a bert4keras ``DataGenerator``
  subclass draws them shuffled, tokenizes each with bert4keras's ``Tokenizer``, pads each
  fixed-size batch with ``sequence_padding``, and a non-XLA train step with dynamic shapes
  (the package's ``Trainer.make_train_step``, i.e. what ``--no-xla`` runs; traced once) takes
  it -- what a bert4keras user's ``model.fit`` does;
- ours (``gau_alpha.clue``, the defaults of ``gau-alpha clue``): every epoch ``Task.encode``
  with the ``FastTokenizer`` (batch encoding; cmrc2018 token windows), then
  ``Trainer(xla=True).train_epoch``: length-bucketed shuffled batches (``epoch_batches``), the
  token axis padded up to a length ladder, XLA-compiled train step. Real runs encode once
  per run; re-encoding every epoch here is the conservative choice.
- optionally (``--pipelines ... ours-no-xla``) ours with ``--no-xla``: the same data path, per-batch
  padding, the dynamic-shape step.

Ladder: a real run gives each ladder width at least 16 batches per epoch (``bucket_budget``),
so on full CLUE data it has 8 widths; the samples here are far smaller, so the benchmark
uses 8 widths (``min_batches_per_bucket=1``), as a full-data run would. Every width is
compiled before timing (``Trainer.precompile``); compilation is a one-off cost per run
(reported, not timed).

Epochs of the pipelines alternate (reference, ours, ours, reference, ...); each round gives
one time per pipeline, and the speed-up is reported as the median of the per-round ratios
with their min, max and IQR. Records are replicated to make an epoch long enough to time
(each copy is encoded on its own, so no cache spans copies).

    python -m benchmarks.e2e [--quick] [--tasks tnews afqmc cmrc2018] [--model release-width|tiny|base]
                             [--layers 2] [--rounds 3] [--json PATH] [--out DIR]
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple  # noqa: E402

import gau_alpha  # noqa: E402,F401  (adapts bert4keras first)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from bert4keras.snippets import DataGenerator, lowercase_and_normalize, sequence_padding  # noqa: E402

from benchmarks import common  # noqa: E402
from gau_alpha.atomic import write_json, write_text_atomic  # noqa: E402
from gau_alpha.clue.features import (  # noqa: E402
    DEFAULT_MAX_BUCKETS, Feature, bucket_width, collate_inputs, epoch_batches, padding_fraction,
)
from gau_alpha.clue.loaders import load_split  # noqa: E402
from gau_alpha.clue.tasks import TaskParams, get_task  # noqa: E402
from gau_alpha.clue.tasks.span import locate_answer  # noqa: E402
from gau_alpha.clue.training import Trainer, make_optimizer, make_strategy, seed_everything  # noqa: E402
from gau_alpha.model_dir import TINY_CONFIG, ModelDir, build_encoder, create_random_model_dir, read_config  # noqa: E402
from gau_alpha.resources import RELEASE_CONFIG, clue_sample_dir  # noqa: E402
from gau_alpha.tokenization import load_tokenizer  # noqa: E402

TASKS = ("tnews", "afqmc", "cmrc2018")
PIPELINES = ("reference", "ours", "ours-no-xla")
PIPELINE_LABELS = {"reference": "CLUE-bert4keras style", "ours": "gau_alpha.clue (XLA, buckets)",
                   "ours-no-xla": "gau_alpha.clue --no-xla"}
SPLITS = {"tnews": ("train",), "afqmc": ("dev",), "cmrc2018": ("train", "trial")}
# copies of the records per epoch and cmrc2018 questions used, per model size
REPLICATE = {"tiny": {"tnews": 15, "afqmc": 15, "cmrc2018": 1},
             "release-width": {"tnews": 4, "afqmc": 4, "cmrc2018": 1},
             "base": {"tnews": 1, "afqmc": 1, "cmrc2018": 1}}
QUESTIONS = {"tiny": None, "release-width": 45, "base": 16}  # release-width: 80 windows, 5 full batches
QUICK_LIMIT = {"tnews": 64, "afqmc": 64, "cmrc2018": 8}
LEARNING_RATE = 5e-4
DEFAULT_OUT = common.RESULTS_DIR / "cpu"


# --------------------------------------------------------------------------- data
def load_examples(task: str) -> List[Any]:
    """Labelled sample records: tnews train; afqmc dev (the train sample holds one record);
    cmrc2018 train + trial (the train sample holds one article, so the official trial set
    stands in for training data)."""
    examples: List[Any] = []
    for split in SPLITS[task]:
        examples.extend(load_split(task, clue_sample_dir(task), split))
    if task == "cmrc2018":
        examples = [e for e in examples if locate_answer(e) is not None]
    return examples


# --------------------------------------------------------------------- reference
class TnewsGenerator(DataGenerator):
    """bert4keras-style generator: tokenize per record, pad per fixed-size batch (labels ``(B,)``)."""

    def __init__(self, data, batch_size, tokenizer, maxlen):
        super().__init__(data, batch_size)
        self.tokenizer, self.maxlen = tokenizer, maxlen

    def __iter__(self, random=False):
        token_batch, segment_batch, label_batch = [], [], []
        for is_end, (text, label) in self.sample(random):
            token_ids, segment_ids = self.tokenizer.encode(text, maxlen=self.maxlen)
            token_batch.append(token_ids)
            segment_batch.append(segment_ids)
            label_batch.append(label)
            if len(token_batch) == self.batch_size or is_end:
                yield ([sequence_padding(token_batch), sequence_padding(segment_batch)], np.array(label_batch))
                token_batch, segment_batch, label_batch = [], [], []


def cmrc_character_windows(example, maxlen: int, stride: int) -> List[Tuple[str, str, int, int]]:
    """The recipe's windows of one question: normalised text, context cut every ``stride``
    characters into pieces of ``maxlen - len(question) - 3`` characters; the answer's
    character span in the window that holds it whole, else (-1, -1)."""
    start, end = locate_answer(example)
    question = lowercase_and_normalize(example.question)
    context = lowercase_and_normalize(example.context)
    answer = lowercase_and_normalize(example.context[start:end])
    start = min(start, max(0, len(context) - len(answer)))
    end = start + len(answer)
    width = max(1, maxlen - len(question) - 3)
    windows, left = [], 0
    while True:
        right = left + width
        if left <= start < end <= right:
            windows.append((question, context[left:right], start - left, end - left))
        else:
            windows.append((question, context[left:right], -1, -1))
        if right >= len(context):
            return windows
        left += stride


class Cmrc2018Generator(DataGenerator):
    """bert4keras-style generator for the recipe's windows: ``[CLS] q [SEP] c [SEP]``,
    span mask on [CLS] and the context, labels ``(start, end)`` or ``(0, 0)``."""

    def __init__(self, data, batch_size, tokenizer):
        super().__init__(data, batch_size)
        self.tokenizer = tokenizer

    def __iter__(self, random=False):
        encode = self.tokenizer.encode
        tokens, segments, masks, labels = [], [], [], []
        for is_end, (question, context, start, end) in self.sample(random):
            token_ids = encode(question)[0]
            mask = [1] + [0] * (len(token_ids) - 1)
            if start < 0:
                token_ids = token_ids + encode(context)[0][1:]
                labels.append([0, 0])
            else:
                before = encode(context[:start])[0][1:-1]
                answer = encode(context[start:end])[0][1:-1]
                after = encode(context[end:])[0][1:]
                first = len(token_ids) + len(before)
                labels.append([first, first + max(len(answer), 1) - 1])
                token_ids = token_ids + before + answer + after
            mask = mask + [1] * (len(token_ids) - 1 - len(mask)) + [0]
            tokens.append(token_ids)
            segments.append([0] * len(token_ids))
            masks.append(mask)
            if len(tokens) == self.batch_size or is_end:
                yield ([sequence_padding(tokens), sequence_padding(segments), sequence_padding(masks)],
                       sequence_padding(labels))
                tokens, segments, masks, labels = [], [], [], []


class PairGenerator(DataGenerator):
    """bert4keras-style generator for sentence pairs (afqmc): ``[CLS] a [SEP] b [SEP]`` cut to
    ``maxlen`` by bert4keras's rule, segment ids 0 (the recipe's, with ``application='unilm'``)."""

    def __init__(self, data, batch_size, tokenizer, maxlen):
        super().__init__(data, batch_size)
        self.tokenizer, self.maxlen = tokenizer, maxlen

    def __iter__(self, random=False):
        token_batch, label_batch = [], []
        for is_end, (first, second, label) in self.sample(random):
            token_ids, _ = self.tokenizer.encode(first, second, maxlen=self.maxlen)
            token_batch.append(token_ids)
            label_batch.append(label)
            if len(token_batch) == self.batch_size or is_end:
                tokens = sequence_padding(token_batch)
                yield ([tokens, np.zeros_like(tokens)], np.array(label_batch))
                token_batch, label_batch = [], []


def reference_records(task_name: str, task: Any, examples: Sequence[Any], params: TaskParams) -> List[Any]:
    if task_name == "tnews":
        return [(e.text, task.label_index[e.label]) for e in examples]
    if task_name == "afqmc":
        return [(e.text_a, e.text_b, task.label_index[e.label]) for e in examples]
    records = []
    for example in examples:
        records.extend(cmrc_character_windows(example, params.maxlen, params.doc_stride))
    return records


def reference_generator(task_name: str, records, batch_size: int, tokenizer, params: TaskParams):
    if task_name == "tnews":
        return TnewsGenerator(records, batch_size, tokenizer, params.maxlen)
    if task_name == "afqmc":
        return PairGenerator(records, batch_size, tokenizer, params.maxlen)
    return Cmrc2018Generator(records, batch_size, tokenizer)


# ------------------------------------------------------------------------ training
TrainStep = Callable[[Sequence[np.ndarray], np.ndarray], float]


def model_config(name: str, layers: Optional[int]) -> Dict[str, Any]:
    """tiny: ``TINY_CONFIG``; base: the release's config; release-width: the release's widths
    (hidden 768, expansion 1536, key 128, the release vocab) with ``layers`` layers."""
    if name == "tiny":
        return dict(TINY_CONFIG)
    config = read_config(RELEASE_CONFIG)
    if name == "release-width":
        config["num_hidden_layers"] = int(layers or 2)
    return config


def build_trainer(task: Any, files: ModelDir, seed: int, xla: bool) -> Tuple[Trainer, TaskParams]:
    """The task model on the directory's encoder (``application='unilm'`` as in the recipe),
    the recipe's AdaFactor and the package's :class:`Trainer` under the default strategy."""
    defaults = task.defaults
    strategy = make_strategy("default")
    tf.keras.backend.clear_session()
    seed_everything(seed)
    with strategy.scope():
        encoder, transformer = build_encoder(files, application="unilm")
        params = TaskParams(maxlen=defaults.maxlen, doc_stride=defaults.doc_stride or 128,
                            max_answer_len=defaults.max_answer_len or 100,
                            key_size=int(transformer.attention_key_size),
                            kernel_initializer=transformer.initializer)
        model = task.build_model(encoder, params)
        optimizer = make_optimizer(LEARNING_RATE, 1)
    trainer = Trainer(task, model, optimizer, strategy, progress=False, xla=xla,
                      max_buckets=DEFAULT_MAX_BUCKETS, min_batches_per_bucket=1)
    return trainer, params


def dynamic_train_step(trainer: Trainer, feature: Feature) -> TrainStep:
    """The package's non-XLA train step (dynamic shapes, traced once), fed numpy batches.

    Returns:
        ``step(inputs, labels) -> float``: one optimizer step on a batch; ``inputs`` are the
        arrays of ``task.input_names()`` in that order, ``labels`` the batch's labels (any
        numeric dtype, cast to the step's signature). Returns the summed per-example loss.
    """
    function = trainer.make_train_step(feature)
    dtypes = [spec.dtype.as_numpy_dtype for spec in function.input_signature]

    def step(inputs: Sequence[np.ndarray], labels: np.ndarray) -> float:
        arrays = list(inputs) + [labels]
        return float(function(*[tf.constant(np.asarray(a, dtype=d)) for a, d in zip(arrays, dtypes)]))

    return step


def encode_chunks(task, chunks: Sequence[Sequence[Any]], tokenizer, params: TaskParams) -> List[Feature]:
    features: List[Feature] = []
    for chunk in chunks:
        features.extend(task.encode(chunk, tokenizer, params, labelled=True))
    return features


def run_reference_epoch(generator, step: TrainStep, max_steps: Optional[int] = None) -> Dict[str, Any]:
    """Train on the generator's batches; time, rows, steps and padding."""
    started = time.perf_counter()
    token_batches, rows, steps = [], 0, 0
    for inputs, labels in generator.__iter__(random=True):
        token_batches.append(np.asarray(inputs[0]))
        rows += len(inputs[0])
        step(inputs, labels)
        steps += 1
        if max_steps is not None and steps >= max_steps:
            break
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "features": rows, "steps": steps,
            "padding_fraction": padding_fraction(token_batches),
            "padded_tokens": int(sum(b.size for b in token_batches))}


def run_ours_epoch(trainer: Trainer, task, chunks, tokenizer, params: TaskParams, batch_size: int, seed: int,
                   epoch: int, step: Optional[TrainStep] = None) -> Dict[str, Any]:
    """Encode every chunk, then one epoch: ``trainer.train_epoch`` (XLA), or with ``step``
    the same batches padded per batch (``--no-xla``). Padding is counted afterwards, untimed."""
    started = time.perf_counter()
    features = encode_chunks(task, chunks, tokenizer, params)
    if step is None:
        trainer.train_epoch(features, batch_size, seed, epoch)
    else:
        names = task.input_names()
        for indices in epoch_batches(features, batch_size, seed, epoch):
            batch = [features[i] for i in indices]
            inputs = collate_inputs(batch)
            step([inputs[n] for n in names], task.collate_labels(batch, inputs))
    seconds = time.perf_counter() - started
    batches = epoch_batches(features, batch_size, seed, epoch)
    real = sum(f.inputs["token_ids"].size for f in features)
    if step is None:  # as train_epoch pads: to the ladder, the last batch filled to batch_size
        ladder = trainer.training_ladder(features, batch_size, seed)
        padded = sum(batch_size * bucket_width(max(features[i].length for i in b), ladder) for b in batches)
    else:
        padded = sum(len(b) * max(features[i].length for i in b) for b in batches)
    return {"seconds": seconds, "features": len(features), "steps": len(batches),
            "padding_fraction": 1.0 - real / padded, "padded_tokens": int(padded)}


def spread(values: Sequence[float]) -> Dict[str, float]:
    """min, median, max and interquartile range."""
    ordered = sorted(values)
    q1, q3 = (np.percentile(ordered, [25, 75]) if len(ordered) > 1 else (ordered[0], ordered[0]))
    return {"min": ordered[0], "median": statistics.median(ordered), "max": ordered[-1], "iqr": float(q3 - q1)}


def bench_task(task_name: str, args, files, tokenizers) -> Dict[str, Any]:
    task = get_task(task_name)
    defaults = task.defaults
    examples = load_examples(task_name)
    limit = QUICK_LIMIT[task_name] if args.quick else (QUESTIONS[args.model] if task_name == "cmrc2018" else None)
    if limit:
        examples = examples[:limit]
    replicate = args.replicate or (1 if args.quick else REPLICATE[args.model][task_name])
    chunks = [examples] * replicate
    all_examples = [e for chunk in chunks for e in chunk]
    trainer, params = build_trainer(task, files, args.seed, xla=True)
    batch_size = defaults.batch_size
    fast = tokenizers["fast"]
    sample_features = encode_chunks(task, chunks, fast, params)
    reference_step = dynamic_train_step(trainer, sample_features[0])
    records = reference_records(task_name, task, all_examples, params)
    generator = reference_generator(task_name, records, batch_size, tokenizers["reference"], params)

    # warm-up (excluded): trace the dynamic step, compile every ladder width of the XLA step
    run_reference_epoch(generator, reference_step, max_steps=3)
    started = time.perf_counter()
    ladder = trainer.precompile(sample_features, batch_size, args.seed)
    compile_seconds = time.perf_counter() - started
    pipelines = [p for p in PIPELINES if p in args.pipelines]
    epochs: Dict[str, List[Dict[str, Any]]] = {p: [] for p in pipelines}
    for round_index in range(args.rounds):
        order = pipelines if round_index % 2 == 0 else pipelines[::-1]
        for pipeline in order:
            np.random.seed(args.seed + round_index)  # DataGenerator shuffles with numpy's global state
            if pipeline == "reference":
                result = run_reference_epoch(generator, reference_step)
            else:
                result = run_ours_epoch(trainer, task, chunks, fast, params, batch_size, args.seed, round_index,
                                        step=reference_step if pipeline == "ours-no-xla" else None)
            epochs[pipeline].append(result)
            print("  %s %s round %d: %.2f s" % (task_name, pipeline, round_index + 1, result["seconds"]),
                  file=sys.stderr, flush=True)
    report = trainer.compilations()
    out: Dict[str, Any] = {
        "task": task_name,
        "examples_per_epoch": len(all_examples),
        "distinct_examples": len(examples),
        "replicate": replicate,
        "batch_size": batch_size,
        "maxlen": defaults.maxlen,
        "rounds": args.rounds,
        "ladder": ladder,
        "xla_compilations": report["train_traces"],
        "xla_compile_seconds": compile_seconds,
        "pipelines": {},
        "speedup": {},
    }
    for pipeline, runs in epochs.items():
        seconds = [r["seconds"] for r in runs]
        median = statistics.median(seconds)
        out["pipelines"][pipeline] = {
            "epoch_seconds": seconds,
            "median_epoch_seconds": median,
            "examples_per_second": len(all_examples) / median,
            "features_per_epoch": runs[0]["features"],
            "steps_per_epoch": runs[0]["steps"],
            "padding_fraction": statistics.mean(r["padding_fraction"] for r in runs),
            "padded_tokens_per_epoch": statistics.mean(r["padded_tokens"] for r in runs),
        }
        if pipeline != "reference" and "reference" in epochs:
            ratios = [ref["seconds"] / r["seconds"] for ref, r in zip(epochs["reference"], runs)]
            out["speedup"][pipeline] = dict(spread(ratios), per_round=ratios)
    del trainer, reference_step
    tf.keras.backend.clear_session()
    return out


# ------------------------------------------------------------------------ reporting
def markdown(results: Dict[str, Any]) -> str:
    lines = ["| task | pipeline | examples / epoch | model rows / epoch | steps | padding | epoch s (median) "
             "| examples/s | speed-up: median (min-max, IQR) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for task in results["tasks"]:
        for name, p in task["pipelines"].items():
            if name == "reference":
                ratio = "1.00x"
            else:
                s = task["speedup"][name]
                ratio = "**%.2fx** (%.2f-%.2f, IQR %.2f)" % (s["median"], s["min"], s["max"], s["iqr"])
            lines.append("| %s | %s | %d | %d | %d | %.1f%% | %.2f | %.1f | %s |" % (
                task["task"], PIPELINE_LABELS[name], task["examples_per_epoch"], p["features_per_epoch"],
                p["steps_per_epoch"], 100 * p["padding_fraction"], p["median_epoch_seconds"],
                p["examples_per_second"], ratio))
    lines.append("")
    lines.append("XLA ladders (token widths compiled; compile time, untimed): " + "; ".join(
        "%s %s (%d compilations, %.0f s)" % (t["task"], t["ladder"], t["xla_compilations"], t["xla_compile_seconds"])
        for t in results["tasks"]) + ".")
    return "\n".join(lines)


def description(results: Dict[str, Any]) -> str:
    config = results["model_config"]
    data = "; ".join(
        "%s: %d %s x %d cop%s per epoch" % (
            t["task"], t["distinct_examples"], "questions" if t["task"] == "cmrc2018" else "records",
            t["replicate"], "y" if t["replicate"] == 1 else "ies")
        for t in results["tasks"])
    load = results.get("load_average_before"), results.get("load_average_after")
    return (
        "Same GAU-alpha for all pipelines (%s: %d layers, hidden %d, expansion %d, key size %d, vocab %d; "
        "`application='unilm'` as in the recipe), AdaFactor (lr %g, beta1 0.9, no factoring below 10^6 rows; no "
        "gradient accumulation), the recipe's batch sizes and maxlen; %d timed epochs per pipeline, interleaved, "
        "after an untimed warm-up that also compiles every ladder width. Data (%s): the bundled samples (tnews "
        "train, afqmc dev, cmrc2018 train + trial questions). Examples are records or questions; model rows are "
        "sequences (cmrc2018 windows: the recipe cuts contexts by characters, ours by tokens). Our epoch time "
        "includes encoding all records with the fast tokenizer every epoch. Padding: padding positions over all "
        "positions fed to the model (ours: up to the ladder width, with the last batch filled to the batch "
        "size). Load average before/after: %s / %s on %s usable CPUs%s." % (
            results["model"], config["num_hidden_layers"], config["hidden_size"], config["intermediate_size"],
            config["attention_key_size"], config["vocab_size"], LEARNING_RATE,
            results["tasks"][0]["rounds"] if results["tasks"] else 0, data,
            ", ".join("%.1f" % v for v in load[0] or []), ", ".join("%.1f" % v for v in load[1] or []),
            results["machine"].get("usable_cpus"),
            " (a loaded machine: other jobs shared the CPUs, so absolute times are inflated and the ratios "
            "noisier)" if load[0] and load[0][0] > (results["machine"].get("usable_cpus") or 1) else ""))


def plot(results: Dict[str, Any], path: Path) -> Optional[Path]:
    """Examples/s per task and pipeline, speed-up (median) over the bars."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    tasks = results["tasks"]
    names = [p for p in PIPELINES if any(p in t["pipelines"] for t in tasks)]
    figure, axis = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / max(len(names), 1)
    for offset, name in enumerate(names):
        xs = [i + (offset - (len(names) - 1) / 2) * width for i in range(len(tasks))]
        values = [t["pipelines"].get(name, {}).get("examples_per_second", 0.0) for t in tasks]
        bars = axis.bar(xs, values, width, label=PIPELINE_LABELS[name])
        for bar, task in zip(bars, tasks):
            if name in task["speedup"]:
                axis.annotate("%.2fx" % task["speedup"][name]["median"], (bar.get_x() + bar.get_width() / 2,
                              bar.get_height()), ha="center", va="bottom", fontsize=8)
    axis.set_xticks(range(len(tasks)))
    axis.set_xticklabels([t["task"] for t in tasks])
    axis.set_ylabel("examples / s")
    config = results["model_config"]
    axis.set_title("End-to-end fine-tuning, GAU-alpha %d layers, hidden %d (CPU)" % (
        config["num_hidden_layers"], config["hidden_size"]), fontsize=10)
    axis.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(suffix=".png", dir=path.parent, delete=False) as handle:
        temporary = Path(handle.name)
    figure.savefig(temporary, dpi=110)
    plt.close(figure)
    temporary.chmod(0o644)  # NamedTemporaryFile makes it 0600
    temporary.replace(path)
    return path


def write_outputs(results: Dict[str, Any], out: Path) -> List[Path]:
    """``e2e.json``, ``e2e.md`` (with the command) and ``e2e.png`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    written = [write_json(out / "e2e.json", results)]
    text = "\n".join([
        "# End-to-end fine-tuning throughput%s" % (" (quick run: not meaningful)" if results["quick"] else ""), "",
        "Generated by `%s` (%s, commit %s); do not edit by hand." % (
            results["command"], results["date"], results.get("git_revision") or "?"), "",
        results["description"], "", results["markdown"], "", "![examples per second](e2e.png)", ""])
    written.append(write_text_atomic(out / "e2e.md", text))
    picture = plot(results, out / "e2e.png")
    if picture is not None:
        written.append(picture)
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="a few seconds per task (numbers not meaningful)")
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--model", choices=("release-width", "tiny", "base"), default="release-width",
                        help="release-width (default): the release's widths (hidden 768, expansion 1536, key 128) "
                             "with --layers layers; tiny: gau_alpha.model_dir.TINY_CONFIG (2 layers, hidden 128); "
                             "base: the release config (24 layers; hours on a CPU)")
    parser.add_argument("--layers", type=int, default=2, help="layers of the release-width model (default 2)")
    parser.add_argument("--pipelines", nargs="+", choices=PIPELINES, default=["reference", "ours"],
                        help="pipelines to time (default: reference ours)")
    parser.add_argument("--replicate", type=int, help="copies of the records per epoch (default: per model, "
                                                      "see REPLICATE; quick 1)")
    parser.add_argument("--rounds", type=int, help="timed epochs per pipeline (default 3; quick 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the results (JSON) here")
    parser.add_argument("--out", type=Path, help="write e2e.json, e2e.md and e2e.png here (the committed results: "
                                                 "%s)" % DEFAULT_OUT.relative_to(common.REPO_ROOT))


def run(args: argparse.Namespace, argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    args.rounds = args.rounds or (1 if args.quick else 3)
    config = model_config(args.model, args.layers)
    scratch = Path(tempfile.mkdtemp(prefix="gau-alpha-e2e-"))
    try:
        files = create_random_model_dir(scratch / "model", config=config, seed=args.seed)
        tokenizers = {"reference": load_tokenizer(fast=False), "fast": load_tokenizer(fast=True)}
        load_before = common.load_average()
        tasks = [bench_task(name, args, files, tokenizers) for name in args.tasks]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    results = {
        "benchmark": "end-to-end fine-tuning throughput",
        "command": "python -m benchmarks.e2e" + "".join(" " + shlex.quote(a) for a in (argv or [])),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_revision": common.git_revision(),
        "quick": bool(args.quick),
        "model": args.model if args.model != "release-width" else "release-width, %d layers" % args.layers,
        "model_config": config,
        "machine": common.machine_info(),
        "tensorflow": tf.__version__,
        "load_average_before": load_before,
        "load_average_after": common.load_average(),
        "tasks": tasks,
    }
    results["description"] = description(results)
    results["markdown"] = markdown(results)
    return results


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.e2e", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    results = run(args, argv)
    print(results["description"])
    print()
    print(results["markdown"])
    if args.json:
        write_json(args.json, results)
        print("wrote %s" % args.json)
    if args.out:
        for path in write_outputs(results, args.out):
            print("wrote %s" % path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
