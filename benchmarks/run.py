"""Speed and memory benchmark: GAU-alpha (ours, ours + XLA, the bert4keras reference),
RoFormerV2 base and BERT base, plus end-to-end CLUE fine-tuning and tokenizer throughput.

    python -m benchmarks.run [--quick] [--lengths 128 512 ...] [--out benchmarks/results/cpu]
    gau-alpha bench [same options]

What one run does (details in docs/benchmarks.md):

1. tokenizer throughput (``benchmarks.bench_tokenizer``, in a subprocess);
2. end-to-end fine-tuning throughput, our CLUE pipeline vs the CLUE-bert4keras way
   (``benchmarks.e2e``, in a subprocess);
3. one worker process per model (``benchmarks.worker``; ours + XLA shares ours'): build,
   trace, parity of ours vs the reference on the same weights, the fp32 matmul ceiling, then
   for each length and mode (inference, training step) one untimed warm-up call per model,
   which also measures its peak RSS increase, and ``repeats`` rounds in which every model
   runs one timed call, the order rotating from round to round (interleaved: A B C, B C A,
   C A B ...). Blocks beyond ``--core-max-length`` run only if the time budget allows;
4. ``results.json``, ``README.md`` (tables and the verdicts on the seed's claims, generated
   by :mod:`benchmarks.report`) and ``throughput_memory.png`` in ``--out``.
"""
from __future__ import annotations

import argparse
import json
import select
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from benchmarks import common
from benchmarks.reference_models import ARCHITECTURES, LABELS, MODEL_NAMES, model_config
from gau_alpha.atomic import write_json

FULL_LENGTHS = [128, 512, 1024, 2048, 4096]
FULL_TRAIN_LENGTHS = [128, 512, 1024, 2048]
QUICK_LENGTHS = [64, 128]
QUICK_LAYERS = 2
PARITY_LENGTHS = [3, 15, 64, 512]
QUICK_PARITY_LENGTHS = [3, 15, 64]
PARITY_TOLERANCE = 1e-5


# Worker memory: tensors come from glibc (not TensorFlow's oneDNN BFC pool, which never gives
# memory back), heap only (no per-allocation mmap) and never trimmed automatically. A worker
# then reuses its memory from call to call like the pool would, and gives it back when told
# (``trim``): RSS is measurable from a clean baseline and idle workers can be made small.
ALLOCATOR_ENVIRONMENT = {
    "TF_ONEDNN_USE_SYSTEM_ALLOCATOR": "1",
    "MALLOC_MMAP_MAX_": "0",
    "MALLOC_TRIM_THRESHOLD_": str(2**46),
    # GPU: several workers share the device, so none may take all of its memory up front
    "TF_FORCE_GPU_ALLOW_GROWTH": "true",
}


class WorkerDied(RuntimeError):
    pass


# ---------------------------------------------------------------------------- workers
class Worker:
    """A :mod:`benchmarks.worker` process holding one model."""

    def __init__(self, name: str, config: Dict[str, Any], log_dir: Path, seed: int = 0):
        self.name = name
        self.config = config
        self.log_path = log_dir / ("%s.log" % name)
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            common.module_command("benchmarks.worker", ["--model", name, "--config", json.dumps(config),
                                                        "--seed", str(seed)]),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True, cwd=str(common.REPO_ROOT),
            env=common.child_environment(ALLOCATOR_ENVIRONMENT), bufsize=1,
        )
        self.alive = True

    def send(self, cmd: str, **kwargs) -> None:
        if not self.alive:
            raise WorkerDied("%s worker is not running" % self.name)
        try:
            self.process.stdin.write(json.dumps(dict(cmd=cmd, **kwargs)) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError) as error:
            self._died("could not send %s: %s" % (cmd, error))

    def receive(self, timeout: Optional[float] = None) -> Dict[str, Any]:
        if timeout is not None:
            ready, _, _ = select.select([self.process.stdout], [], [], timeout)
            if not ready:
                self.kill()
                raise WorkerDied("%s worker: no reply within %.0fs (killed)" % (self.name, timeout))
        line = self.process.stdout.readline()
        if not line:
            self._died("exited")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise RuntimeError("%s worker: %s" % (self.name, reply.get("error")))
        return reply["result"]

    def request(self, cmd: str, timeout: Optional[float] = None, **kwargs) -> Dict[str, Any]:
        self.send(cmd, **kwargs)
        return self.receive(timeout)

    def _died(self, what: str) -> None:
        self.alive = False
        code = self.process.wait()
        self.log.flush()
        tail = ""
        try:
            tail = self.log_path.read_text(errors="replace")[-1500:]
        except OSError:
            pass
        reason = "killed by signal %d (out of memory?)" % -code if code and code < 0 else "exit code %s" % code
        raise WorkerDied("%s worker %s: %s\n%s" % (self.name, what, reason, tail))

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.alive = False

    def close(self) -> None:
        if self.alive and self.process.poll() is None:
            try:
                self.send("exit")
                self.process.wait(timeout=60)
            except (WorkerDied, subprocess.TimeoutExpired):
                pass
        self.kill()
        self.log.close()


