"""The released GAU-alpha checkpoint: manifest, verification and download.

The release ``chinese_GAU-alpha-char_L-24_H-768.zip`` unpacks to a directory holding a TF1
checkpoint (``bert_model.ckpt.index`` + ``bert_model.ckpt.data-00000-of-00001``), its
``bert_config.json`` and ``vocab.txt``. What that directory must contain is written down in
``weights/chinese_GAU-alpha-char_L-24_H-768/manifest.json`` (see :func:`build_manifest`, which
generated it; run ``python -m gau_alpha.weights`` to regenerate it from the bundled config and
vocab).

- :func:`verify_release` lists every difference between a directory and a manifest;
- :func:`download_release` downloads, checks, unpacks and installs the archive atomically;
- ``gau-alpha verify`` / ``gau-alpha download`` are the command-line front ends
  (:func:`add_verify_arguments`, :func:`run_verify`, :func:`add_download_arguments`,
  :func:`run_download`).

TensorFlow is imported only when a checkpoint is actually read.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import shutil
import stat
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

from gau_alpha.atomic import replace_directory, write_text_atomic
from gau_alpha.resources import RELEASE_CONFIG, RELEASE_MANIFEST, RELEASE_NAME, RELEASE_VOCAB

log = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

MANIFEST_SCHEMA = 1
CHECKPOINT_PREFIX = "bert_model.ckpt"
CONFIG_FILE = "bert_config.json"
VOCAB_FILE = "vocab.txt"
REQUIRED_FILES = (
    CONFIG_FILE,
    VOCAB_FILE,
    f"{CHECKPOINT_PREFIX}.index",
    f"{CHECKPOINT_PREFIX}.data-00000-of-00001",
)
# Written by tf.train.Saver next to the checkpoint; nothing here needs them.
OPTIONAL_FILES = (f"{CHECKPOINT_PREFIX}.meta", "checkpoint")
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
TENSOR_DTYPE = "float32"

# Where the release is published (ZhuiyiTechnology/GAU-alpha README, section 下载).
RELEASE_SOURCES: dict[str, Any] = {
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

RELEASE_NOTES: tuple[str, ...] = (
    "Tensor names and shapes follow the reference GAU_alpha.variable_mapping "
    "(ZhuiyiTechnology/GAU-alpha models.py): two embeddings plus four kernels per layer; "
    "no biases, no layer-norm parameters, no position embeddings (RoPE), MLM head tied to "
    "the token embeddings.",
    "config.values is the release's bert_config.json; vocab is the release's vocab.txt "
    "(copied from the PyTorch port's repository).",
    "Regenerate with: python -m gau_alpha.weights",
)

# Problem kinds, for callers that filter (e.g. ``--allow-extra-tensors``).
UNEXPECTED_TENSOR = "unexpected_tensor"


class ManifestError(ValueError):
    """A manifest file or a config given to :func:`build_manifest` is malformed."""


class DownloadError(RuntimeError):
    """Downloading, checking or unpacking the release archive failed; nothing was installed."""


class DestinationExistsError(DownloadError, FileExistsError):
    """The destination directory exists and ``overwrite`` was not given."""


@dataclass(frozen=True)
class Problem:
    """One difference between a release directory and its manifest.

    ``file`` is the file's name relative to the release directory (``"."`` for the directory
    itself), ``name`` the tensor or config key concerned (``None`` when the whole file is).
    ``severity`` is ``"error"`` or ``"warning"``; only errors make ``gau-alpha verify`` fail.
    """

    kind: str
    file: str
    name: Optional[str]
    message: str
    expected: Any = None
    found: Any = None
    severity: str = "error"

    def __str__(self) -> str:
        where = self.file if self.name is None else f"{self.file}: {self.name}"
        return f"{where}: {self.message} (expected {self.expected!r}, found {self.found!r})"


@dataclass
class Report:
    """Everything :func:`inspect_release` found: the problems and what the checkpoint holds."""

    directory: Path
    problems: list[Problem] = field(default_factory=list)
    num_tensors: int = 0
    num_parameters: int = 0
    tensor_bytes: int = 0
    file_bytes: int = 0

    @property
    def errors(self) -> list[Problem]:
        """The problems of severity ``"error"``."""
        return [p for p in self.problems if p.severity == "error"]


# --------------------------------------------------------------------------------------------
# Manifest
# --------------------------------------------------------------------------------------------


def _positive_int(config: Mapping[str, Any], key: str) -> int:
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ManifestError(f"config value {key!r} must be a positive integer, got {value!r}")
    return value


def expected_tensors(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Names, shapes and dtypes of the checkpoint tensors of a GAU-alpha model with ``config``.

    Follows the release's variable names (``bert/embeddings/...`` and
    ``GAU_alpha/encoder/layer_L/gau/...``), in the order of the reference ``variable_mapping``.
    ``i_dense`` maps the hidden size to ``2 * intermediate_size + attention_key_size``; there
    are no biases, layer-norm parameters or position embeddings.
    """
    hidden = _positive_int(config, "hidden_size")
    units = _positive_int(config, "intermediate_size")
    key_size = _positive_int(config, "attention_key_size")
    layers = _positive_int(config, "num_hidden_layers")
    vocab = _positive_int(config, "vocab_size")
    segments = _positive_int(config, "type_vocab_size")

    def tensor(name: str, shape: list[int]) -> dict[str, Any]:
        return {"name": name, "shape": shape, "dtype": TENSOR_DTYPE}

    tensors = [
        tensor("bert/embeddings/word_embeddings", [vocab, hidden]),
        tensor("bert/embeddings/token_type_embeddings", [segments, hidden]),
    ]
    for index in range(layers):
        prefix = f"GAU_alpha/encoder/layer_{index}/gau/"
        tensors += [
            tensor(prefix + "i_dense/kernel", [hidden, 2 * units + key_size]),
            tensor(prefix + "o_dense/kernel", [units, hidden]),
            tensor(prefix + "q_scaleoffset/gamma", [key_size]),
            tensor(prefix + "k_scaleoffset/gamma", [key_size]),
        ]
    return tensors


