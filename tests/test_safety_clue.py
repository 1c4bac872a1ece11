"""Data safety of ``gau-alpha clue`` (issue 9), with real command-line processes.

Every run here is the same tiny job: tnews on the bundled sample, no ``--model-dir`` (the
small random GAU-alpha is created in ``<output>/random-model``), 2 epochs of 2 steps,
seed 3. One uninterrupted run (the module's ``reference``) is what every interrupted and
resumed run must reproduce exactly: metrics history, best epoch, best weights, submission.

What is checked, each time with the exit status, the one-line message without a
traceback, and the files on disk (an earlier run compared file by file through SHA-256
hashes; no pid-tagged temporaries left):

- bad inputs stop before anything is written (exit 2): an earlier run without
  ``--resume``/``--overwrite``, a bad ``--model-dir`` or data, a vocab of 11,999 or 12,001
  lines against ``vocab_size`` 12000, duplicate JSON keys or test ids, ``--seed -5``;
- an output directory that cannot be written (exit 1): under a regular file (the tests run
  as root, for whom ``chmod`` does not make a directory read-only, so a path whose parent is
  a file stands for "cannot create"), and a full disk (``RLIMIT_FSIZE`` makes every write
  beyond 1 MiB fail with EFBIG, as ENOSPC would; Python ignores SIGXFSZ);
- ``--overwrite`` deletes the earlier run only once the new run has written its first
  checkpoint, and puts it back after a failure, Ctrl-C or ``kill -9`` before that;
- two runs on one directory: the second is refused at once, naming the first's pid;
- ``kill -9`` at three moments (during epoch 1, right after the first checkpoint, while
  the second checkpoint is written or the submission made): ``--resume`` then ends with
  exactly the reference's results, and the leftovers of the killed process are gone;
  Ctrl-C is exit 130 with a line saying whether ``--resume`` can continue.

Moments are found by polling the output directory (every 5 ms, at most
:data:`WAIT_S` seconds); the delay inside epoch 1 is drawn from a seeded generator.
"""
from __future__ import annotations

import hashlib
import json
import random
import re
import resource
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np
import pytest

from gau_alpha.clue.features import Feature
from gau_alpha.errors import RunError
from gau_alpha.locking import LOCK_FILE
from gau_alpha.resources import CLUE_SAMPLES_DIR
from helpers import CLEAN_ENV, VENV_BIN, assert_one_line_error, run_cli

SETTINGS = ("--epochs", "2", "--max-steps-per-epoch", "2", "--seed", "3", "--no-progress")
WAIT_S = 120
RUN_S = 300
SUBMISSION = Path("submission") / "tnews11_predict.json"
_PID_TAG = re.compile(r"\.pid\d+\.")


def clue_args(output: Path, *extra: str) -> List[str]:
    return ["clue", "tnews", "--output-dir", str(output), *SETTINGS, *extra]


# ----------------------------------------------------------------------------- processes
class Clue:
    """A ``gau-alpha clue`` process in the background, its output in files."""

    def __init__(self, args: List[str], log_dir: Path, **popen) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.stdout_path, self.stderr_path = log_dir / "stdout.txt", log_dir / "stderr.txt"
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            self.process = subprocess.Popen([str(VENV_BIN / "gau-alpha"), *args], env=CLEAN_ENV, stdout=out,
                                            stderr=err, text=True, **popen)
        self.pid = self.process.pid

    def wait_until(self, condition: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
        """Poll ``condition`` every 5 ms while the process runs."""
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process.poll() is not None:
                pytest.fail("the run ended (status %s) before %s:\n%s" % (self.process.returncode, what, self.stderr()))
            if time.monotonic() > deadline:
                self.process.kill()
                pytest.fail("no %s within %ds:\n%s" % (what, timeout, self.stderr()))
            time.sleep(0.005)

    def kill(self, sig: int = signal.SIGKILL) -> subprocess.CompletedProcess:
        self.process.send_signal(sig)
        return self.finish()

    def finish(self, timeout: float = RUN_S) -> subprocess.CompletedProcess:
        self.process.wait(timeout)
        return subprocess.CompletedProcess(self.process.args, self.process.returncode,
                                           self.stdout_path.read_text(), self.stderr())

    def stderr(self) -> str:
        return self.stderr_path.read_text()


# ----------------------------------------------------------------------------- files
def snapshot(directory: Path) -> Dict[str, str]:
    """SHA-256 of every file under ``directory`` (the lock file aside: it is the lock's, not the run's)."""
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file() and p.name != LOCK_FILE}


