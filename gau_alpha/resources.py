"""Files installed with the package (``gau_alpha/data/``), found wherever the package lives.

- ``chinese_GAU-alpha-char_L-24_H-768/``: the release's ``vocab.txt``, ``bert_config.json``,
  ``hf_config.json`` (the PyTorch port's config) and ``manifest.json`` (no weights);
- ``clue_samples/<task>/``: real CLUE records in the official file formats (see its SOURCES.md);
- ``pretrain_sample/``: a slice of the pre-training corpus (``train.jsonl``, ``valid.jsonl``).

Nothing here resolves against a source checkout: the paths are those of the installed package
(a wheel, or an editable install of a clone).
"""
from __future__ import annotations

from pathlib import Path

__all__ = [
    "DATA_DIR",
    "RELEASE_NAME",
    "RELEASE_DIR",
    "RELEASE_VOCAB",
    "RELEASE_CONFIG",
    "RELEASE_HF_CONFIG",
    "RELEASE_MANIFEST",
    "CLUE_SAMPLES_DIR",
    "PRETRAIN_SAMPLE_DIR",
    "clue_sample_dir",
]

DATA_DIR: Path = Path(__file__).resolve().parent / "data"
RELEASE_NAME: str = "chinese_GAU-alpha-char_L-24_H-768"
RELEASE_DIR: Path = DATA_DIR / RELEASE_NAME
RELEASE_VOCAB: Path = RELEASE_DIR / "vocab.txt"
RELEASE_CONFIG: Path = RELEASE_DIR / "bert_config.json"
RELEASE_HF_CONFIG: Path = RELEASE_DIR / "hf_config.json"
RELEASE_MANIFEST: Path = RELEASE_DIR / "manifest.json"
CLUE_SAMPLES_DIR: Path = DATA_DIR / "clue_samples"
PRETRAIN_SAMPLE_DIR: Path = DATA_DIR / "pretrain_sample"
"""A slice of the pre-training corpus: ``train.jsonl``, ``valid.jsonl`` (see its SOURCES.md)."""


def clue_sample_dir(task: str) -> Path:
    """The bundled sample directory of a canonical CLUE task name (``tnews`` ...)."""
    return CLUE_SAMPLES_DIR / task