def _vocab_facts(data: bytes, source: str) -> tuple[int, list[str]]:
    """Line count and tokens of a vocab file's bytes (one token per ``\\n``-terminated line)."""
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
) -> dict[str, Any]:
    """Build the manifest of a release with ``config`` (the bert_config.json values) and vocab.

    The vocab's sha256, line count and special-token ids are taken from ``vocab_path``; the
    tensor list from :func:`expected_tensors`. Tests use this to describe tiny releases.
    """
    vocab_path = Path(vocab_path)
    data = vocab_path.read_bytes()
    lines, tokens = _vocab_facts(data, str(vocab_path))
    vocab_size = _positive_int(config, "vocab_size")
    if lines != vocab_size:
        raise ManifestError(
            f"{vocab_path} has {lines} lines but the config's vocab_size is {vocab_size}"
        )
    tensors = expected_tensors(config)
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
    """Serialise a manifest as indented JSON with one tensor per line (easy to read and diff)."""
    tensors = manifest["checkpoint"]["tensors"]
    placeholder = "@@TENSORS@@"
    shallow = json.loads(json.dumps(manifest))
    shallow["checkpoint"]["tensors"] = placeholder
    text = json.dumps(shallow, indent=2, ensure_ascii=False)
    rows = ",\n".join("      " + json.dumps(t, ensure_ascii=False) for t in tensors)
    return text.replace(json.dumps(placeholder), "[\n" + rows + "\n    ]") + "\n"


def write_manifest(path: PathLike = RELEASE_MANIFEST) -> dict[str, Any]:
    """(Re)generate the base release's manifest from the bundled config and vocab."""
    config = json.loads(RELEASE_CONFIG.read_text(encoding="utf-8"))
    manifest = build_manifest(config, RELEASE_VOCAB, sources=RELEASE_SOURCES,
                              notes=RELEASE_NOTES)
    write_text_atomic(Path(path), dumps_manifest(manifest))
    return manifest


def _check_manifest(manifest: Any, source: str) -> None:
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
            fail(f"checkpoint.tensors[{i}] must be {{'name': str, 'shape': [int, ...], "
                 f"'dtype': str}}, found {tensor!r}")


