"""Former home of the release manifest, verification and download; kept for old imports.

Everything now lives in :mod:`gau_alpha.release` (``manifest``, ``verify``, ``download``);
regenerate the bundled manifest with ``python -m gau_alpha.release.manifest``.
"""
from gau_alpha.model_dir import CHECKPOINT_PREFIX, CONFIG_FILE, OPTIONAL_FILES, REQUIRED_FILES, VOCAB_FILE
from gau_alpha.release import *  # noqa: F401,F403
from gau_alpha.release import __all__ as _release_names
from gau_alpha.release.download import add_arguments as add_download_arguments
from gau_alpha.release.download import run as run_download
from gau_alpha.release.verify import add_arguments as add_verify_arguments
from gau_alpha.release.verify import run as run_verify

__all__ = list(_release_names) + [
    "CHECKPOINT_PREFIX", "CONFIG_FILE", "VOCAB_FILE", "REQUIRED_FILES", "OPTIONAL_FILES",
    "add_verify_arguments", "run_verify", "add_download_arguments", "run_download",
]
