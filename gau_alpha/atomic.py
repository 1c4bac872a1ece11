"""Atomic file and directory writes, the project's one writer of files (JSON included).

A reader never sees a half-written output:

- files are written to a temporary file beside the destination, flushed, synced and renamed
  over it (``os.replace``); on any error the temporary file is removed and the destination is
  left as it was (:func:`atomic_file`, :func:`write_text_atomic`, :func:`write_json`);
- directories are assembled in a staging directory beside their destination
  (:func:`staging_directory`) and swapped in by :func:`replace_directory`.

Every temporary name carries the pid of the process that owns it::

    .<name>.pid<PID>.<random>.tmp        a file being written
    .<name>.pid<PID>.<random>.partial    a directory being assembled
    .<name>.pid<PID>.<random>.old        a directory being replaced
    .<name>.pid<PID>.<random>.trash      a file or directory being deleted (:func:`discard`)

so a leftover of a killed process (kill -9, power loss) is recognisable: its pid is dead.
Each new temporary name swept into a directory first removes the dead processes' leftovers
there (:func:`remove_stale`); ``gau-alpha clean DIR`` lists and removes them in a whole tree.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator, List, Union

PathLike = Union[str, os.PathLike]

__all__ = [
    "PathLike",
    "atomic_file",
    "write_text_atomic",
    "write_json",
    "staging_directory",
    "replace_directory",
    "temp_name_prefix",
    "owner_pid",
    "stale_leftovers",
    "remove_stale",
    "remove_leftovers",
    "is_alive",
    "discard",
]

_TEMP_NAME = re.compile(r"^\.(.+)\.pid(\d+)\.[^./]+\.(tmp|partial|old|trash)$")


def temp_name_prefix(name: str) -> str:
    """The prefix of this process's temporary names for ``name`` (``.<name>.pid<PID>.``)."""
    return ".%s.pid%d." % (name, os.getpid())


def owner_pid(path: PathLike) -> Union[int, None]:
    """The pid in a temporary name made here, or None for any other name."""
    match = _TEMP_NAME.match(Path(path).name)
    return int(match.group(2)) if match else None


def is_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (this process counts as alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def stale_leftovers(directory: PathLike, recursive: bool = False) -> List[Path]:
    """Temporary files and directories in ``directory`` whose owning process is dead.

    With ``recursive`` the whole tree is searched (symbolic links are not followed, and a
    stale directory is listed once, not its contents)."""
    directory = Path(directory)
    found: List[Path] = []
    if not directory.is_dir():
        return found
    for root, dirs, files in os.walk(directory):
        for name in list(dirs) + files:
            pid = owner_pid(name)
            if pid is not None and not is_alive(pid):
                found.append(Path(root) / name)
                if name in dirs:
                    dirs.remove(name)
        if not recursive:
            break
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]
    return sorted(found)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _restore_aside(aside: Path) -> None:
    """A process killed inside :func:`replace_directory`, between moving the old directory
    aside and renaming the new one in, leaves no destination: put the old one back."""
    match = _TEMP_NAME.match(aside.name)
    if match is None or match.group(3) != "old":
        return
    name = match.group(1)
    dest, old = aside.parent / name, aside / name
    if old.is_dir() and not dest.exists() and not dest.is_symlink():
        os.replace(old, dest)


def remove_leftovers(paths: List[Path]) -> List[Path]:
    """Remove leftovers found by :func:`stale_leftovers` (a directory set aside by a killed
    :func:`replace_directory` whose destination is missing is first put back); returns them."""
    for path in paths:
        _restore_aside(path)
        _remove(path)
    return paths


def remove_stale(directory: PathLike, recursive: bool = False) -> List[Path]:
    """Remove :func:`stale_leftovers` (see :func:`remove_leftovers`) and return them."""
    return remove_leftovers(stale_leftovers(directory, recursive))


@contextlib.contextmanager
def atomic_file(path: PathLike, mode: str = "wb", **open_kwargs) -> Iterator[IO]:
    """Open a temporary file that replaces ``path`` when the ``with`` block succeeds.

    Example::

        with atomic_file("out.json", "w", encoding="utf-8") as handle:
            handle.write(text)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_name_prefix(path.name), suffix=".tmp")
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


@contextlib.contextmanager
def staging_directory(dest: PathLike) -> Iterator[Path]:
    """A new empty directory beside ``dest`` (same file system, mode 0755 less the umask),
    named ``.<dest name>.pid<PID>.<random>.partial``; removed if the ``with`` block fails.

    Move it into place with :func:`replace_directory` inside the block; if it has been
    moved, nothing is removed.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(dest.parent)
    staging = Path(tempfile.mkdtemp(prefix=temp_name_prefix(dest.name), suffix=".partial", dir=dest.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    else:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def discard(path: PathLike) -> None:
    """Delete a file or directory tree so that an interruption never leaves it half-deleted
    under its own name: it is first renamed into ``.<name>.pid<PID>.<random>.trash`` beside it
    (a stale one is removed by the next sweep, never put back)."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    holder = Path(tempfile.mkdtemp(prefix=temp_name_prefix(path.name), suffix=".trash", dir=path.parent))
    try:
        os.replace(path, holder / path.name)
    finally:
        shutil.rmtree(holder, ignore_errors=True)


def replace_directory(source: PathLike, dest: PathLike) -> None:
    """Move the finished directory ``source`` to ``dest``.

    An existing ``dest`` is moved aside first (``.<name>.pid<PID>.<random>.old``) and deleted
    only once ``source`` is in place; if the final rename fails, the old ``dest`` is put back.
    """
    source, dest = Path(source), Path(dest)
    if not dest.exists() and not dest.is_symlink():
        os.replace(source, dest)
        return
    aside = Path(tempfile.mkdtemp(prefix=temp_name_prefix(dest.name), suffix=".old", dir=dest.parent))
    old = aside / dest.name
    os.replace(dest, old)
    try:
        os.replace(source, dest)
    except BaseException:
        os.replace(old, dest)
        raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)
