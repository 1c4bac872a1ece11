"""The release manifest: what a directory of the released checkpoint must contain.

The release ``chinese_GAU-alpha-char_L-24_H-768.zip`` unpacks to a directory holding a TF1
checkpoint, its ``bert_config.json`` and ``vocab.txt`` (file names: :mod:`gau_alpha.model_dir`).
Its manifest, bundled as :data:`gau_alpha.resources.RELEASE_MANIFEST`, records the sources of
the archive, the required and optional files, the vocab's sha256, line count and special-token
ids, the config values, and every checkpoint tensor with its shape and dtype (the tensor list
comes from :func:`gau_alpha.spec.backbone_tensors`).

:func:`build_manifest` describes any release from its config and vocab (tests use it for tiny
releases); ``python -m gau_alpha.release.manifest`` regenerates the bundled file from the
bundled config and vocab. Pure Python.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from gau_alpha.atomic import PathLike, write_text_atomic
from gau_alpha.errors import ConfigError, ManifestError
from gau_alpha.model_dir import CHECKPOINT_PREFIX, CONFIG_FILE, OPTIONAL_FILES, REQUIRED_FILES, VOCAB_FILE
from gau_alpha.resources import RELEASE_CONFIG, RELEASE_MANIFEST, RELEASE_NAME, RELEASE_VOCAB
from gau_alpha.spec import ModelDims, backbone_tensors

__all__ = [
    "MANIFEST_SCHEMA",
    "SPECIAL_TOKENS",
    "TENSOR_DTYPE",
    "RELEASE_SOURCES",
    "RELEASE_NOTES",
    "expected_tensors",
    "vocab_facts",
    "build_manifest",
    "dumps_manifest",
    "write_manifest",
    "check_manifest",
    "load_manifest",
    "main",
]

MANIFEST_SCHEMA = 1
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
TENSOR_DTYPE = "float32"

#: Where the release is published (ZhuiyiTechnology/GAU-alpha README, section 下载).
RELEASE_SOURCES: Dict[str, Any] = {
    "project": "https://github.com/ZhuiyiTechnology/GAU-alpha",
    "archive": {
        "file": f"{RELEASE_NAME}.zip",
        "url": f"https://open.zhuiyi.ai/releases/nlp/models/zhuiyi/{RELEASE_NAME}.zip",
        "sha256": None,
        "sha256_note": (
            "not published by the authors and not computed here (the archive could not be "
            "downloaded while this manifest was written); pass --sha256 once you know it"
        ),
    },
    "mirrors": [
        {
            "name": "Baidu Netdisk",
            "url": "https://pan.baidu.com/s/1NnWvJCin3v7MAZfAy2y0Gg",
            "extraction_code": "0d4s",
        }
    ],
    "pytorch_port": {
        "hub_id": f"junnyu/{RELEASE_NAME}",
        "url": f"https://huggingface.co/junnyu/{RELEASE_NAME}",
        "code": "https://github.com/JunnYu/GAU-alpha-pytorch",
    },
}

RELEASE_NOTES: Tuple[str, ...] = (
    "Tensor names and shapes follow the reference GAU_alpha.variable_mapping "
    "(ZhuiyiTechnology/GAU-alpha models.py), as written down in gau_alpha.spec: two embeddings "
    "plus four kernels per layer; no biases, no layer-norm parameters, no position embeddings "
    "(RoPE), MLM head tied to the token embeddings.",
    "config.values is the release's bert_config.json; vocab is the release's vocab.txt "
    "(copied from the PyTorch port's repository).",
    "Regenerate with: python -m gau_alpha.release.manifest",
)


def _dims(config: Mapping[str, Any]) -> ModelDims:
    try:
        return ModelDims.from_config(config)
    except ConfigError as error:
        raise ManifestError(str(error)) from None


def expected_tensors(config: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """Name, shape and dtype of every checkpoint tensor of a GAU-alpha model with ``config``.

    The release's names and shapes, in the order of :func:`gau_alpha.spec.backbone_tensors`
    (embeddings, then layer by layer). For the release: 2 + 4 per layer, no biases, no
    layer-norm parameters, no position embeddings.

    Raises:
        ManifestError: a size in ``config`` is missing or not a positive integer (named).
    """
    return [
        {"name": tensor.tf1, "shape": list(tensor.shape), "dtype": TENSOR_DTYPE}
        for tensor in backbone_tensors(_dims(config))
    ]


def vocab_facts(data: bytes, source: str) -> Tuple[int, List[str]]:
    """Line count and tokens of a vocab file's bytes (one token per ``\\n``-terminated line).

    Raises:
        ManifestError: the bytes are not UTF-8 (naming ``source``).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{source} is not UTF-8 text: {exc}") from exc
    tokens = text.split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()  # the final newline ends the last line, it does not start another
    return len(tokens), tokens


