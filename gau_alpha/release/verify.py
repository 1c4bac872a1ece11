"""Check a release directory against its manifest, and the ``gau-alpha verify`` command.

:func:`inspect_release` lists every difference between a directory and a manifest (missing
files; vocab hash, line count and special tokens; config values; missing, mis-shaped,
mis-typed and unexpected tensors; tensor data that cannot be read back or is not finite) as
:class:`Problem` s, and counts what the checkpoint holds. TensorFlow is imported only when a
checkpoint is actually read.

``gau-alpha verify DIR`` prints each problem on its own line and exits 1 if any is an error,
else 0 with a summary (:func:`add_arguments`, :func:`run`).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, List, Mapping, Optional, Union

from gau_alpha.atomic import PathLike
from gau_alpha.errors import ManifestError
from gau_alpha.model_dir import CHECKPOINT_PREFIX
from gau_alpha.release.manifest import check_manifest, load_manifest, vocab_facts
from gau_alpha.resources import RELEASE_MANIFEST

__all__ = [
    "UNEXPECTED_TENSOR",
    "ManifestLike",
    "resolve_manifest",
    "Problem",
    "Report",
    "inspect_release",
    "verify_release",
    "add_check_arguments",
    "apply_allowances",
    "print_report",
    "add_arguments",
    "run",
]

#: Problem kind of a tensor the manifest does not list (``--allow-extra-tensors`` makes it a warning).
UNEXPECTED_TENSOR = "unexpected_tensor"

#: A manifest dict, the path of a manifest file, or None for the bundled one.
ManifestLike = Optional[Union[Mapping[str, Any], PathLike]]


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
    problems: List[Problem] = field(default_factory=list)
    num_tensors: int = 0
    num_parameters: int = 0
    tensor_bytes: int = 0
    file_bytes: int = 0

    @property
    def errors(self) -> List[Problem]:
        """The problems of severity ``"error"``."""
        return [p for p in self.problems if p.severity == "error"]


def _tf():
    """Import TensorFlow lazily (quietly: its C++ start-up chatter is not useful here)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def _needed_files(manifest: Mapping[str, Any]) -> List[str]:
    """The manifest's required files plus those the vocab, config and checkpoint checks read."""
    prefix = manifest["checkpoint"].get("prefix", CHECKPOINT_PREFIX)
    names = [*manifest["files"]["required"], manifest["vocab"]["file"],
             manifest["config"]["file"], f"{prefix}.index", f"{prefix}.data-00000-of-00001"]
    return list(dict.fromkeys(names))


def _check_files(directory: Path, manifest: Mapping[str, Any]) -> List[Problem]:
    problems = []
    for name in _needed_files(manifest):
        path = directory / name
        if not path.is_file():
            found = "a directory" if path.is_dir() else "nothing"
            problems.append(Problem("missing_file", name, None, "required file is missing", "a file", found))
    return problems


def _check_vocab(directory: Path, spec: Mapping[str, Any]) -> List[Problem]:
    name = spec["file"]
    path = directory / name
    if not path.is_file():
        return []  # already reported by _check_files
    data = path.read_bytes()
    problems = []
    digest = hashlib.sha256(data).hexdigest()
    if digest != spec["sha256"]:
        problems.append(Problem("vocab_sha256", name, None, "vocab content differs", spec["sha256"], digest))
    try:
        lines, tokens = vocab_facts(data, name)
    except ManifestError as exc:
        return problems + [Problem("vocab_unreadable", name, None, str(exc), "UTF-8 text", "undecodable bytes")]
    if lines != spec["lines"]:
        problems.append(Problem("vocab_lines", name, None, "wrong number of tokens", spec["lines"], lines))
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


def _check_config(directory: Path, spec: Mapping[str, Any]) -> List[Problem]:
    name = spec["file"]
    path = directory / name
    if not path.is_file():
        return []  # already reported by _check_files
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [Problem("config_unreadable", name, None, "not valid JSON", "a JSON object", str(exc))]
    if not isinstance(values, dict):
        return [Problem("config_unreadable", name, None, "not a JSON object", "a JSON object",
                        type(values).__name__)]
    problems = []
    for key, expected in spec["values"].items():
        if key not in values:
            problems.append(Problem("config_missing_key", name, key, "config key is missing", expected, None))
        elif not _same_value(expected, values[key]):
            problems.append(Problem("config_value", name, key, "config value differs", expected, values[key]))
    for key in values.keys() - spec["values"].keys():
        problems.append(Problem("config_extra_key", name, key, "config key not in the manifest",
                                None, values[key], severity="warning"))
    return problems


