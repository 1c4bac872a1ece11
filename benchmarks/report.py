"""Tables, plot and claim verdicts from a benchmark's ``results.json``.

Everything in the generated ``README.md`` is derived from the JSON, including the verdicts
on the seed's claims, so a new run re-states its own conclusions:

    python -m benchmarks.report benchmarks/results/cpu/results.json   # rewrite README.md + PNG
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from benchmarks.reference_models import LABELS
from gau_alpha.atomic import write_text_atomic

BASELINE = "reference"
OURS = "gau_alpha"
README = "README.md"
PLOT = "throughput_memory.png"
MODEL_ORDER = ("reference", "gau_alpha", "gau_alpha_xla", "roformer_v2", "bert")
MODE_TITLES = {"infer": "Inference", "train": "Training step (forward + backward + AdaFactor update)"}


# ------------------------------------------------------------------------- access
def ok_cells(results: Dict[str, Any]) -> List[Dict[str, Any]]:
    return [c for c in results.get("cells", []) if c.get("status") == "ok"]


def cell(results: Dict[str, Any], model: str, mode: str, length: int) -> Optional[Dict[str, Any]]:
    for record in ok_cells(results):
        if record["model"] == model and record["mode"] == mode and record["length"] == length:
            return record
    return None


def lengths_of(results: Dict[str, Any], mode: str) -> List[int]:
    return sorted({c["length"] for c in results.get("cells", []) if c["mode"] == mode})


def models_of(results: Dict[str, Any]) -> List[str]:
    present = {c["model"] for c in results.get("cells", [])}
    return [m for m in MODEL_ORDER if m in present]


def memory_key(results: Dict[str, Any]) -> str:
    """Device memory on GPU, host RSS increase otherwise."""
    return "device_peak_memory_mb" if any("device_peak_memory_mb" in c for c in ok_cells(results)) \
        else "peak_memory_mb"


def ratio(results: Dict[str, Any], model: str, other: str, mode: str, length: int, key: str) -> Optional[float]:
    a, b = cell(results, model, mode, length), cell(results, other, mode, length)
    if not a or not b or not a.get(key) or not b.get(key):
        return None
    return a[key] / b[key]


# ------------------------------------------------------------------------- claims
def _verdict(checks: List[Tuple[str, bool]]) -> str:
    if not checks:
        return "not measured"
    held = [name for name, good in checks if good]
    if len(held) == len(checks):
        return "confirmed"
    if not held:
        return "not confirmed"
    return "partly confirmed"


def _compare(results, other: str, modes: Sequence[str], key: str, min_length: int = 0,
             smaller_is_better: bool = False) -> List[Dict[str, Any]]:
    rows = []
    for mode in modes:
        for length in lengths_of(results, mode):
            if length <= min_length:
                continue
            value = ratio(results, OURS, other, mode, length, key)
            if value is None:
                continue
            good = value < 1.0 if smaller_is_better else value > 1.0
            rows.append({"mode": mode, "length": length, "ratio": value, "holds": good})
    return rows


def _evidence(rows: List[Dict[str, Any]], what: str) -> str:
    if not rows:
        return "no measurement"
    parts = ["%s %d: %.2fx" % ("inference" if r["mode"] == "infer" else "training", r["length"], r["ratio"])
             for r in rows]
    return "%s: %s" % (what, "; ".join(parts))


def claims(results: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The seed's performance claims, each with a verdict derived from the measurements.

    A speed claim holds at a (mode, length) when ours has more tokens/s than the other model
    (ratio > 1); the memory claim when ours has the smaller peak (ratio < 1). Verdict:
    ``confirmed`` (holds at every measured point), ``partly confirmed``, ``not confirmed``
    or ``not measured``.
    """
    out = []
    modes = ("infer", "train")
    memory = memory_key(results)

    rows = _compare(results, "bert", modes, "tokens_per_second")
    out.append({
        "claim": "GAU-alpha is faster than BERT/RoBERTa/RoFormer",
        "verdict": _verdict([("%s%d" % (r["mode"], r["length"]), r["holds"]) for r in rows]),
        "evidence": _evidence(rows, "tokens/s of ours / BERT base"),
        "note": "measured against BERT base; RoBERTa base has BERT's architecture and cost, and RoFormer (v1) "
                "is BERT plus rotary position embeddings (slightly more work), so neither was run separately",
        "points": rows,
    })
    rows = _compare(results, "roformer_v2", modes, "tokens_per_second", min_length=512)
    out.append({
        "claim": "beyond 512 tokens GAU-alpha is faster than RoFormerV2",
        "verdict": _verdict([("%s%d" % (r["mode"], r["length"]), r["holds"]) for r in rows]),
        "evidence": _evidence(rows, "tokens/s of ours / RoFormerV2 base"),
        "points": rows,
    })
    rows = _compare(results, "roformer_v2", modes, memory, min_length=512, smaller_is_better=True)
    out.append({
        "claim": "beyond 512 tokens GAU-alpha uses less memory than RoFormerV2",
        "verdict": _verdict([("%s%d" % (r["mode"], r["length"]), r["holds"]) for r in rows]),
        "evidence": _evidence(rows, "peak %s of ours / RoFormerV2 base" % (
            "device memory" if memory.startswith("device") else "RSS increase")),
        "points": rows,
    })
    trend_checks, trend_text = [], []
    for mode in modes:
        series = [r for r in _compare(results, "roformer_v2", [mode], "tokens_per_second")]
        if len(series) >= 3:
            values = [r["ratio"] for r in series]
            # non-decreasing within 5% measurement noise, and clearly higher at the end
            monotone = all(b >= a * 0.95 for a, b in zip(values, values[1:])) and values[-1] > values[0] * 1.05
            trend_checks.append((mode, monotone))
            trend_text.append("%s: %s" % ("inference" if mode == "infer" else "training",
                                          " -> ".join("%.2fx@%d" % (r["ratio"], r["length"]) for r in series)))
    out.append({
        "claim": "the longer the sequence, the larger GAU-alpha's advantage (over RoFormerV2)",
        "verdict": _verdict(trend_checks),
        "evidence": "speed ratio ours / RoFormerV2 by length: " + ("; ".join(trend_text) or "fewer than 3 lengths"),
        "note": "holds when the ratio never drops by more than 5% from one length to the next and ends >5% "
                "above where it started",
        "points": [{"mode": m, "holds": h} for m, h in trend_checks],
    })
    return out