def build_manifest(
    config: Mapping[str, Any],
    vocab_path: PathLike,
    *,
    release: str = RELEASE_NAME,
    sources: Optional[Mapping[str, Any]] = None,
    notes: Sequence[str] = (),
) -> Dict[str, Any]:
    """The manifest of a release with ``config`` (the bert_config.json values) and vocab.

    The vocab's sha256, line count and special-token ids are taken from ``vocab_path``; the
    tensor list from :func:`expected_tensors`.

    Raises:
        ManifestError: the config is not a GAU-alpha config, or the vocab's line count is not
            its ``vocab_size``.
    """
    vocab_path = Path(vocab_path)
    data = vocab_path.read_bytes()
    lines, tokens = vocab_facts(data, str(vocab_path))
    tensors = expected_tensors(config)
    vocab_size = _dims(config).vocab_size
    if lines != vocab_size:
        raise ManifestError(f"{vocab_path} has {lines} lines but the config's vocab_size is {vocab_size}")
    return {
        "schema": MANIFEST_SCHEMA,
        "release": release,
        "notes": list(notes),
        "sources": dict(sources) if sources is not None else {},
        "files": {"required": list(REQUIRED_FILES), "optional": list(OPTIONAL_FILES)},
        "vocab": {
            "file": VOCAB_FILE,
            "sha256": hashlib.sha256(data).hexdigest(),
            "lines": lines,
            "special_tokens": {t: tokens.index(t) for t in SPECIAL_TOKENS if t in tokens},
        },
        "config": {"file": CONFIG_FILE, "values": dict(config)},
        "checkpoint": {
            "prefix": CHECKPOINT_PREFIX,
            "dtype": TENSOR_DTYPE,
            "num_tensors": len(tensors),
            "num_parameters": sum(math.prod(t["shape"]) for t in tensors),
            "tensors": tensors,
        },
    }


def dumps_manifest(manifest: Mapping[str, Any]) -> str:
    """A manifest as indented JSON with one tensor per line (easy to read and diff)."""
    tensors = manifest["checkpoint"]["tensors"]
    placeholder = "@@TENSORS@@"
    shallow = json.loads(json.dumps(manifest))
    shallow["checkpoint"]["tensors"] = placeholder
    text = json.dumps(shallow, indent=2, ensure_ascii=False)
    rows = ",\n".join("      " + json.dumps(t, ensure_ascii=False) for t in tensors)
    return text.replace(json.dumps(placeholder), "[\n" + rows + "\n    ]") + "\n"


def write_manifest(path: PathLike = RELEASE_MANIFEST) -> Dict[str, Any]:
    """(Re)generate the release's manifest from the bundled config and vocab, atomically."""
    config = json.loads(RELEASE_CONFIG.read_text(encoding="utf-8"))
    manifest = build_manifest(config, RELEASE_VOCAB, sources=RELEASE_SOURCES, notes=RELEASE_NOTES)
    write_text_atomic(Path(path), dumps_manifest(manifest))
    return manifest


def check_manifest(manifest: Any, source: str) -> None:
    """Check the structure of a manifest read from ``source``.

    Raises:
        ManifestError: naming ``source`` and the first key that is missing or malformed.
    """

    def fail(what: str) -> None:
        raise ManifestError(f"{source}: {what}")

    if not isinstance(manifest, dict):
        fail("the top level must be a JSON object")
    if manifest.get("schema") != MANIFEST_SCHEMA:
        fail(f"'schema' must be {MANIFEST_SCHEMA}, found {manifest.get('schema')!r}")
    for key in ("release", "files", "vocab", "config", "checkpoint"):
        if key not in manifest:
            fail(f"missing key {key!r}")
    files = manifest["files"]
    if not isinstance(files, dict) or not isinstance(files.get("required"), list):
        fail("'files.required' must be a list of file names")
    vocab = manifest["vocab"]
    if not isinstance(vocab, dict) or not all(k in vocab for k in ("file", "sha256", "lines")):
        fail("'vocab' must hold 'file', 'sha256' and 'lines'")
    config = manifest["config"]
    if not isinstance(config, dict) or not isinstance(config.get("values"), dict):
        fail("'config' must hold 'file' and a 'values' object")
    checkpoint = manifest["checkpoint"]
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("tensors"), list):
        fail("'checkpoint' must hold 'prefix' and a 'tensors' list")
    for i, tensor in enumerate(checkpoint["tensors"]):
        ok = (
            isinstance(tensor, dict)
            and isinstance(tensor.get("name"), str)
            and isinstance(tensor.get("shape"), list)
            and all(isinstance(d, int) and d >= 0 for d in tensor["shape"])
            and isinstance(tensor.get("dtype"), str)
        )
        if not ok:
            fail(f"checkpoint.tensors[{i}] must be {{'name': str, 'shape': [int, ...], 'dtype': str}}, found {tensor!r}")


def load_manifest(path: PathLike = RELEASE_MANIFEST) -> Dict[str, Any]:
    """Read and check a manifest (by default the bundled one of the release).

    Raises:
        ManifestError: the file is missing, not JSON, or malformed (naming it).
    """
    path = Path(path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ManifestError(f"manifest {path} does not exist") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"manifest {path} cannot be read as JSON: {exc}") from exc
    check_manifest(manifest, str(path))
    return manifest


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m gau_alpha.release.manifest [--output FILE]``: regenerate the manifest."""
    parser = argparse.ArgumentParser(
        prog="python -m gau_alpha.release.manifest",
        description="regenerate the bundled manifest.json from bert_config.json and vocab.txt",
    )
    parser.add_argument("--output", type=Path, default=RELEASE_MANIFEST,
                        help=f"where to write it (default: {RELEASE_MANIFEST})")
    args = parser.parse_args(argv)
    manifest = write_manifest(args.output)
    print(f"wrote {args.output}: {manifest['checkpoint']['num_tensors']} tensors, "
          f"{manifest['checkpoint']['num_parameters']:,} parameters")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
