"""Prediction throughput of a fine-tuned model: TF, TF + XLA, onnxruntime fp32 and int8.

For each task (tnews, afqmc, cluener) a small GAU-alpha is fine-tuned from scratch on the
bundled CLUE sample with ``gau_alpha.clue.run_clue`` (cached in ``--work-dir``), exported with
``gau_alpha.deploy.export.export_finetuned`` (ONNX fp32 + int8, each checked against Keras),
and its dev records are predicted by four runtimes through the same code
(:func:`gau_alpha.deploy.runtime.run_batches`: length-sorted batches of 32, each padded to
its longest record, the task's ``summarize``; the TF ones through the run's own prediction
path):

- ``tf``: the Keras model in a ``tf.function`` with dynamic shapes, each batch padded to its
  longest record (``gau-alpha predict --no-xla``; the baseline);
- ``tf_xla``: XLA-compiled, the token axis padded to the run's length ladder
  (``gau-alpha predict``'s default; :class:`gau_alpha.clue.training.Trainer` with ``xla=True``;
  the compilations happen in the warm-up pass);
- ``ort_fp32`` / ``ort_int8``: ``model.onnx`` / ``model.int8.onnx`` in onnxruntime (all graph
  optimisations, ``--threads`` intra-op threads).

Tokenisation is not timed (it is the same for all). One untimed warm-up pass per runtime, then
``--repeats`` rounds; each round times one full pass of every runtime, in an order that
rotates by one each round. Throughput is records/s of a pass; ratios against ``tf`` are taken
within a round (so load from other processes hits both sides of a ratio alike) and summarised
by their median, min/max and interquartile range. Agreement: the fraction of records whose
prediction (label; entity set for cluener) equals ``tf``'s.

    python -m benchmarks.predict                      # writes benchmarks/results/cpu/predict.{md,json,png}
    python -m benchmarks.predict --quick --out /tmp/predict-bench
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Dict, List, Optional, Sequence  # noqa: E402

import gau_alpha  # noqa: E402,F401  (adapts bert4keras first)
import numpy as np  # noqa: E402

from benchmarks.common import RESULTS_DIR, git_revision, load_average, machine_info  # noqa: E402
from gau_alpha.atomic import write_json, write_text_atomic  # noqa: E402

RUNTIMES = ("tf", "tf_xla", "ort_fp32", "ort_int8")
TITLES = {"tf": "TF (no XLA)", "tf_xla": "TF + XLA", "ort_fp32": "ORT fp32", "ort_int8": "ORT int8"}
TARGETS = {"ort_fp32": 1.2, "ort_int8": 2.5}
AGREEMENT_TARGET = 0.99
TASKS = ("tnews", "afqmc", "cluener")
MODEL_CONFIG = {
    "hidden_act": "swish", "hidden_size": 256, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
    "num_attention_heads": 1, "attention_key_size": 64, "intermediate_size": 512, "num_hidden_layers": 4,
    "type_vocab_size": 2, "vocab_size": 12000,
}
"""4 GAU layers, hidden 256, expansion 512, key 64, the release vocab: 4.7M parameters."""
TRAIN = {"epochs": 12, "batch_size": 16, "learning_rate": 2e-2, "maxlen": 128, "seed": 0}
DEFAULT_OUT = RESULTS_DIR / "cpu"
DEFAULT_WORK = Path(tempfile.gettempdir()) / "gau-alpha-bench-predict"


def parameter_count(config: Dict[str, Any]) -> int:
    hidden, inner, key = config["hidden_size"], config["intermediate_size"], config["attention_key_size"]
    per_layer = hidden * (2 * inner + key) + inner * hidden + 2 * key  # i_dense, o_dense, q/k scales
    return config["vocab_size"] * hidden + config["type_vocab_size"] * hidden + config["num_hidden_layers"] * per_layer


# ---------------------------------------------------------------------------- models
def data_dir(task: str, work: Path) -> Path:
    """The bundled sample; afqmc's has one training record, so its dev records train it too."""
    from gau_alpha.resources import clue_sample_dir

    if task != "afqmc":
        return clue_sample_dir(task)
    folder = work / "data" / task
    if not folder.is_dir():
        shutil.copytree(clue_sample_dir(task), folder)
        shutil.copyfile(folder / "dev.json", folder / "train.json")
    return folder