# ------------------------------------------------------------------------------ plan
def batch_for(length: int, tokens_per_call: int) -> int:
    """Sequences per call: ``tokens_per_call // length``, at least 1."""
    return max(1, tokens_per_call // length)


def make_plan(args) -> List[Dict[str, Any]]:
    """Blocks ``{mode, length, batch, models, core}`` in run order: by length, inference
    before training; blocks beyond ``core_max_length`` are optional (time budget)."""
    blocks = []
    for length in sorted(set(args.lengths) | set(args.train_lengths)):
        for mode, lengths in (("infer", args.lengths), ("train", args.train_lengths)):
            if length not in lengths:
                continue
            models = list(args.models) if length <= args.all_models_max_length else [
                m for m in args.models if m in args.long_models]
            xla_max = args.xla_max_length if mode == "infer" else args.xla_train_max_length
            models = [m for m in models if not (m.endswith("_xla") and length > xla_max)]
            if models:
                blocks.append({"mode": mode, "length": length, "batch": batch_for(length, args.tokens_per_call),
                               "models": models, "core": length <= args.core_max_length})
    return blocks


def estimate_block_seconds(block: Dict[str, Any], rates: Dict[Any, float], compile_seconds: Dict[Any, float],
                           configs: Dict[str, Dict[str, Any]], repeats: int) -> Optional[float]:
    """Seconds the block should take, from each model's last achieved FLOP/s (None if unknown)."""
    total = 0.0
    for model in block["models"]:
        rate = rates.get((model, block["mode"])) or rates.get((model, "infer"))
        if not rate:
            return None
        flops = common.step_flops(ARCHITECTURES[model], configs[model], block["length"], block["batch"],
                                  block["mode"])
        # attention's element-wise work grows faster than the counted FLOPs: 1.3x margin
        seconds = flops / rate * 1.3
        total += repeats * seconds
        if model.endswith("_xla"):
            total += seconds + 1.2 * compile_seconds.get((model, block["mode"]), 60.0)
    return total


# ---------------------------------------------------------------------------- phases
def run_subprocess(module: str, arguments: Sequence[str], log_path: Path, timeout: float) -> int:
    """Run ``python -m module`` from the repository root, output to ``log_path``; its exit
    code, or -1 after ``timeout`` seconds."""
    with open(log_path, "w") as log:
        try:
            done = subprocess.run(common.module_command(module, arguments), stdout=log, stderr=subprocess.STDOUT,
                                  cwd=str(common.REPO_ROOT), env=common.child_environment(), timeout=timeout)
            return done.returncode
        except subprocess.TimeoutExpired:
            return -1


def subprocess_phase(title: str, module: str, arguments: Sequence[str], path: Path, logs: Path,
                     timeout: float) -> Dict[str, Any]:
    """A benchmark run as ``python -m module arguments`` that writes its JSON results to
    ``path``: those results (their ``markdown`` printed), or ``{"status": "failed", ...}``.
    Its output goes to ``logs/<title>.log``."""
    log = logs / ("%s.log" % title)
    say("%s: %s %s" % (title, module, " ".join(arguments)))
    code = run_subprocess(module, arguments, log, timeout)
    if code != 0 or not path.is_file():
        say("  %s benchmark failed (exit %s), see %s" % (title, code, log))
        return {"status": "failed", "exit_code": code}
    data = json.loads(path.read_text(encoding="utf-8"))
    say(data.get("markdown", ""))
    return data


def tokenizer_phase(args, out: Path, logs: Path) -> Dict[str, Any]:
    path = out / "tokenizer.json"
    repeats, replicate = ("1", "1") if args.quick else ("3", "2")
    return subprocess_phase("tokenizer", "benchmarks.bench_tokenizer",
                            ["--repeats", repeats, "--replicate", replicate, "--out", str(path)], path, logs, 1200)


def e2e_phase(args, out: Path, logs: Path) -> Dict[str, Any]:
    path = out / "e2e.json"
    arguments = ["--json", str(path)] + (["--quick"] if args.quick else [])
    return subprocess_phase("e2e", "benchmarks.e2e", arguments, path, logs, 3600)


def parity_inputs(lengths: Sequence[int], vocab_size: int, seed: int = 1):
    import numpy as np

    rng = np.random.default_rng(seed)
    width = max(lengths)
    token_ids = np.zeros((len(lengths), width), np.int32)
    for row, length in enumerate(lengths):
        token_ids[row, :length] = rng.integers(1, vocab_size, size=length)
    return token_ids, np.zeros_like(token_ids)


def parity_phase(workers: Dict[str, Worker], lengths: Sequence[int], scratch: Path,
                 timeout: float) -> Dict[str, Any]:
    """Ours (and ours + XLA) loaded with the reference's weights, last hidden states compared."""
    import numpy as np

    result: Dict[str, Any] = {"lengths": list(lengths), "tolerance": PARITY_TOLERANCE}
    if "reference" not in workers or "gau_alpha" not in workers:
        result["status"] = "not run (needs the reference and gau_alpha models)"
        return result
    weights = scratch / "reference_weights.npz"
    inputs = scratch / "parity_inputs.npz"
    token_ids, segment_ids = parity_inputs(lengths, int(workers["reference"].config["vocab_size"]))
    np.savez(inputs, token_ids=token_ids, segment_ids=segment_ids)
    workers["reference"].request("export_weights", timeout=timeout, path=str(weights))
    workers["gau_alpha"].request("import_weights", timeout=timeout, path=str(weights))
    outputs = {}
    for variant in ("reference", "gau_alpha", "gau_alpha_xla"):
        if variant not in workers or not workers[variant].alive:
            continue
        path = scratch / ("hidden_%s.npy" % variant)
        workers[variant].request("hidden", timeout=timeout, variant=variant, inputs=str(inputs), output=str(path))
        outputs[variant] = np.load(path)
    for worker in {id(w): w for w in workers.values()}.values():
        if worker.alive:
            worker.request("trim", timeout=timeout)
    reference = outputs["reference"]
    mask = token_ids > 0
    for name in ("gau_alpha", "gau_alpha_xla"):
        if name in outputs:
            difference = np.abs(outputs[name] - reference)
            result[name] = {
                "max_abs_diff": float(difference.max()),
                "max_abs_diff_real_tokens": float(difference[mask].max()),
            }
    result["max_abs_diff"] = result["gau_alpha"]["max_abs_diff"]
    result["passed"] = bool(result["max_abs_diff"] <= PARITY_TOLERANCE)
    result["reference_output_scale"] = float(np.abs(reference).max())
    result["status"] = "ok"
    return result


def ceiling_phase(worker: Worker, rows: Sequence[int], repeats: int, config: Dict[str, Any],
                  timeout: float) -> Dict[str, Any]:
    """fp32 matmul of GAU-alpha's input projection: (N, H) x (H, 2E + S)."""
    inner = int(config["hidden_size"])
    columns = 2 * int(config["intermediate_size"]) + int(config["attention_key_size"])
    return worker.request("ceiling", timeout=timeout, rows=list(rows), repeats=repeats, inner=inner,
                          columns=columns)


# ------------------------------------------------------------------------- memory
def mem_available_mb() -> Optional[float]:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class MemoryGuard:
    """Keeps the workers' memory within the machine's.

    A worker keeps the memory of its last call (so its next call of the same shape reuses
    it instead of faulting fresh pages in); when the next call would not fit, the idle
    workers holding the most give theirs back first (``trim``). Every trim of another
    worker is counted on the cell that needed it.
    """

    def __init__(self, workers: Dict[str, Worker], margin_mb: float, timeout: float):
        self.workers = {id(w): w for w in workers.values()}
        self.held: Dict[int, float] = {key: 0.0 for key in self.workers}
        self.trims: Dict[int, int] = {key: 0 for key in self.workers}
        self.margin = margin_mb
        self.timeout = timeout

    def note(self, worker: Worker, reply: Dict[str, Any]) -> None:
        if reply.get("held_mb") is not None:
            self.held[id(worker)] = max(0.0, reply["held_mb"])

    def trim(self, worker: Worker) -> None:
        if worker.alive:
            worker.request("trim", timeout=self.timeout)
        self.held[id(worker)] = 0.0
        self.trims[id(worker)] += 1

    def trim_all(self) -> None:
        for worker in self.workers.values():
            if worker.alive:
                self.trim(worker)

    def make_room(self, need_mb: float, running: Worker) -> int:
        """Trim idle workers (largest holding first) until ``need_mb`` more fits."""
        trimmed = 0
        available = mem_available_mb()
        if available is None:
            return 0
        for key in sorted(self.held, key=lambda k: -self.held[k]):
            if available - self.margin >= need_mb:
                break
            worker = self.workers[key]
            if worker is running or self.held[key] <= 0 or not worker.alive:
                continue
            self.trim(worker)
            trimmed += 1
            available = mem_available_mb() or available
        return trimmed

    def fits(self, need_mb: float, running: Worker) -> bool:
        available = mem_available_mb()
        if available is None:
            return True
        reclaimable = sum(v for k, v in self.held.items() if self.workers[k] is not running)
        return available + reclaimable - self.margin >= need_mb


def predicted_peak(history: Dict[Any, List[Any]], model: str, mode: str, length: int, batch: int) -> Optional[float]:
    """Peak RSS increase expected at (length, batch), from the last measured one of the same
    model and mode, scaled by (tokens ratio) x (length ratio) ** 0.7 (between linear and
    quadratic in the length; errs high)."""
    points = history.get((model, mode))
    if not points:
        return None
    last_length, last_batch, last_peak = points[-1]
    scale = (length * batch) / float(last_length * last_batch) * (length / float(last_length)) ** 0.7
    return last_peak * max(1.0, scale)


# ------------------------------------------------------------------------ models
def start_workers(args, configs: Dict[str, Dict[str, Any]], logs: Path, results: Dict[str, Any]) -> Dict[str, Worker]:
    """One process per model (``gau_alpha_xla`` shares the ``gau_alpha`` process), built and
    traced concurrently (setup is not measured)."""
    processes: Dict[str, Worker] = {}
    for name in args.models:
        host = "gau_alpha" if name == "gau_alpha_xla" else name
        if host not in processes:
            processes[host] = Worker(host, configs[host], logs, seed=args.seed)
    for name, worker in list(processes.items()):
        try:
            worker.receive(timeout=args.call_timeout)
            worker.send("setup")
        except (WorkerDied, RuntimeError) as error:
            say("  %s failed to start: %s" % (name, error))
            worker.kill()
    for name, worker in list(processes.items()):
        if not worker.alive:
            continue
        try:
            setup = worker.receive(timeout=args.call_timeout)
            results["models"].setdefault(name, {"label": LABELS[name], "architecture": ARCHITECTURES[name],
                                                "config": configs[name], "process_only": True})
            results["models"][name].update(setup)
            say("  %-14s built in %.1fs, %.1fM parameters, traced in %.1fs + %.1fs, idle RSS %.0f MB" % (
                name, setup["build_seconds"], setup["params"] / 1e6, setup["infer_first_call_seconds"],
                setup["train_first_call_seconds"], setup["rss_mb"] or 0))
        except (WorkerDied, RuntimeError) as error:
            say("  %s setup failed: %s" % (name, error))
            results["models"][name]["error"] = str(error)
            worker.kill()
    workers = {}
    for name in args.models:
        host = "gau_alpha" if name == "gau_alpha_xla" else name
        if processes[host].alive:
            workers[name] = processes[host]
            if name != host:
                results["models"][name].update(params=results["models"][host].get("params"),
                                               shares_process_with=host)
        else:
            results["models"][name].setdefault("error", "worker did not start")
    return workers


def model_phase(args, out: Path, logs: Path, started: float, results: Dict[str, Any]) -> None:
    longest = max(args.lengths + args.train_lengths)
    configs = {name: model_config(name, longest, args.layers)
               for name in set(args.models) | ({"gau_alpha"} if "gau_alpha_xla" in args.models else set())}
    results["models"] = {
        name: {"label": LABELS[name], "architecture": ARCHITECTURES[name], "config": configs[name]}
        for name in args.models
    }
    plan = make_plan(args)
    results["plan"] = plan
    say("models: %s; %d blocks planned" % (", ".join(args.models), len(plan)))
    scratch = Path(tempfile.mkdtemp(prefix="gau-alpha-bench-"))
    workers: Dict[str, Worker] = {}
    try:
        workers = start_workers(args, configs, logs, results)
        if not workers:
            return
        for info in results["models"].values():
            if "tensorflow" in info:
                results["machine"].update(tensorflow=info["tensorflow"], intra_op_threads=info["intra_op_threads"],
                                          inter_op_threads=info["inter_op_threads"], gpus=info["gpus"],
                                          gpu_name=info.get("gpu_name"), onednn=info["onednn"],
                                          worker_allocator=info.get("allocator"))
                break
        if not args.no_parity:
            try:
                results["parity"] = parity_phase(workers, QUICK_PARITY_LENGTHS if args.quick else PARITY_LENGTHS,
                                                 scratch, args.call_timeout)
            except (WorkerDied, RuntimeError, KeyError) as error:
                results["parity"] = {"status": "failed: %s" % str(error).splitlines()[0]}
            say(parity_line(results["parity"]))

        ceiling_worker = workers.get("gau_alpha") or next(iter(workers.values()))
        ceiling_config = model_config("gau_alpha", longest, args.layers)
        rows = [512] if args.quick else [512, 2048]
        results["ceiling"] = {"model_worker": ceiling_worker.name, "runs": []}
        try:
            results["ceiling"]["runs"].append(ceiling_phase(ceiling_worker, rows, 5, ceiling_config,
                                                            args.call_timeout))
        except (WorkerDied, RuntimeError) as error:
            results["ceiling"]["error"] = str(error)
        say(ceiling_line(results["ceiling"]))

        guard = MemoryGuard(workers, args.memory_margin_mb, args.call_timeout)
        guard.trim_all()
        cells: List[Dict[str, Any]] = []
        results["cells"] = cells
        rates: Dict[Any, float] = {}
        compile_seconds: Dict[Any, float] = {}
        peaks: Dict[Any, List[Any]] = {}
        for block in plan:
            live = [m for m in block["models"] if m in workers and workers[m].alive]
            if not live:
                continue
            block = dict(block, models=live)
            elapsed = time.perf_counter() - started
            estimate = estimate_block_seconds(block, rates, compile_seconds, configs, args.repeats + 1)
            remaining = args.budget_minutes * 60 - elapsed - 60  # keep a minute for the report
            title = "%s, batch %d x length %d" % ("inference" if block["mode"] == "infer" else "training step",
                                                  block["batch"], block["length"])
            if not block["core"] and (estimate is None or estimate > remaining):
                reason = "time budget (estimated %s s, %.0f s left)" % (
                    "?" if estimate is None else "%.0f" % estimate, remaining)
                say("%s: skipped, %s" % (title, reason))
                cells.extend(cell_record(m, block, status="skipped", reason=reason) for m in live)
                continue
            records = {m: cell_record(m, block) for m in live}
            for model in live:
                predicted = predicted_peak(peaks, model, block["mode"], block["length"], block["batch"])
                if predicted is not None and not guard.fits(predicted, workers[model]):
                    records[model].update(status="skipped", reason="memory (about %.1f GB predicted, %.1f GB "
                                          "available)" % (predicted / 1024, (mem_available_mb() or 0) / 1024))
            runnable = [m for m in live if records[m]["status"] == "ok"]
            say("%s: %s (estimate %s s)" % (title, ", ".join(runnable) or "nothing fits",
                                            "?" if estimate is None else "%.0f" % estimate))
            # warm-up: one untimed call per model, from trimmed memory: it measures the peak
            for model in runnable:
                record = records[model]
                predicted = predicted_peak(peaks, model, block["mode"], block["length"], block["batch"]) or 0.0
                try:
                    record["idle_workers_trimmed"] += guard.make_room(predicted, workers[model])
                    guard.trim(workers[model])
                    reply = workers[model].request("call", timeout=args.call_timeout, variant=model,
                                                   mode=block["mode"], length=block["length"],
                                                   batch=block["batch"], warmup=True)
                except (WorkerDied, RuntimeError) as error:
                    record.update(status="failed", reason=str(error).splitlines()[0][:300])
                    say("  %s failed: %s" % (model, record["reason"]))
                    continue
                guard.note(workers[model], reply)
                record["trims_after_warmup"] = guard.trims[id(workers[model])]
                record["warmup_seconds"] = reply["seconds"]
                record["peak_increase_mb"] = reply.get("peak_increase_mb")
                record["rss_before_mb"] = reply.get("rss_before_mb")
                for key in ("device_peak_increase_mb", "compile_and_first_call_seconds"):
                    if key in reply:
                        record[key] = reply[key]
                if "compile_and_first_call_seconds" in reply:
                    compile_seconds[(model, block["mode"])] = reply["compile_and_first_call_seconds"]
            # a model whose process gave its memory back after its warm-up (gau_alpha and
            # gau_alpha_xla share one) gets a second untimed call, so no timed call starts cold
            for model in runnable:
                record = records[model]
                if record["status"] == "ok" and guard.trims[id(workers[model])] != record["trims_after_warmup"]:
                    try:
                        record["idle_workers_trimmed"] += guard.make_room(
                            record.get("peak_increase_mb") or 0.0, workers[model])
                        reply = workers[model].request("call", timeout=args.call_timeout, variant=model,
                                                       mode=block["mode"], length=block["length"],
                                                       batch=block["batch"])
                        guard.note(workers[model], reply)
                        record["rewarm_seconds"] = reply["seconds"]
                    except (WorkerDied, RuntimeError) as error:
                        record.update(status="failed", reason=str(error).splitlines()[0][:300])
            # timed rounds, interleaved; the order rotates by one model per round
            for round_index in range(args.repeats):
                order = [m for m in runnable if records[m]["status"] == "ok"]
                if not order:
                    break
                shift = round_index % len(order)
                for model in order[shift:] + order[:shift]:
                    record = records[model]
                    try:
                        need = max(0.0, (record.get("peak_increase_mb") or 0.0) - guard.held[id(workers[model])])
                        record["idle_workers_trimmed"] += guard.make_room(need, workers[model])
                        reply = workers[model].request("call", timeout=args.call_timeout, variant=model,
                                                       mode=block["mode"], length=block["length"],
                                                       batch=block["batch"])
                    except (WorkerDied, RuntimeError) as error:
                        record.update(status="failed", reason=str(error).splitlines()[0][:300])
                        say("  %s failed: %s" % (model, record["reason"]))
                        continue
                    guard.note(workers[model], reply)
                    record["seconds"].append(reply["seconds"])
            guard.trim_all()
            for model in live:
                record = finish_record(records[model], configs[model])
                cells.append(record)
                if record["status"] == "ok":
                    rates[(model, block["mode"])] = record["flops"] / record["median_seconds"]
                    if record.get("peak_increase_mb"):
                        peaks.setdefault((model, block["mode"]), []).append(
                            (block["length"], block["batch"], record["peak_increase_mb"]))
                say("  " + cell_line(record))
            write_partial(out, results)

        try:
            results["ceiling"]["runs"].append(ceiling_phase(ceiling_worker, rows, 5, ceiling_config,
                                                            args.call_timeout))
        except (WorkerDied, RuntimeError) as error:
            results["ceiling"]["error_after"] = str(error)
        finish_ceiling(results["ceiling"])
        say(ceiling_line(results["ceiling"]))
    finally:
        for worker in {id(w): w for w in workers.values()}.values():
            worker.close()
        shutil.rmtree(scratch, ignore_errors=True)


def cell_record(model: str, block: Dict[str, Any], status: str = "ok", reason: Optional[str] = None):
    return {"model": model, "mode": block["mode"], "length": block["length"], "batch": block["batch"],
            "status": status, "reason": reason, "seconds": [], "peak_increase_mb": None,
            "idle_workers_trimmed": 0}


def finish_record(record: Dict[str, Any], config: Dict[str, Any]) -> Dict[str, Any]:
    if record["status"] == "ok" and not record["seconds"]:
        record.update(status="failed", reason=record.get("reason") or "no timed call")
    if record["status"] != "ok":
        return record
    tokens = record["batch"] * record["length"]
    flops = common.step_flops(ARCHITECTURES[record["model"]], config, record["length"], record["batch"],
                              record["mode"])
    record["median_seconds"] = common.median(record["seconds"])
    record["min_seconds"] = common.minimum(record["seconds"])
    record["tokens_per_second"] = tokens / record["median_seconds"]
    record["tokens_per_second_best"] = tokens / record["min_seconds"]
    record["flops"] = flops
    record["gflops_per_second"] = flops / record["median_seconds"] / 1e9
    record["peak_memory_mb"] = record.get("peak_increase_mb")
    if record.get("device_peak_increase_mb") is not None:
        record["device_peak_memory_mb"] = record["device_peak_increase_mb"]
    return record


def finish_ceiling(ceiling: Dict[str, Any]) -> None:
    best = {}
    for run in ceiling.get("runs", []):
        for rows, data in run.items():
            best[rows] = max(best.get(rows, 0.0), data["gflops_best"])
    ceiling["gflops_best_by_rows"] = best
    ceiling["gflops"] = max(best.values()) if best else None
    if ceiling.get("runs"):
        shape = next(iter(ceiling["runs"][0].values()))["shape"]
        ceiling["shape"] = "(N, %d) x (%d, %d)" % (shape[1], shape[1], shape[2])


def write_partial(out: Path, results: Dict[str, Any]) -> None:
    write_json(out / "results.partial.json", results)


# ---------------------------------------------------------------------------- output
def say(message: str) -> None:
    print(message, flush=True)


def parity_line(parity: Dict[str, Any]) -> str:
    if parity.get("status") != "ok":
        return "parity: %s" % parity.get("status")
    line = "parity (same weights, lengths %s padded): max |ours - reference| = %.3g (tolerance %g): %s" % (
        parity["lengths"], parity["max_abs_diff"], parity["tolerance"], "PASS" if parity["passed"] else "FAIL")
    if "gau_alpha_xla" in parity:
        line += "; ours + XLA: %.3g" % parity["gau_alpha_xla"]["max_abs_diff"]
    return line


def ceiling_line(ceiling: Dict[str, Any]) -> str:
    parts = []
    for run in ceiling.get("runs", []):
        parts.append(", ".join("N=%s %.1f GFLOP/s" % (rows, data["gflops_best"]) for rows, data in run.items()))
    return "fp32 matmul ceiling (N, 768) x (768, 3200), best of 5: " + " | ".join(parts)


def cell_line(record: Dict[str, Any]) -> str:
    if record["status"] != "ok":
        return "%-14s %s" % (record["model"], record.get("reason") or record["status"])
    memory = record.get("peak_memory_mb")
    return "%-14s %8.1f tokens/s  %6.1f GFLOP/s  peak +%s MB  (%s s)" % (
        record["model"], record["tokens_per_second"], record["gflops_per_second"],
        "?" if memory is None else "%.0f" % memory, ", ".join("%.3f" % s for s in record["seconds"]))


# ------------------------------------------------------------------------------- CLI
def default_out(quick: bool) -> Path:
    if quick:
        return Path(tempfile.gettempdir()) / "gau-alpha-bench-quick"
    machine = "gpu" if _has_gpu() else "cpu"
    return common.RESULTS_DIR / machine


def _has_gpu() -> bool:
    return Path("/proc/driver/nvidia/gpus").is_dir() and any(Path("/proc/driver/nvidia/gpus").iterdir())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="validate the whole run in about a minute or two: %d-layer models, lengths %s, "
                             "2 repeats, small end-to-end and tokenizer workloads (numbers are not meaningful)"
                        % (QUICK_LAYERS, QUICK_LENGTHS))
    parser.add_argument("--lengths", type=int, nargs="+", help="inference lengths (default %s)" % FULL_LENGTHS)
    parser.add_argument("--train-lengths", type=int, nargs="+",
                        help="training-step lengths (default %s)" % FULL_TRAIN_LENGTHS)
    parser.add_argument("--models", nargs="+", choices=MODEL_NAMES, default=list(MODEL_NAMES))
    parser.add_argument("--long-models", nargs="+", choices=MODEL_NAMES,
                        default=["reference", "gau_alpha", "roformer_v2"],
                        help="the only models run beyond --all-models-max-length")
    parser.add_argument("--all-models-max-length", type=int, default=2048)
    parser.add_argument("--xla-max-length", type=int, default=2048, help="longest inference length for XLA")
    parser.add_argument("--xla-train-max-length", type=int, default=512,
                        help="longest training length for XLA (each shape costs a ~1 min compile on CPU)")
    parser.add_argument("--core-max-length", type=int, default=1024,
                        help="blocks up to this length always run; longer ones only within --budget-minutes")
    parser.add_argument("--repeats", type=int, help="timed calls per model and block (default 3; quick 2)")
    parser.add_argument("--tokens-per-call", type=int, default=512,
                        help="batch = max(1, tokens_per_call // length)")
    parser.add_argument("--budget-minutes", type=float, default=20.0,
                        help="wall-clock budget of the whole run; optional blocks that would overrun it are skipped")
    parser.add_argument("--layers", type=int, help="override the GAU-alpha layer count (BERT/RoFormerV2: half)")
    parser.add_argument("--memory-margin-mb", type=float, default=1536.0,
                        help="memory kept free; idle workers give memory back, and cells predicted not to fit "
                             "are skipped")
    parser.add_argument("--call-timeout", type=float, default=900.0, help="seconds a worker may take per command")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-parity", action="store_true")
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument("--skip-tokenizer", action="store_true")
    parser.add_argument("--skip-models", action="store_true")
    parser.add_argument("--out", type=Path, help="output directory (default benchmarks/results/cpu, or gpu; "
                                                 "--quick: a temporary directory)")