def _check_checkpoint(directory: Path, spec: Mapping[str, Any], report: Report, read_data: bool) -> List[Problem]:
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
        return [Problem("checkpoint_unreadable", index_name, None, "checkpoint index cannot be read",
                        "a TF checkpoint index", f"{type(exc).__name__}: {exc}")]

    problems = []
    expected = {t["name"]: t for t in spec["tensors"]}
    for name, tensor in expected.items():
        if name not in shapes:
            problems.append(Problem("missing_tensor", index_name, name, "tensor is missing",
                                    f"{tensor['dtype']}{tensor['shape']}", None))
            continue
        found_shape = [int(d) for d in shapes[name]]
        if found_shape != list(tensor["shape"]):
            problems.append(Problem("tensor_shape", index_name, name, "wrong shape", list(tensor["shape"]), found_shape))
        if dtypes[name].name != tensor["dtype"]:
            problems.append(Problem("tensor_dtype", index_name, name, "wrong dtype", tensor["dtype"], dtypes[name].name))
    for name in sorted(shapes.keys() - expected.keys()):
        problems.append(Problem(UNEXPECTED_TENSOR, index_name, name, "tensor not in the manifest", None,
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


def _read_every_tensor(reader: Any, names: Iterable[str], data_name: str) -> List[Problem]:
    """Read each tensor once (TF checks its crc32c), and flag non-finite float values."""
    from gau_alpha.checkpoints import nonfinite_counts

    problems = []
    for name in names:
        try:
            value = reader.get_tensor(name)
        except Exception as exc:  # IndexError for short reads, OpError for checksum mismatch
            problems.append(Problem("unreadable_tensor", data_name, name,
                                    "tensor data cannot be read (truncated or corrupt file)",
                                    "readable data matching its checksum", f"{type(exc).__name__}: {exc}"))
            continue
        bad = nonfinite_counts({name: value}).get(name)
        if bad:
            problems.append(Problem("nonfinite_tensor", data_name, name, "tensor holds NaN or infinite values",
                                    0, f"{bad} non-finite values"))
    return problems


def resolve_manifest(manifest: ManifestLike = None) -> Mapping[str, Any]:
    """The checked manifest: ``manifest`` itself (a dict), read from a path, or the bundled one
    for ``None``.

    Raises:
        ManifestError: the manifest is missing or malformed.
    """
    if manifest is None or isinstance(manifest, (str, os.PathLike)):
        return load_manifest(RELEASE_MANIFEST if manifest is None else manifest)
    check_manifest(manifest, "manifest")
    return manifest


def inspect_release(directory: PathLike, manifest: ManifestLike = None, *, read_data: bool = True) -> Report:
    """Compare a release directory with a manifest and collect what its checkpoint holds.

    ``manifest`` is a manifest dict, a path to one, or ``None`` for the bundled manifest.
    With ``read_data`` every tensor is read back, which detects truncated or corrupt data.

    Raises:
        ManifestError: the manifest is missing or malformed.
    """
    manifest = resolve_manifest(manifest)
    directory = Path(directory)
    report = Report(directory)
    if not directory.is_dir():
        found = "a file" if directory.exists() else "nothing"
        report.problems.append(Problem("missing_directory", ".", None,
                                       f"release directory {directory} does not exist", "a directory", found))
        return report
    report.file_bytes = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
    report.problems += _check_files(directory, manifest)
    report.problems += _check_vocab(directory, manifest["vocab"])
    report.problems += _check_config(directory, manifest["config"])
    report.problems += _check_checkpoint(directory, manifest["checkpoint"], report, read_data)
    return report


def verify_release(directory: PathLike, manifest: ManifestLike = None, *, read_data: bool = True) -> List[Problem]:
    """Every problem of a release directory (see :func:`inspect_release`); empty if it is good."""
    return inspect_release(directory, manifest, read_data=read_data).problems


# ------------------------------------------------------------------ command line
def add_check_arguments(parser: argparse.ArgumentParser) -> None:
    """``--manifest`` and ``--allow-extra-tensors``, shared by ``verify`` and ``download``."""
    parser.add_argument("--manifest", type=Path, default=None,
                        help=f"manifest to check against (default: {RELEASE_MANIFEST})")
    parser.add_argument("--allow-extra-tensors", action="store_true",
                        help="report tensors that are not in the manifest as warnings only")


def apply_allowances(problems: Iterable[Problem], allow_extra: bool) -> List[Problem]:
    """``problems`` with unexpected tensors downgraded to warnings when ``allow_extra``."""
    return [
        replace(p, severity="warning") if allow_extra and p.kind == UNEXPECTED_TENSOR else p
        for p in problems
    ]


def print_report(report: Report, allow_extra: bool) -> int:
    """Print every problem (errors on stderr, warnings on stdout) and a verdict.

    Returns:
        1 if any problem is an error, else 0 (after a summary line with the tensor,
        parameter and byte counts).
    """
    problems = apply_allowances(report.problems, allow_extra)
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``gau-alpha verify``."""
    parser.add_argument("directory", type=Path, help="the unpacked release directory")
    add_check_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Print every problem of the directory; 1 if there are errors, else 0 and a summary.

    Raises:
        ManifestError: the manifest is missing or malformed.
    """
    return print_report(inspect_release(args.directory, args.manifest), args.allow_extra_tensors)