def claims_markdown(results: Dict[str, Any]) -> str:
    lines = ["### The seed's claims, checked against this run", ""]
    if not ok_cells(results):
        return "\n".join(lines + ["No model measurements in this run."])
    if results.get("quick"):
        lines += ["*Quick run: reduced models and lengths, so these verdicts say nothing about the real "
                  "models.*", ""]
    lines += ["| claim | verdict | evidence |", "|---|---|---|"]
    for item in claims(results):
        evidence = item["evidence"] + (" (%s)" % item["note"] if item.get("note") else "")
        lines.append("| %s | **%s** | %s |" % (item["claim"], item["verdict"], evidence))
    machine = results.get("machine", {})
    lines += ["", "Measured on %s (%s CPUs%s); the seed's numbers were GPU measurements." % (
        machine.get("gpu_name") or machine.get("cpu_model", "?"), machine.get("usable_cpus", "?"),
        ", GPU" if machine.get("gpus") else ", no GPU")]
    return "\n".join(lines)


# ------------------------------------------------------------------------- tables
def _fmt(value: Optional[float], digits: int = 0) -> str:
    if value is None:
        return "–"
    return ("%%.%df" % digits) % value


def _skip_reason(results, model, mode, length) -> Optional[str]:
    for c in results.get("cells", []):
        if c["model"] == model and c["mode"] == mode and c["length"] == length and c["status"] != "ok":
            return c["status"]
    return None


def ratio_table(results: Dict[str, Any], mode: str, key: str) -> str:
    """Markdown table of ``key`` per model and length, each with its ratio to the baseline."""
    lengths = lengths_of(results, mode)
    lines = ["| model | " + " | ".join("%d" % n for n in lengths) + " |", "|---|" + "---:|" * len(lengths)]
    for model in models_of(results):
        entries = []
        for length in lengths:
            record = cell(results, model, mode, length)
            if record is None:
                entries.append(_skip_reason(results, model, mode, length) or "")
                continue
            r = ratio(results, model, BASELINE, mode, length, key)
            text = _fmt(record.get(key))
            entries.append("%s (%sx)" % (text, _fmt(r, 2)) if r else text)
        lines.append("| %s | %s |" % (LABELS.get(model, model), " | ".join(entries)))
    return "\n".join(lines)


def throughput_table(results: Dict[str, Any], mode: str) -> str:
    return ratio_table(results, mode, "tokens_per_second")


def memory_table(results: Dict[str, Any], mode: str) -> str:
    return ratio_table(results, mode, memory_key(results))


