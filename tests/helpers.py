"""Shared test helpers: release-layout random checkpoints and padded batches."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Dict, Sequence, Tuple

import numpy as np

import gau_alpha
import gau_alpha.model_dir
from gau_alpha.spec import ModelDims, tensor_shapes
from gau_alpha.resources import RELEASE_CONFIG, RELEASE_VOCAB

TINY_CONFIG = dict(gau_alpha.model_dir.TINY_CONFIG)


def release_tensor_shapes(config: Dict) -> Dict[str, Tuple[int, ...]]:
    """TF1 variable name -> shape of a GAU-alpha checkpoint in the release layout."""
    return tensor_shapes(ModelDims.from_config(config))


def random_release_tensors(config: Dict, seed: int = 0) -> Dict[str, np.ndarray]:
    """Random float32 values with the release's names and shapes, scaled like trained ones."""
    rng = np.random.default_rng(seed)
    tensors = {}
    for name, shape in release_tensor_shapes(config).items():
        if name.endswith("gamma"):
            tensors[name] = (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
        else:
            fan = shape[1] if name.startswith("bert/") else shape[0]
            tensors[name] = (rng.standard_normal(shape) / np.sqrt(fan)).astype(np.float32)
    return tensors


def write_release_dir(directory: Path, config: Dict, seed: int = 0) -> Path:
    """A directory laid out like the release: bert_model.ckpt.*, bert_config.json, vocab.txt."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    gau_alpha.write_tf1_checkpoint(directory / "bert_model.ckpt", random_release_tensors(config, seed))
    (directory / "bert_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    shutil.copy(RELEASE_VOCAB, directory / "vocab.txt")
    return directory


def base_config() -> Dict:
    return json.loads(Path(RELEASE_CONFIG).read_text(encoding="utf-8"))


def padded_batch(lengths: Sequence[int], vocab_size: int, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Token ids [CLS] x ... [SEP] padded with 0 to the longest length; segment ids with a
    second segment in the last third of each sequence."""
    rng = np.random.default_rng(seed)
    width = max(lengths)
    tokens = np.zeros((len(lengths), width), dtype=np.int32)
    segments = np.zeros_like(tokens)
    for row, n in enumerate(lengths):
        tokens[row, :n] = rng.integers(104, vocab_size, size=n)
        tokens[row, 0], tokens[row, n - 1] = 101, 102
        segments[row, (2 * n) // 3 : n] = 1
    return tokens, segments