def load_manifest(path: PathLike = RELEASE_MANIFEST) -> dict[str, Any]:
    """Read and sanity-check a manifest (by default the bundled one of the base release)."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ManifestError(f"manifest {path} does not exist") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"manifest {path} cannot be read as JSON: {exc}") from exc
    _check_manifest(manifest, str(path))
    return manifest


# --------------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------------


def _tf():
    """Import TensorFlow lazily (quietly: its C++ start-up chatter is not useful here)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def _needed_files(manifest: Mapping[str, Any]) -> list[str]:
    """The manifest's required files plus those the vocab, config and checkpoint checks read."""
    prefix = manifest["checkpoint"].get("prefix", CHECKPOINT_PREFIX)
    names = [*manifest["files"]["required"], manifest["vocab"]["file"],
             manifest["config"]["file"], f"{prefix}.index", f"{prefix}.data-00000-of-00001"]
    return list(dict.fromkeys(names))


def _check_files(directory: Path, manifest: Mapping[str, Any]) -> list[Problem]:
    problems = []
    for name in _needed_files(manifest):
        path = directory / name
        if not path.is_file():
            found = "a directory" if path.is_dir() else "nothing"
            problems.append(Problem("missing_file", name, None, "required file is missing",
                                    "a file", found))
    return problems


def _check_vocab(directory: Path, spec: Mapping[str, Any]) -> list[Problem]:
    name = spec["file"]
    path = directory / name
    if not path.is_file():
        return []  # already reported by _check_files
    data = path.read_bytes()
    problems = []
    digest = hashlib.sha256(data).hexdigest()
    if digest != spec["sha256"]:
        problems.append(Problem("vocab_sha256", name, None, "vocab content differs",
                                spec["sha256"], digest))
    try:
        lines, tokens = _vocab_facts(data, name)
    except ManifestError as exc:
        return problems + [Problem("vocab_unreadable", name, None, str(exc), "UTF-8 text",
                                   "undecodable bytes")]
    if lines != spec["lines"]:
        problems.append(Problem("vocab_lines", name, None, "wrong number of tokens",
                                spec["lines"], lines))
    for token, index in spec.get("special_tokens", {}).items():
        found = tokens.index(token) if token in tokens else None
        if found != index:
            problems.append(Problem("vocab_special_token", name, token,
                                    "special token at the wrong line (0-based)", index, found))
    return problems


def _same_value(expected: Any, found: Any) -> bool:
    if isinstance(expected, bool) or isinstance(found, bool):
        return type(expected) is type(found) and expected == found
    return expected == found


def _check_config(directory: Path, spec: Mapping[str, Any]) -> list[Problem]:
    name = spec["file"]
    path = directory / name
    if not path.is_file():
        return []  # already reported by _check_files
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [Problem("config_unreadable", name, None, "not valid JSON", "a JSON object",
                        str(exc))]
    if not isinstance(values, dict):
        return [Problem("config_unreadable", name, None, "not a JSON object", "a JSON object",
                        type(values).__name__)]
    problems = []
    for key, expected in spec["values"].items():
        if key not in values:
            problems.append(Problem("config_missing_key", name, key, "config key is missing",
                                    expected, None))
        elif not _same_value(expected, values[key]):
            problems.append(Problem("config_value", name, key, "config value differs",
                                    expected, values[key]))
    for key in values.keys() - spec["values"].keys():
        problems.append(Problem("config_extra_key", name, key, "config key not in the manifest",
                                None, values[key], severity="warning"))
    return problems


