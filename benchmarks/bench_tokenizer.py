"""Benchmark: bert4keras's Tokenizer (reference) versus gau_alpha's FastTokenizer.

Encodes every string of the bundled CLUE samples (and text pairs built from them, with
``maxlen``), replicated to a few seconds of reference work. Runs alternate between the two
tokenizers (which one goes first alternates too), the outputs are compared on every run,
and min / median / IQR of each are reported. Workloads: the fast tokenizer's
``encode_batch`` and, to show the per-call cost, its ``encode`` called once per text (the
reference is always ``encode`` in a loop, as bert4keras users run it).

    python -m benchmarks.bench_tokenizer [--repeats 5] [--replicate 3] [--out PATH.json]

Prints a Markdown table and writes ``benchmarks/results/cpu/tokenizer.json`` (and the table
with the command to the ``.md`` beside it).
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before gau_alpha (which sets the tf-keras switches)

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable, Dict, List, Optional, Sequence, Tuple  # noqa: E402

import sys  # noqa: E402

from gau_alpha.atomic import atomic_file, write_json  # noqa: E402
from gau_alpha.resources import CLUE_SAMPLES_DIR  # noqa: E402
from gau_alpha.tokenization import load_tokenizer  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "cpu" / "tokenizer.json"


def _documents(path: Path) -> list:
    """A sample file's JSON documents (whole-file JSON, or JSON lines)."""
    raw = path.read_text(encoding="utf-8")
    try:
        return [json.loads(raw)]
    except json.JSONDecodeError:
        return [json.loads(line) for line in raw.splitlines() if line.strip()]


def _walk(value, texts: set, pairs: set) -> None:
    """Collect every string (``texts``) and consecutive string fields of objects (``pairs``)."""
    if isinstance(value, str):
        texts.add(value)
    elif isinstance(value, dict):
        fields = [v for v in value.values() if isinstance(v, str)]
        pairs.update(zip(fields, fields[1:]))
        if "context" in value and "qas" in value:  # cmrc2018: question + context
            pairs.update((qa["question"], value["context"]) for qa in value["qas"])
        for key, item in value.items():
            texts.add(key)
            _walk(item, texts, pairs)
    elif isinstance(value, list):
        for item in value:
            _walk(item, texts, pairs)


def sample_corpus(root: Path = CLUE_SAMPLES_DIR) -> Tuple[List[str], List[Tuple[str, str]]]:
    """All distinct strings of the CLUE sample files, and text pairs built from them."""
    texts: set = set()
    pairs: set = set()
    for path in sorted(root.glob("*/*.json")):
        for document in _documents(path):
            _walk(document, texts, pairs)
    return sorted(texts), sorted(pairs)


def _time(function: Callable[[], list]) -> Tuple[float, float, list]:
    """Wall-clock seconds, CPU seconds (all threads of this process) and the result."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def run_workload(
    name: str,
    reference,
    fast,
    firsts: Sequence[str],
    seconds: Optional[Sequence[str]],
    maxlen: Optional[int],
    repeats: int,
    per_call: bool = False,
) -> Dict:
    """Time both tokenizers on one workload; raise if their outputs ever differ.
    ``per_call``: the fast tokenizer's ``encode`` once per text instead of ``encode_batch``."""
    if seconds is None:
        run_reference = lambda: [reference.encode(a, maxlen=maxlen) for a in firsts]  # noqa: E731
    else:
        run_reference = lambda: [  # noqa: E731
            reference.encode(a, b, maxlen=maxlen) for a, b in zip(firsts, seconds)
        ]
    if per_call:
        pairs_or_texts = firsts if seconds is None else list(zip(firsts, seconds))
        if seconds is None:
            run_fast = lambda: [fast.encode(a, maxlen=maxlen) for a in firsts]  # noqa: E731
        else:
            run_fast = lambda: [fast.encode(a, b, maxlen=maxlen) for a, b in pairs_or_texts]  # noqa: E731
    else:
        run_fast = lambda: fast.encode_batch(firsts, seconds, maxlen=maxlen)  # noqa: E731
    times: Dict[str, List[float]] = {"reference": [], "fast": []}
    cpu_times: Dict[str, List[float]] = {"reference": [], "fast": []}
    fast.encode_batch(firsts[:1000], None if seconds is None else seconds[:1000], maxlen)
    for repeat in range(repeats):
        order = [("reference", run_reference), ("fast", run_fast)]
        if repeat % 2:
            order.reverse()
        outputs = {}
        for label, function in order:
            wall, cpu, outputs[label] = _time(function)
            times[label].append(wall)
            cpu_times[label].append(cpu)
        if outputs["fast"] != outputs["reference"]:
            raise AssertionError("%s: FastTokenizer output differs from the reference" % name)
    count = len(firsts)
    chars = sum(map(len, firsts)) + (sum(map(len, seconds)) if seconds is not None else 0)
    median = {label: statistics.median(values) for label, values in times.items()}
    ratios = sorted(r / f for r, f in zip(times["reference"], times["fast"]))  # per interleaved pair
    quartiles = statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else ratios * 3
    return {
        "workload": name,
        "examples": count,
        "characters": chars,
        "maxlen": maxlen,
        "repeats": repeats,
        "seconds": times,
        "cpu_seconds": cpu_times,
        "median_seconds": median,
        "examples_per_second": {label: count / value for label, value in median.items()},
        "speedup": median["reference"] / median["fast"],
        "speedup_best_runs": min(times["reference"]) / min(times["fast"]),
        "speedup_per_pair": {"min": ratios[0], "q1": quartiles[0], "median": statistics.median(ratios),
                             "q3": quartiles[-1], "max": ratios[-1]},
        "fast_call": "encode per text" if per_call else "encode_batch",
        "cpu_ratio": statistics.median(cpu_times["reference"])
        / statistics.median(cpu_times["fast"]),
        "parity": True,
    }


