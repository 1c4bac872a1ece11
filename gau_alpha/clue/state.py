"""Training state on disk: per-epoch checkpoints, best weights, resuming.

Layout under the run's output directory::

    checkpoints/epoch-0001/model.npz       model weights (all of them, in model order)
    checkpoints/epoch-0001/optimizer.npz   optimizer state (step counter, AdaFactor slots,
                                           gradient-accumulation buffers)
    checkpoints/epoch-0001/state.json      epochs done, history, best score, run settings,
                                           data-order check
    checkpoints/latest.json                {"epoch": 1, "directory": "epoch-0001"}
    best/model.npz, best/best.json         weights of the best dev epoch so far, and
                                           {"epoch", "score", "dev"} of that epoch
    best/model.weights.h5, finetuned.json, the same weights in Keras's HDF5 format, with
    bert_config.json, vocab.txt            what they are: ``best/`` is a self-describing
                                           fine-tuned model (:mod:`gau_alpha.deploy.finetuned`,
                                           written when the run passes a model card)

Every file is written atomically (:mod:`gau_alpha.atomic`: temporary file or
directory, then ``os.replace``); ``latest.json`` is replaced only after its checkpoint
directory is complete, so an interruption at any moment leaves the previous
checkpoint usable. ``best/`` is assembled in a staging directory and swapped in as a
whole, so its weights and ``best.json`` always belong together. Older epoch directories
beyond the last ``keep`` are removed (:func:`gau_alpha.atomic.discard`: renamed
first, never left half-deleted).
A checkpoint that cannot be read or does not fit the model raises
:class:`gau_alpha.errors.CheckpointError`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from gau_alpha.atomic import atomic_file, discard, replace_directory, staging_directory, write_json
from gau_alpha.errors import CheckpointError

from .rundir import CHECKPOINTS

__all__ = [
    "CHECKPOINTS",
    "save_arrays",
    "load_arrays",
    "save_model_weights",
    "load_model_weights",
    "save_best",
    "read_best",
    "create_optimizer_slots",
    "save_checkpoint",
    "latest_checkpoint",
    "restore_checkpoint",
]

LATEST = "latest.json"
BEST_WEIGHTS = "model.npz"
BEST_INFO = "best.json"


def save_arrays(path: Path, arrays: Sequence[np.ndarray], names: Sequence[str]) -> Path:
    """Save ``arrays`` (in order) with their ``names`` to an ``.npz`` file, atomically."""
    payload = {"array_%05d" % i: np.asarray(a) for i, a in enumerate(arrays)}
    with atomic_file(path, "wb") as handle:
        np.savez(handle, names=np.asarray(list(names), dtype=str), **payload)
    return path


def load_arrays(path: Path) -> Tuple[List[str], List[np.ndarray]]:
    """The ``(names, arrays)`` saved by :func:`save_arrays`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("%s: file not found" % path)
    try:
        with np.load(path) as data:
            names = [str(n) for n in data["names"]]
            arrays = [data["array_%05d" % i] for i in range(len(names))]
    except (OSError, KeyError, ValueError) as error:
        raise CheckpointError("%s: not a readable weights file (%s)" % (path, error)) from None
    return names, arrays


def _check_shapes(path: Path, what: str, names: Sequence[str], expected: Sequence[Any],
                  arrays: Sequence[np.ndarray]) -> None:
    if len(arrays) != len(expected):
        raise CheckpointError(
            "%s holds %d %s arrays but the model has %d: it was saved for a different model or task"
            % (path, len(arrays), what, len(expected))
        )
    for index, (name, variable, array) in enumerate(zip(names, expected, arrays)):
        if tuple(variable.shape) != tuple(array.shape):
            raise CheckpointError(
                "%s: %s array %d (%s) has shape %s, the model expects %s"
                % (path, what, index, name, tuple(array.shape), tuple(variable.shape))
            )


def save_model_weights(path: Path, model: Any) -> Path:
    """All weights of ``model`` (trainable and not), in model order, to ``path``."""
    return save_arrays(path, model.get_weights(), [w.name for w in model.weights])