def _check_checkpoint(
    directory: Path, spec: Mapping[str, Any], report: Report, read_data: bool
) -> list[Problem]:
    prefix = spec.get("prefix", CHECKPOINT_PREFIX)
    index_name = f"{prefix}.index"
    data_name = f"{prefix}.data-00000-of-00001"
    if not (directory / index_name).is_file():
        return []  # already reported by _check_files
    tf = _tf()
    try:
        reader = tf.train.load_checkpoint(str(directory / prefix))
        shapes = reader.get_variable_to_shape_map()
        dtypes = reader.get_variable_to_dtype_map()
    except Exception as exc:  # TF raises several error types for a damaged index
        return [Problem("checkpoint_unreadable", index_name, None,
                        "checkpoint index cannot be read", "a TF checkpoint index",
                        f"{type(exc).__name__}: {exc}")]

    problems = []
    expected = {t["name"]: t for t in spec["tensors"]}
    for name, tensor in expected.items():
        if name not in shapes:
            problems.append(Problem("missing_tensor", index_name, name, "tensor is missing",
                                    f"{tensor['dtype']}{tensor['shape']}", None))
            continue
        found_shape = [int(d) for d in shapes[name]]
        if found_shape != list(tensor["shape"]):
            problems.append(Problem("tensor_shape", index_name, name, "wrong shape",
                                    list(tensor["shape"]), found_shape))
        if dtypes[name].name != tensor["dtype"]:
            problems.append(Problem("tensor_dtype", index_name, name, "wrong dtype",
                                    tensor["dtype"], dtypes[name].name))
    for name in sorted(shapes.keys() - expected.keys()):
        problems.append(Problem(UNEXPECTED_TENSOR, index_name, name,
                                "tensor not in the manifest", None,
                                f"{dtypes[name].name}{[int(d) for d in shapes[name]]}"))

    report.num_tensors = len(shapes)
    for name, shape in shapes.items():
        if dtypes[name].name != "string":  # strings have no fixed size
            count = math.prod(int(d) for d in shape)
            report.num_parameters += count
            report.tensor_bytes += count * dtypes[name].size

    data_path = directory / data_name
    if not data_path.is_file():
        return problems  # already reported by _check_files
    actual = data_path.stat().st_size
    if actual < report.tensor_bytes:
        problems.append(Problem("data_truncated", data_name, None,
                                "data file is shorter than the tensors listed in the index",
                                f">= {report.tensor_bytes} bytes", f"{actual} bytes"))
    if read_data:
        problems += _read_every_tensor(reader, sorted(shapes), data_name)
    return problems


def _read_every_tensor(reader: Any, names: Iterable[str], data_name: str) -> list[Problem]:
    """Read each tensor once (TF checks its crc32c), and flag non-finite float values."""
    import numpy as np

    problems = []
    for name in names:
        try:
            value = reader.get_tensor(name)
        except Exception as exc:  # IndexError for short reads, OpError for checksum mismatch
            problems.append(Problem("unreadable_tensor", data_name, name,
                                    "tensor data cannot be read (truncated or corrupt file)",
                                    "readable data matching its checksum",
                                    f"{type(exc).__name__}: {exc}"))
            continue
        if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
            bad = int(value.size - np.isfinite(value).sum())
            problems.append(Problem("nonfinite_tensor", data_name, name,
                                    "tensor holds NaN or infinite values", 0,
                                    f"{bad} non-finite values"))
    return problems


def inspect_release(
    directory: PathLike,
    manifest: Optional[Union[Mapping[str, Any], PathLike]] = None,
    *,
    read_data: bool = True,
) -> Report:
    """Compare a release directory with a manifest and collect what its checkpoint holds.

    ``manifest`` is a manifest dict, a path to one, or ``None`` for the bundled base manifest.
    With ``read_data`` every tensor is read back, which detects truncated or corrupt data.
    """
    if manifest is None or isinstance(manifest, (str, os.PathLike)):
        manifest = load_manifest(RELEASE_MANIFEST if manifest is None else manifest)
    else:
        _check_manifest(manifest, "manifest")
    directory = Path(directory)
    report = Report(directory)
    if not directory.is_dir():
        found = "a file" if directory.exists() else "nothing"
        report.problems.append(Problem("missing_directory", ".", None,
                                       f"release directory {directory} does not exist",
                                       "a directory", found))
        return report
    report.file_bytes = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
    report.problems += _check_files(directory, manifest)
    report.problems += _check_vocab(directory, manifest["vocab"])
    report.problems += _check_config(directory, manifest["config"])
    report.problems += _check_checkpoint(directory, manifest["checkpoint"], report, read_data)
    return report


def verify_release(
    directory: PathLike,
    manifest: Optional[Union[Mapping[str, Any], PathLike]] = None,
    *,
    read_data: bool = True,
) -> list[Problem]:
    """Every problem of a release directory (see :func:`inspect_release`); empty if it is good."""
    return inspect_release(directory, manifest, read_data=read_data).problems


# --------------------------------------------------------------------------------------------
# Download
# --------------------------------------------------------------------------------------------


