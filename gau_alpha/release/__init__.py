"""The released GAU-alpha checkpoint: its manifest, verification and download.

- :mod:`gau_alpha.release.manifest`: what a release directory must contain (build, load,
  check, write the manifest; ``python -m gau_alpha.release.manifest`` regenerates the bundled
  one);
- :mod:`gau_alpha.release.verify`: compare a directory with a manifest; ``gau-alpha verify``;
- :mod:`gau_alpha.release.download`: download the archive and check it (size limits,
  integrity, the manifest) before installing it atomically; ``gau-alpha download``.

The names below are loaded from their module on first use (so that ``python -m
gau_alpha.release.manifest`` does not import that module twice). Nothing here imports
TensorFlow; it is imported only when a checkpoint is read.
"""
from __future__ import annotations

import importlib
from typing import Any, Dict, List

from gau_alpha.errors import DestinationExistsError, DownloadError, ManifestError

_HOMES: Dict[str, str] = {
    **dict.fromkeys(
        ("MANIFEST_SCHEMA", "SPECIAL_TOKENS", "TENSOR_DTYPE", "RELEASE_SOURCES", "RELEASE_NOTES",
         "expected_tensors", "build_manifest", "dumps_manifest", "write_manifest", "check_manifest",
         "load_manifest"),
        "manifest",
    ),
    **dict.fromkeys(("UNEXPECTED_TENSOR", "Problem", "Report", "inspect_release", "verify_release",
                     "resolve_manifest"), "verify"),
    **dict.fromkeys(("download_release", "default_destination", "DownloadLimits", "ReleaseCheckError",
                     "is_release_directory"), "download"),
}

__all__ = ["ManifestError", "DownloadError", "DestinationExistsError", *_HOMES]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError("module %r has no attribute %r" % (__name__, name))
    value = getattr(importlib.import_module("%s.%s" % (__name__, _HOMES[name])), name)
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))
