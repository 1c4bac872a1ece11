"""One run at a time per output directory: an exclusive OS lock (``fcntl.flock``).

The lock lives in ``<directory>/.gau-alpha.lock`` and holds the owner's pid (for the error
message only). The kernel releases a ``flock`` when its process dies, however it dies, so a
killed run never leaves a lock behind; the file itself may stay and is harmless.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path
from typing import Iterator

from gau_alpha.atomic import PathLike
from gau_alpha.errors import RunError

__all__ = ["LOCK_FILE", "DirectoryLockedError", "directory_lock"]

LOCK_FILE = ".gau-alpha.lock"


class DirectoryLockedError(RunError):
    """Another live process holds the directory's lock."""

    exit_code = 1


@contextlib.contextmanager
def directory_lock(directory: PathLike, purpose: str = "a run") -> Iterator[Path]:
    """Hold ``directory``'s exclusive lock for the ``with`` block (creating the directory).

    Raises:
        DirectoryLockedError: another process holds it (naming its pid), at once.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            raise DirectoryLockedError(
                "%s is in use by %s (pid %s); wait for it to finish or use another directory"
                % (directory, purpose, holder)
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the lock
