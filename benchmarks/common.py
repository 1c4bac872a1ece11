"""Shared pieces of the benchmarks: machine description, process memory, statistics and
the analytic FLOP counts. No TensorFlow import here (the orchestrating process stays light).
"""
from __future__ import annotations

import ctypes
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"

THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "TF_ENABLE_ONEDNN_OPTS",
    "MKL_NUM_THREADS",
    "RAYON_NUM_THREADS",
    "TF_XLA_FLAGS",
)


# ------------------------------------------------------------------------- machine
def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or platform.processor())."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> List[str]:
    """The SIMD feature flags that matter for fp32 matmul (avx*, fma, amx*)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                return sorted(f for f in flags if f.startswith(("avx", "fma", "amx")))
    except OSError:
        pass
    return []


def memory_total_gib() -> Optional[float]:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def load_average() -> Optional[List[float]]:
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def machine_info() -> Dict[str, Any]:
    """What the results depend on, without importing TensorFlow (the workers add its
    version and thread settings)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable,
        "simd_flags": cpu_flags(),
        "memory_gib": memory_total_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "environment": {name: os.environ.get(name) for name in THREAD_VARIABLES},
    }


def git_revision() -> Optional[str]:
    """The checked-out commit (read-only git call), or None."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


# --------------------------------------------------------------------- process memory
def _status_kib(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_bytes() -> Optional[int]:
    """Current resident set size of this process."""
    kib = _status_kib("VmRSS")
    return None if kib is None else kib * 1024


def peak_rss_bytes() -> Optional[int]:
    """Peak resident set size since the last :func:`reset_peak_rss` (or process start)."""
    kib = _status_kib("VmHWM")
    return None if kib is None else kib * 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux >= 4.0:
    ``echo 5 > /proc/self/clear_refs``). Returns False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def release_free_memory() -> None:
    """Return freed heap memory to the OS (glibc ``malloc_trim``), so the next call's
    peak RSS is not hidden inside memory an earlier call left mapped."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


# ------------------------------------------------------------------------ statistics
def median(values: Sequence[float]) -> Optional[float]:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def minimum(values: Sequence[float]) -> Optional[float]:
    values = [v for v in values if v is not None]
    return min(values) if values else None


# ---------------------------------------------------------------------------- FLOPs
FLOP_FORMULAS = {
    "gau": (
        "per layer and sequence of N tokens: 2*N*H*(2E+S) [i_dense] + 2*N^2*S [q k^T] "
        "+ 2*N^2*E [A v] + 2*N*E*H [o_dense]; H hidden, E expansion, S key size"
    ),
    "mha": (
        "per layer and sequence of N tokens: 2*N*H*3H [q, k, v] + 2*N^2*H [q k^T, all heads] "
        "+ 2*N^2*H [A v] + 2*N*H*H [o] + 2*2*N*H*I [feed-forward]; H hidden, I intermediate"
    ),
    "common": (
        "matrix-multiply FLOPs only (2 per multiply-add); embeddings (gathers), norms, softmax "
        "and other element-wise work are not counted, so achieved FLOP/s understates the work "
        "done at long lengths; training step = 3 x forward (backward = 2 x forward); the "
        "optimizer update is O(parameters) and not counted"
    ),
}


def forward_flops(architecture: str, config: Dict[str, Any], length: int, batch: int) -> float:
    """Matrix-multiply FLOPs of one forward pass of ``batch`` sequences of ``length`` tokens
    (formulas in :data:`FLOP_FORMULAS`)."""
    n = float(length)
    h = float(config["hidden_size"])
    layers = int(config["num_hidden_layers"])
    if architecture == "gau":
        e = float(config["intermediate_size"])
        s = float(config["attention_key_size"])
        per_layer = 2 * n * h * (2 * e + s) + 2 * n * n * s + 2 * n * n * e + 2 * n * e * h
    elif architecture == "mha":
        i = float(config["intermediate_size"])
        per_layer = 2 * n * h * 3 * h + 2 * n * n * h + 2 * n * n * h + 2 * n * h * h + 4 * n * h * i
    else:
        raise ValueError("unknown architecture %r" % architecture)
    return batch * layers * per_layer


def step_flops(architecture: str, config: Dict[str, Any], length: int, batch: int, mode: str) -> float:
    """FLOPs of one inference call (``mode='infer'``) or one training step (``'train'``)."""
    forward = forward_flops(architecture, config, length, batch)
    return forward if mode == "infer" else 3.0 * forward


def matmul_flops(rows: int, inner: int, columns: int) -> float:
    return 2.0 * rows * inner * columns


# ------------------------------------------------------------------------ processes
def module_command(module: str, arguments: Sequence[str] = ()) -> List[str]:
    """``python -m module arguments...`` with this interpreter. Run it with ``cwd=REPO_ROOT``
    (:func:`child_environment`): the repository root is then first on the child's ``sys.path``,
    so ``benchmarks`` and the test oracles (``tests.reference``) import from the checkout."""
    return [sys.executable, "-m", module, *arguments]


def child_environment(defaults: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """This process's environment for a benchmark subprocess, with ``defaults`` (and a quiet
    TensorFlow C++ log) where the caller has not set them."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for key, value in (defaults or {}).items():
        env.setdefault(key, value)
    return env
