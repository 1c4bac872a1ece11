"""Shared test helpers: release-layout random checkpoints and padded batches."""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

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


# ----------------------------------------------------------------------------- command line
VENV_BIN = Path(sys.executable).parent
#: the environment of a child command: nothing this test session set leaks into it
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "GAU_ALPHA"))}


def run_cli(args: Sequence[str], cwd=None, timeout: float = 600, **popen):
    """Run ``gau-alpha ARGS`` as a user would (the venv's console script) and capture it."""
    import subprocess

    return subprocess.run([str(VENV_BIN / "gau-alpha"), *map(str, args)], cwd=cwd, env=popen.pop("env", CLEAN_ENV),
                          capture_output=True, text=True, timeout=timeout, **popen)


def assert_one_line_error(result, exit_code: int, *fragments: str) -> str:
    """The command failed with ``exit_code`` and exactly one stderr line, no traceback, that
    contains every fragment. Returns that line."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == exit_code, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("gau-alpha "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


# ----------------------------------------------------------------------------- variable names
def tf1_name(weight: str, layer: Optional[int] = None) -> str:
    """The release's TF1 name of a backbone tensor, from :mod:`gau_alpha.spec` (tests write no
    variable names of their own): ``weight`` is a GAU layer's Keras weight (``"i_dense/kernel"``)
    with its ``layer``, or an embedding layer's name (``"Embedding-Token"``) without one."""
    from gau_alpha.spec import backbone_tensors

    dims = ModelDims(vocab_size=2, hidden_size=2, intermediate_size=2, attention_key_size=2,
                     num_hidden_layers=(layer or 0) + 1)
    for tensor in backbone_tensors(dims):
        if layer is None and tensor.keras_layer == weight:
            return tensor.tf1
        if layer is not None and tensor.keras_weight == weight and tensor.keras_layer.startswith("Transformer-%d-" % layer):
            return tensor.tf1
    raise KeyError((weight, layer))


def release_variable_table(num_layers: int = 24) -> Dict[str, Tuple[int, ...]]:
    """The released checkpoint's variables and shapes as recorded independently of the code in
    ``tests/data/release_variables.md`` (``layer_L`` expanded for each layer)."""
    import re

    table = {}
    text = (Path(__file__).parent / "data" / "release_variables.md").read_text(encoding="utf-8")
    for name, shape in re.findall(r"^\| `([^`]+)` \| \[([\d, ]+)\] \|$", text, flags=re.M):
        dims = tuple(int(d) for d in shape.split(","))
        layers = range(num_layers) if "layer_L" in name else [None]
        for layer in layers:
            table[name if layer is None else name.replace("layer_L", "layer_%d" % layer)] = dims
    return table
