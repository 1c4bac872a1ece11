"""Detect, read, write and convert checkpoints between the ``tf1``, ``keras`` and ``torch``
formats, with verification and atomic output.

``convert(src, dst, to)``:

1. detects the format of ``src`` from its file names, and refuses an existing ``dst`` unless
   ``overwrite=True`` and ``dst`` is recognisably a checkpoint directory (empty, or holding
   only the files of one format: :func:`replaceable`), before reading anything;
2. reads ``src`` into a
   :class:`~gau_alpha.convert.bundle.CheckpointBundle` (every tensor checked against the name
   map: nothing missing, right shapes, nothing unknown) and refuses NaN or infinite values
   unless ``allow_nonfinite=True``;
3. writes ``dst`` into a staging directory beside it (``.<name>.pid<PID>.<random>.partial``,
   :func:`gau_alpha.atomic.staging_directory`);
4. reads that back with the reader of the target format and compares every tensor, the
   config and the vocabulary with the source, bit for bit;
5. renames it to ``dst`` (an existing ``dst`` is moved aside first and removed last).

On any failure the temporary directory is removed and an existing ``dst`` is left as it was;
a killed process leaves only its pid-tagged staging directory, which the next conversion
beside it (or ``gau-alpha clean``) removes. Errors in the source or the arguments are
:class:`~gau_alpha.errors.ConversionError` (exit status 2), failures of the conversion itself
:class:`~gau_alpha.convert.bundle.ConversionRunError` (exit status 1).
"""
from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import Dict, List, Optional

from gau_alpha.atomic import PathLike, owner_pid, replace_directory, staging_directory
from gau_alpha.convert import keras_format, tf1_format, torch_format
from gau_alpha.convert.bundle import CheckpointBundle, ConversionError, ConversionRunError
from gau_alpha.convert.verify import (
    ConversionReport,
    check_identical,
    directory_bytes,
    directory_listing,
)
from gau_alpha.checkpoints import describe_nonfinite, nonfinite_counts
from gau_alpha.errors import GauAlphaError

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


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return "%s: %s" % (type(error).__name__, text[0] if text else "")


def read_checkpoint(path: PathLike, fmt: Optional[str] = None) -> CheckpointBundle:
    """Read a checkpoint of format ``fmt`` (detected when None).

    Raises:
        ConversionError / CheckpointError: the checkpoint is missing, damaged or does not fit
            its config (naming the file and variables); an unexpected failure of a reader
            library is reported the same way.
    """
    fmt = fmt or detect_format(path)
    try:
        return _format_module(fmt).read(path)
    except (GauAlphaError, OSError):
        raise
    except Exception as error:  # a reader library's own error type
        raise ConversionError("cannot read %s as %s: %s" % (path, fmt, _first_line(error))) from error


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


def replaceable(directory: PathLike) -> Optional[str]:
    """Why ``--overwrite`` may not replace the existing ``directory``, or None if it may: it
    must be empty, or hold only (regular) files of one format, weights included, as this
    converter writes them. Anything else, a directory of unrelated files above all, is kept."""
    directory = Path(directory)
    if directory.is_symlink() or not directory.is_dir():
        return "is not a directory"
    entries = sorted(name for name in os.listdir(directory) if owner_pid(name) is None)
    if not entries:
        return None
    found = [name for name, module in FORMATS.items() if module.detect(directory)]
    if len(found) != 1:
        return "holds no checkpoint of one known format" if not found else "holds files of several formats"
    module = FORMATS[found[0]]
    foreign = [
        name for name in entries
        if (directory / name).is_symlink() or not (directory / name).is_file() or not module.is_own_file(name)
    ]
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        return "holds %d file(s) that are not part of a %s checkpoint (%s)" % (len(foreign), found[0], shown)
    return None


