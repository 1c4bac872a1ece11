"""The ``gau-alpha`` command.

Each sub-command lives in its own module, which exposes
``add_arguments(parser: argparse.ArgumentParser) -> None`` and
``run(args: argparse.Namespace) -> int``. Modules are imported only when their
command runs, so ``gau-alpha --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

# command name -> (module, one-line help)
COMMANDS = {
    "convert": ("gau_alpha.convert.cli", "convert a checkpoint between tf1, keras and torch layouts"),
    "verify": ("gau_alpha.weights", "check a downloaded release directory against the manifest"),
    "download": ("gau_alpha.weights", "download and unpack the released checkpoint"),
    "clue": ("gau_alpha.clue.runner", "fine-tune and evaluate on a CLUE task"),
    "fill-mask": ("gau_alpha.fill_mask", "predict the [MASK] characters of a sentence"),
    "bench": ("benchmarks.run", "run the speed and memory benchmark"),
}


def _load(name: str):
    module_name = COMMANDS[name][0]
    if module_name.startswith("benchmarks."):
        # benchmarks/ lives beside the package in the clone the project is installed from
        from gau_alpha.paths import REPO_ROOT

        if str(REPO_ROOT) not in sys.path:
            sys.path.insert(0, str(REPO_ROOT))
    module = importlib.import_module(module_name)
    # A module that serves several commands names its entry points per command.
    suffix = name.replace("-", "_")
    add = getattr(module, f"add_{suffix}_arguments", None) or module.add_arguments
    run = getattr(module, f"run_{suffix}", None) or module.run
    return add, run


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="gau-alpha", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        args = parser.parse_args(argv)  # prints help or the error for an unknown command
        parser.print_help()
        return 2
    name = argv[0]
    add, run = _load(name)
    command_parser = argparse.ArgumentParser(prog=f"gau-alpha {name}", description=COMMANDS[name][1])
    add(command_parser)
    args = command_parser.parse_args(argv[1:])
    return int(run(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