def load_model_weights(path: Path, model: Any) -> None:
    """Load weights saved by :func:`save_model_weights` (count and shapes checked), or a
    Keras HDF5 weights file (``*.h5``: matched by layer name, shapes checked by Keras)."""
    if Path(path).suffix == ".h5":
        _load_keras_weights(Path(path), model)
        return
    names, arrays = load_arrays(path)
    _check_shapes(Path(path), "weight", names, model.weights, arrays)
    model.set_weights(arrays)


def _load_keras_weights(path: Path, model: Any) -> None:
    if not path.is_file():
        raise CheckpointError("%s: file not found" % path)
    try:
        model.load_weights(str(path))
    except (OSError, ValueError, KeyError) as error:
        message = " ".join(str(error).split())[:300]
        raise CheckpointError("%s: does not fit the model (%s)" % (path, message)) from None


def save_best(directory: Path, model: Any, info: Dict[str, Any], card: Any = None) -> Path:
    """Replace the best-weights directory as a whole: ``model.npz`` (all weights of
    ``model``) and ``best.json`` (``info``: epoch, score, dev metrics); with a ``card``
    (:class:`gau_alpha.deploy.finetuned.ModelCard`) also the self-describing model
    (``card.write(directory, model)``: HDF5 weights, ``finetuned.json``, config, vocab).
    Returns the ``.npz`` weights file."""
    directory = Path(directory)
    with staging_directory(directory) as staging:
        save_model_weights(staging / BEST_WEIGHTS, model)
        write_json(staging / BEST_INFO, info)
        if card is not None:
            card.write(staging, model)
        replace_directory(staging, directory)
    return directory / BEST_WEIGHTS


def read_best(directory: Path) -> Optional[Dict[str, Any]]:
    """``best.json`` of a best-weights directory, or None if there is none (or it is unreadable)."""
    try:
        info = json.loads((Path(directory) / BEST_INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def create_optimizer_slots(optimizer: Any, model: Any) -> None:
    """Create the optimizer's step counter and slots now (they are normally created
    at the first step), so a saved state can be loaded into them."""
    optimizer._create_all_weights(model.trainable_variables)


def save_checkpoint(output_dir: Path, epoch: int, model: Any, optimizer: Any, state: Dict[str, Any],
                    keep: int = 2) -> Path:
    """Save the state after ``epoch`` epochs (1-based count) and point ``latest.json`` at it.

    Returns:
        the checkpoint directory.
    """
    root = Path(output_dir) / CHECKPOINTS
    name = "epoch-%04d" % epoch
    final = root / name
    with staging_directory(final) as staging:
        save_model_weights(staging / "model.npz", model)
        save_arrays(staging / "optimizer.npz", optimizer.get_weights(), [w.name for w in optimizer.weights])
        write_json(staging / "state.json", dict(state, epoch=epoch))
        replace_directory(staging, final)
    write_json(root / LATEST, {"epoch": epoch, "directory": name})
    epochs = sorted(p for p in root.glob("epoch-*") if p.is_dir())
    for old in epochs[:-keep] if keep > 0 else []:
        discard(old)
    return final


def latest_checkpoint(output_dir: Path) -> Optional[Tuple[Path, Dict[str, Any]]]:
    """``(directory, state)`` of the newest complete checkpoint, or None if there is none.

    Raises:
        CheckpointError: ``latest.json`` exists but is unreadable or points nowhere.
    """
    root = Path(output_dir) / CHECKPOINTS
    pointer = root / LATEST
    if not pointer.is_file():
        return None
    try:
        latest = json.loads(pointer.read_text(encoding="utf-8"))
        directory = root / latest["directory"]
        state = json.loads((directory / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError("%s: damaged checkpoint pointer or state (%s)" % (pointer, error)) from None
    return directory, state


def restore_checkpoint(directory: Path, model: Any, optimizer: Any) -> None:
    """Load model weights and optimizer state from a checkpoint directory.

    The optimizer's slots must exist (:func:`create_optimizer_slots`).
    """
    directory = Path(directory)
    load_model_weights(directory / "model.npz", model)
    names, arrays = load_arrays(directory / "optimizer.npz")
    _check_shapes(directory / "optimizer.npz", "optimizer", names, optimizer.weights, arrays)
    optimizer.set_weights(arrays)
