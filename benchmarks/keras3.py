"""Keras 3 GAU-alpha (JAX jitted, TensorFlow, PyTorch) against our tf-keras model (+XLA), same run.

Each framework runs in its own child process (one Keras backend per process; bert4keras
replaces ``sys.modules['keras']``, so it never shares a process with Keras 3). Every child
builds the same random model in the release layout (written once, loaded by every side),
then times, for each length, the forward pass (inference) and one training step (forward +
backward + Adam update of a [CLS] classifier), ``--repeats`` times after a warm-up. The
rounds over frameworks are interleaved (``--rounds``), so a load change hits all of them.
Ratios are tokens/s relative to tf-keras+XLA measured in the same run.

    python -m benchmarks.keras3 --layers 4 --lengths 128 512 1024 2048 --repeats 3 --rounds 2

Writes ``benchmarks/results/cpu/keras3.md`` and ``keras3.json`` (+ ``keras3.png`` when
matplotlib is installed).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "cpu"
VARIANTS = {
    "tf-keras+XLA": ("tf_keras", None),
    "tf-keras": ("tf_keras_eager_graph", None),
    "keras3-jax (jit)": ("keras3", "jax"),
    "keras3-tensorflow (XLA)": ("keras3", "tensorflow"),
    "keras3-torch": ("keras3", "torch"),
}


def _batch(length: int, vocab: int, batch: int):
    rng = np.random.default_rng(length)
    tokens = rng.integers(104, vocab, size=(batch, length)).astype("int32")
    tokens[:, 0], tokens[:, -1] = 101, 102
    return tokens, np.zeros_like(tokens), (np.arange(batch) % 3).astype("int32")


def _time(fn, repeats: int) -> List[float]:
    fn()  # warm-up (compilation)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def child_keras3(args: Dict[str, Any]) -> Dict[str, Any]:
    import keras

    from gau_alpha.keras3 import GAUAlphaBackbone, GAUAlphaTextClassifier

    backbone = GAUAlphaBackbone.from_preset(args["release"], dropout=0.0, attention_dropout=0.0)
    model = GAUAlphaTextClassifier(backbone, num_classes=3, dropout=0.0)
    model.compile(optimizer=keras.optimizers.Adam(1e-5),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile="auto")
    out = {}
    for length in args["lengths"]:
        tokens, segments, labels = _batch(length, args["vocab"], args["batch"])
        x = {"token_ids": tokens, "segment_ids": segments, "padding_mask": np.ones_like(tokens)}
        infer = lambda: keras.ops.convert_to_numpy(model.predict_on_batch(x))  # noqa: E731
        train = lambda: model.train_on_batch(x, labels)  # noqa: E731
        out[length] = {"inference": _time(infer, args["repeats"]), "train": _time(train, args["repeats"])}
    return out


def child_tf_keras(args: Dict[str, Any], xla: bool) -> Dict[str, Any]:
    import gau_alpha  # noqa: F401  (tf-keras first)
    import tensorflow as tf

    encoder = gau_alpha.build_transformer_model(os.path.join(args["release"], "bert_config.json"),
                                                os.path.join(args["release"], "bert_model.ckpt"),
                                                dropout_rate=0.0, attention_dropout_rate=0.0)
    keras = tf.keras
    hidden = encoder.output
    logits = keras.layers.Dense(3)(keras.layers.Lambda(lambda h: h[:, 0])(hidden))
    model = keras.Model(encoder.inputs, logits)
    optimizer = keras.optimizers.Adam(1e-5)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(jit_compile=xla)
    def infer(tokens, segments):
        return model([tokens, segments], training=False)

    @tf.function(jit_compile=xla)
    def train(tokens, segments, labels):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model([tokens, segments], training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    out = {}
    for length in args["lengths"]:
        tokens, segments, labels = (tf.constant(a) for a in _batch(length, args["vocab"], args["batch"]))
        out[length] = {"inference": _time(lambda: infer(tokens, segments).numpy(), args["repeats"]),
                       "train": _time(lambda: train(tokens, segments, labels).numpy(), args["repeats"])}
    return out


def run_child(kind: str, backend, args: Dict[str, Any]) -> Dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_USE", "TF_KERAS"))}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if backend:
        env["KERAS_BACKEND"] = backend
    with tempfile.NamedTemporaryFile("r", suffix=".json") as handle:
        command = [sys.executable, "-m", "benchmarks.keras3", "--child", kind, json.dumps(dict(args, out=handle.name))]
        result = subprocess.run(command, cwd=str(ROOT), env=env, capture_output=True, text=True)
        if result.returncode:
            raise RuntimeError("%s/%s failed:\n%s" % (kind, backend, result.stderr[-3000:]))
        return json.load(open(handle.name))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 512, 1024, 2048])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--name", default="keras3")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.child:
        kind, text = options.child
        args = json.loads(text)
        if kind == "keras3":
            result = child_keras3(args)
        else:
            result = child_tf_keras(args, xla=(kind == "tf_keras"))
        Path(args["out"]).write_text(json.dumps(result))
        return 0

    sys.path.insert(0, str(ROOT / "tests"))
    import gau_alpha
    from gau_alpha.atomic import write_json, write_text_atomic
    from gau_alpha.model_dir import TINY_CONFIG
    from gau_alpha.resources import RELEASE_CONFIG

    config = json.loads(RELEASE_CONFIG.read_text(encoding="utf-8"))
    config["num_hidden_layers"] = options.layers
    workdir = Path(tempfile.mkdtemp(prefix="bench_keras3_"))
    from helpers import write_release_dir

    release = write_release_dir(workdir / "release", config, seed=0)
    args = {"release": str(release), "lengths": options.lengths, "batch": options.batch, "repeats": options.repeats,
            "vocab": config["vocab_size"]}
    load_before = os.getloadavg()
    samples: Dict[str, Dict[str, Dict[str, List[float]]]] = {}
    for _ in range(options.rounds):
        for name in options.variants:
            kind, backend = VARIANTS[name]
            result = run_child(kind, backend, args)
            for length, modes in result.items():
                for mode, times in modes.items():
                    samples.setdefault(name, {}).setdefault("%s/%s" % (mode, length), []).extend(times)
    load_after = os.getloadavg()

    def stats(times):
        q1, med, q3 = np.percentile(times, [25, 50, 75])
        return {"min": float(np.min(times)), "median": float(med), "iqr": float(q3 - q1), "n": len(times)}

    table = {name: {key: stats(times) for key, times in keys.items()} for name, keys in samples.items()}
    base = "tf-keras+XLA"
    command = "python -m benchmarks.keras3 " + " ".join(sys.argv[1:] if argv is None else argv)
    lines = ["# Keras 3 GAU-alpha vs tf-keras (CPU)", "", "Command: `%s`" % command, "",
             "Model: release config with %d layers (hidden 768, E 1536, S 128), batch %d, random weights. "
             "Load average before/after: %s / %s (the 2 CPUs were shared with other jobs: treat small "
             "differences as noise). Ratio = median tokens/s of the row / median tokens/s of %s "
             "in the same run; min and IQR in ms." % (options.layers, options.batch,
                                                       "%.1f" % load_before[0], "%.1f" % load_after[0], base), "",
             "| variant | mode | length | median ms | min ms | IQR ms | tokens/s | ratio vs %s |" % base,
             "|---|---|---|---|---|---|---|---|"]
    for mode in ("inference", "train"):
        for length in options.lengths:
            key = "%s/%s" % (mode, length)
            reference = table.get(base, {}).get(key)
            for name in options.variants:
                row = table[name][key]
                tokens = options.batch * length / row["median"]
                ratio = reference["median"] / row["median"] if reference else float("nan")
                lines.append("| %s | %s | %d | %.1f | %.1f | %.1f | %.0f | %.2f |" % (
                    name, mode, length, 1e3 * row["median"], 1e3 * row["min"], 1e3 * row["iqr"], tokens, ratio))
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_text_atomic(RESULTS / ("%s.md" % options.name), "\n".join(lines) + "\n")
    write_json(RESULTS / ("%s.json" % options.name), {"command": command, "load_before": load_before,
                                                      "load_after": load_after, "table": table, "samples": samples})
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axes = plt.subplots(1, 2, figsize=(10, 4))
        for axis, mode in zip(axes, ("inference", "train")):
            for name in options.variants:
                axis.plot(options.lengths, [options.batch * n / table[name]["%s/%d" % (mode, n)]["median"]
                                            for n in options.lengths], marker="o", label=name)
            axis.set_xscale("log", base=2)
            axis.set_title(mode)
            axis.set_xlabel("tokens")
            axis.set_ylabel("tokens/s")
        axes[0].legend(fontsize=7)
        figure.tight_layout()
        figure.savefig(RESULTS / ("%s.png" % options.name), dpi=80)
    except ImportError:
        pass
    print("\n".join(lines))
    del gau_alpha, TINY_CONFIG
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
