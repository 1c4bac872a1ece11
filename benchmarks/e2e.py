"""End-to-end fine-tuning throughput: our CLUE pipeline against the CLUE-bert4keras way.

Both pipelines train the *same* Keras model with the *same* compiled train step, the
package's own (:class:`gau_alpha.clue.training.Trainer`'s ``tf.function`` with fully dynamic
shapes, traced once before timing), and the recipe's AdaFactor (``make_optimizer``); only
the data path differs:

- reference (as bojone/CLUE-bert4keras does it): records prepared once (cmrc2018: the
  recipe's character-level sliding windows), then every epoch a bert4keras ``DataGenerator``
  subclass draws them shuffled, tokenizes each with bert4keras's ``Tokenizer`` and pads each
  fixed-size batch with ``sequence_padding``;
- ours (``gau_alpha.clue``): every epoch ``Task.encode`` with the ``FastTokenizer`` (batch
  encoding; cmrc2018 token windows), ``epoch_batches`` (length-bucketed, shuffled batches) and
  ``collate_inputs`` (per-batch padding). Real runs encode once per run; re-encoding every
  epoch here is the conservative choice.

Epochs of the two pipelines alternate (reference, ours, ours, reference, ...); the median
epoch time of each is reported with its padding fraction. Records are replicated to make an
epoch long enough to time (each copy is encoded on its own, so no cache spans copies).

    python -m benchmarks.e2e [--quick] [--tasks tnews cmrc2018] [--model tiny|base] [--json PATH]
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple  # noqa: E402

import gau_alpha  # noqa: E402,F401  (adapts bert4keras first)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from bert4keras.snippets import DataGenerator, lowercase_and_normalize, sequence_padding  # noqa: E402

from benchmarks import common  # noqa: E402
from gau_alpha.atomic import write_json  # noqa: E402
from gau_alpha.clue.tasks import TaskParams  # noqa: E402
from gau_alpha.clue.features import Feature, collate_inputs  # noqa: E402
from gau_alpha.clue.loaders import load_split  # noqa: E402
from gau_alpha.clue.tasks.span import locate_answer  # noqa: E402
from gau_alpha.clue.tasks import get_task  # noqa: E402
from gau_alpha.clue.training import Trainer, epoch_batches, make_optimizer, make_strategy, seed_everything  # noqa: E402
from gau_alpha.model_dir import TINY_CONFIG, ModelDir, build_encoder, create_random_model_dir, read_config  # noqa: E402
from gau_alpha.resources import RELEASE_CONFIG, clue_sample_dir  # noqa: E402
from gau_alpha.tokenization import load_tokenizer  # noqa: E402

TASKS = ("tnews", "cmrc2018")
SPLITS = {"tnews": ("train",), "cmrc2018": ("train", "trial")}
FULL_REPLICATE = {"tnews": 15, "cmrc2018": 1}
QUICK_LIMIT = {"tnews": 200, "cmrc2018": 40}
LEARNING_RATE = 5e-4


# --------------------------------------------------------------------------- data
def load_examples(task: str) -> List[Any]:
    """Labelled sample records: tnews train; cmrc2018 train + trial (the train sample holds
    one article, so the official trial set stands in for training data; dev stays unused)."""
    examples: List[Any] = []
    for split in SPLITS[task]:
        examples.extend(load_split(task, clue_sample_dir(task), split))
    if task == "cmrc2018":
        examples = [e for e in examples if locate_answer(e) is not None]
    return examples


def padding_fraction(token_batches: Sequence[np.ndarray]) -> float:
    total = sum(int(b.size) for b in token_batches)
    padded = sum(int((b == 0).sum()) for b in token_batches)
    return padded / total if total else 0.0


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


def reference_records(task_name: str, task: Any, examples: Sequence[Any], params: TaskParams) -> List[Any]:
    if task_name == "tnews":
        return [(e.text, task.label_index[e.label]) for e in examples]
    records = []
    for example in examples:
        records.extend(cmrc_character_windows(example, params.maxlen, params.doc_stride))
    return records


def reference_generator(task_name: str, records, batch_size: int, tokenizer, params: TaskParams):
    if task_name == "tnews":
        return TnewsGenerator(records, batch_size, tokenizer, params.maxlen)
    return Cmrc2018Generator(records, batch_size, tokenizer)


# ------------------------------------------------------------------------ training
TrainStep = Callable[[Sequence[np.ndarray], np.ndarray], float]


def build_trainer(task: Any, files: ModelDir, seed: int) -> Tuple[Trainer, TaskParams]:
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
    return Trainer(task, model, optimizer, strategy, progress=False), params


def package_train_step(trainer: Trainer, feature: Feature) -> TrainStep:
    """The package's compiled train step, traced once for both pipelines.

    Args:
        trainer: holds the task, model, optimizer and strategy.
        feature: one encoded feature of the task (fixes the rank of each input).

    Returns:
        ``step(inputs, labels) -> float``: one optimizer step on a batch; ``inputs`` are the
        arrays of ``task.input_names()`` in that order (``(B, N)`` each), ``labels`` the batch's
        labels (``(B,)`` tnews, ``(B, 2)`` cmrc2018), any numeric dtype (cast to the step's
        signature). Returns the summed per-example loss.
    """
    function = trainer.make_train_step(feature)
    dtypes = [spec.dtype.as_numpy_dtype for spec in function.input_signature]

    def step(inputs: Sequence[np.ndarray], labels: np.ndarray) -> float:
        arrays = list(inputs) + [labels]
        return float(function(*[tf.constant(np.asarray(a, dtype=d)) for a, d in zip(arrays, dtypes)]))

    return step


def reference_batches(generator) -> Iterator[Tuple[List[np.ndarray], np.ndarray]]:
    return generator.__iter__(random=True)


def ours_batches(task, chunks: Sequence[Sequence[Any]], tokenizer, params: TaskParams, batch_size: int, seed: int,
                 epoch: int, counters: Dict[str, Any]):
    features = []
    for chunk in chunks:
        features.extend(task.encode(chunk, tokenizer, params, labelled=True))
    counters["features"] = len(features)
    names = task.input_names()
    for indices in epoch_batches(features, batch_size, seed, epoch):
        batch = [features[i] for i in indices]
        inputs = collate_inputs(batch)
        labels = task.collate_labels(batch, inputs)
        yield [inputs[n] for n in names], labels


def run_epoch(batches, step: TrainStep, max_steps: Optional[int] = None) -> Dict[str, Any]:
    """Train on ``batches`` (``(inputs, labels)`` pairs); time, rows, steps and padding."""
    started = time.perf_counter()
    token_batches, rows, steps = [], 0, 0
    for inputs, labels in batches:
        token_batches.append(np.asarray(inputs[0]))
        rows += len(inputs[0])
        step(inputs, labels)
        steps += 1
        if max_steps is not None and steps >= max_steps:
            break
    return {"seconds": time.perf_counter() - started, "features": rows, "steps": steps,
            "padding_fraction": padding_fraction(token_batches),
            "tokens": int(sum(int((b > 0).sum()) for b in token_batches)),
            "padded_tokens": int(sum(b.size for b in token_batches))}


def bench_task(task_name: str, args, files, tokenizers) -> Dict[str, Any]:
    task = get_task(task_name)
    defaults = task.defaults
    examples = load_examples(task_name)
    if args.quick:
        examples = examples[: QUICK_LIMIT[task_name]]
    replicate = args.replicate or (1 if args.quick else FULL_REPLICATE[task_name])
    chunks = [examples] * replicate
    all_examples = [e for chunk in chunks for e in chunk]
    trainer, params = build_trainer(task, files, args.seed)
    step = package_train_step(trainer, task.encode(examples[:1], tokenizers["fast"], params, labelled=True)[0])
    batch_size = defaults.batch_size
    records = reference_records(task_name, task, all_examples, params)
    generator = reference_generator(task_name, records, batch_size, tokenizers["reference"], params)

    # warm-up (excluded): trace the step, create the optimizer slots, a few shapes of each
    run_epoch(reference_batches(generator), step, max_steps=3)
    run_epoch(ours_batches(task, [examples[: batch_size * 3]], tokenizers["fast"], params, batch_size, args.seed,
                           0, {}), step, max_steps=3)
    epochs: Dict[str, List[Dict[str, Any]]] = {"reference": [], "ours": []}
    for round_index in range(args.rounds):
        order = ["reference", "ours"] if round_index % 2 == 0 else ["ours", "reference"]
        for pipeline in order:
            np.random.seed(args.seed + round_index)  # DataGenerator shuffles with numpy's global state
            if pipeline == "reference":
                result = run_epoch(reference_batches(generator), step)
            else:
                counters: Dict[str, Any] = {}
                result = run_epoch(ours_batches(task, chunks, tokenizers["fast"], params, batch_size, args.seed,
                                                round_index, counters), step)
            epochs[pipeline].append(result)
    out: Dict[str, Any] = {
        "task": task_name,
        "examples_per_epoch": len(all_examples),
        "distinct_examples": len(examples),
        "replicate": replicate,
        "batch_size": batch_size,
        "maxlen": defaults.maxlen,
        "rounds": args.rounds,
        "pipelines": {},
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
            "real_tokens_per_epoch": runs[0]["tokens"],
            "padded_tokens_per_epoch": statistics.mean(r["padded_tokens"] for r in runs),
        }
    ref, ours = out["pipelines"]["reference"], out["pipelines"]["ours"]
    out["speedup"] = ours["examples_per_second"] / ref["examples_per_second"]
    out["padded_token_ratio"] = ref["padded_tokens_per_epoch"] / ours["padded_tokens_per_epoch"]
    del trainer, step
    tf.keras.backend.clear_session()
    return out


def markdown(results: Dict[str, Any]) -> str:
    lines = ["| task | pipeline | examples / epoch | model rows / epoch | steps | padding | epoch s (median) "
             "| examples/s | speed-up |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for task in results["tasks"]:
        for name in ("reference", "ours"):
            p = task["pipelines"][name]
            lines.append("| %s | %s | %d | %d | %d | %.1f%% | %.2f | %.1f | %s |" % (
                task["task"], "CLUE-bert4keras style" if name == "reference" else "gau_alpha.clue",
                task["examples_per_epoch"], p["features_per_epoch"], p["steps_per_epoch"],
                100 * p["padding_fraction"], p["median_epoch_seconds"], p["examples_per_second"],
                "1.00x" if name == "reference" else "**%.2fx**" % task["speedup"]))
    lines.append("")
    lines.append("Padded tokens per epoch, reference / ours (the speed-up a compute-bound model would approach): "
                 + ", ".join("%s %.2fx" % (t["task"], t["padded_token_ratio"]) for t in results["tasks"]) + ".")
    return "\n".join(lines)


def description(results: Dict[str, Any]) -> str:
    config = results["model_config"]
    data = "; ".join(
        "%s: %d %s x %d cop%s per epoch" % (
            t["task"], t["distinct_examples"], "records" if t["task"] == "tnews" else "questions",
            t["replicate"], "y" if t["replicate"] == 1 else "ies")
        for t in results["tasks"])
    return (
        "Same GAU-alpha (%s: %d layers, hidden %d, expansion %d, key size %d; `application='unilm'` as in the "
        "recipe), the same compiled train step (the package's, `gau_alpha.clue.training.Trainer`) and AdaFactor (lr %g, beta1 0.9, no factoring below 10^6 rows; no "
        "gradient accumulation) for both pipelines; the recipe's batch sizes and maxlen; %d timed epochs per "
        "pipeline, alternating, after an untimed warm-up. Data (%s): the tnews train sample and the cmrc2018 "
        "train + trial sample questions (the train sample is a single article). Examples are records (tnews) or "
        "questions (cmrc2018); model rows are sequences (cmrc2018 windows: the recipe cuts contexts by "
        "characters, ours by tokens). Our epoch time includes encoding all records with the fast tokenizer "
        "every epoch. Bucketing changes only which examples share a batch (each epoch still visits every "
        "feature once, shuffled, with the same per-batch mean loss), so dev metrics are not affected beyond "
        "the usual run-to-run variation of a different shuffle; no training run was needed to show that." % (
            results["model"], config["num_hidden_layers"], config["hidden_size"], config["intermediate_size"],
            config["attention_key_size"], LEARNING_RATE, results["tasks"][0]["rounds"] if results["tasks"] else 0,
            data)
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="a few seconds per task (numbers not meaningful)")
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--model", choices=("tiny", "base"), default="tiny",
                        help="tiny: the project's tiny model (gau_alpha.model_dir.TINY_CONFIG: 2 layers, hidden "
                             "128); base: the release config (hours on a CPU)")
    parser.add_argument("--replicate", type=int, help="copies of the records per epoch (default: tnews %d, "
                                                      "cmrc2018 %d; quick 1)" % (FULL_REPLICATE["tnews"],
                                                                                 FULL_REPLICATE["cmrc2018"]))
    parser.add_argument("--rounds", type=int, help="timed epochs per pipeline (default 3; quick 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the results here")


def run(args: argparse.Namespace) -> Dict[str, Any]:
    args.rounds = args.rounds or (1 if args.quick else 3)
    config = dict(TINY_CONFIG) if args.model == "tiny" else read_config(RELEASE_CONFIG)
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
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "quick": bool(args.quick),
        "model": args.model,
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
    parser = argparse.ArgumentParser(prog="python -m benchmarks.e2e", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    results = run(args)
    print(results["description"])
    print()
    print(results["markdown"])
    if args.json:
        write_json(args.json, results)
        print("wrote %s" % args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