def _normalise_sha256(sha256: Optional[str]) -> Optional[str]:
    if sha256 is None:
        return None
    value = sha256.strip().lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise ValueError(f"sha256 must be 64 hexadecimal digits, got {sha256!r}")
    return value


def _fetch(url: str, target: Path, progress: bool, timeout: float) -> str:
    """Stream ``url`` into ``target`` with a progress bar; return the sha256 of the bytes."""
    from tqdm import tqdm

    request = urllib.request.Request(url, headers={"User-Agent": "gau-alpha-keras"})
    digest = hashlib.sha256()
    received = 0
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.strip().isdigit() else None
            with open(target, "wb") as out, tqdm(
                total=total, unit="B", unit_scale=True, unit_divisor=1024,
                desc=Path(urllib.parse.urlparse(url).path).name or "download",
                disable=not progress,
            ) as bar:
                for block in iter(lambda: response.read(1 << 20), b""):
                    out.write(block)
                    digest.update(block)
                    received += len(block)
                    bar.update(len(block))
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DownloadError(f"download of {url} failed: {exc}") from exc
    if total is not None and received != total:
        raise DownloadError(
            f"download of {url} is incomplete: the server announced {total} bytes, "
            f"{received} arrived"
        )
    return digest.hexdigest()


def _member_path(info: zipfile.ZipInfo, archive: str) -> Optional[PurePosixPath]:
    """The safe relative path of an archive member, or ``None`` for macOS metadata."""
    name = info.filename
    parts = PurePosixPath(name).parts
    if (
        name.startswith(("/", "\\"))
        or "\\" in name
        or (len(name) > 1 and name[1] == ":")
        or ".." in parts
        or not parts
    ):
        raise DownloadError(f"{archive}: unsafe member path {name!r} (absolute or with '..')")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise DownloadError(f"{archive}: member {name!r} is a symbolic link, refusing it")
    if parts[0] == "__MACOSX":
        return None
    return PurePosixPath(*parts)


def _unpack(archive: Path, target: Path, label: str) -> Path:
    """Check and unpack ``archive`` into ``target``; return the release root inside it."""
    if not zipfile.is_zipfile(archive):
        raise DownloadError(f"{label} is not a zip archive")
    try:
        with zipfile.ZipFile(archive) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise DownloadError(f"{label} is corrupt: member {bad!r} fails its CRC check")
            members = [(info, _member_path(info, label)) for info in zf.infolist()]
            target.mkdir()
            for info, rel in members:
                if rel is None:
                    log.info("%s: leaving out macOS metadata member %s", label, info.filename)
                    continue
                destination = target.joinpath(*rel.parts)
                if info.is_dir():
                    destination.mkdir(parents=True, exist_ok=True)
                    continue
                destination.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(destination, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
    except DownloadError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error) as exc:
        raise DownloadError(f"{label} is corrupt: {exc}") from exc
    except (NotImplementedError, RuntimeError) as exc:  # unsupported compression, encryption
        raise DownloadError(f"{label} cannot be unpacked: {exc}") from exc
    entries = list(target.iterdir())
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]  # the archive's files sit inside one top-level folder
    return target


