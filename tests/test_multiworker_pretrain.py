"""MultiWorkerMirroredStrategy for real: two worker processes on 127.0.0.1 (``TF_CONFIG``,
free ports) give the same result as one process with the same global batch and seed, for
``gau-alpha pretrain`` and for ``gau-alpha clue`` (fine-tuning the pre-trained output, which
also shows that ``gau-alpha clue --model-dir D`` takes a pre-training run's directory).

The clue runs use ``--no-xla`` to keep the test's CPU time down (the XLA path under
``multiworker`` compiles each replica's gradients with XLA and reduces outside; it matched to
1.5e-8 when checked by hand). Dropout is 0 in these runs: dropout draws are per replica, so they differ with the number of
workers (each run is exact on its own; see ``docs/pretraining.md``).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path
from typing import List, Sequence

import numpy as np
import pytest

import helpers
from gau_alpha.clue.state import load_arrays

TOLERANCE = 1e-5
PRETRAIN = ["--steps", 6, "--save-every", 3, "--log-every", 2, "--maxlen", 32, "--batch-size", 4,
            "--grad-accum-steps", 2, "--learning-rate", 0.01, "--lr-schedule", "0:1", "--window", 16, "--seed", 3,
            "--valid-sequences", 8, "--no-progress"]


def free_ports(count: int) -> List[int]:
    sockets = []
    try:
        for _ in range(count):
            handle = socket.socket()
            handle.bind(("127.0.0.1", 0))
            sockets.append(handle)
        return [handle.getsockname()[1] for handle in sockets]
    finally:
        for handle in sockets:
            handle.close()


def start(args: Sequence, tf_config: dict = None) -> subprocess.Popen:
    env = dict(helpers.CLEAN_ENV)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen([str(helpers.VENV_BIN / "gau-alpha"), *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_two_workers_and_one(args: Sequence, two_worker_dir: Path, one_worker_dir: Path) -> None:
    """``gau-alpha ARGS`` as a 2-worker cluster writing ``two_worker_dir`` and, at the same
    time, as one ordinary process writing ``one_worker_dir``; all must succeed."""
    ports = free_ports(2)
    cluster = {"worker": ["127.0.0.1:%d" % port for port in ports]}
    workers = [start([*args, "--output-dir", two_worker_dir, "--strategy", "multiworker"],
                     {"cluster": cluster, "task": {"type": "worker", "index": index}}) for index in (0, 1)]
    single = start([*args, "--output-dir", one_worker_dir])
    for name, process in (("worker 0", workers[0]), ("worker 1", workers[1]), ("single", single)):
        try:
            _, err = process.communicate(timeout=900)
        except subprocess.TimeoutExpired:
            for other in (*workers, single):
                other.kill()
            raise AssertionError("%s did not finish" % name)
        assert process.returncode == 0, (name, err[-3000:])


def assert_same_arrays(path_a: Path, path_b: Path) -> float:
    names_a, arrays_a = load_arrays(path_a)
    names_b, arrays_b = load_arrays(path_b)
    assert names_a == names_b
    worst = max(float(np.max(np.abs(a - b))) for a, b in zip(arrays_a, arrays_b))
    assert worst <= TOLERANCE, (path_a, worst)
    return worst


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """``(two-worker run, one-worker run)`` of the same pre-training (dropout 0)."""
    root = tmp_path_factory.mktemp("pretrain")
    config = root / "bert_config.json"
    config.write_text(json.dumps(dict(helpers.TINY_CONFIG, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)),
                      encoding="utf-8")
    run_two_workers_and_one(["pretrain", "--config", config, *PRETRAIN], root / "two", root / "one")
    return root / "two", root / "one"


def test_two_worker_pretraining_equals_one_worker(pretrained):
    two, one = pretrained
    final = "checkpoints/step-%09d" % 6
    assert_same_arrays(two / final / "model.npz", one / final / "model.npz")
    assert_same_arrays(two / final / "optimizer.npz", one / final / "optimizer.npz")
    first = load_arrays(one / "checkpoints/step-000000003/model.npz")[1]
    last = load_arrays(one / final / "model.npz")[1]
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(first, last)) > 1e-3  # it did train
    rows = [json.loads((d / "metrics.json").read_text(encoding="utf-8"))["history"] for d in (two, one)]
    assert [r["step"] for r in rows[0]] == [r["step"] for r in rows[1]] == [2, 4, 6]
    np.testing.assert_allclose([r["loss"] for r in rows[0]], [r["loss"] for r in rows[1]], rtol=1e-5)
    # only the chief wrote: one complete release-layout directory
    assert sorted(p.name for p in two.iterdir() if not p.name.startswith(".")) == sorted(
        p.name for p in one.iterdir() if not p.name.startswith("."))


def test_two_worker_clue_fine_tuning_of_the_pretrained_model_equals_one_worker(pretrained, tmp_path):
    _, model_dir = pretrained
    args = ["clue", "tnews", "--model-dir", model_dir, "--epochs", 1, "--max-steps-per-epoch", 2, "--batch-size", 8,
            "--maxlen", 32, "--seed", 5, "--no-progress", "--no-xla"]
    run_two_workers_and_one(args, tmp_path / "two", tmp_path / "one")
    assert_same_arrays(tmp_path / "two" / "best" / "model.npz", tmp_path / "one" / "best" / "model.npz")
    submission = "submission/tnews11_predict.json"
    assert (tmp_path / "two" / submission).read_text(encoding="utf-8") == (
        tmp_path / "one" / submission).read_text(encoding="utf-8")
    metrics = json.loads((tmp_path / "one" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["history"][0]["steps"] == 2
    assert os.path.getsize(tmp_path / "one" / submission) > 0