def resolve(args) -> None:
    if args.quick:
        args.lengths = args.lengths or list(QUICK_LENGTHS)
        args.train_lengths = args.train_lengths or list(QUICK_LENGTHS)
        args.repeats = args.repeats or 2
        args.layers = args.layers or QUICK_LAYERS
        args.tokens_per_call = min(args.tokens_per_call, 128)
    else:
        args.lengths = args.lengths or list(FULL_LENGTHS)
        args.train_lengths = args.train_lengths or [n for n in FULL_TRAIN_LENGTHS if n <= max(args.lengths)]
        args.repeats = args.repeats or 3
    args.out = args.out or default_out(args.quick)


def run(args: argparse.Namespace) -> int:
    from benchmarks import report

    resolve(args)
    started = time.perf_counter()
    out: Path = args.out
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    results: Dict[str, Any] = {
        "benchmark": "gau-alpha speed and memory",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "quick": bool(args.quick),
        "command": "python -m benchmarks.run " + " ".join(sys.argv[1:]) if sys.argv[0].endswith("run.py")
        else " ".join(["gau-alpha"] + sys.argv[1:]),
        "git_revision": common.git_revision(),
        "machine": common.machine_info(),
        "load_average_start": common.load_average(),
        "settings": {
            "lengths": args.lengths, "train_lengths": args.train_lengths, "repeats": args.repeats,
            "tokens_per_call": args.tokens_per_call, "models": args.models, "long_models": args.long_models,
            "all_models_max_length": args.all_models_max_length, "xla_max_length": args.xla_max_length,
            "xla_train_max_length": args.xla_train_max_length, "core_max_length": args.core_max_length,
            "budget_minutes": args.budget_minutes, "layers_override": args.layers,
            "statistic": "median of the timed calls (min also kept); one untimed warm-up call per model and "
                         "block first (XLA: compile call + warm-up call)",
            "memory": "peak RSS increase of the warm-up call over the RSS before it, freed memory given back "
                      "to the OS first (GPU: TensorFlow's device peak); workers allocate tensors from glibc: "
                      + ", ".join("%s=%s" % kv for kv in ALLOCATOR_ENVIRONMENT.items()),
            "interleaving": "per block, each round runs every model once; the order rotates by one each round",
        },
        "flop_formulas": common.FLOP_FORMULAS,
    }
    say("machine: %s, %s usable CPUs; output %s" % (results["machine"]["cpu_model"],
                                                    results["machine"]["usable_cpus"], out))
    if not args.skip_tokenizer:
        results["tokenizer"] = tokenizer_phase(args, out, logs)
    if not args.skip_e2e:
        results["e2e"] = e2e_phase(args, out, logs)
    if not args.skip_models:
        model_phase(args, out, logs, started, results)
    results["load_average_end"] = common.load_average()
    results["wall_seconds"] = time.perf_counter() - started
    write_json(out / "results.json", results)
    partial = out / "results.partial.json"
    if partial.exists():
        partial.unlink()
    written = report.write_report(results, out)
    say("")
    say(report.claims_markdown(results))
    say("wrote %s (%.0f s)" % (", ".join(str(p) for p in [out / "results.json"] + written), results["wall_seconds"]))
    parity = results.get("parity") or {}
    return 1 if parity.get("status") == "ok" and not parity.get("passed") else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
