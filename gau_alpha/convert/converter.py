"""Detect, read, write and convert checkpoints between the ``tf1``, ``keras`` and ``torch``
formats, with verification and atomic output.

``convert(src, dst, to)``:

1. detects the format of ``src`` from its file names, and refuses an existing ``dst`` unless
   ``overwrite=True`` (before reading anything);
2. reads ``src`` into a
   :class:`~gau_alpha.convert.bundle.CheckpointBundle` (every tensor checked against the name
   map: nothing missing, right shapes, nothing unknown);
3. writes ``dst`` into a temporary directory beside it (``.<name>.partial-*``);
4. reads that back with the reader of the target format and compares every tensor, the
   config and the vocabulary with the source, bit for bit;
5. renames it to ``dst`` (an existing ``dst`` is moved aside first and removed last).

On any failure the temporary directory is removed and an existing ``dst`` is left as it was.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Dict, List, Optional

from gau_alpha.atomic import replace_directory
from gau_alpha.convert import keras_format, tf1_format, torch_format
from gau_alpha.convert.bundle import CheckpointBundle, ConversionError, PathLike
from gau_alpha.convert.verify import ConversionReport, check_identical, directory_bytes, directory_listing

FORMATS: Dict[str, ModuleType] = {
    tf1_format.NAME: tf1_format,
    keras_format.NAME: keras_format,
    torch_format.NAME: torch_format,
}


def _format_module(name: str) -> ModuleType:
    if name not in FORMATS:
        raise ConversionError("unknown format %r; choose one of %s" % (name, ", ".join(FORMATS)))
    return FORMATS[name]


def detect_format(path: PathLike) -> str:
    """The format of the checkpoint at ``path`` (a directory, or a TF1 prefix/file).

    Raises:
        ConversionError: nothing there, no recognisable checkpoint files, or files of more
            than one format.
    """
    path = Path(path)
    if not path.exists() and not Path(str(path) + ".index").exists():
        raise ConversionError("source %s does not exist" % path)
    if not path.is_dir():
        return tf1_format.NAME  # a checkpoint prefix or one of its files
    found = {name: module.detect(path) for name, module in FORMATS.items()}
    found = {name: files for name, files in found.items() if files}
    if len(found) > 1:
        raise ConversionError(
            "source %s is ambiguous, it holds files of several formats: %s"
            % (path, "; ".join("%s (%s)" % (n, ", ".join(f)) for n, f in found.items()))
        )
    if not found:
        raise ConversionError(
            "source %s holds no checkpoint; expected one of:\n  - %s"
            % (path, "\n  - ".join("%s: %s" % (n, m.DESCRIPTION) for n, m in FORMATS.items()))
        )
    return next(iter(found))


def read_checkpoint(path: PathLike, fmt: Optional[str] = None) -> CheckpointBundle:
    """Read a checkpoint of format ``fmt`` (detected when None)."""
    fmt = fmt or detect_format(path)
    return _format_module(fmt).read(path)


def write_checkpoint(bundle: CheckpointBundle, directory: PathLike, fmt: str, **options) -> List[Path]:
    """Write ``bundle`` as ``fmt`` into the existing, empty ``directory`` (not atomic, not
    verified: see :func:`convert`). ``options``: ``max_position_embeddings`` for ``torch``."""
    module = _format_module(fmt)
    options = {k: v for k, v in options.items() if v is not None}
    return module.write(bundle, directory, **options)


def _inside(child: Path, parent: Path) -> bool:
    try:
        child.relative_to(parent)
        return True
    except ValueError:
        return False


def _check_destination(src: Path, dst: Path, overwrite: bool) -> None:
    if dst.exists() or dst.is_symlink():
        if not overwrite:
            raise ConversionError(
                "destination %s already exists; pass --overwrite (overwrite=True) to replace it" % dst
            )
        if not dst.is_dir() or dst.is_symlink():
            raise ConversionError("destination %s exists and is not a directory; not replacing it" % dst)
    if not dst.parent.is_dir():
        raise ConversionError("the parent directory of the destination, %s, does not exist" % dst.parent)
    source_dir = src if src.is_dir() else src.parent
    if _inside(dst, source_dir.resolve()) or _inside(source_dir.resolve(), dst):
        raise ConversionError("destination %s and source %s overlap; choose a separate directory" % (dst, src))


def _default_permissions(directory: Path) -> None:
    """``mkdtemp`` makes a 0700 directory and some writers make 0600 files: give the output
    the permissions of an ordinary directory under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(directory, 0o777 & ~umask)
    for path in directory.rglob("*"):
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


def convert(
    src: PathLike,
    dst: PathLike,
    to: str,
    overwrite: bool = False,
    max_position_embeddings: Optional[int] = None,
) -> ConversionReport:
    """Convert the checkpoint at ``src`` to format ``to`` in the new directory ``dst``.

    Args:
        src: a directory of any format (detected from its files), or a TF1 prefix.
        dst: the directory to create.
        to: ``tf1``, ``keras`` or ``torch``.
        overwrite: replace an existing ``dst`` directory.
        max_position_embeddings: ``torch`` only, the port's RoPE table length
            (default ``torch_format.DEFAULT_MAX_POSITION_EMBEDDINGS``).

    Returns:
        A :class:`ConversionReport` (its ``str()`` is the summary).

    Raises:
        ConversionError / CheckpointError: naming the file and variables at fault; nothing
            is left at ``dst`` (an existing one is untouched).
    """
    module = _format_module(to)
    src, dst = Path(src), Path(os.path.abspath(dst))
    source_format = detect_format(src)  # only lists files
    _check_destination(src, dst, overwrite)
    bundle = read_checkpoint(src, source_format)
    tmp = Path(tempfile.mkdtemp(prefix=".%s.partial-" % dst.name, dir=dst.parent))
    try:
        write_checkpoint(bundle, tmp, to, max_position_embeddings=max_position_embeddings)
        written = module.read(tmp)
        check_identical(bundle, written, "%s (%s)" % (dst, to))
        report = ConversionReport(
            source=str(src),
            source_format=bundle.format,
            destination=str(dst),
            destination_format=to,
            num_tensors=len(bundle.tensors),
            num_head_tensors=len(bundle.head_names()),
            num_parameters=bundle.num_parameters,
            tensor_bytes=bundle.num_bytes,
            files=directory_listing(tmp),
            file_bytes=directory_bytes(tmp),
            notes=list(bundle.notes) + list(written.notes),
        )
        del written
        _default_permissions(tmp)
        replace_directory(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report
