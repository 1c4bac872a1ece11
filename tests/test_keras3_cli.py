"""``gau-alpha clue TASK --backend B``: the CLI's door to the Keras 3 runner (gau_alpha.keras3.clue)."""
import json
import subprocess
import sys

from helpers import TINY_CONFIG, assert_one_line_error, run_cli, write_release_dir

from gau_alpha.clue.loaders import load_split
from gau_alpha.clue.submission import validate_submission
from gau_alpha.resources import clue_sample_dir


def test_clue_backend_jax_writes_the_submission_and_metrics(tmp_path):
    release = write_release_dir(tmp_path / "release", TINY_CONFIG, seed=3)
    output = tmp_path / "run"
    result = run_cli(["clue", "afqmc", "--backend", "jax", "--model-dir", release, "--output-dir", output,
                      "--epochs", "1", "--maxlen", "48", "--batch-size", "32"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "on Keras 3 (jax)" in result.stdout
    metrics = json.loads((output / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["backend"] == "jax" and len(metrics["train_loss"]) == 1
    examples = load_split("afqmc", clue_sample_dir("afqmc"), "test")
    assert len(validate_submission("afqmc", metrics["submission"], examples)) == len(examples)


def test_clue_backend_refuses_tasks_and_flags_it_does_not_run(tmp_path):
    result = run_cli(["clue", "cmrc2018", "--backend", "torch", "--output-dir", tmp_path / "a"])
    assert_one_line_error(result, 2, "--backend runs the classification tasks", "cmrc2018")
    result = run_cli(["clue", "tnews", "--backend", "jax", "--resume", "--output-dir", tmp_path / "b"])
    assert_one_line_error(result, 2, "--resume", "not supported with --backend")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_the_cli_lists_what_the_keras3_runner_runs():
    """runner.py keeps its own copy of the task and backend lists (it must not import Keras 3)."""
    script = ("from gau_alpha.clue import runner; from gau_alpha.keras3 import clue; "
              "print(runner.KERAS3_CLUE_TASKS == clue.KERAS3_TASKS, runner.KERAS3_BACKENDS == clue.BACKENDS)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.stdout.split() == ["True", "True"], result.stderr[-2000:]