def fine_tuned(task: str, work: Path, epochs: int) -> Dict[str, Any]:
    """Train (once; kept in ``work``) and export; returns the run's facts and paths."""
    from gau_alpha.clue.pipeline import RunOptions, run_clue
    from gau_alpha.deploy.export import export_finetuned
    from gau_alpha.deploy.finetuned import load_finetuned
    from gau_alpha.model_dir import create_random_model_dir, open_model_dir

    model_dir = work / "model"
    if not (model_dir / "bert_config.json").is_file():
        create_random_model_dir(model_dir, MODEL_CONFIG, seed=0)
    open_model_dir(model_dir)
    run_dir = work / "runs" / task
    metrics = run_dir / "metrics.json"
    if not metrics.is_file() or json.loads(metrics.read_text())["epochs_done"] != epochs:
        print("training %s (%d epochs) ..." % (task, epochs), flush=True)
        run_clue(RunOptions(task=task, data_dir=data_dir(task, work), output_dir=run_dir, epochs=epochs,
                            batch_size=TRAIN["batch_size"], maxlen=TRAIN["maxlen"],
                            learning_rate=TRAIN["learning_rate"], seed=TRAIN["seed"], model_dir=model_dir,
                            eval_batch_size=32, progress=False, overwrite=True))
    summary = json.loads(metrics.read_text())
    export = work / "exports" / task
    finetuned = load_finetuned(run_dir)
    report = export_finetuned(finetuned, export, "onnx", quantize="int8", overwrite=True, say=lambda *a: None)
    return {"run_dir": run_dir, "export": export, "finetuned": finetuned, "summary": summary,
            "check_max_abs_diff": report.max_abs_diff, "export_int8_agreement": report.int8_agreement}


# ---------------------------------------------------------------------------- timing
def spread(values: Sequence[float]) -> Dict[str, float]:
    values = sorted(values)
    quartiles = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return {"median": statistics.median(values), "min": values[0], "max": values[-1],
            "q1": quartiles[0], "q3": quartiles[2], "iqr": quartiles[2] - quartiles[0], "n": len(values)}


