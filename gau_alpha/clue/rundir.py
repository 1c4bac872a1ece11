"""The output directory of a ``gau-alpha clue`` run: one run at a time, nothing of an
earlier run destroyed before the new run has succeeded, no leftovers.

A run directory ``R`` holds the entries of one run (:data:`RUN_ENTRIES`)::

    checkpoints/  best/  submission/  random-model/  metrics.json  metrics.csv  training_curve.png

plus ``.gau-alpha.lock`` (:mod:`gau_alpha.locking`; it stays, and is harmless) and any
files of the user's, which are never touched. :class:`RunDirectory` is the mechanics;
the pipeline decides what to do (:func:`gau_alpha.clue.pipeline.run_clue`):

1. **lock** (:meth:`RunDirectory.lock`): ``directory_lock(R)`` is held for the whole run
   by the process that writes (the chief; the other workers of a ``multiworker`` run only
   read ``R`` and take no lock). A second run on ``R`` fails at once, naming the holder's pid.
2. **recover** (done by :meth:`~RunDirectory.lock`): an earlier run that an interrupted
   ``--overwrite`` had set aside (``R/.previous-run.pid<PID>.<random>.aside/``; only the
   lock's holder makes one, so any found now is a dead process's) is put back; then every stale temporary of a dead process in the tree is removed
   (:func:`gau_alpha.atomic.remove_stale`).
3. **set aside** (:meth:`~RunDirectory.set_aside`): a fresh run over an earlier run's
   entries moves them into ``R/.previous-run.pid<PID>.<random>.aside/`` (a rename: same
   file system, nothing copied), with ``entries.json`` listing what is being moved.
4. **commit** (:meth:`~RunDirectory.commit`): once the new run has written its first
   checkpoint, the set-aside run is deleted.
5. **roll back** (:meth:`~RunDirectory.rollback`, on any failure before the commit,
   Ctrl-C included): what the new run wrote is removed and the earlier run is moved back,
   so ``R`` is as it was. After ``kill -9`` the next ``gau-alpha clue`` on ``R`` does
   this (step 2).

The set-aside directory's suffix is ``.aside``, not ``.old``: the generic sweeps of
:mod:`gau_alpha.atomic` and ``gau-alpha clean`` delete stale ``.old`` directories, and this
one holds the only copy of an earlier run until the new run commits.

Deleting (:func:`gau_alpha.atomic.discard`) renames first, so an interrupted deletion leaves a
pid-tagged ``.trash`` directory that the next sweep removes, never a half-deleted entry under
its name.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator, List, Optional, Sequence

from gau_alpha.atomic import PathLike, discard, remove_stale, temp_name_prefix, write_json
from gau_alpha.locking import directory_lock

from .reporting import CURVE_PNG, METRICS_CSV, METRICS_JSON

__all__ = [
    "CHECKPOINTS",
    "BEST_DIR",
    "SUBMISSION_DIR",
    "RANDOM_MODEL_DIR",
    "RUN_ENTRIES",
    "ASIDE_NAME",
    "RunDirectory",
    "claim_run_directory",
]

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
BEST_DIR = "best"
SUBMISSION_DIR = "submission"
RANDOM_MODEL_DIR = "random-model"
RUN_ENTRIES = (CHECKPOINTS, BEST_DIR, SUBMISSION_DIR, RANDOM_MODEL_DIR, METRICS_JSON, METRICS_CSV, CURVE_PNG)
"""What a run writes into its directory (everything else there is left alone)."""
ASIDE_NAME = "previous-run"
ASIDE_SUFFIX = ".aside"
_MANIFEST = "entries.json"


_ASIDE = re.compile(r"^\.%s\.pid(\d+)\.[^./]+%s$" % (re.escape(ASIDE_NAME), re.escape(ASIDE_SUFFIX)))


def aside_owner(path: Path) -> Optional[int]:
    """The pid of the run that set ``path`` aside, or None if it is no set-aside run."""
    match = _ASIDE.match(path.name)
    return int(match.group(1)) if match else None


class RunDirectory:
    """One run's hold on its output directory (see the module docstring).

    Args:
        path: the run directory ``R``.
        writer: whether this process writes ``R`` (the chief). Other processes only read
            it: every method that would write is a no-op for them.

    Attributes:
        aside: the directory holding the earlier run set aside, until commit or rollback.
        committed: the run has written its first checkpoint (or resumes one): a failure
            from now on leaves ``R`` as it is, to be resumed.
        restored: :meth:`rollback` put a set-aside earlier run back.
        notes: what recovering did, for the user.
    """

    def __init__(self, path: PathLike, writer: bool = True) -> None:
        self.path = Path(path)
        self.writer = writer
        self.locked = False
        self.aside: Optional[Path] = None
        self.committed = False
        self.restored = False
        self.notes: List[str] = []
        self._kept: set = set()
        self._stack = contextlib.ExitStack()

    def entries(self) -> List[str]:
        """The :data:`RUN_ENTRIES` present in ``R``, in that order."""
        return [name for name in RUN_ENTRIES if (self.path / name).exists() or (self.path / name).is_symlink()]

    # ------------------------------------------------------------------ lock and recover
    def lock(self) -> None:
        """Take ``R``'s lock (creating ``R``) if this process writes and has not yet; then
        recover from killed runs (put a set-aside run back, remove stale temporaries).

        Raises:
            DirectoryLockedError: another live process holds the lock (exit status 1).
            OSError: ``R`` cannot be created.
        """
        if self.locked or not self.writer:
            return
        self._stack.enter_context(directory_lock(self.path, "another gau-alpha clue run"))
        self.locked = True
        # Only the lock's holder sets a run aside, so every set-aside run found now belongs
        # to a dead process (whatever its pid is used for today).
        for aside in sorted(self.path.iterdir()):
            pid = aside_owner(aside)
            if pid is not None and aside.is_dir():
                if self._restore(aside):
                    self.notes.append("put back the earlier run that an interrupted --overwrite (pid %d) had set aside"
                                      % pid)
        removed = remove_stale(self.path, recursive=True)
        if removed:
            self.notes.append("removed %d leftover(s) of killed runs: %s"
                              % (len(removed), ", ".join(str(p.relative_to(self.path)) for p in removed)))
        self._kept = set(self.entries())

    def release(self) -> None:
        """Release the lock (the ``with`` block of :func:`claim_run_directory` does this)."""
        self._stack.close()
        self.locked = False

    # ------------------------------------------------------------------ replacing an earlier run
    def set_aside(self, names: Sequence[str]) -> None:
        """Move the earlier run's entries ``names`` into ``R/.previous-run.pid<PID>.<random>.aside/``.

        They come back on :meth:`rollback` and are deleted on :meth:`commit`.
        """
        if not self.writer or not names:
            return
        assert self.locked and self.aside is None
        aside = Path(tempfile.mkdtemp(prefix=temp_name_prefix(ASIDE_NAME), suffix=ASIDE_SUFFIX, dir=self.path))
        write_json(aside / _MANIFEST, list(names))
        self.aside = aside
        for name in names:
            os.replace(self.path / name, aside / name)
            self._kept.discard(name)

    def commit(self) -> None:
        """The run has a checkpoint of its own: delete the set-aside run (if any); from now
        on a failure leaves ``R`` for ``--resume``."""
        if self.committed:
            return
        self.committed = True
        if self.writer and self.aside is not None:
            discard(self.aside)
            self.aside = None

    def rollback(self) -> None:
        """Before the commit: remove what this run wrote and put the set-aside run back.
        Never raises (a failure is logged; the next run on ``R`` finishes the job)."""
        if not self.writer or not self.locked or self.committed:
            return
        try:
            for name in self.entries():
                if name not in self._kept:
                    discard(self.path / name)
            if self.aside is not None:
                self.restored = self._restore(self.aside) > 0
                self.aside = None
        except OSError as error:  # pragma: no cover - disk trouble while cleaning up
            logger.warning("could not restore %s (%s); the next gau-alpha clue run on it will", self.path, error)

    def _restore(self, aside: Path) -> int:
        """Move the entries of ``aside`` back into ``R``: entries the failed run made (those
        not in the manifest) are removed; entries listed in the manifest but not in
        ``aside`` were never moved (the move was interrupted) and stay; without a manifest
        nothing was moved. Idempotent: safe to repeat after a kill. Returns how many
        entries were moved back."""
        try:
            names = json.loads((aside / _MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            names = None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            # The manifest is written (atomically) before anything moves: without it,
            # nothing was moved and R still holds the earlier run untouched.
            discard(aside)
            return 0
        for name in self.entries():
            if name not in names:
                discard(self.path / name)  # the failed run's own
        moved = 0
        for name in names:
            if name not in RUN_ENTRIES or not ((aside / name).exists() or (aside / name).is_symlink()):
                continue
            discard(self.path / name)
            os.replace(aside / name, self.path / name)
            moved += 1
        discard(aside)
        return moved


@contextlib.contextmanager
def claim_run_directory(path: PathLike, writer: bool = True) -> Iterator[RunDirectory]:
    """A :class:`RunDirectory` for the ``with`` block: locked at once if ``R`` exists
    (call :meth:`RunDirectory.lock` later otherwise, once the inputs are validated, so a
    run with bad inputs creates nothing), rolled back if the block fails before the
    commit, unlocked at the end."""
    run_dir = RunDirectory(path, writer)
    try:
        if run_dir.path.is_dir():
            run_dir.lock()
        try:
            yield run_dir
        except BaseException:
            run_dir.rollback()
            raise
    finally:
        run_dir.release()
