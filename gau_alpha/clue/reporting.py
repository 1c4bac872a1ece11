"""Training logs: ``metrics.json``, ``metrics.csv`` and ``training_curve.png``.

The history is a list of one dict per epoch::

    {"epoch": 1, "train_loss": 2.71, "steps": 7, "seconds": 9.3, "dev": {"accuracy": 12.5}}

All three files are rewritten (atomically) after every epoch, so they always
describe the epochs finished so far.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Dict, List, Sequence

from gau_alpha.atomic import atomic_file, write_json, write_text_atomic

__all__ = ["METRICS_JSON", "METRICS_CSV", "CURVE_PNG", "write_metrics", "plot_history"]

METRICS_JSON = "metrics.json"
METRICS_CSV = "metrics.csv"
CURVE_PNG = "training_curve.png"


def _csv_text(history: Sequence[Dict[str, Any]]) -> str:
    metric_names: List[str] = []
    for row in history:
        metric_names.extend(name for name in row.get("dev", {}) if name not in metric_names)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["epoch", "train_loss", "steps", "seconds"] + ["dev_%s" % m for m in metric_names])
    for row in history:
        dev = row.get("dev", {})
        writer.writerow(
            [row["epoch"], "%.6f" % row["train_loss"], row["steps"], "%.2f" % row["seconds"]]
            + ["%.4f" % dev[m] if m in dev else "" for m in metric_names]
        )
    return buffer.getvalue()


def write_metrics(output_dir: Path, summary: Dict[str, Any], history: Sequence[Dict[str, Any]]) -> Dict[str, Path]:
    """Write ``metrics.json`` (``summary`` plus the history) and ``metrics.csv``.

    Returns:
        ``{"json": path, "csv": path}``.
    """
    output_dir = Path(output_dir)
    json_path = write_json(output_dir / METRICS_JSON, dict(summary, history=list(history)))
    csv_path = write_text_atomic(output_dir / METRICS_CSV, _csv_text(history))
    return {"json": json_path, "csv": csv_path}


def plot_history(path: Path, history: Sequence[Dict[str, Any]], main_metric: str, title: str = "") -> Path:
    """Training loss and the dev ``main_metric`` per epoch, as a PNG (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    path = Path(path)
    epochs = [row["epoch"] for row in history]
    figure = Figure(figsize=(8, 3.5), dpi=100)
    loss_axes, metric_axes = figure.subplots(1, 2)
    loss_axes.plot(epochs, [row["train_loss"] for row in history], marker="o")
    loss_axes.set_xlabel("epoch")
    loss_axes.set_ylabel("training loss")
    metric_axes.plot(epochs, [row["dev"].get(main_metric, float("nan")) for row in history], marker="o",
                     color="tab:orange")
    metric_axes.set_xlabel("epoch")
    metric_axes.set_ylabel("dev %s (%%)" % main_metric)
    for axes in (loss_axes, metric_axes):
        axes.grid(alpha=0.3)
        if epochs:
            axes.set_xticks(epochs if len(epochs) <= 20 else epochs[:: max(1, len(epochs) // 10)])
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    with atomic_file(path, "wb") as handle:
        figure.savefig(handle, format="png")
    return path
