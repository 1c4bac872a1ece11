"""Where the files bundled with the project live.

The project is installed from a clone (``pip install -e .``), so bundled data is
found relative to the repository root:

- ``weights/chinese_GAU-alpha-char_L-24_H-768/``: the release's vocab, configs and manifest;
- ``examples/clue/samples/<task>/``: real CLUE records in the official file formats.
"""
from __future__ import annotations

from pathlib import Path

REPO_ROOT: Path = Path(__file__).resolve().parent.parent
RELEASE_NAME: str = "chinese_GAU-alpha-char_L-24_H-768"
RELEASE_DIR: Path = REPO_ROOT / "weights" / RELEASE_NAME
RELEASE_VOCAB: Path = RELEASE_DIR / "vocab.txt"
RELEASE_CONFIG: Path = RELEASE_DIR / "bert_config.json"
RELEASE_HF_CONFIG: Path = RELEASE_DIR / "hf_config.json"
RELEASE_MANIFEST: Path = RELEASE_DIR / "manifest.json"
CLUE_SAMPLES_DIR: Path = REPO_ROOT / "examples" / "clue" / "samples"