def bench_task(task: str, work: Path, repeats: int, threads: int, epochs: int) -> Dict[str, Any]:
    from gau_alpha.clue.loaders import load_split
    from gau_alpha.deploy.export import INT8_FILE, ONNX_FILE
    from gau_alpha.deploy.runtime import OnnxRunner, run_batches, trainer_for

    facts = fine_tuned(task, work, epochs)
    finetuned = facts["finetuned"]
    examples = load_split(task, data_dir(task, work), "dev")
    encoded = finetuned.encode(examples)
    model = finetuned.keras_model()
    batch = finetuned.batch_size
    trainers = {name: trainer_for(finetuned, progress=False, xla=name == "tf_xla") for name in ("tf", "tf_xla")}
    runners = {
        "ort_fp32": OnnxRunner(facts["export"] / ONNX_FILE, threads=threads),
        "ort_int8": OnnxRunner(facts["export"] / INT8_FILE, threads=threads),
    }
    assert model is not None

    def one_pass(name: str):
        started = time.perf_counter()
        if name in trainers:  # gau-alpha predict --runtime tf [--no-xla]: the run's own prediction path
            summaries = trainers[name].predict(encoded.features, batch)
        else:
            summaries = run_batches(runners[name], finetuned.task, encoded.features, batch)
        return time.perf_counter() - started, summaries

    warmup, predictions = {}, {}
    for name in RUNTIMES:
        seconds, summaries = one_pass(name)
        warmup[name] = seconds
        predictions[name] = finetuned.task.decode(encoded.examples, encoded.features, summaries, finetuned.params)
    throughput: Dict[str, List[float]] = {name: [] for name in RUNTIMES}
    for round_index in range(repeats):
        order = RUNTIMES[round_index % len(RUNTIMES):] + RUNTIMES[:round_index % len(RUNTIMES)]
        for name in order:
            seconds, _ = one_pass(name)
            throughput[name].append(len(examples) / seconds)
        print("  %s round %d/%d: %s" % (task, round_index + 1, repeats, ", ".join(
            "%s %.0f/s" % (n, throughput[n][-1]) for n in RUNTIMES)), flush=True)
    ratios = {name: [a / b for a, b in zip(throughput[name], throughput["tf"])] for name in RUNTIMES}
    reference = predictions["tf"]
    rows = {}
    for name in RUNTIMES:
        agreement = sum(a == b for a, b in zip(predictions[name], reference)) / len(reference)
        rows[name] = {"throughput": spread(throughput[name]), "ratio_vs_tf": spread(ratios[name]),
                      "agreement_with_tf": agreement, "warmup_seconds": warmup[name],
                      "dev": finetuned.task.score(examples, predictions[name]),
                      "raw_throughput": throughput[name]}
    lengths = [f.length for f in encoded.features]
    summary = facts["summary"]
    return {"task": task, "records": len(examples), "sequences": len(encoded.features),
            "model_parameters": int(model.count_params()),
            "tokens_mean": float(np.mean(lengths)), "tokens_max": int(np.max(lengths)), "batch_size": batch,
            "main_metric": summary["main_metric"], "best": summary["best"],
            "dev_history": [row["dev"][summary["main_metric"]] for row in summary["history"]],
            "train_data": "dev.json (afqmc's sample has 1 training record: measured on its training records)"
            if task == "afqmc" else "train.json",
            "export_check_max_abs_diff": facts["check_max_abs_diff"],
            "export_int8_agreement": facts["export_int8_agreement"], "runtimes": rows}


