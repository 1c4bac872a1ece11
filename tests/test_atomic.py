"""Atomic writes, pid-tagged temporary names, stale-leftover cleaning and the directory lock,
with real processes (a killed writer, a second lock holder)."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gau_alpha.atomic import (
    atomic_file, owner_pid, remove_stale, replace_directory, stale_leftovers, staging_directory, write_json,
)
from gau_alpha.errors import RunError
from gau_alpha.locking import DirectoryLockedError, directory_lock


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"a": 1})
    with pytest.raises(ZeroDivisionError):
        with atomic_file(target, "w", encoding="utf-8") as handle:
            handle.write("partial")
            1 / 0
    assert json.loads(target.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_temporary_names_carry_the_owner_pid(tmp_path):
    with atomic_file(tmp_path / "x.bin") as handle:
        temporaries = [p for p in tmp_path.iterdir() if p.name != "x.bin"]
        assert len(temporaries) == 1 and owner_pid(temporaries[0]) == os.getpid()
        handle.write(b"1")
    with staging_directory(tmp_path / "dir") as staging:
        assert owner_pid(staging) == os.getpid() and staging.name.endswith(".partial")
    assert not staging.exists()
    assert owner_pid(tmp_path / "x.bin") is None


def test_stale_leftovers_of_dead_processes_are_found_and_removed(tmp_path):
    pid = dead_pid()
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    stale_file = tmp_path / "run" / (".metrics.json.pid%d.abc123.tmp" % pid)
    stale_dir = tmp_path / "run" / "checkpoints" / (".epoch-2.pid%d.k2j3.partial" % pid)
    live_file = tmp_path / "run" / (".metrics.json.pid%d.zz.tmp" % os.getpid())
    ordinary = tmp_path / "run" / ".hidden.tmp"
    stale_file.write_bytes(b"x" * 10)
    stale_dir.mkdir()
    (stale_dir / "weights.npz").write_bytes(b"y" * 20)
    live_file.write_bytes(b"z")
    ordinary.write_bytes(b"w")
    assert stale_leftovers(tmp_path / "run") == [stale_file]
    assert stale_leftovers(tmp_path, recursive=True) == sorted([stale_file, stale_dir])
    assert remove_stale(tmp_path, recursive=True) == sorted([stale_file, stale_dir])
    assert not stale_file.exists() and not stale_dir.exists()
    assert live_file.exists() and ordinary.exists()


def test_the_next_write_in_a_directory_sweeps_its_stale_leftovers(tmp_path):
    stale = tmp_path / (".best.json.pid%d.q1.tmp" % dead_pid())
    stale.write_text("half")
    write_json(tmp_path / "best.json", {"epoch": 1})
    assert not stale.exists()


def test_clean_command_lists_then_removes(tmp_path, capsys):
    from gau_alpha.cli import main

    stale = tmp_path / "a" / (".model.pid%d.x.partial" % dead_pid())
    stale.mkdir(parents=True)
    (stale / "f").write_bytes(b"12345")
    assert main(["clean", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert str(stale) in out and "found 1 leftover(s), 5 bytes" in out and stale.exists()
    assert main(["clean", str(tmp_path)]) == 0
    assert "removed 1 leftover(s)" in capsys.readouterr().out and not stale.exists()


def test_replace_directory_swaps_in_and_leaves_nothing_aside(tmp_path):
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "old.txt").write_text("old")
    with staging_directory(tmp_path / "dest") as staging:
        (staging / "new.txt").write_text("new")
        replace_directory(staging, tmp_path / "dest")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest"]
    assert [p.name for p in (tmp_path / "dest").iterdir()] == ["new.txt"]


HOLDER = textwrap.dedent("""
    import sys, time
    from gau_alpha.locking import directory_lock
    with directory_lock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(60)
""")


def _start_holder(directory: Path) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(directory)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_lock_is_refused_naming_the_holder_pid(tmp_path):
    holder = _start_holder(tmp_path)
    try:
        with pytest.raises(DirectoryLockedError, match="pid %d" % holder.pid) as caught:
            with directory_lock(tmp_path):
                pass
        assert isinstance(caught.value, RunError)
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_dies_with_a_killed_holder(tmp_path):
    holder = _start_holder(tmp_path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    started = time.monotonic()
    with directory_lock(tmp_path) as lock:
        assert lock.read_text() == str(os.getpid())
    assert time.monotonic() - started < 5


def test_a_directory_set_aside_by_a_killed_swap_is_put_back(tmp_path):
    """kill -9 between 'old moved aside' and 'new renamed in' leaves no destination; the next
    sweep restores the old directory instead of deleting it."""
    aside = tmp_path / (".release.pid%d.r4nd.old" % dead_pid())
    (aside / "release").mkdir(parents=True)
    (aside / "release" / "vocab.txt").write_text("[PAD]\n")
    partial = tmp_path / (".release.pid%d.r5nd.partial" % dead_pid())
    partial.mkdir()
    remove_stale(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release"]
    assert (tmp_path / "release" / "vocab.txt").read_text() == "[PAD]\n"


def test_an_interrupted_deletion_is_finished_not_restored(tmp_path):
    """discard() renames into a .trash holder first: a killed deletion leaves a stale .trash,
    which the next sweep removes — it never puts the half-deleted entry back."""
    from gau_alpha.atomic import discard

    (tmp_path / "best").mkdir()
    (tmp_path / "best" / "model.npz").write_bytes(b"w")
    discard(tmp_path / "best")
    assert list(tmp_path.iterdir()) == []
    trash = tmp_path / (".best.pid%d.t1.trash" % dead_pid())
    (trash / "best").mkdir(parents=True)
    (trash / "best" / "best.json").write_text("{}")  # model.npz already gone: half-deleted
    assert remove_stale(tmp_path) == [trash]
    assert list(tmp_path.iterdir()) == []


def test_clean_keeps_and_names_only_dead_runs_set_aside_runs(tmp_path, capsys):
    """A CLUE run set aside by a killed ``--overwrite`` is the only copy of that run: clean
    keeps it and says so; one whose owner is alive (a run in progress) is not mentioned."""
    from gau_alpha.cli import main

    dead = tmp_path / "run" / (".previous-run.pid%d.a1.aside" % dead_pid())
    live = tmp_path / "run2" / (".previous-run.pid%d.b2.aside" % os.getpid())
    for directory in (dead, live):
        directory.mkdir(parents=True)
        (directory / "metrics.json").write_text("{}")
    assert main(["clean", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "kept %s" % dead in out and str(live) not in out
    assert (dead / "metrics.json").exists() and (live / "metrics.json").exists()

