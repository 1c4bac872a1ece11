"""``python -m gau_alpha.convert SRC DST --to {tf1,keras,torch} [--overwrite]``."""
import sys

from gau_alpha.convert.cli import main

sys.exit(main())