def pid_tagged(directory: Path) -> List[Path]:
    """Temporary or set-aside files and directories (pid-tagged names) under ``directory``."""
    return sorted(p for p in directory.rglob("*") if _PID_TAG.search(p.name))


def assert_no_leftovers(directory: Path) -> None:
    assert pid_tagged(directory) == [], pid_tagged(directory)


def latest_epoch(output: Path) -> int:
    try:
        return int(json.loads((output / "checkpoints" / "latest.json").read_text())["epoch"])
    except (OSError, ValueError, KeyError):
        return 0


def without_seconds(history: List[Dict]) -> List[Dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def assert_same_run(output: Path, reference: Path) -> None:
    """``output`` holds exactly the reference run's results: history, best epoch and
    weights, checkpoint weights and optimizer state, submission."""
    got, want = (json.loads((d / "metrics.json").read_text()) for d in (output, reference))
    assert without_seconds(got["history"]) == without_seconds(want["history"])
    assert got["best"] == want["best"] and got["epochs_done"] == want["epochs_done"] == 2
    assert (output / SUBMISSION).read_bytes() == (reference / SUBMISSION).read_bytes()
    assert json.loads((output / "best" / "best.json").read_text()) == want["best"]
    for name in ("best/model.npz", "checkpoints/epoch-0002/model.npz", "checkpoints/epoch-0002/optimizer.npz"):
        with np.load(output / name) as a, np.load(reference / name) as b:
            assert a.files == b.files and len(a.files) > 10, name
            for key in a.files:
                if key == "names" and name.endswith("optimizer.npz"):
                    continue  # slots made for a restore lack the "AdaFactor/" name scope; values and order agree
                np.testing.assert_array_equal(a[key], b[key], err_msg="%s %s" % (name, key))


def copy_run(reference: Path, destination: Path) -> Path:
    """A finished earlier run to protect (the reference's files, without its lock file)."""
    shutil.copytree(reference, destination, ignore=shutil.ignore_patterns(LOCK_FILE))
    return destination


# ----------------------------------------------------------------------------- the reference run
class Reference:
    def __init__(self, output: Path, result: subprocess.CompletedProcess, refused: subprocess.CompletedProcess,
                 pid: int) -> None:
        self.output, self.result, self.refused, self.pid = output, result, refused, pid


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Reference:
    """The uninterrupted run, with a second run started on its directory while it works."""
    base = tmp_path_factory.mktemp("reference")
    output = base / "run"
    first = Clue(clue_args(output), base / "logs")
    lock = output / LOCK_FILE
    first.wait_until(lambda: lock.is_file() and lock.read_text().strip() == str(first.pid), "the first run's lock")
    refused = run_cli(clue_args(output, "--overwrite"), timeout=RUN_S)  # not even --overwrite takes a busy directory
    result = first.finish()
    assert result.returncode == 0, result.stderr[-3000:]
    return Reference(output, result, refused, first.pid)


# ----------------------------------------------------------------------------- concurrency
def test_second_run_on_a_busy_directory_is_refused_and_the_first_is_consistent(reference):
    assert_one_line_error(reference.refused, 1, str(reference.output), "in use", "pid %d" % reference.pid)
    output = reference.output
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["settings"]["seed"] == 3 and len(metrics["history"]) == 2
    # The best weights are the best epoch's (best.json is written with them, as one directory),
    # and the submission was made after them (the kill tests below show that a run that was
    # never disturbed reproduces these weights and this submission bit for bit).
    assert json.loads((output / "best" / "best.json").read_text()) == metrics["best"]
    assert metrics["submission"] == str(output / SUBMISSION)
    assert (output / "best" / "model.npz").stat().st_mtime <= (output / SUBMISSION).stat().st_mtime
    assert sorted(p.name for p in output.iterdir()) == sorted(
        [LOCK_FILE, "best", "checkpoints", "metrics.csv", "metrics.json", "random-model", "submission",
         "training_curve.png"])
    assert_no_leftovers(output)


# ----------------------------------------------------------------------------- kill -9, Ctrl-C, --resume
MOMENTS = {
    # after the random model is written, inside epoch 1 (seeded delay; epoch 1 takes seconds)
    "during epoch 1": (lambda out: (out / "random-model" / "bert_model.ckpt.index").is_file(), (0.0, 1.0)),
    "right after the first checkpoint": (lambda out: latest_epoch(out) >= 1, (0.0, 0.0)),
    # the second checkpoint being assembled, or written and the submission being made
    "at the second checkpoint": (lambda out: latest_epoch(out) >= 2 or any(
        p.name.startswith(".epoch-0002.pid") for p in (out / "checkpoints").glob(".*")), (0.0, 0.0)),
}


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_kill_9_then_resume_gives_the_uninterrupted_result(moment, reference, tmp_path):
    output = tmp_path / "run"
    reached, delay = MOMENTS[moment]
    run = Clue(clue_args(output), tmp_path / "logs")
    run.wait_until(lambda: reached(output), moment)
    time.sleep(random.Random(moment).uniform(*delay))
    killed = run.kill()
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    epochs_at_kill = latest_epoch(output)
    assert (epochs_at_kill == 0) if moment == "during epoch 1" else (epochs_at_kill >= 1)

    resumed = run_cli(clue_args(output, "--resume"), timeout=RUN_S)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    if epochs_at_kill:
        assert "resuming tnews after epoch %d of 2" % epochs_at_kill in resumed.stdout
    else:
        assert "has no checkpoint yet" in resumed.stdout
    assert_same_run(output, reference.output)
    assert_no_leftovers(output)


def test_ctrl_c_after_the_first_checkpoint_is_exit_130_and_says_resume(tmp_path):
    output = tmp_path / "run"
    run = Clue(clue_args(output), tmp_path / "logs")
    run.wait_until(lambda: latest_epoch(output) >= 1, "the first checkpoint")
    checkpoint = snapshot(output / "checkpoints" / "epoch-0001")
    interrupted = run.kill(signal.SIGINT)
    assert_one_line_error(interrupted, 130, "gau-alpha clue: interrupted: continue with the same command plus --resume")
    # the checkpoint it names is intact (the kill -9 tests above show --resume from it)
    assert latest_epoch(output) >= 1 and snapshot(output / "checkpoints" / "epoch-0001") == checkpoint
    assert_no_leftovers(output)


# ----------------------------------------------------------------------------- an earlier run in the directory
def test_fresh_run_over_an_earlier_run_is_refused_after_validation_and_changes_nothing(reference, tmp_path):
    old = copy_run(reference.output, tmp_path / "old")
    before = snapshot(old)
    result = run_cli(clue_args(old), timeout=RUN_S)
    assert_one_line_error(result, 2, "%s holds an earlier run" % old, "--resume", "--overwrite", "nothing was changed")
    assert snapshot(old) == before
    assert_no_leftovers(old)


def _model_dir_without_vocab(tmp_path: Path, reference: Reference) -> Path:
    model = shutil.copytree(reference.output / "random-model", tmp_path / "model")
    (model / "vocab.txt").unlink()
    return model


def _data_with(tmp_path: Path, name: str, edit: Callable[[List[str]], List[str]]) -> Path:
    data = shutil.copytree(CLUE_SAMPLES_DIR / "tnews", tmp_path / "tnews-data")
    lines = (data / name).read_text(encoding="utf-8").splitlines()
    (data / name).write_text("\n".join(edit(lines)) + "\n", encoding="utf-8")
    return data


BAD_INPUTS_OVER_AN_EARLIER_RUN = {
    # each one would once have deleted the earlier run's checkpoints and best weights first
    "missing model dir": (lambda tmp, ref: ["--overwrite", "--model-dir", str(tmp / "nowhere")],
                          ["no model: --model-dir", "does not exist"]),
    "model dir without vocab": (lambda tmp, ref: ["--overwrite", "--model-dir", str(_model_dir_without_vocab(tmp, ref))],
                                ["lacks vocab.txt"]),
    "duplicate JSON key": (lambda tmp, ref: ["--overwrite", "--data-dir", str(_data_with(
        tmp, "train.json", lambda lines: [lines[0].replace('{"label"', '{"label": "100", "label"')] + lines[1:]))],
                           ["train.json, line 1", "duplicate key 'label'"]),
    "duplicate test id": (lambda tmp, ref: ["--overwrite", "--data-dir", str(_data_with(
        tmp, "test.json", lambda lines: lines + lines))], ["test.json, line 2", "duplicate id 0 (first at line 1)"]),
    "resume with another seed": (lambda tmp, ref: ["--resume", "--seed", "4"],
                                 ["cannot --resume: settings differ", "seed: 3 -> 4"]),
    "resume and overwrite": (lambda tmp, ref: ["--resume", "--overwrite"], ["--resume", "--overwrite", "not both"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS_OVER_AN_EARLIER_RUN))
def test_bad_input_over_an_earlier_run_is_one_line_and_changes_nothing(case, reference, tmp_path):
    old = copy_run(reference.output, tmp_path / "old")
    before = snapshot(old)
    extra, fragments = BAD_INPUTS_OVER_AN_EARLIER_RUN[case]
    result = run_cli(clue_args(old) + extra(tmp_path, reference), timeout=RUN_S)
    assert_one_line_error(result, 2, *fragments)
    assert snapshot(old) == before
    assert_no_leftovers(old)


def test_overwrite_deletes_the_earlier_run_only_after_the_first_checkpoint(reference, tmp_path):
    old = copy_run(reference.output, tmp_path / "old")
    run = Clue(clue_args(old, "--overwrite", "--seed", "4"), tmp_path / "logs")
    seen_aside = False
    while run.process.poll() is None:  # watch the directory while the new run works
        asides = [p for p in old.glob(".previous-run.pid*.aside")]
        seen_aside = seen_aside or bool(asides)
        if seen_aside and not asides and run.process.poll() is None:
            # the earlier run is gone: the new run has a checkpoint of its own
            state = json.loads((old / "checkpoints" / "epoch-0001" / "state.json").read_text())
            assert state["settings"]["seed"] == 4
        time.sleep(0.005)
    result = run.finish()
    assert result.returncode == 0, result.stderr[-3000:]
    assert seen_aside
    metrics = json.loads((old / "metrics.json").read_text())
    assert metrics["settings"]["seed"] == 4 and metrics["settings"]["overwrite"] is True
    assert json.loads((old / "best" / "best.json").read_text()) == metrics["best"]
    assert_no_leftovers(old)


def test_ctrl_c_before_the_first_checkpoint_puts_the_earlier_run_back(reference, tmp_path):
    old = copy_run(reference.output, tmp_path / "old")
    before = snapshot(old)
    run = Clue(clue_args(old, "--overwrite"), tmp_path / "logs")
    run.wait_until(lambda: any(old.glob(".previous-run.pid*.aside")) and not (old / "metrics.json").exists(),
                   "the earlier run set aside")  # moved, not copied
    interrupted = run.kill(signal.SIGINT)
    assert_one_line_error(interrupted, 130, "interrupted", "the earlier run in %s was put back" % old)
    assert snapshot(old) == before
    assert_no_leftovers(old)


ASIDE_MOMENTS = {
    "as the earlier run is set aside": lambda old: any(old.glob(".previous-run.pid*.aside")),
    "once it is set aside": lambda old: any(old.glob(".previous-run.pid*.aside")) and not (old / "metrics.json").exists(),
}


@pytest.mark.parametrize("moment", list(ASIDE_MOMENTS))
def test_kill_9_before_the_first_checkpoint_the_next_run_puts_the_earlier_run_back(moment, reference, tmp_path):
    old = copy_run(reference.output, tmp_path / "old")
    before = snapshot(old)
    run = Clue(clue_args(old, "--overwrite"), tmp_path / "logs")
    run.wait_until(lambda: ASIDE_MOMENTS[moment](old), moment)
    assert run.kill().returncode == -signal.SIGKILL
    assert pid_tagged(old)  # the earlier run waits in its set-aside directory
    # the next command (a plain run) puts it back first, then refuses to replace it
    result = run_cli(clue_args(old), timeout=RUN_S)
    assert_one_line_error(result, 2, "holds an earlier run")
    assert ("put back the earlier run" in result.stdout) or moment == "as the earlier run is set aside"
    assert snapshot(old) == before
    assert_no_leftovers(old)


def test_full_disk_during_overwrite_is_one_line_and_puts_the_earlier_run_back(reference, tmp_path):
    old = copy_run(reference.output, tmp_path / "old")
    before = snapshot(old)

    def small_files():  # a write beyond 1 MiB fails with EFBIG (the best weights are ~7 MB)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, 2**20))

    model = reference.output / "random-model"  # no model to write: the first big file is best/model.npz
    result = subprocess.run(
        [str(VENV_BIN / "gau-alpha"), *clue_args(old, "--overwrite", "--model-dir", str(model))],
        env=CLEAN_ENV, capture_output=True, text=True, timeout=RUN_S, preexec_fn=small_files)
    assert_one_line_error(result, 1, "File too large", str(old))
    assert snapshot(old) == before
    assert_no_leftovers(old)


# ----------------------------------------------------------------------------- bad input, no earlier run
def test_output_dir_that_cannot_be_created_is_one_line_exit_1(tmp_path):
    # As root, chmod 0o555 does not stop writes; a path below a regular file cannot be created by anyone.
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    result = run_cli(clue_args(blocker / "run"), timeout=RUN_S)
    assert_one_line_error(result, 1, "Not a directory", str(blocker / "run"))
    assert blocker.read_text() == "not a directory\n"


@pytest.mark.parametrize("change, tokens", [(-1, 11999), (+1, 12001)])
def test_vocab_lines_must_match_vocab_size(change, tokens, reference, tmp_path):
    model = shutil.copytree(reference.output / "random-model", tmp_path / "model")
    lines = (model / "vocab.txt").read_text(encoding="utf-8").splitlines()
    lines = lines[:-1] if change < 0 else lines + ["[extra]"]
    (model / "vocab.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    output = tmp_path / "run"
    result = run_cli(clue_args(output, "--model-dir", str(model)), timeout=RUN_S)
    assert_one_line_error(result, 2, "vocab.txt has %d tokens" % tokens, "vocab_size 12000")
    assert not output.exists()  # bad input: nothing written


def test_negative_seed_is_a_usage_error(tmp_path):
    output = tmp_path / "run"
    result = run_cli(["clue", "--seed", "-5", "--output-dir", str(output)], timeout=RUN_S)
    assert_one_line_error(result, 2, "gau-alpha clue: error: argument --seed: expected a non-negative integer, "
                                     "got '-5' (see gau-alpha clue --help)")
    assert not output.exists()


def test_resume_without_a_run_creates_nothing(tmp_path):
    output = tmp_path / "run"
    result = run_cli(clue_args(output, "--resume"), timeout=RUN_S)
    assert_one_line_error(result, 2, "cannot --resume: no checkpoint in %s" % output)
    assert not output.exists()


def test_token_ids_beyond_the_embedding_are_reported_before_training():
    from types import SimpleNamespace

    from gau_alpha.clue.pipeline import _check_token_ids
    from gau_alpha.clue.tasks import get_task

    examples = [SimpleNamespace(id="a"), SimpleNamespace(id="b")]
    features = [Feature({"token_ids": np.array([101, 5, 102])}, 0, 0),
                Feature({"token_ids": np.array([101, 12000, 102])}, 1, 1)]
    _check_token_ids(get_task("tnews"), "train", examples, features[:1], 12000, Path("vocab.txt"))
    with pytest.raises(RunError, match=r"tnews train example 'b': token id 12000 is outside the embedding "
                                       r"\(vocab_size 12000\); vocab.txt does not belong"):
        _check_token_ids(get_task("tnews"), "train", examples, features, 12000, Path("vocab.txt"))


def test_recovery_after_a_kill_in_the_middle_of_setting_aside(tmp_path):
    """The next run puts back what had been moved, keeps what had not, and removes what
    the killed run had already made (files of the user's stay)."""
    from gau_alpha.clue.rundir import claim_run_directory

    run = tmp_path / "run"
    aside = run / ".previous-run.pid999999999.abc.aside"
    (aside / "checkpoints").mkdir(parents=True)
    (aside / "checkpoints" / "latest.json").write_text("old checkpoint")
    (aside / "entries.json").write_text(json.dumps(["checkpoints", "metrics.json"]))
    (run / "metrics.json").write_text("old metrics")  # not moved yet when the run was killed
    (run / "random-model").mkdir()  # made by the killed run
    (run / "checkpoints").mkdir()  # made by the killed run
    (run / "notes.txt").write_text("mine")
    (run / ".metrics.csv.pid999999999.x.tmp").write_text("half")
    with claim_run_directory(run) as run_dir:
        assert run_dir.locked and run_dir.entries() == ["checkpoints", "metrics.json"]
        assert any("put back" in note for note in run_dir.notes)
    assert (run / "checkpoints" / "latest.json").read_text() == "old checkpoint"
    assert (run / "metrics.json").read_text() == "old metrics" and (run / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in run.iterdir()) == [LOCK_FILE, "checkpoints", "metrics.json", "notes.txt"]


def test_rollback_removes_what_the_failed_run_made_and_puts_the_earlier_run_back(tmp_path):
    from gau_alpha.clue.rundir import claim_run_directory

    run = tmp_path / "run"
    (run / "best").mkdir(parents=True)
    (run / "best" / "best.json").write_text("old")
    (run / "notes.txt").write_text("mine")
    with pytest.raises(KeyboardInterrupt):
        with claim_run_directory(run) as run_dir:
            run_dir.set_aside(run_dir.entries())
            assert not (run / "best").exists()
            (run / "random-model").mkdir()
            (run / "metrics.json").write_text("new")
            raise KeyboardInterrupt
    assert run_dir.restored and not run_dir.committed
    assert sorted(p.name for p in run.iterdir()) == [LOCK_FILE, "best", "notes.txt"]
    assert (run / "best" / "best.json").read_text() == "old"
    # after the commit, a failure leaves the new run for --resume
    with pytest.raises(RuntimeError):
        with claim_run_directory(run) as run_dir:
            run_dir.set_aside(run_dir.entries())
            (run / "checkpoints").mkdir()
            run_dir.commit()
            raise RuntimeError
    assert sorted(p.name for p in run.iterdir()) == [LOCK_FILE, "checkpoints", "notes.txt"]
