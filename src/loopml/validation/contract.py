"""A data contract: what a table's columns hold, how many rows it has, and custom checks.

A contract is plain data (dataclasses), written to and read from YAML a person can edit; only
Python callables added in code (``Contract.add_check``) never go to the file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.validation.errors import ContractFormatError
from loopml.validation.expressions import referenced_columns

if TYPE_CHECKING:
    import pandas as pd

    from loopml.validation.report import ValidationReport

__all__ = [
    "FORMAT_VERSION",
    "TYPES",
    "ColumnSpec",
    "Contract",
    "ExpressionCheck",
    "RowBounds",
    "RowCheck",
]

FORMAT_VERSION = 1

#: Column types a contract knows. A column of another dtype passes when every value converts
#: without loss (see ``loopml.validation.coerce``).
TYPES = ("int", "float", "bool", "string", "category", "datetime")

_RANGED = ("int", "float", "datetime")
_COLUMN_KEYS = ("type", "nullable", "max_null_share", "min", "max", "allowed", "unique")
_TOP_KEYS = ("version", "rows", "columns", "checks")

Scalar = bool | int | float | str

#: A check written in Python: takes the frame, returns one bool per row (True = good) or one
#: bool for the whole table.
RowCheck = Callable[["pd.DataFrame"], Any]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _datetime_text(value: object, where: str) -> str:
    """An ISO 8601 bound from text, a date or a datetime (YAML may give any of the three)."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if hasattr(value, "isoformat") and callable(value.isoformat):  # pandas / numpy timestamps
        return str(value.isoformat())
    if isinstance(value, str):
        try:
            dt.datetime.fromisoformat(value)
        except ValueError:
            raise ContractFormatError(
                f"{where}: {value!r} is not an ISO 8601 date or time (like 2024-05-31T12:00:00)"
            ) from None
        return value
    raise ContractFormatError(f"{where}: {value!r} is not a date or time")


def _utc_naive(text: str) -> dt.datetime:
    """An ISO 8601 time as a naive datetime in UTC (naive input is taken as UTC already)."""
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


@dataclass
class ColumnSpec:
    """What one column must hold.

    ``nullable=False`` forbids any null; ``max_null_share`` caps the share of nulls when they
    are allowed. ``min``/``max`` bound int, float and datetime columns (inclusive; datetimes as
    ISO 8601 text). ``allowed`` lists the only values permitted; ``unique`` forbids repeats
    among the non-null values.
    """

    name: str
    type: str
    nullable: bool = True
    max_null_share: float | None = None
    min: Scalar | None = None
    max: Scalar | None = None
    allowed: list[Scalar] | None = None
    unique: bool = False

    def __post_init__(self) -> None:
        where = f"column {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise ContractFormatError(f"a column name must be non-empty text, not {self.name!r}")
        if self.type not in TYPES:
            raise ContractFormatError(
                f"{where}: unknown type {self.type!r}; use one of {', '.join(TYPES)}"
            )
        for key in ("nullable", "unique"):
            if not isinstance(getattr(self, key), bool):
                raise ContractFormatError(f"{where}: {key} must be true or false")
        share = self.max_null_share
        if share is not None:
            if not _is_number(share) or not 0 <= share <= 1:
                raise ContractFormatError(
                    f"{where}: max_null_share must be a number from 0 to 1, not {share!r}"
                )
            if not self.nullable:
                raise ContractFormatError(
                    f"{where}: max_null_share needs nullable: true (nullable: false allows none)"
                )
            self.max_null_share = float(share)
        for key in ("min", "max"):
            value = getattr(self, key)
            if value is None:
                continue
            if self.type not in _RANGED:
                raise ContractFormatError(
                    f"{where}: {key} applies to int, float and datetime columns, not {self.type}"
                )
            if self.type == "datetime":
                setattr(self, key, _datetime_text(value, f"{where}: {key}"))
            elif not _is_number(value):
                raise ContractFormatError(f"{where}: {key} must be a number, not {value!r}")
        if self.min is not None and self.max is not None:
            low: Any = self.min
            high: Any = self.max
            if self.type == "datetime":
                low, high = _utc_naive(str(low)), _utc_naive(str(high))
            if low > high:
                raise ContractFormatError(f"{where}: min {self.min!r} is above max {self.max!r}")
        if self.allowed is not None:
            if self.type == "datetime":
                raise ContractFormatError(f"{where}: allowed does not apply to datetime columns")
            if isinstance(self.allowed, str | bytes) or not isinstance(self.allowed, Iterable):
                raise ContractFormatError(f"{where}: allowed must be a list of values")
            values = list(self.allowed)
            bad = [v for v in values if not isinstance(v, bool | int | float | str)]
            if bad:
                raise ContractFormatError(
                    f"{where}: allowed holds {bad[0]!r}; use numbers, text, true or false"
                )
            self.allowed = values

    @property
    def check_count(self) -> int:
        """How many checks this column adds (type, nulls, each bound, allowed, unique)."""
        nulls = 1 if (not self.nullable or self.max_null_share is not None) else 0
        return (
            1
            + nulls
            + (self.min is not None)
            + (self.max is not None)
            + (self.allowed is not None)
            + self.unique
        )

    def to_dict(self) -> dict[str, Any]:
        """The YAML form: keys in a fixed order, unset keys left out."""
        out: dict[str, Any] = {"type": self.type, "nullable": self.nullable}
        if self.max_null_share is not None:
            out["max_null_share"] = self.max_null_share
        if self.min is not None:
            out["min"] = self.min
        if self.max is not None:
            out["max"] = self.max
        if self.allowed is not None:
            out["allowed"] = list(self.allowed)
        if self.unique:
            out["unique"] = True
        return out

    @classmethod
    def from_dict(cls, name: str, data: object) -> ColumnSpec:
        """Build from the YAML form, naming the first unknown or missing key."""
        if isinstance(data, str):  # `age: int` is shorthand for `age: {type: int}`
            data = {"type": data}
        if not isinstance(data, Mapping):
            raise ContractFormatError(
                f"column {name!r}: expected keys ({', '.join(_COLUMN_KEYS)}), got {data!r}"
            )
        unknown = [k for k in data if k not in _COLUMN_KEYS]
        if unknown:
            raise ContractFormatError(
                f"column {name!r}: unknown key {unknown[0]!r}; use {', '.join(_COLUMN_KEYS)}"
            )
        values = {k: v for k, v in data.items() if v is not None}
        if "type" not in values:
            raise ContractFormatError(f"column {name!r}: needs a type ({', '.join(TYPES)})")
        return cls(name=name, **values)


