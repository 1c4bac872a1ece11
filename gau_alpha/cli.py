"""The ``gau-alpha`` command.

Each sub-command lives in its own module, which exposes
``add_arguments(parser: argparse.ArgumentParser) -> None`` and
``run(args: argparse.Namespace) -> int`` (or ``add_<name>_arguments``/``run_<name>`` when one
module serves several commands). Modules are imported only when their command runs, so
``gau-alpha --help`` imports no TensorFlow.

Every command reports an expected failure (:class:`gau_alpha.errors.GauAlphaError`, an
``OSError``) as one line on stderr and exits with 2 (bad input) or 1 (a failed run); Ctrl-C
exits with 130. ``--debug`` shows the traceback instead; ``--verbose`` lets TensorFlow's
C++ start-up messages through (they are off by default).
"""
from __future__ import annotations

import argparse
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence, Tuple

# command name -> (module, one-line help)
COMMANDS = {
    "convert": ("gau_alpha.convert.cli", "convert a checkpoint between tf1, keras and torch layouts"),
    "verify": ("gau_alpha.release.verify", "check a downloaded release directory against the manifest"),
    "download": ("gau_alpha.release.download", "download and unpack the released checkpoint"),
    "clue": ("gau_alpha.clue.runner", "fine-tune and evaluate on a CLUE task"),
    "predict": ("gau_alpha.deploy.predict", "predict with a fine-tuned CLUE run on new records"),
    "export": ("gau_alpha.deploy.export", "export a fine-tuned CLUE run to SavedModel or ONNX"),
    "pretrain": ("gau_alpha.pretrain.cli", "pre-train with whole-word masked language modelling"),
    "fill-mask": ("gau_alpha.fill_mask", "predict the [MASK] characters of a sentence"),
    "clean": ("gau_alpha.clean", "remove the temporary files of killed runs in a directory tree"),
    "bench": (None, "run the speed and memory benchmark (from a source checkout)"),
}
GLOBAL_FLAGS = ("--verbose", "--debug")


def _load(name: str) -> Tuple[Callable, Callable]:
    module = importlib.import_module(COMMANDS[name][0])
    suffix = name.replace("-", "_")
    add = getattr(module, f"add_{suffix}_arguments", None) or module.add_arguments
    run = getattr(module, f"run_{suffix}", None) or module.run
    return add, run


def _run_bench(argv: Sequence[str]) -> int:
    """The benchmarks are development tools that live beside the package in a checkout
    (they use the test oracles): run them as ``python -m benchmarks.run`` from it."""
    if not (Path.cwd() / "benchmarks" / "run.py").is_file():
        raise _UsageError("gau-alpha bench runs from a source checkout: cd into the clone "
                          "(no benchmarks/run.py in %s)" % Path.cwd())
    return subprocess.call([sys.executable, "-m", "benchmarks.run", *argv])


class _UsageError(Exception):
    pass


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line (exit 2), like every other
    expected failure of the command line."""

    def error(self, message: str):
        self.exit(2, "%s: error: %s (see %s --help)\n" % (self.prog, message, self.prog))


MAX_LINE = 600


def _report(command: str, message: str) -> None:
    """Print an error as one line: a multi-line message (a list of problems) is joined with
    ``; `` while it stays short, else cut after its first line with a count of the rest."""
    lines = [re.sub(r"^\s*(?:- )?", "", line).rstrip() for line in message.strip().splitlines() if line.strip()]
    lines = lines or ["failed"]
    text = lines[0] if len(lines) == 1 else "%s: %s" % (lines[0].rstrip(":"), "; ".join(lines[1:]))
    if len(text) > MAX_LINE:
        text = "%s ... (%d more; rerun with --debug for all)" % (lines[0][:MAX_LINE], len(lines) - 1)
    print("gau-alpha %s: error: %s" % (command, text), file=sys.stderr, flush=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in argv
    debug = "--debug" in argv
    argv = [a for a in argv if a not in GLOBAL_FLAGS]
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
        os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    parser = argparse.ArgumentParser(prog="gau-alpha", description=__doc__.splitlines()[0],
                                     epilog="global flags: --verbose (TensorFlow's log), --debug (tracebacks)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        parser.parse_args(argv)  # prints help or the error for an unknown command
        parser.print_help()
        return 2
    name = argv[0]
    from gau_alpha import interrupts

    interrupts.install()
    stop_filter = None
    if not verbose and name != "bench":
        from gau_alpha.quiet import filter_native_log

        stop_filter = filter_native_log()
    try:
        return _run_command(name, argv, debug)
    finally:
        if stop_filter is not None:
            stop_filter()


def _run_command(name: str, argv: Sequence[str], debug: bool) -> int:
    from gau_alpha.errors import GauAlphaError

    try:
        if name == "bench":
            return _run_bench(argv[1:])
        add, run = _load(name)
        command_parser = OneLineParser(prog=f"gau-alpha {name}", description=COMMANDS[name][1])
        add(command_parser)
        args = command_parser.parse_args(argv[1:])
        return int(run(args) or 0)
    except KeyboardInterrupt:
        if debug:
            raise
        print("\ngau-alpha %s: interrupted" % name, file=sys.stderr, flush=True)
        return 130
    except (GauAlphaError, OSError, _UsageError) as error:
        if debug:
            raise
        _report(name, str(error) or type(error).__name__)
        return getattr(error, "exit_code", 1 if isinstance(error, OSError) else 2)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
