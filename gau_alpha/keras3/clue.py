"""CLUE classification on Keras 3: fine-tune ``GAUAlphaTextClassifier`` on any backend.

Entry point for ``gau-alpha clue TASK --backend jax|tensorflow|torch``:
:func:`run_keras3_clue`. It reads the task with the project's loaders
(:func:`gau_alpha.clue.loaders.load_split`), fine-tunes with ``fit``, scores dev with
:func:`gau_alpha.clue.metrics.accuracy`, and writes the official submission file with
:func:`gau_alpha.clue.submission.write_submission` plus ``metrics.json`` (through
:mod:`gau_alpha.atomic`). Tasks: the single-text (tnews, iflytek) and sentence-pair (afqmc,
cmnli, ocnli) classification tasks. The backend is fixed by ``KERAS_BACKEND`` before Keras
is first imported; the caller sets it (:func:`select_backend`).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from gau_alpha.errors import ConfigError, RunError

__all__ = ["KERAS3_TASKS", "BACKENDS", "select_backend", "classification_inputs", "run_keras3_clue"]

#: the CLUE tasks this entry point runs (single texts and sentence pairs)
KERAS3_TASKS = ("tnews", "iflytek", "afqmc", "cmnli", "ocnli")
BACKENDS = ("jax", "tensorflow", "torch")


def select_backend(backend: str) -> None:
    """Set ``KERAS_BACKEND`` (must run before ``keras`` is imported).

    Raises:
        ConfigError: unknown backend, or Keras already imported with another backend.
    """
    import sys

    if backend not in BACKENDS:
        raise ConfigError("unknown Keras backend %r; expected one of %s" % (backend, ", ".join(BACKENDS)))
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "backend") and hasattr(keras.backend, "backend"):
        if keras.backend.backend() != backend:
            raise ConfigError("Keras is already running on %r in this process; start a new one for %r"
                              % (keras.backend.backend(), backend))
    os.environ["KERAS_BACKEND"] = backend


def classification_inputs(task: str, examples: Sequence[Any]) -> Tuple[Any, Optional[List[int]]]:
    """``(x, labels)`` for ``fit``/``predict``: ``x`` a list of texts (single-text tasks) or a
    tuple of two lists (pairs); ``labels`` class indices, or None for unlabelled examples."""
    from gau_alpha.clue.tasks.registry import canonical_task, label_to_index

    task = canonical_task(task)
    if task not in KERAS3_TASKS:
        raise ConfigError("the Keras 3 CLUE runner handles %s, not %r" % (", ".join(KERAS3_TASKS), task))
    if hasattr(examples[0], "text_a"):
        x: Any = ([e.text_a for e in examples], [e.text_b for e in examples])
    else:
        x = [e.text for e in examples]
    if any(e.label is None for e in examples):
        return x, None
    index = label_to_index(task)
    return x, [index[e.label] for e in examples]


def run_keras3_clue(
    task: str,
    output_dir: Any,
    model_dir: Any,
    data_dir: Any = None,
    backend: Optional[str] = None,
    epochs: int = 3,
    batch_size: int = 16,
    sequence_length: int = 128,
    learning_rate: float = 5e-5,
    seed: int = 0,
    version: str = "1.1",
) -> Dict[str, Any]:
    """Fine-tune and predict one CLUE classification task with Keras 3.

    Args:
        task: one of :data:`KERAS3_TASKS`.
        output_dir: receives ``metrics.json`` and the submission file (created if missing).
        model_dir: a release directory, a torch-layout directory or a keras-hub preset.
        data_dir: the CLUE data (default: the bundled sample of the task).
        backend: ``jax`` / ``tensorflow`` / ``torch``; None keeps ``KERAS_BACKEND``.
    Returns:
        ``{"task", "backend", "epochs", "train_loss" (per epoch), "dev_accuracy",
        "submission", "seconds"}`` (also written to ``metrics.json``).
    Raises:
        ConfigError / DataError / ModelDirError / CheckpointError: bad task, data or weights.
    """
    if backend is not None:
        select_backend(backend)
    from gau_alpha.clue.loaders import load_split
    from gau_alpha.clue.metrics import accuracy
    from gau_alpha.clue.submission import write_submission
    from gau_alpha.clue.tasks.registry import canonical_task, label_list
    from gau_alpha.resources import clue_sample_dir

    task = canonical_task(task)
    if task not in KERAS3_TASKS:
        raise ConfigError("the Keras 3 CLUE runner handles %s, not %r" % (", ".join(KERAS3_TASKS), task))
    data_dir = clue_sample_dir(task) if data_dir is None else data_dir
    splits = {split: load_split(task, data_dir, split, version=version) for split in ("train", "dev", "test")}
    for split, examples in splits.items():
        if not examples:
            raise RunError("%s has no %s examples in %s" % (task, split, data_dir))

    import keras

    from gau_alpha.atomic import write_json
    from gau_alpha.keras3.text_classifier import GAUAlphaTextClassifier

    started = time.time()
    keras.utils.set_random_seed(seed)
    labels = label_list(task)
    classifier = GAUAlphaTextClassifier.from_preset(str(model_dir), num_classes=len(labels),
                                                    sequence_length=sequence_length)
    classifier.compile(optimizer=keras.optimizers.Adam(learning_rate),
                       loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                       metrics=["sparse_categorical_accuracy"])
    x_train, y_train = classification_inputs(task, splits["train"])
    history = classifier.fit(x=x_train, y=y_train, batch_size=batch_size, epochs=epochs, verbose=0)

    def predict(examples):
        x, _ = classification_inputs(task, examples)
        logits = keras.ops.convert_to_numpy(classifier.predict(x, batch_size=batch_size, verbose=0))
        return [labels[int(i)] for i in logits.argmax(-1)]

    dev_predictions = predict(splits["dev"])
    dev_accuracy = accuracy([e.label for e in splits["dev"]], dev_predictions)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    submission = write_submission(task, splits["test"], predict(splits["test"]), output_dir, version=version)
    metrics = {
        "task": task,
        "backend": keras.backend.backend(),
        "epochs": epochs,
        "train_loss": [float(v) for v in history.history["loss"]],
        "dev_accuracy": float(dev_accuracy),
        "submission": str(submission),
        "seconds": round(time.time() - started, 2),
    }
    write_json(output_dir / "metrics.json", metrics)
    return metrics