# ---------------------------------------------------------------------------- report
def markdown(results: Dict[str, Any]) -> str:
    lines = [
        "# Prediction throughput: TF, TF + XLA, onnxruntime fp32 / int8",
        "",
        "Generated by `benchmarks/predict.py` on %s (commit %s); do not edit by hand." % (
            results["date"], results["commit"]),
        "",
        "Command: `%s`" % results["command"],
        "",
        "## Machine and settings",
        "",
        "- CPU: %s, %s usable cores; SIMD: %s" % (results["machine"]["cpu_model"], results["machine"]["usable_cpus"],
                                                " ".join(results["machine"]["simd_flags"])),
        "- **The CPUs were shared** with other processes while this ran (load average %s at the start, %s at "
        "the end, on %s cores): absolute records/s are low and noisy. The ratios are taken within each round, "
        "but oversubscribed cores do not hurt every runtime alike (thread pools that spin-wait, like "
        "onnxruntime's, lose more when their threads are descheduled), so they are not a quiet machine's "
        "ratios: rerun on an idle machine before quoting them." % (
            _load(results["load_start"]), _load(results["load_end"]), results["machine"]["usable_cpus"]),
        "- TensorFlow %s (tf-keras; threads: its default, one per core), onnxruntime %s (%d intra-op threads, "
        "all graph optimisations), tf2onnx %s (opset 17)" % (results["versions"]["tensorflow"],
                                                             results["versions"]["onnxruntime"], results["threads"],
                                                             results["versions"]["tf2onnx"]),
        "- model: GAU-alpha, %d layers, hidden %d, expansion %d, key size %d, vocab %d: %.1fM parameters; "
        "trained from random weights on the bundled sample, %d epochs, batch %d, AdaFactor lr %g, maxlen %d "
        "(the weights of the best dev epoch)" % (
            MODEL_CONFIG["num_hidden_layers"], MODEL_CONFIG["hidden_size"], MODEL_CONFIG["intermediate_size"],
            MODEL_CONFIG["attention_key_size"], MODEL_CONFIG["vocab_size"], results["parameters"] / 1e6,
            results["epochs"], TRAIN["batch_size"], TRAIN["learning_rate"], TRAIN["maxlen"]),
        "- int8: `onnxruntime.quantization.quantize_dynamic`, MatMul weights int8 (7-bit range, per channel; "
        "the task head stays fp32), activations quantised at run time",
        "- records: the sample's dev records (200 per task), length-sorted batches of %d, padded per batch "
        "(TF + XLA: to the run's length ladder); "
        "tokenisation not timed; 1 warm-up pass per runtime, then %d rounds of one pass per runtime, the order "
        "rotating each round" % (results["batch_size"], results["repeats"]),
        "",
        "## Throughput (records/s, median [min-max]) and ratio vs TF (median, IQR)",
        "",
        "| task | records (mean / max tokens) | dev %s (TF) | " % "score" + " | ".join(TITLES[n] for n in RUNTIMES) + " |",
        "|---|---|---:|" + "---:|" * len(RUNTIMES),
    ]
    for task in results["tasks"]:
        cells = []
        for name in RUNTIMES:
            row = task["runtimes"][name]
            t, r = row["throughput"], row["ratio_vs_tf"]
            cell = "%.0f [%.0f-%.0f]" % (t["median"], t["min"], t["max"])
            if name != "tf":
                cell += "<br>**%.2fx** (IQR %.2f-%.2f)" % (r["median"], r["q1"], r["q3"])
            cells.append(cell)
        dev = task["runtimes"]["tf"]["dev"][task["main_metric"]]
        lines.append("| %s | %d (%.0f / %d) | %s %.1f | %s |" % (task["task"], task["records"], task["tokens_mean"],
                                                              task["tokens_max"], task["main_metric"], dev,
                                                              " | ".join(cells)))
    lines += ["", "## Agreement with TF's predictions (fraction of records; cluener: the whole entity set)", "",
              "| task | " + " | ".join(TITLES[n] for n in RUNTIMES[1:]) + " | export check max abs diff (fp32) |",
              "|---|" + "---:|" * (len(RUNTIMES))]
    for task in results["tasks"]:
        lines.append("| %s | %s | %.2g |" % (task["task"], " | ".join(
            "%.1f%%" % (100 * task["runtimes"][n]["agreement_with_tf"]) for n in RUNTIMES[1:]),
            task["export_check_max_abs_diff"]))
    lines += ["", "## Dev scores of each runtime and training", "",
              "| task | metric | " + " | ".join(TITLES[n] for n in RUNTIMES) + " | dev per epoch (TF, training run) |",
              "|---|---|" + "---:|" * len(RUNTIMES) + "---|"]
    for task in results["tasks"]:
        metric = task["main_metric"]
        lines.append("| %s | %s | %s | %s |" % (task["task"], metric, " | ".join(
            "%.2f" % task["runtimes"][n]["dev"][metric] for n in RUNTIMES), ", ".join(
            "%.1f" % v for v in task["dev_history"])))
    lines += ["", "## Targets (issue 11)", ""] + verdicts(results) + [""]
    return "\n".join(lines)


def _load(values: Optional[List[float]]) -> str:
    return "n/a" if not values else "%.1f" % values[0]


def verdicts(results: Dict[str, Any]) -> List[str]:
    out = []
    for name, target in TARGETS.items():
        medians = {t["task"]: t["runtimes"][name]["ratio_vs_tf"]["median"] for t in results["tasks"]}
        met = all(v >= target for v in medians.values())
        out.append("- %s >= %.1fx TF: **%s** (%s)" % (TITLES[name], target, "met" if met else "not met",
                                                      ", ".join("%s %.2fx" % kv for kv in medians.items())))
    agreements = {t["task"]: t["runtimes"]["ort_int8"]["agreement_with_tf"] for t in results["tasks"]}
    met = all(v >= AGREEMENT_TARGET for v in agreements.values())
    out.append("- ORT int8 agreement >= %.0f%%: **%s** (%s)" % (100 * AGREEMENT_TARGET, "met" if met else "not met",
                                                               ", ".join("%s %.1f%%" % (k, 100 * v)
                                                                         for k, v in agreements.items())))
    return out