def markdown(rows: List[Dict]) -> str:
    lines = [
        "| workload | fast call | examples | characters | reference ex/s | fast ex/s | speed-up "
        "(median) | speed-up (best) | per-pair ratio min / IQR / max | CPU-time ratio |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for row in rows:
        rate = row["examples_per_second"]
        pair = row["speedup_per_pair"]
        lines.append(
            "| %s | %s | %d | %d | %.0f | %.0f | %.2fx | %.2fx | %.2f / %.2f–%.2f / %.2f | %.2fx |"
            % (row["workload"], row["fast_call"], row["examples"], row["characters"], rate["reference"],
               rate["fast"], row["speedup"], row["speedup_best_runs"], pair["min"], pair["q1"], pair["q3"],
               pair["max"], row["cpu_ratio"])
        )
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per tokenizer")
    parser.add_argument("--replicate", type=int, default=3, help="copies of the corpus")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    args = parser.parse_args(argv)

    import tokenizers

    reference = load_tokenizer(fast=False)
    fast = load_tokenizer(fast=True)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    texts, pairs = sample_corpus()
    texts = texts * args.replicate
    pairs = pairs * args.replicate
    firsts = [a for a, _ in pairs]
    seconds = [b for _, b in pairs]
    rows = [
        run_workload("single texts", reference, fast, texts, None, None, args.repeats),
        run_workload("single texts", reference, fast, texts, None, None, args.repeats, per_call=True),
        run_workload("single texts, maxlen=128", reference, fast, texts, None, 128,
                     args.repeats),
        run_workload("text pairs, maxlen=64", reference, fast, firsts, seconds, 64,
                     args.repeats),
    ]
    table = markdown(rows)
    print(table)
    command = "python -m benchmarks.bench_tokenizer " + " ".join(argv if argv is not None else sys.argv[1:])
    result = {
        "benchmark": "tokenizer",
        "what": "bert4keras Tokenizer.encode in a loop vs FastTokenizer.encode_batch, "
                "bundled CLUE sample strings x%d" % args.replicate,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "tokenizers": tokenizers.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "rayon_num_threads": os.environ.get("RAYON_NUM_THREADS"),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "command": command.strip(),
        "results": rows,
        "markdown": table,
    }
    write_json(args.out, result)
    load = ", ".join("%.1f" % x for x in load_before or [])
    with atomic_file(args.out.with_suffix(".md"), "w", encoding="utf-8") as handle:
        handle.write("# Tokenizer throughput\n\nCommand: `%s`\n\n%s\n\n%s; load average before: %s "
                     "(the machine was shared: per-pair ratios are the robust figure).\n"
                     % (command.strip(), result["what"], table, load))
    print("wrote %s" % args.out)
    return result


if __name__ == "__main__":
    main()
