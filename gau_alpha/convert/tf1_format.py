"""The ``tf1`` format: the release layout.

Files: ``bert_model.ckpt.index`` + ``bert_model.ckpt.data-00000-of-00001`` (a TF1 checkpoint,
variables named as in the release; head tensors as ``head/...``), ``checkpoint`` (so that
``tf.train.latest_checkpoint`` finds it), ``bert_config.json`` and ``vocab.txt``.
"""
from __future__ import annotations

from pathlib import Path
from typing import List

from gau_alpha.checkpoints import (
    BOOKKEEPING_FILE,
    DEFAULT_PREFIX_NAME,
    checkpoint_prefix,
    read_tf1_checkpoint,
    write_tf1_checkpoint,
)
from gau_alpha.atomic import PathLike
from gau_alpha.convert.bundle import CheckpointBundle, ConversionError, read_model_files, write_model_files
from gau_alpha.convert.names import check_tf1_tensors
from gau_alpha.model_dir import CONFIG_FILE, VOCAB_FILE

NAME = "tf1"
DESCRIPTION = "TF1 checkpoint (bert_model.ckpt.index/.data-*) + bert_config.json + vocab.txt"


def is_own_file(name: str) -> bool:
    """Whether a file called ``name`` belongs to a directory of this format (checkpoint files
    of any prefix, ``.meta`` graphs, the bookkeeping file, the config and the vocab)."""
    return name in (CONFIG_FILE, VOCAB_FILE, BOOKKEEPING_FILE) or name.endswith((".index", ".meta")) or ".data-" in name


def detect(directory: PathLike) -> List[str]:
    """The files of ``directory`` that mark a TF1 checkpoint (``*.index``, ``*.data-*``)."""
    return sorted(
        p.name for p in Path(directory).iterdir() if p.is_file() and (p.name.endswith(".index") or ".data-" in p.name)
    )


def _prefix(path: Path) -> str:
    """The checkpoint prefix of a directory or a prefix/file path, with a clear error when
    the data files are there but the index is not."""
    directory = path if path.is_dir() else path.parent
    if path.is_dir():
        indexes = [p for p in path.iterdir() if p.name.endswith(".index")]
        data = sorted(p.name for p in path.iterdir() if ".data-" in p.name)
        if not indexes and data:
            raise ConversionError(
                "TF1 checkpoint in %s has data file(s) %s but no index file (%s.index is missing)"
                % (directory, ", ".join(data), data[0][: data[0].index(".data-")])
            )
    try:
        return checkpoint_prefix(path)
    except ConversionError:
        raise
    except Exception as error:  # CheckpointError, or tf errors for odd directories
        raise ConversionError(str(error)) from error


def read(path: PathLike) -> CheckpointBundle:
    """Read a release-layout directory (or a checkpoint prefix inside one).

    Raises:
        ConversionError / CheckpointError: naming the file for a missing index, a truncated
            or damaged data file, a missing or bad config/vocab, and listing every missing,
            mis-shaped or unknown variable.
    """
    path = Path(path)
    prefix = _prefix(path)
    directory = Path(prefix).parent
    config, dims, vocab = read_model_files(directory)
    tensors = read_tf1_checkpoint(prefix)
    check_tf1_tensors(tensors, dims, "TF1 checkpoint %s" % prefix)
    return CheckpointBundle(config=config, tensors=tensors, vocab=vocab, format=NAME, path=str(directory))


def write(bundle: CheckpointBundle, directory: PathLike) -> List[Path]:
    """Write ``bundle`` into the existing, empty ``directory``; returns the files written."""
    directory = Path(directory)
    check_tf1_tensors(bundle.tensors, bundle.dims, "the checkpoint to write")
    written = [Path(p) for p in write_tf1_checkpoint(directory / DEFAULT_PREFIX_NAME, bundle.tensors)]
    return written + write_model_files(directory, bundle)