def plot(results: Dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t["task"] for t in results["tasks"]]
    figure, axis = plt.subplots(figsize=(8, 4.2))
    width = 0.8 / len(RUNTIMES)
    for index, name in enumerate(RUNTIMES):
        medians = [t["runtimes"][name]["ratio_vs_tf"]["median"] for t in results["tasks"]]
        low = [m - t["runtimes"][name]["ratio_vs_tf"]["q1"] for m, t in zip(medians, results["tasks"])]
        high = [t["runtimes"][name]["ratio_vs_tf"]["q3"] - m for m, t in zip(medians, results["tasks"])]
        positions = [i + (index - (len(RUNTIMES) - 1) / 2) * width for i in range(len(tasks))]
        axis.bar(positions, medians, width, yerr=[low, high], capsize=3, label=TITLES[name])
    for name, target in TARGETS.items():
        axis.axhline(target, linestyle="--", linewidth=0.8, color="grey")
        axis.text(len(tasks) - 0.5, target, " %s target %.1fx" % (TITLES[name], target), va="bottom", fontsize=7,
                  ha="right")
    axis.set_xticks(range(len(tasks)))
    axis.set_xticklabels(tasks)
    axis.set_ylabel("throughput / TF (median over rounds, IQR bars)")
    axis.set_title("Prediction throughput vs TF, %.1fM-parameter GAU-alpha, %s cores (shared)"
                   % (results["parameters"] / 1e6, results["machine"]["usable_cpus"]), fontsize=9)
    axis.legend(fontsize=8)
    figure.tight_layout()
    with tempfile.TemporaryDirectory() as scratch:
        figure.savefig(Path(scratch) / "plot.png", dpi=110)
        from gau_alpha.atomic import atomic_file

        with atomic_file(path, "wb") as handle:
            handle.write((Path(scratch) / "plot.png").read_bytes())
    plt.close(figure)


def write_report(results: Dict[str, Any], out: Path) -> str:
    """``predict.md``, ``predict.json`` and ``predict.png`` in ``out``; returns the markdown."""
    text = markdown(results)
    write_json(out / "predict.json", results)
    write_text_atomic(out / "predict.md", text)
    plot(results, out / "predict.png")
    return text


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.predict", description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (default 7)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="onnxruntime intra-op threads (default: the usable cores)")
    parser.add_argument("--epochs", type=int, default=TRAIN["epochs"], help="training epochs (default %d)" % TRAIN["epochs"])
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK, help="trained runs and exports (kept)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where predict.md/.json/.png go")
    parser.add_argument("--quick", action="store_true", help="2 rounds, 2 epochs (a smoke run)")
    parser.add_argument("--report-only", type=Path, default=None, metavar="JSON",
                        help="rewrite the report from an earlier run's predict.json (nothing is measured)")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.epochs = 2, 2
    import onnxruntime
    import tensorflow as tf
    import tf2onnx

    started = time.time()
    load_start = load_average()
    results: Dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "commit": git_revision(),
        "command": "python -m benchmarks.predict " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine_info(), "load_start": load_start, "threads": args.threads, "repeats": args.repeats,
        "epochs": args.epochs, "batch_size": 32, "model_config": MODEL_CONFIG,
        "parameters": parameter_count(MODEL_CONFIG),
        "versions": {"tensorflow": tf.__version__, "onnxruntime": onnxruntime.__version__,
                     "tf2onnx": tf2onnx.__version__},
        "tasks": [],
    }
    if args.report_only:
        results = json.loads(args.report_only.read_text(encoding="utf-8"))
    else:
        for task in args.tasks:
            results["tasks"].append(bench_task(task, args.work_dir, args.repeats, args.threads, args.epochs))
        results["load_end"] = load_average()
        results["seconds"] = time.time() - started
    text = write_report(results, args.out)
    print(text)
    print("wrote %s/predict.{md,json,png}" % args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
