"""A pre-training run's checkpoints: weights, optimizer state and stream position, on disk.

Layout under the output directory ``D``::

    checkpoints/step-000000400/model.npz       all model weights, in model order
    checkpoints/step-000000400/optimizer.npz   the optimizer's step counter and slots
    checkpoints/step-000000400/state.json      steps done, the data stream's position
                                               (gau_alpha.pretrain.packing), the logs so far,
                                               the run's settings
    checkpoints/latest.json                    {"step": 400, "directory": "step-000000400"}

A checkpoint directory is assembled in a staging directory and renamed into place
(:mod:`gau_alpha.atomic`); ``latest.json`` is replaced only after that, so a run killed at
any moment (``kill -9`` included) leaves the previous checkpoint whole and named. Older
checkpoints beyond the last ``keep`` are deleted (renamed first, never half-deleted).
Arrays are stored with :func:`gau_alpha.clue.state.save_arrays` (``.npz``, names kept).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from gau_alpha.atomic import discard, replace_directory, staging_directory, write_json
from gau_alpha.clue.state import load_arrays, save_arrays
from gau_alpha.errors import CheckpointError

__all__ = ["CHECKPOINTS", "LATEST", "save_checkpoint", "latest_checkpoint", "load_checkpoint_arrays"]

CHECKPOINTS = "checkpoints"
LATEST = "latest.json"
MODEL_FILE = "model.npz"
OPTIMIZER_FILE = "optimizer.npz"
STATE_FILE = "state.json"


def _name(step: int) -> str:
    return "step-%09d" % step


def save_checkpoint(output_dir: Path, step: int, model_weights: Sequence[np.ndarray], model_names: Sequence[str],
                    optimizer_weights: Sequence[np.ndarray], optimizer_names: Sequence[str],
                    state: Dict[str, Any], keep: int = 2) -> Path:
    """Save the state after ``step`` optimizer steps and point ``latest.json`` at it."""
    root = Path(output_dir) / CHECKPOINTS
    final = root / _name(step)
    with staging_directory(final) as staging:
        save_arrays(staging / MODEL_FILE, model_weights, model_names)
        save_arrays(staging / OPTIMIZER_FILE, optimizer_weights, optimizer_names)
        write_json(staging / STATE_FILE, dict(state, step=step))
        replace_directory(staging, final)
    write_json(root / LATEST, {"step": step, "directory": final.name})
    kept = sorted(p for p in root.glob("step-*") if p.is_dir() and p.name != final.name)
    for old in kept[: max(0, len(kept) - (keep - 1))]:
        discard(old)
    return final


def latest_checkpoint(output_dir: Path) -> Optional[Tuple[Path, Dict[str, Any]]]:
    """``(directory, state)`` of the newest complete checkpoint, or None when there is none.

    Raises:
        CheckpointError: ``latest.json`` is unreadable or points to a missing or damaged
            checkpoint (naming the file).
    """
    pointer = Path(output_dir) / CHECKPOINTS / LATEST
    if not pointer.is_file():
        return None
    try:
        latest = json.loads(pointer.read_text(encoding="utf-8"))
        directory = pointer.parent / latest["directory"]
        state = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError("%s: damaged checkpoint pointer or state (%s)" % (pointer, error)) from None
    return directory, state


def load_checkpoint_arrays(directory: Path, what: str, expected: Sequence[Tuple[str, Tuple[int, ...]]]
                           ) -> List[np.ndarray]:
    """The arrays of ``model`` or ``optimizer`` in a checkpoint, checked against ``expected``
    ``(name, shape)`` pairs (the live model's or optimizer's variables).

    Raises:
        CheckpointError: a missing or unreadable file, or a count or shape that differs
            (naming the file and the array).
    """
    path = Path(directory) / (MODEL_FILE if what == "model" else OPTIMIZER_FILE)
    names, arrays = load_arrays(path)
    if len(arrays) != len(expected):
        raise CheckpointError("%s holds %d %s arrays but this run has %d: it was saved by a different model"
                              % (path, len(arrays), what, len(expected)))
    for (name, shape), saved_name, array in zip(expected, names, arrays):
        if tuple(array.shape) != tuple(shape):
            raise CheckpointError("%s: array %s has shape %s, this run's %s has %s"
                                  % (path, saved_name, tuple(array.shape), name, tuple(shape)))
    return arrays