def _download_and_install(
    url: str, dest: Path, sha256: Optional[str], overwrite: bool, progress: bool, timeout: float
) -> None:
    """Everything :func:`download_release` does except the final verification."""
    expected_sha = _normalise_sha256(sha256)
    if (dest.exists() or dest.is_symlink()) and not overwrite:
        raise DestinationExistsError(
            f"{dest} already exists; pass overwrite=True (--overwrite) to replace it"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    try:
        archive = staging / "archive.zip"
        digest = _fetch(url, archive, progress, timeout)
        if expected_sha is not None and digest != expected_sha:
            raise DownloadError(
                f"sha256 of the archive from {url} is {digest}, expected {expected_sha}"
            )
        root = _unpack(archive, staging / "unpacked", f"archive from {url}")
        replace_directory(root, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def download_release(
    url: str,
    dest_dir: PathLike,
    sha256: Optional[str] = None,
    overwrite: bool = False,
    *,
    manifest: Optional[Union[Mapping[str, Any], PathLike]] = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> list[Problem]:
    """Download the release zip from ``url`` and install its files as ``dest_dir``.

    The archive is streamed into a staging directory next to ``dest_dir``, its sha256 is checked
    when ``sha256`` is given, every member's CRC is tested, members with absolute paths, ``..``
    or symbolic links are refused, and an archive whose files sit inside one top-level folder
    is unwrapped. Only then is the result moved into place with ``os.replace``; on any failure
    nothing is left behind (no new ``dest_dir``, no staging directory, an overwritten one
    untouched). An existing ``dest_dir`` is refused unless ``overwrite``. Returns
    :func:`verify_release`'s problems for the installed directory against ``manifest``.

    Raises:
        DestinationExistsError: ``dest_dir`` exists and ``overwrite`` is false.
        DownloadError: the download, the checksum or the archive is bad.
        ValueError: ``sha256`` is not 64 hexadecimal digits.
    """
    dest = Path(dest_dir).absolute()
    _download_and_install(url, dest, sha256, overwrite, progress, timeout)
    return verify_release(dest, manifest)


# --------------------------------------------------------------------------------------------
# Command line: gau-alpha verify / gau-alpha download
# --------------------------------------------------------------------------------------------


def _default_dest() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "gau-alpha" / RELEASE_NAME


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", type=Path, default=None,
                        help=f"manifest to check against (default: {RELEASE_MANIFEST})")
    parser.add_argument("--allow-extra-tensors", action="store_true",
                        help="report tensors that are not in the manifest as warnings only")


def _print_report(report: Report, allow_extra: bool) -> int:
    problems = [
        replace(p, severity="warning")
        if allow_extra and p.kind == UNEXPECTED_TENSOR else p
        for p in report.problems
    ]
    for problem in problems:
        stream = sys.stderr if problem.severity == "error" else sys.stdout
        print(f"{problem.severity.upper():7} {problem}", file=stream)
    errors = sum(p.severity == "error" for p in problems)
    if errors:
        print(f"{report.directory}: {errors} problem(s) found", file=sys.stderr)
        return 1
    print(
        f"{report.directory}: OK: {report.num_tensors} tensors, "
        f"{report.num_parameters:,} parameters, {report.tensor_bytes:,} bytes of tensor data "
        f"({report.file_bytes:,} bytes on disk)"
    )
    return 0


def add_verify_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``gau-alpha verify``."""
    parser.add_argument("directory", type=Path, help="the unpacked release directory")
    _add_common(parser)


def run_verify(args: argparse.Namespace) -> int:
    """Print every problem of the directory; 1 if there are errors, else 0 and a summary."""
    try:
        report = inspect_release(args.directory, args.manifest)
    except ManifestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return _print_report(report, args.allow_extra_tensors)


def add_download_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``gau-alpha download``."""
    parser.add_argument("--url", default=None,
                        help="archive URL (default: the official one in the manifest)")
    parser.add_argument("--dest", type=Path, default=None,
                        help=f"directory to create (default: {_default_dest()})")
    parser.add_argument("--sha256", default=None, help="expected sha256 of the zip archive")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the destination directory if it exists")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _add_common(parser)


def run_download(args: argparse.Namespace) -> int:
    """Download, unpack and verify; 1 on a failed download or a release with errors."""
    try:
        manifest = load_manifest(args.manifest or RELEASE_MANIFEST)
        archive = manifest.get("sources", {}).get("archive", {})
        url = args.url or archive.get("url")
        if not url:
            print("error: no --url given and the manifest names no archive URL",
                  file=sys.stderr)
            return 2
        sha256 = args.sha256 or archive.get("sha256")
        dest = args.dest or _default_dest()
        print(f"downloading {url}\n         to {dest}")
        _download_and_install(url, Path(dest).absolute(), sha256, args.overwrite,
                              progress=not args.no_progress, timeout=60.0)
        report = inspect_release(dest, manifest)
    except (ManifestError, DownloadError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return _print_report(report, args.allow_extra_tensors)


def _main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gau_alpha.weights",
        description="regenerate the bundled manifest.json from bert_config.json and vocab.txt",
    )
    parser.add_argument("--output", type=Path, default=RELEASE_MANIFEST)
    args = parser.parse_args(argv)
    manifest = write_manifest(args.output)
    print(f"wrote {args.output}: {manifest['checkpoint']['num_tensors']} tensors, "
          f"{manifest['checkpoint']['num_parameters']:,} parameters")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_main())