def efficiency_table(results: Dict[str, Any]) -> str:
    ceiling = (results.get("ceiling") or {}).get("gflops")
    lines = ["| model | mode | " + " | ".join("%d" % n for n in lengths_of(results, "infer")) + " |"]
    lengths = lengths_of(results, "infer")
    lines.append("|---|---|" + "---:|" * len(lengths))
    for mode in ("infer", "train"):
        for model in models_of(results):
            entries = []
            for length in lengths:
                record = cell(results, model, mode, length)
                if record is None:
                    entries.append("")
                    continue
                share = record["gflops_per_second"] / ceiling * 100 if ceiling else None
                entries.append("%s (%s%%)" % (_fmt(record["gflops_per_second"], 1), _fmt(share)))
            if any(entries):
                lines.append("| %s | %s | %s |" % (LABELS.get(model, model), mode, " | ".join(entries)))
    return "\n".join(lines)


def phase_section(results: Dict[str, Any], phase: str, intro: str) -> List[str]:
    """The lines of a subprocess phase (``e2e``, ``tokenizer``): its ``intro`` field and its
    Markdown table, or why there are none."""
    data = results.get(phase)
    if not data:
        return ["Not run."]
    if data.get("status") == "failed":
        return ["Failed (exit code %s); see `logs/%s.log`." % (data.get("exit_code"), phase)]
    return [data.get(intro, ""), "", data.get("markdown", "")]


def render_markdown(results: Dict[str, Any]) -> str:
    machine = results.get("machine", {})
    settings = results.get("settings", {})
    lines = ["# Benchmark results%s" % (" (quick run: not meaningful)" if results.get("quick") else ""), "",
             "Generated by `benchmarks/report.py` from `results.json` (%s, commit %s); do not edit by hand. "
             "How it is measured: [docs/benchmarks.md](../../../docs/benchmarks.md)." % (
                 results.get("date", "?"), results.get("git_revision") or "?"), "",
             "## Machine", ""]
    env = {k: v for k, v in (machine.get("environment") or {}).items() if v is not None}
    lines += [
        "- CPU: %s, %s usable cores (%s logical), SIMD: %s" % (
            machine.get("cpu_model"), machine.get("usable_cpus"), machine.get("cpu_count"),
            " ".join(machine.get("simd_flags", [])) or "?"),
        "- memory: %s GiB; GPU: %s" % (_fmt(machine.get("memory_gib"), 1),
                                       machine.get("gpu_name") or ", ".join(machine.get("gpus") or []) or "none"),
        "- TensorFlow %s (tf-keras, bert4keras 0.11.5), oneDNN: %s; threads: intra-op %s, inter-op %s "
        "(0 = TensorFlow's default, one per core); thread variables: %s" % (
            machine.get("tensorflow", "?"), machine.get("onednn", "?"), machine.get("intra_op_threads", "?"),
            machine.get("inter_op_threads", "?"), ", ".join("%s=%s" % kv for kv in env.items()) or "none set"),
        "- Python %s, %s; load average at start %s, at end %s; run took %.0f s" % (
            machine.get("python"), machine.get("platform"), results.get("load_average_start"),
            results.get("load_average_end"), results.get("wall_seconds", 0)),
        "",
        "## Settings",
        "",
        "- lengths: inference %s, training %s; batch = max(1, %s // length); %s timed calls per model and "
        "block, interleaved (%s); %s" % (
            settings.get("lengths"), settings.get("train_lengths"), settings.get("tokens_per_call"),
            settings.get("repeats"), settings.get("interleaving"), settings.get("statistic")),
        "- memory: %s" % settings.get("memory", "?"),
        "- models (random weights; speed does not depend on them):",
    ]
    for name, info in (results.get("models") or {}).items():
        config = info.get("config", {})
        lines.append("  - %s: %s layers, hidden %s, %s, intermediate %s, vocab %s%s%s" % (
            info.get("label", name), config.get("num_hidden_layers"), config.get("hidden_size"),
            "key size %s, 1 head" % config.get("attention_key_size") if info.get("architecture") == "gau"
            else "%s heads" % config.get("num_attention_heads"),
            config.get("intermediate_size"), config.get("vocab_size"),
            ", max position %s" % config["max_position_embeddings"] if "max_position_embeddings" in config else "",
            "; %.1fM parameters" % (info["params"] / 1e6) if info.get("params") else ""))
    if not results.get("cells"):
        lines += ["", "## Models", "", "Not run (`--skip-models`)."]
    else:
        lines += model_sections(results)
    lines += ["", "## End-to-end fine-tuning throughput", ""] + phase_section(results, "e2e", "description")
    lines += ["", "## Tokenizer throughput", ""] + phase_section(results, "tokenizer", "what")
    lines += ["", claims_markdown(results).replace("### ", "## ", 1), ""]
    if ok_cells(results):
        lines += ["![throughput and memory](%s)" % PLOT, ""]
    return "\n".join(lines)


