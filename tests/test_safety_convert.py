"""``gau-alpha convert`` never damages what is there (issue 9): bad input is refused with one
line and exit status 2 before anything is written; ``--overwrite`` replaces only a checkpoint
directory; NaN/Inf are refused unless ``--allow-nonfinite``; a ``checkpoint`` file pointing
elsewhere is not followed; Ctrl-C exits 130; kill -9 at any moment leaves the destination as it
was, and the next run removes the leftovers and gives the uninterrupted result.

Real ``gau-alpha`` processes convert tiny checkpoints (``helpers.TINY_CONFIG``); directory
trees are hashed before and after (:func:`interruptions.tree_digest`).
"""
from __future__ import annotations

import json
import random
import shutil
import signal
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import helpers
from helpers import assert_one_line_error, run_cli, tf1_name
from interruptions import (
    exists_under, interrupt, kill_at_moments, start_cli, temporaries, tree_digest, wait_until,
)
from gau_alpha import read_tf1_checkpoint, write_tf1_checkpoint
from gau_alpha.convert import read_checkpoint

SEED = 11  # the random kill moment below is drawn from random.Random(SEED)
NAN_TENSOR = tf1_name("o_dense/kernel", 1)
INF_TENSOR = tf1_name("q_scaleoffset/gamma", 0)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Two tiny release-layout checkpoints with different weights."""
    root = tmp_path_factory.mktemp("sources")
    return SimpleNamespace(
        old=helpers.write_release_dir(root / "old", helpers.TINY_CONFIG, seed=0),
        new=helpers.write_release_dir(root / "new", helpers.TINY_CONFIG, seed=1),
    )


def release_part(state):
    """The entries of a :func:`tree_digest` of ``out`` and below."""
    return {k: v for k, v in state.items() if k == "out" or k.startswith("out/")}


def convert_cli(src, dst, *options, to="keras"):
    return run_cli(["convert", src, dst, "--to", to, *options], timeout=180)


# ------------------------------------------------------------------ the destination
def _unrelated(path: Path) -> None:
    path.mkdir()
    (path / "notes.txt").write_text("mine")
    (path / "data").mkdir()
    (path / "data" / "results.csv").write_text("1,2\n")


def _checkpoint_plus_a_file(path: Path) -> None:
    helpers.write_release_dir(path, helpers.TINY_CONFIG, seed=3)
    (path / "notes.txt").write_text("my notes about this model")


def _a_file(path: Path) -> None:
    path.write_text("not a directory")


def _link_to_a_checkpoint(path: Path) -> None:
    helpers.write_release_dir(path.parent / "target", helpers.TINY_CONFIG, seed=3)
    path.symlink_to(path.parent / "target")


UNRELATED = {
    "unrelated files": (_unrelated, "holds no checkpoint of one known format"),
    "a checkpoint with a file of mine": (_checkpoint_plus_a_file, "not part of a tf1 checkpoint (notes.txt)"),
    "a file": (_a_file, "is not a directory"),
    "a link to a checkpoint": (_link_to_a_checkpoint, "is not a directory"),
}


@pytest.mark.parametrize("case", UNRELATED)
def test_overwrite_refuses_what_is_not_a_checkpoint_directory(sources, tmp_path, case):
    make, fragment = UNRELATED[case]
    work = tmp_path / "work"
    work.mkdir()
    make(work / "out")
    before = tree_digest(work)
    result = convert_cli(sources.new, work / "out", "--overwrite")
    assert_one_line_error(result, 2, "gau-alpha convert: error: destination", fragment, "not replacing it")
    assert tree_digest(work) == before


def test_existing_destination_and_bad_arguments_are_exit_2(sources, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    assert_one_line_error(convert_cli(sources.new, out), 2, "already exists; pass --overwrite")
    assert_one_line_error(convert_cli(sources.new, tmp_path / "x", "--max-position-embeddings", "64"), 2,
                   "--max-position-embeddings applies to --to torch only")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(convert_cli(tmp_path / "empty", tmp_path / "x"), 2, "holds no checkpoint; expected one of",
                   "tf1: TF1 checkpoint")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "out"] and not any(out.iterdir())


def test_a_checkpoint_of_another_depth_is_one_line_exit_2(sources, tmp_path):
    src = shutil.copytree(sources.new, tmp_path / "src")
    (src / "bert_config.json").write_text(json.dumps(dict(helpers.TINY_CONFIG, num_hidden_layers=1)))
    assert_one_line_error(convert_cli(src, tmp_path / "out", to="torch"), 2, "does not hold a GAU-alpha checkpoint",
                   "it has 2 layers, the config says num_hidden_layers 1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


# ------------------------------------------------------------------ NaN / Inf
@pytest.fixture(scope="module")
def nonfinite_source(sources, tmp_path_factory):
    src = shutil.copytree(sources.new, tmp_path_factory.mktemp("nonfinite") / "src")
    tensors = read_tf1_checkpoint(src)
    tensors[NAN_TENSOR][3, :5] = np.nan
    tensors[INF_TENSOR][7] = -np.inf
    write_tf1_checkpoint(src / "bert_model.ckpt", tensors)
    return SimpleNamespace(path=src, tensors=tensors)


def test_nonfinite_tensors_are_refused_naming_them(nonfinite_source, tmp_path):
    result = convert_cli(nonfinite_source.path, tmp_path / "out", to="torch")
    assert_one_line_error(result, 2, "NaN or infinite values in 2 tensor(s)", "%s (5 of " % NAN_TENSOR,
                   "%s (1 of 32 values)" % INF_TENSOR, "--allow-nonfinite")
    assert list(tmp_path.iterdir()) == []


def test_allow_nonfinite_converts_them_bit_for_bit_with_a_warning(nonfinite_source, tmp_path):
    result = convert_cli(nonfinite_source.path, tmp_path / "out", "--allow-nonfinite", to="torch")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("gau-alpha convert: warning:")]
    assert len(warnings) == 1 and NAN_TENSOR in warnings[0] and INF_TENSOR in warnings[0]
    assert "Traceback" not in result.stderr
    converted = read_checkpoint(tmp_path / "out").tensors
    assert sorted(converted) == sorted(nonfinite_source.tensors)
    for name, value in nonfinite_source.tensors.items():
        assert converted[name].tobytes() == value.tobytes(), name


# ------------------------------------------------------------------ the `checkpoint` file
@pytest.mark.parametrize("pointer", ["absolute", "outside"])
def test_a_checkpoint_file_pointing_elsewhere_is_not_followed(sources, tmp_path, pointer):
    """The source holds its own checkpoint under another prefix, and a ``checkpoint`` file
    naming a checkpoint in another directory: that other checkpoint must never be converted."""
    elsewhere = shutil.copytree(sources.old, tmp_path / "elsewhere")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("bert_config.json", "vocab.txt"):
        shutil.copy(sources.new / name, src / name)
    for path in sources.new.glob("bert_model.ckpt.*"):
        shutil.copy(path, src / path.name.replace("bert_model.ckpt", "model.ckpt-100"))
    target = str(elsewhere / "bert_model.ckpt") if pointer == "absolute" else "../elsewhere/bert_model.ckpt"
    (src / "checkpoint").write_text('model_checkpoint_path: "%s"\nall_model_checkpoint_paths: "%s"\n'
                                    % (target, target))
    result = convert_cli(src, tmp_path / "out", to="torch")
    assert_one_line_error(result, 2, "checkpoint", str(src))
    assert not (tmp_path / "out").exists() and temporaries(tmp_path) == []


# ------------------------------------------------------------------ Ctrl-C and kill -9
def test_ctrl_c_exits_130_and_leaves_nothing(sources, tmp_path):
    """Ctrl-C once the weights are written, while they are read back. (Not earlier: while
    tf-keras builds its first layer, TensorFlow's C++ ``nest.flatten`` swallows a
    KeyboardInterrupt raised in an ``isinstance`` check, and the run simply completes.)"""
    process = start_cli(["convert", sources.new, tmp_path / "out", "--to", "keras"])
    assert wait_until(lambda: exists_under(tmp_path, ".out.pid*.partial", "model.weights.h5"), process), \
        process.communicate()
    code, out, err = interrupt(process, signal.SIGINT)
    assert_one_line_error(SimpleNamespace(returncode=code, stderr=err), 130, "gau-alpha convert: interrupted")
    assert list(tmp_path.iterdir()) == []


def test_kill_9_at_three_moments_then_the_rerun_gives_the_uninterrupted_result(sources, tmp_path):
    """Convert the new checkpoint over an old one (``--overwrite``) and kill -9 (1) once the
    staging directory exists, (2) once the weights are written there (while they are read back
    and compared), (3) at a random time. After each kill the old directory is there byte for
    byte (or, after (3), possibly the complete new one), and the next command removes the
    killed run's leftovers; the final rerun writes exactly what an uninterrupted run writes."""
    rng = random.Random(SEED)
    started = time.monotonic()
    reference = convert_cli(sources.new, tmp_path / "reference")
    duration = time.monotonic() - started
    assert reference.returncode == 0, reference.stderr
    work = tmp_path / "work"
    work.mkdir()
    dest = work / "out"
    shutil.copytree(sources.old, dest)
    old = tree_digest(work)
    new = {"out": "dir", **{"out/" + k: v for k, v in tree_digest(tmp_path / "reference").items()}}
    args = ["convert", sources.new, dest, "--to", "keras", "--overwrite"]

    def staging_exists():
        process = start_cli(args)
        assert wait_until(lambda: any(work.glob(".out.pid*.partial")), process), process.communicate()
        return process

    def weights_written():
        process = start_cli(args)
        assert wait_until(lambda: exists_under(work, ".out.pid*.partial", "model.weights.h5"), process), \
            process.communicate()
        return process

    def random_time():  # anywhere, even after the swap
        process = start_cli(args)
        time.sleep(rng.uniform(0.0, duration))
        return process

    kill_at_moments((staging_exists, weights_written, random_time), work, release_part, old, new,
                    anytime=(random_time,))
    rerun = run_cli(args, timeout=180)
    assert rerun.returncode == 0, rerun.stderr
    assert tree_digest(work) == new  # every file as uninterrupted, nothing else
    assert temporaries(work) == []

