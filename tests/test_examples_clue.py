"""The classification examples (examples/clue/single_sentence.py, sentence_pair.py, wsc.py) run
as a user runs them, and give the same dev score, losses and submission as ``gau-alpha clue``
with the same seed and settings (they share the recipe: a difference is a bug in one of them)."""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import CLEAN_ENV, run_cli
from gau_alpha.clue import load_split, validate_submission
from gau_alpha.resources import clue_sample_dir

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TINY = ["--epochs", "2", "--batch-size", "8", "--maxlen", "32", "--learning-rate", "0.02", "--seed", "7"]


def run_example(script: str, *args, cwd: Path) -> str:
    """Run an example script with the venv's python, as a user does; its stdout."""
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *map(str, args)], cwd=cwd, env=CLEAN_ENV,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def cli_has_option(option: str) -> bool:
    from gau_alpha.clue.runner import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return option in parser._option_string_actions


def example_results(stdout: str):
    """(best dev score as printed with repr, best epoch, per-epoch train losses as printed)."""
    best = re.search(r"best dev accuracy: (\S+) at epoch (\d+) \(published GAU-alpha base: ([\d.]+)\)", stdout)
    assert best, stdout
    losses = re.findall(r"epoch \d+/\d+: train loss ([\d.]+)", stdout)
    return float(best.group(1)), int(best.group(2)), losses


@pytest.mark.parametrize("script, task", [("clue/single_sentence.py", "tnews"), ("clue/sentence_pair.py", "afqmc")])
def test_example_matches_gau_alpha_clue(tmp_path, script, task):
    stdout = run_example(script, task, *TINY, "--max-steps", "3", "--output-dir", tmp_path / "example", cwd=tmp_path)
    score, epoch, losses = example_results(stdout)

    xla = ["--no-xla"] if cli_has_option("--no-xla") else []
    done = run_cli(["clue", task, *TINY, "--max-steps-per-epoch", "3", "--output-dir", tmp_path / "cli",
                    "--no-progress", *xla], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    assert score == metrics["best"]["score"]  # every digit
    assert epoch == metrics["best"]["epoch"]
    assert losses == ["%.4f" % row["train_loss"] for row in metrics["history"]]
    assert len(losses) == 2

    test = load_split(task, clue_sample_dir(task), "test")
    name = "tnews11_predict.json" if task == "tnews" else "afqmc_predict.json"
    ours, theirs = tmp_path / "example" / "submission" / name, tmp_path / "cli" / "submission" / name
    assert validate_submission(task, ours, test) == validate_submission(task, theirs, test)
    assert ours.read_bytes() == theirs.read_bytes()


def test_wsc_example_writes_a_valid_submission(tmp_path):
    stdout = run_example("clue/wsc.py", "--epochs", "1", "--max-steps", "2", "--batch-size", "8", "--maxlen", "48",
                         "--output-dir", tmp_path, cwd=tmp_path)
    score, epoch, _ = example_results(stdout)
    assert 0.0 <= score <= 100.0 and epoch == 1
    assert "(published GAU-alpha base: 79.93)" in stdout
    test = load_split("wsc", clue_sample_dir("wsc"), "test")
    assert len(validate_submission("wsc", tmp_path / "submission" / "cluewsc11_predict.json", test)) == len(test)


def test_run_clue_is_the_command_line(tmp_path):
    """examples/clue/run_clue.py is ``gau-alpha clue`` (a full run of it is test_finetune_smoke's job)."""
    stdout = run_example("clue/run_clue.py", "--help", cwd=tmp_path)
    assert "--model-dir" in stdout and "--max-steps-per-epoch" in stdout