def model_sections(results: Dict[str, Any]) -> List[str]:
    lines = ["", "## Parity", ""]
    parity = results.get("parity") or {}
    if parity.get("status") == "ok":
        lines.append("Ours loaded with the reference's weights, last hidden states of a padded batch of "
                     "lengths %s: max |ours - reference| = %.3g (tolerance %g): **%s**%s." % (
                         parity["lengths"], parity["max_abs_diff"], parity["tolerance"],
                         "pass" if parity["passed"] else "FAIL",
                         "; ours + XLA: %.3g" % parity["gau_alpha_xla"]["max_abs_diff"]
                         if "gau_alpha_xla" in parity else ""))
    else:
        lines.append("Not run: %s" % parity.get("status", "-"))
    for mode in ("infer", "train"):
        if not lengths_of(results, mode):
            continue
        lines += ["", "## %s throughput (tokens/s; ratio vs the reference GAU-alpha)" % MODE_TITLES[mode], "",
                  throughput_table(results, mode)]
    key = memory_key(results)
    for mode in ("infer", "train"):
        if not lengths_of(results, mode):
            continue
        lines += ["", "## %s peak memory (%s, MB; ratio vs the reference)" % (
            MODE_TITLES[mode].split(" (")[0],
            "device memory, peak during the call" if key.startswith("device")
            else "host RSS increase during the call over the RSS before it"), "",
            memory_table(results, mode)]
    ceiling = results.get("ceiling") or {}
    lines += ["", "## Efficiency (achieved GFLOP/s; share of the fp32 matmul ceiling)", ""]
    if ceiling.get("gflops"):
        lines.append("Ceiling: compiled `tf.linalg.matmul` of GAU-alpha's projection shape %s, best of 5 calls, "
                     "measured before and after the model blocks: %s GFLOP/s (by N: %s)." % (
                         ceiling.get("shape"), _fmt(ceiling["gflops"], 1),
                         ", ".join("%s: %s" % (k, _fmt(v, 1)) for k, v in ceiling.get("gflops_best_by_rows", {}).items())))
    formulas = results.get("flop_formulas", {})
    lines += ["", "FLOPs counted analytically: GAU layer %s; multi-head layer %s; %s." % (
        formulas.get("gau", "?"), formulas.get("mha", "?"), formulas.get("common", "?")), "",
        efficiency_table(results)]
    skipped = [c for c in results.get("cells", []) if c.get("status") != "ok"]
    if skipped:
        lines += ["", "Not measured: " + "; ".join(sorted({"%s %s %d (%s)" % (
            c["model"], c["mode"], c["length"], c.get("reason") or c["status"]) for c in skipped}))]
    return lines


# --------------------------------------------------------------------------- plot
def plot(results: Dict[str, Any], path: Path) -> Optional[Path]:
    if not ok_cells(results):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = memory_key(results)
    figure, axes = plt.subplots(2, 2, figsize=(12, 9))
    panels = [("infer", "tokens_per_second", "inference tokens/s"),
              ("train", "tokens_per_second", "training-step tokens/s"),
              ("infer", key, "inference peak memory (MB)"),
              ("train", key, "training-step peak memory (MB)")]
    for axis, (mode, field, title) in zip(axes.flat, panels):
        for model in models_of(results):
            points = [(c["length"], c.get(field)) for c in ok_cells(results)
                      if c["model"] == model and c["mode"] == mode and c.get(field)]
            if points:
                points.sort()
                axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=LABELS.get(model, model))
        axis.set_xscale("log", base=2)
        ticks = sorted({c["length"] for c in ok_cells(results) if c["mode"] == mode})
        axis.set_xticks(ticks)
        axis.set_xticklabels([str(t) for t in ticks])
        axis.minorticks_off()
        axis.set_yscale("log")
        axis.set_xlabel("sequence length")
        axis.set_title(title)
        axis.grid(True, which="both", alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    machine = results.get("machine", {})
    figure.suptitle("%s%s" % (machine.get("gpu_name") or machine.get("cpu_model", ""),
                              " (quick run)" if results.get("quick") else ""))
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def write_report(results: Dict[str, Any], out: Path) -> List[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    readme = out / README
    write_text_atomic(readme, render_markdown(results))
    written.append(readme)
    image = plot(results, out / PLOT)
    if image:
        written.append(image)
    return written


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="results.json of a benchmark run")
    parser.add_argument("--out", type=Path, help="directory for README.md and the plot (default: beside the JSON)")
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text(encoding="utf-8"))
    for path in write_report(results, args.out or args.results.parent):
        print("wrote %s" % path)
    print(claims_markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
