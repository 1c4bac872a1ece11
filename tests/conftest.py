"""Test setup: ``import gau_alpha`` first (it selects tf-keras), and make tests/ importable."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gau_alpha  # noqa: E402,F401
