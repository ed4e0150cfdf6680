"""What validating a table found: every violation, with counts, shares and example rows."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TABLE_COLUMNS", "Example", "ValidationReport", "Violation"]

#: The columns of ``ValidationReport.table_rows`` (and of the CLI's table).
TABLE_COLUMNS = ("check", "column", "count", "share", "expected", "examples")


@dataclass(frozen=True, slots=True)
class Example:
    """One offending row: its index label and its value (None for a null)."""

    row: Any
    value: Any
    has_value: bool = True  # False for a Python check, which names rows only

    def __str__(self) -> str:
        if not self.has_value:
            return str(self.row)
        if isinstance(self.value, dict):
            inner = ", ".join(f"{k}={_text(v)}" for k, v in self.value.items())
            return f"{self.row}: ({inner})"
        return f"{self.row}: {_text(self.value)}"


def _text(value: Any) -> str:
    return "null" if value is None else repr(value)


@dataclass(frozen=True, slots=True)
class Violation:
    """One check that failed.

    ``count`` rows (or nulls) broke it, ``share`` of all rows; both are None for checks on the
    whole table (row count, a callable returning one bool). ``expected`` says what the check
    wants, in words; ``examples`` holds up to five offending rows.
    """

    check: str
    column: str | None
    count: int | None
    share: float | None
    expected: str
    examples: tuple[Example, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "check": self.check,
            "column": self.column,
            "count": self.count,
            "share": self.share,
            "expected": self.expected,
            "examples": [{"row": e.row, "value": e.value} for e in self.examples],
        }

    def brief(self) -> str:
        """``max on age: 3 rows (0.3%)`` — for one-line summaries."""
        target = f"{self.check} on {self.column}" if self.column else self.check
        if self.count is None or self.share is None:
            return f"{target} ({self.expected})"
        unit = "row" if self.count == 1 else "rows"
        return f"{target}: {self.count} {unit} ({_percent(self.share)})"


def _percent(share: float | None) -> str:
    if share is None or math.isnan(share):
        return "-"
    if share == 0 or share >= 0.001:
        return f"{share:.1%}"
    return f"{share:.2g}"


def _share_text(share: float | None) -> str:
    return "-" if share is None else f"{share:.4g}"


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of ``Contract.validate``: ``ok`` when no check failed."""

    rows: int
    checks: int
    violations: tuple[Violation, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """True when the data satisfies every check."""
        return not self.violations

    def __bool__(self) -> bool:
        return self.ok

    def table_rows(self) -> list[tuple[str, str, str, str, str, str]]:
        """One row of text per violation, in ``TABLE_COLUMNS`` order."""
        return [
            (
                v.check,
                v.column or "",
                "-" if v.count is None else str(v.count),
                _share_text(v.share),
                v.expected,
                ", ".join(str(e) for e in v.examples),
            )
            for v in self.violations
        ]

    def to_frame(self) -> pd.DataFrame:
        """The violations as a pandas DataFrame (one row each, ``TABLE_COLUMNS``)."""
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "check": v.check,
                    "column": v.column,
                    "count": v.count,
                    "share": v.share,
                    "expected": v.expected,
                    "examples": [(e.row, e.value) for e in v.examples],
                }
                for v in self.violations
            ],
            columns=list(TABLE_COLUMNS),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "ok": self.ok,
            "rows": self.rows,
            "checks": self.checks,
            "violations": [v.to_dict() for v in self.violations],
        }

    def summary(self, limit: int = 5) -> str:
        """One line: ``ok`` or the count of violations and the first few of them."""
        if self.ok:
            return f"ok: {self.rows} rows passed {self.checks} checks"
        count = len(self.violations)
        shown = "; ".join(v.brief() for v in self.violations[:limit])
        more = f"; and {count - limit} more" if count > limit else ""
        noun = "violation" if count == 1 else "violations"
        return f"{count} {noun} of {self.checks} checks on {self.rows} rows: {shown}{more}"

    def __str__(self) -> str:
        lines = [self.summary()]
        if self.violations:
            rows = [TABLE_COLUMNS, *self.table_rows()]
            widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_COLUMNS))]
            for row in rows:
                lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        return "\n".join(line.rstrip() for line in lines)
