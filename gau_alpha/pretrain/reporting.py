"""A pre-training run's logs: ``metrics.json`` and ``pretrain_curve.png``.

``metrics.json``::

    {"settings": {...}, "corpus": {...}, "steps_done": 400, "exact_resume": true,
     "history": [{"step": 10, "loss": 8.91, "mlm_accuracy": 3.2, "learning_rate": 0.00176,
                  "seconds": 4.1}, ...],
     "valid":   [{"step": 100, "loss": 7.02, "mlm_accuracy": 12.5, "tokens": 1180}, ...]}

``history`` rows average the training steps since the previous row (every ``--log-every``
steps): ``loss`` is the mean cross-entropy of the predicted (masked) tokens, ``mlm_accuracy``
the percentage of them predicted exactly. ``valid`` rows are evaluations on the fixed
validation sequences. Both files are rewritten atomically at every checkpoint.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Sequence

from gau_alpha.atomic import atomic_file, write_json

__all__ = ["METRICS_JSON", "CURVE_PNG", "write_metrics", "plot_curves"]

METRICS_JSON = "metrics.json"
CURVE_PNG = "pretrain_curve.png"


def write_metrics(output_dir: Path, summary: Dict[str, Any]) -> Path:
    """Write ``metrics.json`` (``summary`` holds ``history`` and ``valid``)."""
    return write_json(Path(output_dir) / METRICS_JSON, summary)


def plot_curves(path: Path, history: Sequence[Dict[str, Any]], valid: Sequence[Dict[str, Any]], title: str = "") -> Path:
    """MLM loss (left) and accuracy (right) against the step: training rows as lines,
    validation evaluations as markers (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 3.5), dpi=100)
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    for axes, key, label in ((loss_axes, "loss", "MLM loss"), (accuracy_axes, "mlm_accuracy", "MLM accuracy (%)")):
        if history:
            axes.plot([r["step"] for r in history], [r[key] for r in history], label="train")
        if valid:
            axes.plot([r["step"] for r in valid], [r[key] for r in valid], marker="o", label="valid")
        axes.set_xlabel("step")
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
        axes.legend()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    with atomic_file(path, "wb") as handle:
        figure.savefig(handle, format="png")
    return Path(path)
