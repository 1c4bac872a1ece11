"""The extension and quick-start examples (examples/extend/, examples/quickstart/) run as a user
runs them and their own checks (assertions) pass; the quick starts print what they promise."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers import CLEAN_ENV, TINY_CONFIG
from gau_alpha.clue import load_split, validate_submission
from gau_alpha.resources import clue_sample_dir

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(script: str, *args, cwd: Path) -> str:
    """Run an example script with the venv's python, as a user does; its stdout."""
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *map(str, args)], cwd=cwd, env=CLEAN_ENV,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.parametrize("script, args, expected", [
    ("extend/custom_gau_layer.py", [], ["2. gate 0.50: output differs", "3. gate 1: output equals"]),
    ("extend/realformer.py", [], ["gau_alpha ", "roformer_v2 "]),
    ("extend/partial_unfreeze.py", ["--steps", "2"], ["frozen weights unchanged"]),
])
def test_extension_checks_pass(tmp_path, script, args, expected):
    stdout = run_example(script, *args, cwd=tmp_path)
    assert stdout.rstrip().endswith("all checks passed"), stdout
    for text in expected:
        assert text in stdout, stdout


def test_custom_head_checks_pass_and_it_writes_a_valid_submission(tmp_path):
    stdout = run_example("extend/custom_head.py", "--epochs", "1", "--max-steps", "2", "--maxlen", "24",
                         "--output-dir", tmp_path, cwd=tmp_path)
    assert "pooling: the mean" in stdout and stdout.rstrip().endswith("all checks passed"), stdout
    test = load_split("tnews", clue_sample_dir("tnews"), "test")
    assert len(validate_submission("tnews", tmp_path / "submission" / "tnews11_predict.json", test)) == len(test)


def test_fill_mask_prints_top_k_per_mask(tmp_path):
    stdout = run_example("quickstart/fill_mask.py", "上海[MASK]北京[MASK]", "--top-k", "4", cwd=tmp_path)
    rows = [line for line in stdout.splitlines() if line.startswith("[MASK] ")]
    assert [row.split(":")[0] for row in rows] == ["[MASK] 1", "[MASK] 2"]
    assert all(len(row.split(": ", 1)[1].split("  ")) == 4 for row in rows)


def test_features_prints_the_batch_shape(tmp_path):
    stdout = run_example("quickstart/features.py", "今天天气不错", "明天", cwd=tmp_path)
    assert "hidden states: (2, 8, %d)" % TINY_CONFIG["hidden_size"] in stdout  # [CLS] 6 characters [SEP]


def test_similarity_writes_a_valid_afqmc_submission(tmp_path):
    stdout = run_example("quickstart/similarity_afqmc.py", "--maxlen", "32", "--output-dir", tmp_path, cwd=tmp_path)
    assert "threshold" in stdout and "accuracy" in stdout
    test = load_split("afqmc", clue_sample_dir("afqmc"), "test")
    assert len(validate_submission("afqmc", tmp_path / "submission" / "afqmc_predict.json", test)) == len(test)
