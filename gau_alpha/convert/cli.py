"""``gau-alpha convert SRC DST --to {tf1,keras,torch} [--overwrite]``.

Also ``python -m gau_alpha.convert SRC DST --to ...``. Exit status 0 on success, 1 when the
checkpoint cannot be converted (the message names the file and variables), 2 for bad usage.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from gau_alpha.convert import torch_format
from gau_alpha.convert.converter import FORMATS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``convert`` arguments to ``parser``."""
    parser.add_argument(
        "src", metavar="SRC", help="checkpoint directory (format detected from its files) or TF1 prefix"
    )
    parser.add_argument("dst", metavar="DST", help="directory to create")
    parser.add_argument("--to", required=True, choices=sorted(FORMATS), help="format of DST")
    parser.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    parser.add_argument(
        "--max-position-embeddings",
        type=int,
        default=None,
        metavar="N",
        help="torch only: the port's RoPE table length (default %d)" % torch_format.DEFAULT_MAX_POSITION_EMBEDDINGS,
    )
    parser.epilog = "formats:\n" + "\n".join("  %-6s %s" % (n, m.DESCRIPTION) for n, m in FORMATS.items())
    parser.formatter_class = argparse.RawDescriptionHelpFormatter


def run(args: argparse.Namespace) -> int:
    """Convert, print the summary; 1 with the error on stderr when it fails."""
    from gau_alpha.checkpoints import CheckpointError
    from gau_alpha.convert.converter import convert

    if args.max_position_embeddings is not None and args.to != "torch":
        print("error: --max-position-embeddings applies to --to torch only", file=sys.stderr)
        return 2
    if args.max_position_embeddings is not None and args.max_position_embeddings <= 0:
        print("error: --max-position-embeddings must be positive", file=sys.stderr)
        return 2
    try:
        report = convert(
            args.src, args.dst, args.to, overwrite=args.overwrite, max_position_embeddings=args.max_position_embeddings
        )
    except (CheckpointError, OSError) as error:
        print("error: %s" % error, file=sys.stderr)
        return 1
    print(report)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gau_alpha.convert", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))
