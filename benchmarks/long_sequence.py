"""Long sequences: activation memory of exact attention computed in query blocks.

Each configuration (mode, length, block size) runs in a fresh subprocess, so no peak of one
hides inside memory another left mapped. The child builds a GAU-alpha of the release's width
(hidden 768, expansion 1536, key 128; ``--layers`` layers, random weights), traces its
function on 16 tokens (tracing and optimizer slots are not counted), returns freed memory to
the OS, resets the kernel's peak-RSS counter, then runs one call on (1, N) random ids and
reports the peak RSS above the RSS it started from ("activation memory above the loaded
model"). The allocator settings of :mod:`benchmarks.run` (glibc heap, no trimming during
the call) make that peak the tensors' own. It still varies by about 10% from run to run:
the executor's thread scheduling decides which temporaries coexist. Each configuration is repeated
``--repeats`` times, in rounds that visit every configuration once (interleaved), and the
table gives min / median / max.

A parity child checks that the blocked model's hidden states equal the unblocked model's
(same weights) at ``--parity-length`` tokens.

    python -m benchmarks.long_sequence [--layers 4] [--block-size 512] [--repeats 2]
        [--out benchmarks/results/cpu]

Writes ``long_sequence.json``, ``long_sequence.md`` and ``long_sequence.png`` to ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from benchmarks import common

INFER_LENGTHS = [4096, 8192, 16384]
TRAIN_LENGTHS = [4096]
TRACE_LENGTH = 16
BASE_WIDTH = {
    "vocab_size": 12000, "hidden_size": 768, "intermediate_size": 1536, "attention_key_size": 128,
    "num_attention_heads": 1, "hidden_act": "swish", "type_vocab_size": 2,
    "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
}
#: as benchmarks.run: tensors from the glibc heap, never trimmed during a call
ALLOCATOR_ENVIRONMENT = {
    "TF_ONEDNN_USE_SYSTEM_ALLOCATOR": "1",
    "MALLOC_MMAP_MAX_": "0",
    "MALLOC_TRIM_THRESHOLD_": str(2**46),
}


# ----------------------------------------------------------------------------- child
def _build(layers: int, block_size: Optional[int]):
    import gau_alpha

    config = dict(BASE_WIDTH, num_hidden_layers=layers)
    return gau_alpha.build_transformer_model(None, model="gau_alpha", attention_block_size=block_size, **config)


def _ids(length: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    ids = rng.integers(104, BASE_WIDTH["vocab_size"], size=(1, length), dtype=np.int32)
    ids[0, 0], ids[0, -1] = 101, 102
    return ids, np.zeros_like(ids)


def child_measure(mode: str, length: int, layers: int, block_size: Optional[int]) -> Dict[str, Any]:
    """One call of ``mode`` ('infer' or 'train') at (1, length); its peak RSS above the
    loaded, traced model."""
    import gc

    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    model = _build(layers, block_size)
    spec = [tf.TensorSpec((None, None), tf.int32)] * 2
    if mode == "infer":
        function = tf.function(lambda t, s: model([t, s], training=False), input_signature=spec)
    else:
        from bert4keras.optimizers import AdaFactor

        optimizer = AdaFactor(learning_rate=5e-4, beta1=0.9, min_dim_size_to_factor=10**6)

        @tf.function(input_signature=spec)
        def function(t, s):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(model([t, s], training=True)))
            variables = model.trainable_variables
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return loss

    function(*map(tf.constant, _ids(TRACE_LENGTH))).numpy()
    inputs = [tf.constant(a) for a in _ids(length, seed=1)]
    gc.collect()
    common.release_free_memory()
    baseline = common.rss_bytes()
    reset = common.reset_peak_rss()
    started = time.perf_counter()
    function(*inputs).numpy()
    seconds = time.perf_counter() - started
    peak = common.peak_rss_bytes()
    return {
        "model_rss_mb": baseline / 2**20,
        "peak_rss_mb": peak / 2**20,
        "activation_mb": (peak - baseline) / 2**20 if reset else None,
        "seconds": seconds,
    }


def child_parity(length: int, layers: int, block_size: int) -> Dict[str, Any]:
    """Max |blocked - unblocked| of the last hidden states, same weights, at (1, length)."""
    import numpy as np
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    plain = _build(layers, None)
    blocked = _build(layers, block_size)
    blocked.set_weights(plain.get_weights())
    inputs = [tf.constant(a) for a in _ids(length, seed=2)]
    want = plain(inputs, training=False).numpy()
    got = blocked(inputs, training=False).numpy()
    return {"length": length, "max_abs_diff": float(np.abs(got - want).max()), "max_abs": float(np.abs(want).max())}


# ---------------------------------------------------------------------------- parent
def run_child(arguments: Sequence[str], timeout: float) -> Dict[str, Any]:
    command = common.module_command("benchmarks.long_sequence", ["--child", *arguments])
    completed = subprocess.run(
        command, cwd=common.REPO_ROOT, env=common.child_environment(ALLOCATOR_ENVIRONMENT),
        capture_output=True, text=True, timeout=timeout,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if completed.returncode != 0 or not lines:
        return {"error": "exit %d: %s" % (completed.returncode, completed.stderr.strip().splitlines()[-3:])}
    return json.loads(lines[-1])


def configurations(block_size: int, infer_lengths: Sequence[int], train_lengths: Sequence[int]) -> List[Dict[str, Any]]:
    configs = []
    for mode, lengths in (("infer", infer_lengths), ("train", train_lengths)):
        for length in lengths:
            for block in (None, block_size):
                configs.append({"mode": mode, "length": length, "block_size": block})
    return configs


def _summary(values: List[float]) -> Dict[str, Optional[float]]:
    values = sorted(v for v in values if v is not None)
    if not values:
        return {"min": None, "median": None, "max": None}
    return {"min": values[0], "median": common.median(values), "max": values[-1]}


def summarise(configs: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    rows = []
    for config in configs:
        runs = config["runs"]
        row = dict(
            mode=config["mode"], length=config["length"], block_size=config["block_size"],
            activation_mb=_summary([r.get("activation_mb") for r in runs]),
            seconds=_summary([r.get("seconds") for r in runs]),
            model_rss_mb=common.median([r.get("model_rss_mb") for r in runs]),
            errors=[r["error"] for r in runs if "error" in r],
        )
        rows.append(row)
    for row in rows:
        if row["block_size"] is None:
            continue
        plain = next(r for r in rows if r["mode"] == row["mode"] and r["length"] == row["length"] and r["block_size"] is None)
        a, b = row["activation_mb"]["median"], plain["activation_mb"]["median"]
        row["memory_ratio_vs_unblocked"] = a / b if a is not None and b else None
        ta, tb = row["seconds"]["median"], plain["seconds"]["median"]
        row["time_ratio_vs_unblocked"] = ta / tb if ta is not None and tb else None
    return rows


def _fmt(value: Optional[float], spec: str = "%.0f") -> str:
    return "—" if value is None else spec % value


def markdown(result: Dict[str, Any]) -> str:
    lines = [
        "# Long sequences: query-blocked attention vs whole attention matrices",
        "",
        "Command: `%s`" % result["command"],
        "",
        "GAU-alpha, %d layers of the release's width (hidden 768, expansion 1536, key 128), batch 1, "
        "float32, random weights, non-XLA `tf.function`; `attention_block_size=%d` vs None. "
        "Activation memory = peak RSS during one call minus the RSS of the loaded, traced model, "
        "each configuration in a fresh process; %d repeats interleaved across configurations "
        "(min / median / max). Training = one AdaFactor step (forward, backward, update)."
        % (result["layers"], result["block_size"], result["repeats"]),
        "",
        "Machine: %s, %s usable CPUs, load average at start %s (shared with other jobs: times are noisy; "
        "peak memory varies by about 10%% from run to run, as thread scheduling decides which "
        "temporaries coexist)." % (
            result["machine"]["cpu_model"], result["machine"]["usable_cpus"],
            ", ".join("%.1f" % x for x in result["load_average_start"] or [])),
        "",
        "| mode | tokens | block | activation MB (min / median / max) | vs unblocked | seconds (median) | time vs unblocked |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for row in result["rows"]:
        memory = row["activation_mb"]
        lines.append("| %s | %d | %s | %s / %s / %s | %s | %s | %s |" % (
            row["mode"], row["length"], row["block_size"] or "none",
            _fmt(memory["min"]), _fmt(memory["median"]), _fmt(memory["max"]),
            _fmt(row.get("memory_ratio_vs_unblocked"), "%.2f×"), _fmt(row["seconds"]["median"], "%.1f"),
            _fmt(row.get("time_ratio_vs_unblocked"), "%.2f×"),
        ) + (" error: %s" % row["errors"][0] if row["errors"] else ""))
    parity = result.get("parity") or {}
    lines += [
        "",
        "Parity (blocked vs unblocked hidden states, same weights, %s tokens): max |diff| = %s "
        "(largest |value| %s)." % (
            parity.get("length", "—"), _fmt(parity.get("max_abs_diff"), "%.2e"), _fmt(parity.get("max_abs"), "%.2f")),
        "",
    ]
    return "\n".join(lines)


def plot(result: Dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for mode, marker in (("infer", "o"), ("train", "s")):
        for block, style in ((None, "--"), (result["block_size"], "-")):
            rows = [r for r in result["rows"] if r["mode"] == mode and r["block_size"] == block]
            rows = [r for r in rows if r["activation_mb"]["median"] is not None]
            if rows:
                axes.plot([r["length"] for r in rows], [r["activation_mb"]["median"] for r in rows], style,
                          marker=marker, label="%s, %s" % (mode, "blocks of %d" % block if block else "unblocked"))
    axes.set_xscale("log", base=2)
    axes.set_xlabel("tokens")
    axes.set_ylabel("activation memory (MB, peak RSS above model)")
    axes.set_title("GAU-alpha, %d layers, base width" % result["layers"])
    axes.legend()
    figure.tight_layout()
    from gau_alpha.atomic import atomic_file

    with atomic_file(path) as handle:
        figure.savefig(handle, format="png", dpi=120)
    plt.close(figure)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--block-size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--infer-lengths", type=int, nargs="*", default=INFER_LENGTHS)
    parser.add_argument("--train-lengths", type=int, nargs="*", default=TRAIN_LENGTHS)
    parser.add_argument("--parity-length", type=int, default=2048)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per child")
    parser.add_argument("--out", type=Path, default=common.RESULTS_DIR / "cpu")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=("infer", "train", "parity"), help=argparse.SUPPRESS)
    parser.add_argument("--length", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        import gau_alpha  # noqa: F401  (before tensorflow)

        block = args.block_size if args.block_size > 0 else None
        if args.mode == "parity":
            out = child_parity(args.length, args.layers, args.block_size)
        else:
            out = child_measure(args.mode, args.length, args.layers, block)
        print(json.dumps(out))
        return 0

    command = "python -m benchmarks.long_sequence " + " ".join(argv if argv is not None else sys.argv[1:])
    result: Dict[str, Any] = {
        "command": command.strip(), "layers": args.layers, "block_size": args.block_size, "repeats": args.repeats,
        "machine": common.machine_info(), "load_average_start": common.load_average(),
        "git_revision": common.git_revision(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    configs = configurations(args.block_size, args.infer_lengths, args.train_lengths)
    for config in configs:
        config["runs"] = []
    for repeat in range(args.repeats):
        order = configs if repeat % 2 == 0 else list(reversed(configs))
        for config in order:
            out = run_child(["--mode", config["mode"], "--length", str(config["length"]), "--layers", str(args.layers),
                             "--block-size", str(config["block_size"] or 0)], args.timeout)
            config["runs"].append(out)
            print("%s %d block=%s: %s" % (config["mode"], config["length"], config["block_size"], out), flush=True)
    result["configurations"] = configs
    result["rows"] = summarise(configs)
    result["parity"] = run_child(["--mode", "parity", "--length", str(args.parity_length), "--layers", str(args.layers),
                                  "--block-size", str(args.block_size)], args.timeout)
    result["load_average_end"] = common.load_average()
    from gau_alpha.atomic import atomic_file, write_json

    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "long_sequence.json", result)
    text = markdown(result)
    with atomic_file(args.out / "long_sequence.md", "w", encoding="utf-8") as handle:
        handle.write(text)
    plot(result, args.out / "long_sequence.png")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
