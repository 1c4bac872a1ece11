"""The span, multiple-choice and NER examples (examples/clue/cmrc2018.py, c3.py, chid.py,
cluener.py) run as a user runs them on the bundled samples with tiny settings, print their
dev score next to the published one, and write a submission the project's validator accepts."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import CLEAN_ENV
from gau_alpha.clue import get_spec, load_split, validate_submission
from gau_alpha.resources import clue_sample_dir

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(script: str, *args, cwd: Path) -> str:
    """Run an example script with the venv's python, as a user does; its stdout."""
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *map(str, args)], cwd=cwd, env=CLEAN_ENV,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.parametrize("task, metric, settings", [
    ("cmrc2018", "EM", ["--maxlen", "96", "--doc-stride", "64", "--batch-size", "64"]),  # several windows each
    ("c3", "accuracy", ["--maxlen", "32", "--batch-size", "64"]),
    ("chid", "accuracy", ["--maxlen", "40", "--batch-size", "8"]),
    ("cluener", "F1", ["--maxlen", "48", "--batch-size", "32"]),
])
def test_task_example_runs_and_writes_a_valid_submission(tmp_path, task, metric, settings):
    stdout = run_example("clue/%s.py" % task, "--epochs", "1", "--max-steps", "2", *settings,
                         "--output-dir", tmp_path, cwd=tmp_path)
    best = re.search(r"best dev %s: (\S+) at epoch 1 \(published GAU-alpha base: ([\d.]+)\)" % metric, stdout)
    assert best, stdout
    assert 0.0 <= float(best.group(1)) <= 100.0
    assert float(best.group(2)) == get_spec(task).published_dev_score
    test = load_split(task, clue_sample_dir(task), "test")
    submission = tmp_path / "submission" / get_spec(task).submission_filename()
    assert len(validate_submission(task, submission, test)) == len(test)
