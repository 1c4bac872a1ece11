"""``gau-alpha clean DIR``: list and remove what killed processes left behind.

Temporary files and staging directories carry their owner's pid in their names (see
:mod:`gau_alpha.atomic`); those whose process is dead are leftovers of an interrupted
``convert``, ``download`` or ``clue``. Nothing else is touched.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import List

from gau_alpha.atomic import is_alive, remove_leftovers, stale_leftovers
from gau_alpha.errors import ConfigError

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``gau-alpha clean``."""
    parser.add_argument("directory", type=Path, help="directory to search (its whole tree)")
    parser.add_argument("--dry-run", action="store_true", help="only list the leftovers")


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    return path.stat().st_size if path.exists() else 0


def set_aside_runs(directory: Path) -> List[Path]:
    """Earlier CLUE runs set aside by a ``gau-alpha clue --overwrite`` that was killed (their
    owner is dead): kept, since the next ``gau-alpha clue`` on their run directory restores them."""
    from gau_alpha.clue.rundir import ASIDE_NAME, ASIDE_SUFFIX, aside_owner

    found = []
    for path in sorted(directory.rglob(".%s.pid*%s" % (ASIDE_NAME, ASIDE_SUFFIX))):
        owner = aside_owner(path)
        if owner is not None and not is_alive(owner):
            found.append(path)
    return found


def run(args: argparse.Namespace) -> int:
    """Print each leftover with its size; remove them unless ``--dry-run``."""
    if not args.directory.is_dir():
        raise ConfigError("%s is not a directory" % args.directory)
    found = stale_leftovers(args.directory, recursive=True)
    total = 0
    for path in found:
        size = _size(path)
        total += size
        print("%s  %s" % (path, "%d bytes" % size))
    if not args.dry_run:
        remove_leftovers(found)
    verb = "found" if args.dry_run else "removed"
    print("%s %d leftover(s), %d bytes" % (verb, len(found), total))
    for kept in set_aside_runs(args.directory):
        print("kept %s: an earlier CLUE run set aside by a killed 'gau-alpha clue --overwrite'; "
              "the next 'gau-alpha clue' on %s puts it back" % (kept, kept.parent))
    return 0
