"""``gau-alpha convert SRC DST --to {tf1,keras,torch} [--overwrite] [--allow-nonfinite]``.

Also ``python -m gau_alpha.convert SRC DST --to ...`` (the same command). Errors take the
command line's one error path (:mod:`gau_alpha.cli`): one line on stderr, exit status 2 for
bad input (a bad source checkpoint, bad arguments, an existing destination), 1 when the
conversion itself fails (writing, reading back, verifying; a full disk), 130 on Ctrl-C.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from gau_alpha.argtypes import positive_int
from gau_alpha.convert import torch_format
from gau_alpha.convert.converter import FORMATS
from gau_alpha.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``convert`` arguments to ``parser``."""
    parser.add_argument(
        "src", metavar="SRC", help="checkpoint directory (format detected from its files) or TF1 prefix"
    )
    parser.add_argument("dst", metavar="DST", help="directory to create")
    parser.add_argument("--to", required=True, choices=sorted(FORMATS), help="format of DST")
    parser.add_argument(
        "--overwrite", action="store_true",
        help="replace DST if it is a checkpoint directory of one format (or empty); other directories are kept",
    )
    parser.add_argument(
        "--allow-nonfinite", action="store_true",
        help="convert tensors holding NaN or infinite values (a warning) instead of refusing them",
    )
    parser.add_argument(
        "--max-position-embeddings",
        type=positive_int,
        default=None,
        metavar="N",
        help="torch only: the port's RoPE table length (default %d)" % torch_format.DEFAULT_MAX_POSITION_EMBEDDINGS,
    )
    parser.epilog = "formats:\n" + "\n".join("  %-6s %s" % (n, m.DESCRIPTION) for n, m in FORMATS.items())
    parser.formatter_class = argparse.RawDescriptionHelpFormatter


def run(args: argparse.Namespace) -> int:
    """Convert and print the summary (warnings also on stderr); 0 on success.

    Raises:
        ConfigError: ``--max-position-embeddings`` without ``--to torch``.
        ConversionError: see :func:`gau_alpha.convert.converter.convert`.
    """
    from gau_alpha.convert.converter import convert

    if args.max_position_embeddings is not None and args.to != "torch":
        raise ConfigError("the option --max-position-embeddings applies to --to torch only")
    report = convert(
        args.src,
        args.dst,
        args.to,
        overwrite=args.overwrite,
        max_position_embeddings=args.max_position_embeddings,
        allow_nonfinite=args.allow_nonfinite,
    )
    print(report, flush=True)
    for warning in report.warnings:
        print("gau-alpha convert: warning: %s" % warning, file=sys.stderr, flush=True)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m gau_alpha.convert ARGS``: ``gau-alpha convert ARGS``."""
    from gau_alpha.cli import main as cli_main

    return cli_main(["convert", *(sys.argv[1:] if argv is None else argv)])