@dataclass
class RowBounds:
    """Inclusive bounds on the table's row count (None: unbounded)."""

    min: int | None = None
    max: int | None = None

    def __post_init__(self) -> None:
        for key in ("min", "max"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise ContractFormatError(f"rows: {key} must be a whole number, not {value!r}")
            if value is not None and value < 0:
                raise ContractFormatError(f"rows: {key} must be 0 or more, not {value}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ContractFormatError(f"rows: min {self.min} is above max {self.max}")

    @property
    def check_count(self) -> int:
        return (self.min is not None) + (self.max is not None)


@dataclass
class ExpressionCheck:
    """A named row check such as ``price >= cost``; rows where it is false are violations."""

    name: str
    expression: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ContractFormatError(f"a check needs a name, not {self.name!r}")
        referenced_columns(self.expression, check=self.name)

    @property
    def columns(self) -> list[str]:
        """The column names the expression uses."""
        return referenced_columns(self.expression, check=self.name)


@dataclass
class Contract:
    """Columns, row-count bounds and custom checks that a table must satisfy.

    ``validate(frame)`` checks all of it in one vectorised pass and reports every violation
    (columns the contract does not name are not checked; a column it names and the frame
    lacks is an error); ``save(path)`` writes YAML; :func:`loopml.validation.load` reads it
    back. Python callables (``add_check``) live only in code.
    """

    columns: list[ColumnSpec] = field(default_factory=list)
    rows: RowBounds = field(default_factory=RowBounds)
    checks: list[ExpressionCheck] = field(default_factory=list)
    callables: dict[str, RowCheck] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.columns = list(self.columns)
        self.checks = list(self.checks)
        seen: set[str] = set()
        for spec in self.columns:
            if spec.name in seen:
                raise ContractFormatError(f"column {spec.name!r} appears twice in the contract")
            seen.add(spec.name)
        names: set[str] = set()
        for name in [*(c.name for c in self.checks), *self.callables]:
            if name in names:
                raise ContractFormatError(f"two checks are named {name!r}; names must differ")
            names.add(name)

    # -- building ---------------------------------------------------------------------------

    def column(self, name: str) -> ColumnSpec:
        """The spec of column ``name`` (``KeyError`` if the contract has none)."""
        for spec in self.columns:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def add_check(self, name: str, check: str | RowCheck) -> Contract:
        """Add a custom check: an expression (saved to YAML) or a Python callable (not saved).

        A callable takes the frame and returns one bool per row (True = the row is good) or a
        single bool for the whole table. Returns the contract, so calls chain.
        """
        taken = {c.name for c in self.checks} | set(self.callables)
        if name in taken:
            raise ContractFormatError(f"the contract already has a check named {name!r}")
        if isinstance(check, str):
            self.checks.append(ExpressionCheck(name, check))
        elif callable(check):
            self.callables[name] = check
        else:
            raise ContractFormatError(
                f"check {name!r} must be an expression or a callable, not {type(check).__name__}"
            )
        return self

    @property
    def check_count(self) -> int:
        """How many individual checks ``validate`` runs."""
        return (
            self.rows.check_count
            + sum(spec.check_count for spec in self.columns)
            + len(self.checks)
            + len(self.callables)
        )

    # -- checking ---------------------------------------------------------------------------

    def validate(self, frame: pd.DataFrame, *, workers: int | None = None) -> ValidationReport:
        """Check ``frame`` against everything in the contract; the report lists every violation.

        Big frames are checked a column per thread (``workers``: how many; default one per
        CPU, up to 8); the report is the same either way.
        """
        from loopml.validation.checks import run_checks

        return run_checks(self, frame, workers=workers)

    # -- serialising ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The YAML form (callables are left out: they are code, not data)."""
        rows: dict[str, int] = {}
        if self.rows.min is not None:
            rows["min"] = self.rows.min
        if self.rows.max is not None:
            rows["max"] = self.rows.max
        return {
            "version": FORMAT_VERSION,
            "rows": rows,
            "columns": {spec.name: spec.to_dict() for spec in self.columns},
            "checks": [{"name": c.name, "expression": c.expression} for c in self.checks],
        }

    @classmethod
    def from_dict(cls, data: object) -> Contract:
        """Build from the YAML form; a malformed one raises ``ContractFormatError``."""
        if not isinstance(data, Mapping):
            raise ContractFormatError("a contract is a mapping with rows, columns and checks")
        unknown = [k for k in data if k not in _TOP_KEYS]
        if unknown:
            raise ContractFormatError(f"unknown key {unknown[0]!r}; use {', '.join(_TOP_KEYS)}")
        version = data.get("version", FORMAT_VERSION)
        if version != FORMAT_VERSION:
            raise ContractFormatError(
                f"contract format version {version!r} is not supported (this loopml reads "
                f"version {FORMAT_VERSION})"
            )
        rows = data.get("rows") or {}
        if not isinstance(rows, Mapping) or any(k not in ("min", "max") for k in rows):
            raise ContractFormatError("rows: expected min and/or max")
        columns = data.get("columns") or {}
        if not isinstance(columns, Mapping):
            raise ContractFormatError("columns: expected a mapping of column name to its spec")
        checks = data.get("checks") or []
        if not isinstance(checks, list):
            raise ContractFormatError("checks: expected a list of {name, expression}")
        parsed_checks = []
        for index, item in enumerate(checks):
            if not isinstance(item, Mapping) or set(item) != {"name", "expression"}:
                raise ContractFormatError(
                    f"checks[{index}]: expected exactly the keys name and expression"
                )
            parsed_checks.append(ExpressionCheck(str(item["name"]), item["expression"]))
        return cls(
            columns=[ColumnSpec.from_dict(str(name), spec) for name, spec in columns.items()],
            rows=RowBounds(rows.get("min"), rows.get("max")),
            checks=parsed_checks,
        )

    def to_yaml(self) -> str:
        """Readable YAML with a short guide on top; keys always in the same order."""
        from loopml.validation.yamlfile import dump_contract

        return dump_contract(self.to_dict())

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "contract") -> Contract:
        """Parse YAML text (``source`` names it in error messages)."""
        from loopml.validation.yamlfile import parse

        try:
            return cls.from_dict(parse(text, source))
        except ContractFormatError as exc:
            if not exc.message.startswith(f"{source}:"):  # name the file, keep the class
                exc.message = f"{source}: {exc.message}"
                exc.args = (exc.message,)
            raise

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the contract as YAML to ``path`` (atomically); returns the path."""
        target = Path(path)
        tmp = target.with_name(f".{target.name}.tmp")
        try:
            tmp.write_text(self.to_yaml(), encoding="utf-8")
            os.replace(tmp, target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise ContractFormatError(
                f"cannot write the contract to {target}: {exc.strerror}"
            ) from None
        return target

    def fingerprint(self) -> str:
        """A hash of everything the contract checks (for cache keys); callables by name."""
        payload = {**self.to_dict(), "callables": sorted(self.callables)}
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()
