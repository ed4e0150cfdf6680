"""A gate's report: one row per check, plus what a model card plots (slices, confusion matrix).

The report is stored as JSON in the registry's gate result, so it must round-trip exactly:
:meth:`GateReport.to_json` and :meth:`GateReport.from_json`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CheckOutcome",
    "CheckStatus",
    "ConfusionMatrix",
    "GateReport",
    "Residuals",
    "SliceTable",
    "rows_of",
]


class CheckStatus:
    """The verdicts of one check."""

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"  # e.g. no regression check when there is no champion yet


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """One check's verdict: ``kind`` (metric, slice, regression, …), what, value and bound."""

    kind: str
    name: str
    status: str
    value: float | None = None
    threshold: str = ""
    detail: str = ""

    @property
    def passed(self) -> bool:
        """Whether the check did not fail (a skipped check does not block)."""
        return self.status != CheckStatus.FAILED


@dataclass(frozen=True, slots=True)
class SliceTable:
    """A metric per slice of a column (a value, or a bucket of a numeric column)."""

    column: str
    metric: str
    slices: tuple[str, ...]
    values: tuple[float | None, ...]
    rows: tuple[int, ...]
    floor: float | None = None  # every slice must reach it (metrics where higher is better)
    ceiling: float | None = None  # no slice may exceed it (errors, losses)
    min_rows: int = 0  # slices with fewer rows were shown but not judged


@dataclass(frozen=True, slots=True)
class ConfusionMatrix:
    """Counts of (true class, predicted class) on the holdout, classes in model order."""

    classes: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]


@dataclass(frozen=True, slots=True)
class Residuals:
    """A regression model's residuals on the holdout, as a histogram (plots, not raw rows)."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]
    mean: float
    std: float


@dataclass(frozen=True, slots=True)
class GateReport:
    """Everything one gate run found about a candidate version."""

    model: str
    version: int
    gate_file: str
    gate_file_hash: str
    data: str
    data_hash: str
    rows: int
    champion: int | None
    champion_alias: str | None
    outcomes: tuple[CheckOutcome, ...]
    task: str
    metrics: Mapping[str, float] = field(default_factory=dict)
    slices: tuple[SliceTable, ...] = ()
    confusion: ConfusionMatrix | None = None
    residuals: Residuals | None = None
    duration_s: float = 0.0

    @property
    def passed(self) -> bool:
        """Whether no check failed."""
        return all(outcome.passed for outcome in self.outcomes)

    @property
    def failures(self) -> tuple[CheckOutcome, ...]:
        """The checks that failed."""
        return tuple(o for o in self.outcomes if o.status == CheckStatus.FAILED)

    def to_json(self) -> str:
        """The report as JSON (NaN and infinities as strings, so any JSON reader takes it)."""
        payload = {
            "model": self.model,
            "version": self.version,
            "gate_file": self.gate_file,
            "gate_file_hash": self.gate_file_hash,
            "data": self.data,
            "data_hash": self.data_hash,
            "rows": self.rows,
            "champion": self.champion,
            "champion_alias": self.champion_alias,
            "task": self.task,
            "duration_s": self.duration_s,
            "metrics": {k: _number_out(v) for k, v in self.metrics.items()},
            "outcomes": [
                {
                    "kind": o.kind,
                    "name": o.name,
                    "status": o.status,
                    "value": _number_out(o.value),
                    "threshold": o.threshold,
                    "detail": o.detail,
                }
                for o in self.outcomes
            ],
            "slices": [
                {
                    "column": s.column,
                    "metric": s.metric,
                    "slices": list(s.slices),
                    "values": [_number_out(v) for v in s.values],
                    "rows": list(s.rows),
                    "floor": s.floor,
                    "ceiling": s.ceiling,
                    "min_rows": s.min_rows,
                }
                for s in self.slices
            ],
            "confusion": (
                None
                if self.confusion is None
                else {
                    "classes": list(self.confusion.classes),
                    "counts": [list(r) for r in self.confusion.counts],
                }
            ),
            "residuals": (
                None
                if self.residuals is None
                else {
                    "edges": list(self.residuals.edges),
                    "counts": list(self.residuals.counts),
                    "mean": self.residuals.mean,
                    "std": self.residuals.std,
                }
            ),
        }
        return json.dumps(payload, sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> GateReport:
        """Read a report written by :meth:`to_json`."""
        data = json.loads(text)
        confusion = data.get("confusion")
        residuals = data.get("residuals")
        return cls(
            model=data["model"],
            version=int(data["version"]),
            gate_file=data["gate_file"],
            gate_file_hash=data["gate_file_hash"],
            data=data["data"],
            data_hash=data["data_hash"],
            rows=int(data["rows"]),
            champion=data.get("champion"),
            champion_alias=data.get("champion_alias"),
            task=data.get("task", ""),
            duration_s=float(data.get("duration_s", 0.0)),
            metrics={k: _number_in(v) or 0.0 for k, v in data.get("metrics", {}).items()},
            outcomes=tuple(
                CheckOutcome(
                    kind=o["kind"],
                    name=o["name"],
                    status=o["status"],
                    value=_number_in(o.get("value")),
                    threshold=o.get("threshold", ""),
                    detail=o.get("detail", ""),
                )
                for o in data.get("outcomes", [])
            ),
            slices=tuple(
                SliceTable(
                    column=s["column"],
                    metric=s["metric"],
                    slices=tuple(s["slices"]),
                    values=tuple(_number_in(v) for v in s["values"]),
                    rows=tuple(int(r) for r in s["rows"]),
                    floor=s.get("floor"),
                    ceiling=s.get("ceiling"),
                    min_rows=int(s.get("min_rows", 0)),
                )
                for s in data.get("slices", [])
            ),
            confusion=(
                None
                if confusion is None
                else ConfusionMatrix(
                    classes=tuple(confusion["classes"]),
                    counts=tuple(tuple(int(c) for c in r) for r in confusion["counts"]),
                )
            ),
            residuals=(
                None
                if residuals is None
                else Residuals(
                    edges=tuple(float(e) for e in residuals["edges"]),
                    counts=tuple(int(c) for c in residuals["counts"]),
                    mean=float(residuals["mean"]),
                    std=float(residuals["std"]),
                )
            ),
        )


def _number_out(value: float | None) -> Any:
    if value is None:
        return None
    if math.isnan(value) or math.isinf(value):
        return str(value)
    return value


def _number_in(value: Any) -> float | None:
    if value is None:
        return None
    return float(value)


def rows_of(outcomes: Sequence[CheckOutcome]) -> list[tuple[str, str, str, str, str, str]]:
    """Table rows (check, subject, value, threshold, result, detail) for printing."""
    rows = []
    for outcome in outcomes:
        value = "" if outcome.value is None else f"{outcome.value:.4g}"
        rows.append(
            (outcome.kind, outcome.name, value, outcome.threshold, outcome.status, outcome.detail)
        )
    return rows
