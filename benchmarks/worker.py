"""One benchmarked model in its own process, driven by :mod:`benchmarks.run`.

Each model lives in a separate worker process for the whole run, so its memory peaks are
its own, while the parent still interleaves the models' timed calls (A, B, C, A, B, C ...):
only one worker computes at a time, the others wait on their command pipe. The
``gau_alpha`` worker also serves ``gau_alpha_xla`` (same model, XLA-compiled functions).

Protocol: one JSON command per line on stdin, one JSON reply per line on the original
stdout (everything else the process prints goes to stderr). Commands:

``{"cmd": "setup"}`` trace the inference and training functions on a short input;
``{"cmd": "call", "variant": v, "mode": "infer"|"train", "length": N, "batch": B,
"warmup": bool}`` one call (a warm-up call also measures the peak RSS increase);
``{"cmd": "trim"}`` return freed memory to the OS;
``{"cmd": "ceiling", "rows": [..], "repeats": R, "inner": H, "columns": C}`` fp32 matmul;
``{"cmd": "export_weights"|"import_weights", "path": p}`` weights by layer name (.npz);
``{"cmd": "hidden", "variant": v, "inputs": p, "output": q}`` last hidden states;
``{"cmd": "exit"}``.

    python -m benchmarks.worker --model gau_alpha --config '{"num_hidden_layers": 24, ...}'
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from typing import Any, Dict, List, Optional  # noqa: E402

import gau_alpha  # noqa: E402,F401  (adapts bert4keras; before tensorflow)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import common  # noqa: E402
from benchmarks.reference_models import build_model  # noqa: E402

SETUP_LENGTH = 16

# Set by the parent for every worker (see ALLOCATOR_ENVIRONMENT in benchmarks.run).
ALLOCATOR_VARIABLES = ("TF_ONEDNN_USE_SYSTEM_ALLOCATOR", "MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_",
                       "TF_FORCE_GPU_ALLOW_GROWTH")


class ModelWorker:
    """A model plus its compiled inference and training functions.

    The ``gau_alpha`` worker also serves ``gau_alpha_xla``: the same model object with both
    functions compiled by XLA (``jit_compile=True``), so the two share weights and process.
    """

    def __init__(self, name: str, config: Dict[str, Any], seed: int = 0):
        self.name = name
        self.config = config
        tf.keras.utils.set_random_seed(seed)
        started = time.perf_counter()
        self.model = build_model(name, config)
        self.build_seconds = time.perf_counter() - started
        self.gpus = tf.config.list_logical_devices("GPU")
        self.vocab_size = int(config["vocab_size"])
        self.rng = np.random.default_rng(seed)
        from bert4keras.optimizers import AdaFactor

        # the CLUE recipe's optimizer (bojone/CLUE-bert4keras snippets.py)
        self.optimizer = AdaFactor(learning_rate=5e-4, beta1=0.9, min_dim_size_to_factor=10**6)
        hidden = int(config["hidden_size"])
        # a fixed random read-out makes the loss depend on every hidden unit
        self.readout = tf.constant(self.rng.standard_normal(hidden).astype("float32") / hidden)
        self.variants = {name: self._functions(jit_compile=False)}
        if name == "gau_alpha":
            self.variants["gau_alpha_xla"] = self._functions(jit_compile=True)
        self.compiled_shapes = set()
        self.idle_rss = common.rss_bytes()

    def _functions(self, jit_compile: bool) -> Dict[str, Any]:
        spec = [tf.TensorSpec((None, None), tf.int32, name="token_ids"),
                tf.TensorSpec((None, None), tf.int32, name="segment_ids")]
        model, optimizer, readout = self.model, self.optimizer, self.readout

        @tf.function(input_signature=spec, jit_compile=jit_compile)
        def infer(token_ids, segment_ids):
            return model([token_ids, segment_ids], training=False)

        @tf.function(input_signature=spec, jit_compile=jit_compile)
        def train(token_ids, segment_ids):
            with tf.GradientTape() as tape:
                hidden_states = model([token_ids, segment_ids], training=True)
                loss = tf.reduce_mean(tf.tensordot(tf.cast(hidden_states, tf.float32), readout, 1))
            variables = model.trainable_variables
            gradients = tape.gradient(loss, variables)
            optimizer.apply_gradients(zip(gradients, variables))
            return loss

        return {"infer": infer, "train": train}

    # ----------------------------------------------------------------- helpers
    def _inputs(self, length: int, batch: int):
        ids = self.rng.integers(1, self.vocab_size, size=(batch, length), dtype=np.int32)
        ids[:, 0] = min(101, self.vocab_size - 1)  # [CLS]
        return tf.constant(ids), tf.zeros((batch, length), tf.int32)

    def _run(self, variant: str, mode: str, token_ids, segment_ids) -> None:
        result = self.variants[variant][mode](token_ids, segment_ids)
        result.numpy()  # wait for the result (reads back a scalar or the hidden states)

    def _memory_before(self) -> Dict[str, Any]:
        gc.collect()
        common.release_free_memory()
        state = {"rss": common.rss_bytes(), "peak_reset": common.reset_peak_rss()}
        if self.gpus:
            tf.config.experimental.reset_memory_stats("GPU:0")
            state["device"] = tf.config.experimental.get_memory_info("GPU:0")["current"]
        return state

    def _memory_after(self, before: Dict[str, Any]) -> Dict[str, Any]:
        peak = common.peak_rss_bytes()
        valid = bool(peak and before["rss"] and before["peak_reset"])
        out = {
            "rss_before_mb": before["rss"] / 2**20 if before["rss"] else None,
            "peak_rss_mb": peak / 2**20 if peak else None,
            "peak_increase_mb": (peak - before["rss"]) / 2**20 if valid else None,
        }
        if self.gpus:
            info = tf.config.experimental.get_memory_info("GPU:0")
            out["device_peak_increase_mb"] = (info["peak"] - before["device"]) / 2**20
            out["device_peak_mb"] = info["peak"] / 2**20
        return out

    def _rss_mb(self) -> Optional[float]:
        rss = common.rss_bytes()
        return rss / 2**20 if rss else None

    # ----------------------------------------------------------------- commands
    def setup(self) -> Dict[str, Any]:
        """Trace the (non-XLA) functions on a short input; not part of any measurement."""
        out: Dict[str, Any] = {"build_seconds": self.build_seconds, "params": int(self.model.count_params())}
        for mode in ("infer", "train"):
            started = time.perf_counter()
            self._run(self.name, mode, *self._inputs(SETUP_LENGTH, 1))
            out["%s_first_call_seconds" % mode] = time.perf_counter() - started
        out.update(self.trim())
        out["tensorflow"] = tf.__version__
        out["intra_op_threads"] = tf.config.threading.get_intra_op_parallelism_threads()
        out["inter_op_threads"] = tf.config.threading.get_inter_op_parallelism_threads()
        out["gpus"] = [d.name for d in self.gpus]
        if self.gpus:
            details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
            out["gpu_name"] = details.get("device_name")
        out["onednn"] = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)")
        out["allocator"] = {k: os.environ.get(k) for k in ALLOCATOR_VARIABLES}
        return out

    def trim(self) -> Dict[str, Any]:
        """Return freed memory to the OS; the RSS after that is the idle RSS."""
        gc.collect()
        common.release_free_memory()
        self.idle_rss = common.rss_bytes()
        return {"rss_mb": self._rss_mb()}

    def call(self, variant: str, mode: str, length: int, batch: int, warmup: bool = False) -> Dict[str, Any]:
        """One call of ``variant``'s ``mode`` function on (batch, length) random ids.

        ``warmup=True``: the untimed first call of a block. It starts from trimmed memory
        and reports the peak RSS increase during the call (XLA: a compile call runs first,
        then the measured call). Otherwise a timed call that keeps the memory it used, so
        the next call of the same shape reuses it, as a long-running job would.
        """
        token_ids, segment_ids = self._inputs(length, batch)
        out: Dict[str, Any] = {"warmup": bool(warmup)}
        key = (variant, mode, length, batch)
        if variant.endswith("_xla") and key not in self.compiled_shapes:
            started = time.perf_counter()
            self._run(variant, mode, token_ids, segment_ids)
            out["compile_and_first_call_seconds"] = time.perf_counter() - started
            self.compiled_shapes.add(key)
        if warmup:
            before = self._memory_before()
        started = time.perf_counter()
        self._run(variant, mode, token_ids, segment_ids)
        out["seconds"] = time.perf_counter() - started
        if warmup:
            out.update(self._memory_after(before))
        out["rss_mb"] = self._rss_mb()
        out["held_mb"] = (common.rss_bytes() - self.idle_rss) / 2**20 if self.idle_rss else None
        return out

    def ceiling(self, rows: List[int], repeats: int, inner: int, columns: int) -> Dict[str, Any]:
        """Achieved FLOP/s of a compiled fp32 matmul (rows, inner) x (inner, columns), best
        and median of ``repeats`` timed calls after a warm-up call."""
        matmul = tf.function(lambda a, b: tf.linalg.matmul(a, b))
        results = {}
        for n in rows:
            a = tf.random.normal((n, inner))
            b = tf.random.normal((inner, columns))
            matmul(a, b).numpy()
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                matmul(a, b).numpy()
                times.append(time.perf_counter() - started)
            flops = common.matmul_flops(n, inner, columns)
            results[str(n)] = {
                "shape": [n, inner, columns],
                "seconds": times,
                "gflops_best": flops / min(times) / 1e9,
                "gflops_median": flops / common.median(times) / 1e9,
            }
        return results

    def export_weights(self, path: str) -> Dict[str, Any]:
        arrays = {}
        for layer in self.model.layers:
            for index, value in enumerate(layer.get_weights()):
                arrays["%s/%d" % (layer.name, index)] = value
        np.savez(path, **arrays)
        return {"arrays": len(arrays)}

    def import_weights(self, path: str) -> Dict[str, Any]:
        """Set every layer's weights from an :meth:`export_weights` file (by layer name)."""
        data = np.load(path)
        count = 0
        for layer in self.model.layers:
            current = layer.get_weights()
            if not current:
                continue
            values = [data["%s/%d" % (layer.name, i)] for i in range(len(current))]
            for mine, theirs in zip(current, values):
                if mine.shape != theirs.shape:
                    raise ValueError("%s: shape %s vs %s" % (layer.name, mine.shape, theirs.shape))
            layer.set_weights(values)
            count += len(values)
        return {"arrays": count}

    def hidden(self, variant: str, inputs: str, output: str) -> Dict[str, Any]:
        """Last hidden states of the ids in ``inputs`` (.npz), saved to ``output`` (.npy)."""
        data = np.load(inputs)
        result = self.variants[variant]["infer"](tf.constant(data["token_ids"]),
                                                 tf.constant(data["segment_ids"])).numpy()
        np.save(output, result)
        return {"shape": list(result.shape)}


def serve(worker: ModelWorker, replies) -> None:
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        command = json.loads(line)
        name = command.pop("cmd")
        if name == "exit":
            break
        try:
            method = getattr(worker, name)
            reply = {"ok": True, "result": method(**command)}
        except Exception as error:  # reported to the parent, which decides
            reply = {"ok": False, "error": "%s: %s" % (type(error).__name__, error),
                     "traceback": traceback.format_exc()}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description="benchmark worker (driven by benchmarks.run)")
    parser.add_argument("--model", required=True)
    parser.add_argument("--config", required=True, help="model config as JSON")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    # Keep the original stdout for replies; send all other output (ours, TF's) to stderr.
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        worker = ModelWorker(args.model, json.loads(args.config), args.seed)
    except Exception as error:
        replies.write(json.dumps({"ok": False, "error": "%s: %s" % (type(error).__name__, error),
                                  "traceback": traceback.format_exc()}) + "\n")
        replies.flush()
        raise SystemExit(1)
    replies.write(json.dumps({"ok": True, "result": {"ready": args.model}}) + "\n")
    replies.flush()
    serve(worker, replies)


if __name__ == "__main__":
    main()
