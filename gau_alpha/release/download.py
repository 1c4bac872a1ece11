"""Download, check and install the release archive, and the ``gau-alpha download`` command.

:func:`download_release` verifies everything before it installs anything. Inside a staging
directory next to the destination (:func:`gau_alpha.atomic.staging_directory`,
``.<dest>.pid<PID>.<random>.partial``) it

1. streams the zip, refusing it beyond :data:`MAX_ARCHIVE_BYTES` and checking its sha256
   when one is given;
2. checks the member list: at most :data:`MAX_MEMBERS` members and :data:`MAX_EXPANDED_BYTES`
   once unpacked, no absolute paths, ``..``, symbolic links or repeated names, at least one file;
3. unpacks it (each member's CRC is checked as it is read; the bytes written are counted
   against the size limit too), unwrapping a single top-level folder;
4. checks the result against the manifest (:func:`gau_alpha.release.verify.inspect_release`:
   files, vocab, config, every tensor read back).

Only a release without errors is moved into place (:func:`gau_alpha.atomic.replace_directory`).
On any failure, Ctrl-C included, the staging directory is removed and the destination is left
exactly as it was; a process killed outright leaves only the pid-tagged staging directory,
which the next run (or ``gau-alpha clean``) removes. ``--overwrite`` replaces only a directory
that is recognisably a release (:func:`is_release_directory`).
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import logging
import os
import stat
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, List, Mapping, Optional, Tuple

from gau_alpha.argtypes import positive_int
from gau_alpha.atomic import PathLike, replace_directory, staging_directory
from gau_alpha.errors import ConfigError, DestinationExistsError, DownloadError, ManifestError
from gau_alpha.model_dir import CHECKPOINT_PREFIX
from gau_alpha.release.verify import (
    ManifestLike,
    Problem,
    Report,
    add_check_arguments,
    apply_allowances,
    inspect_release,
    print_report,
    resolve_manifest,
)
from gau_alpha.resources import RELEASE_NAME

__all__ = [
    "MAX_ARCHIVE_BYTES",
    "MAX_EXPANDED_BYTES",
    "MAX_MEMBERS",
    "DownloadLimits",
    "ReleaseCheckError",
    "is_release_directory",
    "download_release",
    "default_destination",
    "add_arguments",
    "run",
]

log = logging.getLogger(__name__)

#: Largest archive accepted (bytes). The release zip is about 0.36 GB.
MAX_ARCHIVE_BYTES = 1 << 30
#: Largest total size of the unpacked members (bytes). The release unpacks to about 0.39 GB.
MAX_EXPANDED_BYTES = 1 << 30
#: Most members (files and folders) an archive may hold. The release has about half a dozen.
MAX_MEMBERS = 100

_CHUNK = 1 << 20


@dataclass(frozen=True)
class DownloadLimits:
    """Bounds on what :func:`download_release` accepts (defaults: the module constants)."""

    archive_bytes: int = MAX_ARCHIVE_BYTES
    expanded_bytes: int = MAX_EXPANDED_BYTES
    members: int = MAX_MEMBERS


class ReleaseCheckError(DownloadError):
    """The unpacked archive fails the manifest check; nothing was installed.

    Attributes:
        problems: the errors (and warnings) found in the staging area.
    """

    def __init__(self, message: str, problems: List[Problem]) -> None:
        super().__init__(message)
        self.problems = problems


def _normalise_sha256(sha256: Optional[str]) -> Optional[str]:
    if sha256 is None:
        return None
    value = sha256.strip().lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise ConfigError(f"sha256 must be 64 hexadecimal digits, got {sha256!r}")
    return value


# ------------------------------------------------------------------ the destination
def is_release_directory(directory: PathLike, manifest: Mapping[str, Any]) -> bool:
    """Whether ``directory`` is one that ``--overwrite`` may replace: a real directory that is
    empty, or that holds the manifest's config file together with its vocab or the
    checkpoint index (a release, even an incomplete one)."""
    directory = Path(directory)
    if directory.is_symlink() or not directory.is_dir():
        return False
    names = {p.name for p in directory.iterdir()}
    if not names:
        return True
    index = "%s.index" % manifest["checkpoint"].get("prefix", CHECKPOINT_PREFIX)
    return manifest["config"]["file"] in names and bool(names & {manifest["vocab"]["file"], index})


def _check_destination(dest: Path, overwrite: bool, manifest: Mapping[str, Any]) -> None:
    if not dest.exists() and not dest.is_symlink():
        return
    if not overwrite:
        raise DestinationExistsError(f"{dest} already exists; pass --overwrite (overwrite=True) to replace it")
    if dest.is_symlink():
        raise DestinationExistsError(f"{dest} is a symbolic link; not replacing it, give its target as --dest")
    if not is_release_directory(dest, manifest):
        index = "%s.index" % manifest["checkpoint"].get("prefix", CHECKPOINT_PREFIX)
        raise DestinationExistsError(
            f"{dest} exists and is not a release directory (no {manifest['config']['file']} with "
            f"{manifest['vocab']['file']} or {index}); not replacing it: remove it yourself or choose another --dest"
        )


# ------------------------------------------------------------------ fetching
def _fetch(url: str, target: Path, progress: bool, timeout: float, max_bytes: int) -> str:
    """Stream ``url`` into ``target`` (at most ``max_bytes``); return the sha256 of the bytes.

    The progress bar shows on a terminal only (``progress=True``)."""
    from tqdm import tqdm

    request = urllib.request.Request(url, headers={"User-Agent": "gau-alpha-keras"})
    digest = hashlib.sha256()
    received = 0
    too_large = f"the archive at {url} is larger than the limit of {max_bytes} bytes (--max-archive-bytes)"
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.strip().isdigit() else None
            if total is not None and total > max_bytes:
                raise DownloadError(f"{too_large}: the server announces {total} bytes")
            with open(target, "wb") as out, tqdm(
                total=total, unit="B", unit_scale=True, unit_divisor=1024,
                desc=Path(urllib.parse.urlparse(url).path).name or "download",
                disable=None if progress else True,
            ) as bar:
                for block in iter(lambda: response.read(_CHUNK), b""):
                    received += len(block)
                    if received > max_bytes:
                        raise DownloadError(too_large)
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        raise DownloadError(f"download of {url} failed: {type(exc).__name__}: {exc}") from exc
    if total is not None and received != total:
        raise DownloadError(
            f"download of {url} is incomplete: the server announced {total} bytes, {received} arrived"
        )
    return digest.hexdigest()


# ------------------------------------------------------------------ unpacking
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


def _plan(zf: zipfile.ZipFile, label: str, limits: DownloadLimits) -> List[Tuple[zipfile.ZipInfo, PurePosixPath]]:
    """The members to unpack, after checking the member list against ``limits`` (nothing is
    decompressed yet)."""
    infos = zf.infolist()
    if len(infos) > limits.members:
        raise DownloadError(f"{label} has {len(infos)} members, more than the limit of {limits.members} (--max-members)")
    declared = sum(info.file_size for info in infos)
    if declared > limits.expanded_bytes:
        raise DownloadError(
            f"{label} unpacks to {declared} bytes, more than the limit of {limits.expanded_bytes} bytes "
            "(--max-expanded-bytes)"
        )
    members, seen = [], set()
    for info in infos:
        rel = _member_path(info, label)
        if rel is None:
            log.info("%s: leaving out macOS metadata member %s", label, info.filename)
            continue
        key = (rel.as_posix(), info.is_dir())
        if key in seen and not info.is_dir():
            raise DownloadError(f"{label}: member {info.filename!r} appears more than once")
        seen.add(key)
        members.append((info, rel))
    if not any(not info.is_dir() for info, _ in members):
        raise DownloadError(f"{label} holds no files")
    return members


def _unpack(archive: Path, target: Path, label: str, limits: DownloadLimits) -> Path:
    """Check and unpack ``archive`` into the new directory ``target``; return the release root
    inside it (``target`` or its single top-level folder)."""
    if not zipfile.is_zipfile(archive):
        raise DownloadError(f"{label} is not a zip archive")
    written = 0
    try:
        with zipfile.ZipFile(archive) as zf:
            members = _plan(zf, label, limits)
            target.mkdir()
            for info, rel in members:
                destination = target.joinpath(*rel.parts)
                if info.is_dir():
                    destination.mkdir(parents=True, exist_ok=True)
                    continue
                destination.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with zf.open(info) as src, open(destination, "wb") as dst:
                        for block in iter(lambda: src.read(_CHUNK), b""):
                            written += len(block)
                            if written > limits.expanded_bytes:
                                raise DownloadError(
                                    f"{label} unpacks to more than the limit of {limits.expanded_bytes} bytes "
                                    "(--max-expanded-bytes)"
                                )
                            dst.write(block)
                except (zipfile.BadZipFile, EOFError, zlib.error) as exc:  # CRC or deflate errors
                    raise DownloadError(f"{label} is corrupt: member {info.filename!r} fails its check: {exc}") from exc
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


# ------------------------------------------------------------------ the whole job
def _check_release(root: Path, manifest: Mapping[str, Any], label: str, allow_extra: bool) -> Report:
    """:func:`inspect_release` of the unpacked archive; raise unless it has no errors."""
    report = inspect_release(root, manifest)
    report.problems = apply_allowances(report.problems, allow_extra)
    errors = report.errors
    if errors:
        raise ReleaseCheckError(
            f"{label} fails the manifest check with {len(errors)} error(s), nothing was installed:\n"
            + "\n".join(str(p) for p in errors),
            report.problems,
        )
    return report


def _install(
    url: str,
    dest: Path,
    manifest: Mapping[str, Any],
    *,
    sha256: Optional[str],
    overwrite: bool,
    allow_extra: bool,
    progress: bool,
    timeout: float,
    limits: DownloadLimits,
) -> Report:
    """Download, check and install; the report of the installed release (no errors)."""
    expected_sha = _normalise_sha256(sha256)
    _check_destination(dest, overwrite, manifest)
    label = f"the archive from {url}"
    with staging_directory(dest) as staging:
        archive = staging / "archive.zip"
        digest = _fetch(url, archive, progress, timeout, limits.archive_bytes)
        if expected_sha is not None and digest != expected_sha:
            raise DownloadError(f"sha256 of {label} is {digest}, expected {expected_sha}")
        root = _unpack(archive, staging / "unpacked", label, limits)
        archive.unlink()
        report = _check_release(root, manifest, label, allow_extra)
        _check_destination(dest, overwrite, manifest)  # it may have appeared meanwhile
        replace_directory(root, dest)
    report.directory = dest
    return report


def download_release(
    url: str,
    dest_dir: PathLike,
    sha256: Optional[str] = None,
    overwrite: bool = False,
    *,
    manifest: ManifestLike = None,
    allow_extra_tensors: bool = False,
    progress: bool = True,
    timeout: float = 60.0,
    limits: DownloadLimits = DownloadLimits(),
) -> List[Problem]:
    """Download the release zip from ``url`` and install its files as ``dest_dir``, only if
    the whole release checks out (see the module docstring).

    Args:
        url: the zip's location (``http(s)://``, ``file://``).
        dest_dir: the directory to create.
        sha256: the archive's expected sha256 (64 hexadecimal digits), if known.
        overwrite: replace an existing ``dest_dir`` that is a release directory
            (:func:`is_release_directory`).
        manifest: a dict, a path, or None for the bundled manifest.
        allow_extra_tensors: tensors the manifest does not list are warnings, not errors.
        progress: show a progress bar (on a terminal only).
        timeout: seconds of network silence before giving up.
        limits: bounds on the archive's size, unpacked size and member count.

    Returns:
        The warnings about the installed release (empty for a release exactly as the
        manifest describes it).

    Raises:
        DestinationExistsError: ``dest_dir`` exists and ``overwrite`` is false, or it is not a
            release directory (exit status 2).
        ReleaseCheckError: the unpacked release fails the manifest check (a DownloadError).
        DownloadError: the download, the checksum, a limit or the archive is bad (exit status 1).
        ConfigError: ``sha256`` is not 64 hexadecimal digits (a ``ValueError``).
        ManifestError: the manifest is missing or malformed.
    """
    report = _install(
        url, Path(dest_dir).absolute(), resolve_manifest(manifest), sha256=sha256, overwrite=overwrite,
        allow_extra=allow_extra_tensors, progress=progress, timeout=timeout, limits=limits,
    )
    return report.problems


# ------------------------------------------------------------------ command line
def default_destination() -> Path:
    """``$XDG_CACHE_HOME/gau-alpha/<release>`` (``~/.cache`` without ``XDG_CACHE_HOME``)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "gau-alpha" / RELEASE_NAME


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``gau-alpha download``."""
    parser.add_argument("--url", default=None, help="archive URL (default: the official one in the manifest)")
    parser.add_argument("--dest", type=Path, default=None,
                        help=f"directory to create (default: {default_destination()})")
    parser.add_argument("--sha256", default=None, help="expected sha256 of the zip archive")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the destination if it is a release directory (or empty)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--max-archive-bytes", type=positive_int, default=MAX_ARCHIVE_BYTES, metavar="N",
                        help="refuse a larger archive (default %(default)s)")
    parser.add_argument("--max-expanded-bytes", type=positive_int, default=MAX_EXPANDED_BYTES, metavar="N",
                        help="refuse an archive that unpacks to more (default %(default)s)")
    parser.add_argument("--max-members", type=positive_int, default=MAX_MEMBERS, metavar="N",
                        help="refuse an archive with more members (default %(default)s)")
    add_check_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Download, check and install; print the installed release's summary. 0 on success.

    Raises:
        ManifestError: the manifest is malformed or names no archive URL and none is given.
        DownloadError: the download, the archive or the release check failed, nothing was
            installed (DestinationExistsError: the destination exists without
            ``--overwrite``, or is not a release directory).
        ConfigError: ``--sha256`` is not 64 hexadecimal digits.
    """
    manifest = resolve_manifest(args.manifest)
    archive = manifest.get("sources", {}).get("archive", {})
    url = args.url or archive.get("url")
    if not url:
        raise ManifestError("no --url given and the manifest names no archive URL")
    sha256 = args.sha256 or archive.get("sha256")
    dest = Path(args.dest or default_destination()).absolute()
    limits = DownloadLimits(args.max_archive_bytes, args.max_expanded_bytes, args.max_members)
    print(f"downloading {url}\n         to {dest}", flush=True)
    report = _install(url, dest, manifest, sha256=sha256, overwrite=args.overwrite,
                      allow_extra=args.allow_extra_tensors, progress=not args.no_progress, timeout=60.0,
                      limits=limits)
    return print_report(report, args.allow_extra_tensors)
