"""Exact comparison of two bundles and the conversion summary (the check for non-finite
values, :func:`gau_alpha.checkpoints.nonfinite_counts`, is re-exported here).

Tensors must be bit-identical: same names, dtypes, shapes and bytes (stricter than
``np.array_equal``: NaN payloads and -0.0 count). Configs must be equal as JSON values and
vocabularies byte for byte.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import List

from gau_alpha.checkpoints import nonfinite_counts  # noqa: F401  (re-exported)
from gau_alpha.convert.bundle import CheckpointBundle, ConversionRunError
from gau_alpha.convert.names import same_array


def differences(expected: CheckpointBundle, actual: CheckpointBundle, limit: int = 20) -> List[str]:
    """Every way ``actual`` differs from ``expected`` (at most ``limit`` tensor lines)."""
    problems: List[str] = []
    missing = sorted(set(expected.tensors) - set(actual.tensors))
    extra = sorted(set(actual.tensors) - set(expected.tensors))
    problems += ["missing tensor %s" % n for n in missing]
    problems += ["unexpected tensor %s" % n for n in extra]
    for name in sorted(set(expected.tensors) & set(actual.tensors)):
        a, b = expected.tensors[name], actual.tensors[name]
        if a.dtype != b.dtype or a.shape != b.shape:
            problems.append("tensor %s: expected %s %s, found %s %s" % (name, a.shape, a.dtype, b.shape, b.dtype))
        elif not same_array(a, b):
            problems.append("tensor %s: values differ" % name)
    if len(problems) > limit:
        problems = problems[:limit] + ["... and %d more" % (len(problems) - limit)]
    if expected.config != actual.config:
        keys = sorted(set(expected.config) | set(actual.config))
        changed = [k for k in keys if expected.config.get(k, "<absent>") != actual.config.get(k, "<absent>")]
        described = [
            "%s (%r != %r)" % (k, expected.config.get(k, "<absent>"), actual.config.get(k, "<absent>"))
            for k in changed
        ]
        problems.append("config differs in %s" % ", ".join(described))
    if expected.vocab != actual.vocab:
        problems.append("vocab.txt differs (%d bytes expected, %d found)" % (len(expected.vocab), len(actual.vocab)))
    return problems


def check_identical(expected: CheckpointBundle, actual: CheckpointBundle, where: str) -> None:
    """Raise :class:`~gau_alpha.convert.bundle.ConversionRunError` listing every difference, if any."""
    problems = differences(expected, actual)
    if problems:
        raise ConversionRunError(
            "verification of %s failed, the written checkpoint differs from the source:\n  - %s"
            % (where, "\n  - ".join(problems))
        )


@dataclass
class ConversionReport:
    """What a conversion did; ``str()`` is the summary the CLI prints."""

    source: str
    source_format: str
    destination: str
    destination_format: str
    num_tensors: int
    num_head_tensors: int
    num_parameters: int
    tensor_bytes: int
    files: List[str] = field(default_factory=list)
    file_bytes: int = 0
    notes: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [
            "converted %s (%s) -> %s (%s)"
            % (self.source, self.source_format, self.destination, self.destination_format),
            "  tensors:    %d (%d backbone, %d head)"
            % (self.num_tensors, self.num_tensors - self.num_head_tensors, self.num_head_tensors),
            "  parameters: %s" % format(self.num_parameters, ","),
            "  bytes:      %s in tensors, %s on disk" % (format(self.tensor_bytes, ","), format(self.file_bytes, ",")),
            "  files:      %s" % ", ".join(self.files),
            "  verified:   every tensor bit-identical after reading %s back as %s; config and vocab equal"
            % (self.destination, self.destination_format),
        ]
        lines += ["  note: %s" % note for note in self.notes]
        lines += ["  warning: %s" % warning for warning in self.warnings]
        return "\n".join(lines)


def directory_listing(directory: Path) -> List[str]:
    return sorted(os.listdir(directory))


def directory_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in Path(directory).rglob("*") if p.is_file())
