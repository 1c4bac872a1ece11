"""Atomic file and directory writes (the project's one writer of files, JSON included): a reader never sees a half-written output.

Files are written to a temporary file in the destination's directory, flushed, synced and
renamed over the destination (``os.replace``); on any error the temporary file is removed and
the destination is left as it was. Directories are built elsewhere (a staging directory on
the same file system) and swapped in by :func:`replace_directory`.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator, Union

PathLike = Union[str, os.PathLike]


@contextlib.contextmanager
def atomic_file(path: PathLike, mode: str = "wb", **open_kwargs) -> Iterator[IO]:
    """Open a temporary file that replaces ``path`` when the ``with`` block succeeds.

    Example::

        with atomic_file("out.json", "w", encoding="utf-8") as handle:
            handle.write(text)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".%s." % path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text_atomic(path: PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` (``\\n`` newlines) to ``path`` atomically."""
    with atomic_file(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
    return Path(path)


def write_json(path: PathLike, value: Any, *, indent: int = 2) -> Path:
    """Write ``value`` as UTF-8 JSON (non-ASCII kept, a final newline) to ``path`` atomically."""
    return write_text_atomic(path, json.dumps(value, ensure_ascii=False, indent=indent) + "\n")


def replace_directory(source: PathLike, dest: PathLike) -> None:
    """Move the finished directory ``source`` to ``dest``.

    An existing ``dest`` is moved aside first and deleted only once ``source`` is in place;
    if the final rename fails, the old ``dest`` is put back.
    """
    source, dest = Path(source), Path(dest)
    if not dest.exists() and not dest.is_symlink():
        os.replace(source, dest)
        return
    aside = Path(tempfile.mkdtemp(prefix=".%s.old-" % dest.name, dir=dest.parent))
    old = aside / dest.name
    os.replace(dest, old)
    try:
        os.replace(source, dest)
    except BaseException:
        os.replace(old, dest)
        raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)