def _check_destination(src: Path, dst: Path, overwrite: bool) -> None:
    if dst.exists() or dst.is_symlink():
        if not overwrite:
            raise ConversionError(
                "destination %s already exists; pass --overwrite (overwrite=True) to replace it" % dst
            )
        reason = replaceable(dst)
        if reason is not None:
            raise ConversionError(
                "destination %s %s; --overwrite replaces only a checkpoint directory (or an empty one), "
                "not replacing it: remove it yourself or choose another destination" % (dst, reason)
            )
    if not dst.parent.is_dir():
        raise ConversionError("the parent directory of the destination, %s, does not exist" % dst.parent)
    source_dir = src if src.is_dir() else src.parent
    if _inside(dst, source_dir.resolve()) or _inside(source_dir.resolve(), dst):
        raise ConversionError("destination %s and source %s overlap; choose a separate directory" % (dst, src))


def _default_permissions(directory: Path) -> None:
    """Some writers make 0600 files: give the output the permissions of an ordinary
    directory under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(directory, 0o777 & ~umask)
    for path in directory.rglob("*"):
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


def _nonfinite_warning(bundle: CheckpointBundle, source: Path, allow_nonfinite: bool) -> List[str]:
    """Refuse NaN or infinite values in the source unless allowed; then they are a warning."""
    counts = nonfinite_counts(bundle.tensors)
    if not counts:
        return []
    listing = describe_nonfinite(bundle.tensors, counts)
    if not allow_nonfinite:
        raise ConversionError(
            "source %s holds NaN or infinite values in %d tensor(s): %s; pass --allow-nonfinite "
            "(allow_nonfinite=True) to convert them anyway" % (source, len(counts), listing)
        )
    return ["source %s holds NaN or infinite values in %d tensor(s), converted as they are: %s"
            % (source, len(counts), listing)]


def _write_and_read_back(bundle: CheckpointBundle, tmp: Path, dst: Path, to: str, **options) -> CheckpointBundle:
    """Write ``bundle`` into ``tmp`` and read it back; failures of either step (not of the
    source) are :class:`ConversionRunError`."""
    try:
        write_checkpoint(bundle, tmp, to, **options)
    except (GauAlphaError, OSError):
        raise  # the source does not fit the format (exit 2), or the disk failed (exit 1)
    except Exception as error:  # a writer library's own error type
        raise ConversionRunError("writing %s as %s failed: %s" % (dst, to, _first_line(error))) from error
    try:
        return _format_module(to).read(tmp)
    except OSError:
        raise
    except Exception as error:
        raise ConversionRunError(
            "reading back %s as %s failed, the written files are not usable: %s" % (dst, to, _first_line(error))
        ) from error


def convert(
    src: PathLike,
    dst: PathLike,
    to: str,
    overwrite: bool = False,
    max_position_embeddings: Optional[int] = None,
    allow_nonfinite: bool = False,
) -> ConversionReport:
    """Convert the checkpoint at ``src`` to format ``to`` in the new directory ``dst``.

    Args:
        src: a directory of any format (detected from its files), or a TF1 prefix.
        dst: the directory to create.
        to: ``tf1``, ``keras`` or ``torch``.
        overwrite: replace an existing ``dst`` that is empty or a checkpoint directory
            (:func:`replaceable`).
        max_position_embeddings: ``torch`` only, the port's RoPE table length
            (default ``torch_format.DEFAULT_MAX_POSITION_EMBEDDINGS``).
        allow_nonfinite: convert tensors holding NaN or infinite values (reported in the
            report's ``warnings``) instead of refusing them.

    Returns:
        A :class:`ConversionReport` (its ``str()`` is the summary).

    Raises:
        ConversionError / CheckpointError: the source or an argument is bad (naming the file
            and variables at fault), or ``dst`` exists and may not be replaced.
        ConversionRunError: writing, reading back or verifying the output failed.
        In every case nothing is left at ``dst`` (an existing one is untouched).
    """
    _format_module(to)
    src, dst = Path(src), Path(os.path.abspath(dst))
    source_format = detect_format(src)  # only lists files
    _check_destination(src, dst, overwrite)
    bundle = read_checkpoint(src, source_format)
    warnings = _nonfinite_warning(bundle, src, allow_nonfinite)
    with staging_directory(dst) as tmp:
        written = _write_and_read_back(bundle, tmp, dst, to, max_position_embeddings=max_position_embeddings)
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
            warnings=warnings,
        )
        del written
        _default_permissions(tmp)
        _check_destination(src, dst, overwrite)  # it may have appeared meanwhile
        replace_directory(tmp, dst)
    return report
