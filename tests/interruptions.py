"""Helpers of the safety tests: snapshots of directory trees, real ``gau-alpha`` processes
started in the background, and killing them at a chosen moment."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Dict, List, Sequence

import helpers
from gau_alpha.atomic import owner_pid, stale_leftovers


def tree_digest(root: Path) -> Dict[str, str]:
    """Relative path -> ``sha256:<hex>`` of every file, ``dir`` of every directory and
    ``link:<target>`` of every symbolic link under ``root`` (not following links)."""
    root = Path(root)
    state: Dict[str, str] = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(directory) / name
            key = str(path.relative_to(root))
            if path.is_symlink():
                state[key] = "link:" + os.readlink(path)
            elif path.is_dir():
                state[key] = "dir"
            else:
                state[key] = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def temporaries(root: Path) -> List[str]:
    """Every pid-tagged temporary name (``gau_alpha.atomic``) under ``root``, live or stale."""
    return sorted(
        str(Path(d, n).relative_to(root)) for d, dirs, files in os.walk(root) for n in dirs + files
        if owner_pid(n) is not None
    )


def exists_under(parent: Path, pattern: str, name: str) -> bool:
    """Whether a file ``name`` exists anywhere below the entries of ``parent`` matching
    ``pattern`` (directories that vanish meanwhile count as not holding it)."""
    try:
        return any(any(entry.rglob(name)) for entry in Path(parent).glob(pattern))
    except OSError:
        return False


def start_cli(args: Sequence[str]) -> subprocess.Popen:
    """``gau-alpha ARGS`` in the background, as :func:`helpers.run_cli` runs it."""
    return subprocess.Popen([str(helpers.VENV_BIN / "gau-alpha"), *map(str, args)], env=helpers.CLEAN_ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until(condition: Callable[[], bool], process: subprocess.Popen, timeout: float = 60) -> bool:
    """Poll ``condition`` every millisecond; True once it holds, False if ``process`` exits
    first. Fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if process.poll() is not None:
            return condition()
        time.sleep(0.001)
    process.kill()
    raise AssertionError("the moment to interrupt never came within %.0f s" % timeout)


def interrupt(process: subprocess.Popen, sig: int = signal.SIGKILL, timeout: float = 60):
    """Send ``sig`` (if the process still runs) and collect it: ``(returncode, stdout, stderr)``."""
    if process.poll() is None:
        process.send_signal(sig)
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def kill_at_moments(
    moments: Sequence[Callable[[], subprocess.Popen]],
    root: Path,
    part: Callable[[Dict[str, str]], Dict[str, str]],
    old: Dict[str, str],
    new: Dict[str, str],
    anytime: Sequence[Callable[[], subprocess.Popen]] = (),
    after_kill: Callable[[set], None] = lambda left: None,
) -> None:
    """``kill -9`` a command at each moment in turn and check what it leaves under ``root``.

    Each ``moment()`` starts the command and returns it once its moment has come. After each
    kill, ``part`` of the tree (its :func:`tree_digest`) is the ``old`` one byte for byte —
    for a moment in ``anytime``, which may fall after the swap, the old one or ``new`` — and
    the next command has removed the previous kill's stale leftovers, while this kill left
    some (``after_kill`` gets their relative paths).
    """
    left: set = set()
    for moment in moments:
        code, _, err = interrupt(moment())
        after = tree_digest(root)
        if moment in anytime:
            assert part(after) in (part(old), new)
            continue
        assert code == -signal.SIGKILL, err
        assert part(after) == part(old), moment.__name__  # the old directory, byte for byte
        assert not left & set(after), "the next command did not remove the killed run's leftovers"
        left = {str(p.relative_to(root)) for p in stale_leftovers(root)}
        assert left, "kill -9 left no staging directory to clean up"
        after_kill(left)
