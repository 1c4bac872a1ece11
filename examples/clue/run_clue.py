#!/usr/bin/env python
"""Fine-tune GAU-alpha on a CLUE task: the same as ``gau-alpha clue [args]``.

    python examples/clue/run_clue.py                      # smoke run: tnews sample, small random model
    python examples/clue/run_clue.py afqmc --data-dir /data/clue \
        --model-dir weights/chinese_GAU-alpha-char_L-24_H-768

See docs/clue.md for every task, its head, metric and expected score.
"""
import sys

import gau_alpha  # noqa: F401  (configures tf-keras and bert4keras first)
from gau_alpha.clue.runner import main

if __name__ == "__main__":
    sys.exit(main())
