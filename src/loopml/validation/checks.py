"""Checking a frame against a contract: every check, one vectorised pass per column.

Each column is prepared once (nulls, type failures, comparable values; categoricals through
their codes), then each of its checks is a numpy comparison and a count. A check that passes
costs a reduction (``min``/``max`` of the column) rather than a mask where it can; masks and
example rows are only built for checks that fail; uniqueness is proven by hashing
(``hashing``) and settled exactly where hashes repeat. Big frames are checked a column per
thread (numpy and Arrow release the GIL). Every violation is reported, never just the first.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from loopml.errors import UserInputError
from loopml.validation.coerce import BoolArray, Prepared, bound_in_unit, lift, prepare
from loopml.validation.errors import CheckError, MissingColumnError
from loopml.validation.expressions import ExpressionEvalError, evaluate
from loopml.validation.hashing import (
    arrow_text_chunks,
    int_hashes,
    repeated_hashes,
    text_hashes,
)
from loopml.validation.report import Example, ValidationReport, Violation

if TYPE_CHECKING:
    from loopml.validation.contract import ColumnSpec, Contract, RowCheck

__all__ = ["EXAMPLES", "run_checks"]

#: How many offending rows a violation shows.
EXAMPLES = 5

_CHUNK = 1 << 16

#: Frames with at least this many cells (rows times contract columns) are checked on threads.
PARALLEL_CELLS = 1_000_000

#: Where example values come from: the column, the frame's columns an expression names, or
#: nowhere (a Python check).
Source: TypeAlias = "pd.Series[Any] | list[Any] | None"


def _plain(value: Any) -> Any:
    """A value as plain Python for reports and JSON (None for any kind of null)."""
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, float | np.floating) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _first_rows(mask: BoolArray, limit: int = EXAMPLES) -> list[int]:
    """Positions of the first ``limit`` true entries, scanning in chunks (no big allocation)."""
    found: list[int] = []
    for start in range(0, len(mask), _CHUNK):
        hits = np.flatnonzero(mask[start : start + _CHUNK])
        found.extend(int(start + h) for h in hits[: limit - len(found)])
        if len(found) >= limit:
            break
    return found


class _Collector:
    """Builds violations for one frame: counts, shares and example rows."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.rows = len(frame)
        self.index = frame.index
        self.violations: list[Violation] = []

    def fresh(self) -> _Collector:
        """A collector for the same frame with no violations yet (one per column task)."""
        return _Collector(self.frame)

    def share(self, count: int) -> float:
        return count / self.rows if self.rows else 0.0

    def examples(
        self, positions: list[int], source: Source, *, nulls: bool = False
    ) -> tuple[Example, ...]:
        """Row labels and values: the column's value, or a dict of the columns an expression
        names; no value for a Python check (and None for a null)."""
        if not positions:
            return ()
        labels = [_plain(label) for label in self.index[positions]]
        if source is None:
            return tuple(Example(label, None, has_value=False) for label in labels)
        if nulls:
            return tuple(Example(label, None) for label in labels)
        if isinstance(source, pd.Series):
            values: list[Any] = [_plain(v) for v in source.iloc[positions]]
        else:
            rows = self.frame[source].iloc[positions].itertuples(index=False, name=None)
            values = [{str(c): _plain(v) for c, v in zip(source, row, strict=True)} for row in rows]
        return tuple(Example(label, value) for label, value in zip(labels, values, strict=True))

    def add_mask(
        self,
        check: str,
        column: str | None,
        mask: BoolArray | None,
        expected: str,
        source: Source,
        *,
        count: int | None = None,
        nulls: bool = False,
    ) -> None:
        """A violation for the true rows of ``mask`` (nothing when there are none)."""
        if mask is None:
            return
        if count is None:
            count = int(np.count_nonzero(mask))
        if not count:
            return
        shown = self.examples(_first_rows(mask), source, nulls=nulls)
        self.violations.append(Violation(check, column, count, self.share(count), expected, shown))


def _workers(rows: int, columns: int, requested: int | None) -> int:
    """Threads for the column checks: numpy and Arrow release the GIL on big arrays, so
    columns run in parallel on big frames; small frames are not worth a thread."""
    if requested is not None:
        return max(1, min(requested, columns))
    if rows * columns < PARALLEL_CELLS or columns < 2:
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, columns, 8))


def run_checks(
    contract: Contract, frame: pd.DataFrame, *, workers: int | None = None
) -> ValidationReport:
    """Check ``frame`` against ``contract``; the report lists every violation.

    Columns are checked on ``workers`` threads (default: one per CPU for big frames, up to 8);
    the report's order does not depend on it: row count, columns in contract order, then
    expressions, then Python checks.
    """
    if not isinstance(frame, pd.DataFrame):
        raise UserInputError(
            f"a contract validates a pandas DataFrame, not a {type(frame).__name__}"
        )
    found = _Collector(frame)
    _check_rows(contract, found)
    by_text: dict[str, Any] = {}
    repeated: set[str] = set()
    for label in frame.columns:
        text = str(label)
        if text in by_text:
            repeated.add(text)
        by_text.setdefault(text, label)
    missing = [spec.name for spec in contract.columns if spec.name not in by_text]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise MissingColumnError(f"the data has no column {shown}{more} that the contract requires")
    tasks = []
    for spec in contract.columns:
        if spec.name in repeated:
            raise UserInputError(f"the data has two columns named {spec.name!r}")
        tasks.append((spec, frame[by_text[spec.name]], found.fresh()))
    threads = _workers(found.rows, len(tasks), workers)
    table = found.fresh()
    if threads > 1:
        with ThreadPoolExecutor(threads, thread_name_prefix="loopml-validate") as pool:
            # The slowest columns first, so that no thread is left with one at the end.
            ordered = sorted(tasks, key=lambda task: _cost(task[0], task[1]), reverse=True)
            futures = [pool.submit(_check_column, *task) for task in ordered]
            _check_table(contract, table, by_text)  # meanwhile, on this thread
            for future in futures:
                future.result()
    else:
        for task in tasks:
            _check_column(*task)
        _check_table(contract, table, by_text)
    for _, _, column in tasks:
        found.violations.extend(column.violations)
    found.violations.extend(table.violations)
    return ValidationReport(found.rows, contract.check_count, tuple(found.violations))


def _cost(spec: ColumnSpec, series: pd.Series[Any]) -> int:
    """A rough rank of how long a column's checks take (hashing text is the slow part)."""
    dtype = series.dtype
    text = not isinstance(dtype, pd.CategoricalDtype) and pd.api.types.is_string_dtype(dtype)
    return 4 * spec.unique + 2 * (spec.allowed is not None) * text + text


def _check_table(contract: Contract, found: _Collector, by_text: dict[str, Any]) -> None:
    """Expressions, then Python checks, in the contract's order."""
    for check in contract.checks:
        try:
            failed, passed = evaluate(check.expression, found.frame, check=check.name)
        except ExpressionEvalError as exc:  # e.g. a column of the wrong type: report, go on
            expected = f"{check.expression} (cannot evaluate: {exc.reason})"
            found.violations.append(
                Violation(check.name, ", ".join(check.columns), None, None, expected)
            )
            continue
        if failed is None:
            if not passed:
                found.violations.append(Violation(check.name, None, None, None, check.expression))
            continue
        columns = [by_text[name] for name in check.columns]
        found.add_mask(check.name, ", ".join(check.columns), failed, check.expression, columns)
    for name, function in contract.callables.items():
        _check_callable(name, function, found)


def _check_rows(contract: Contract, found: _Collector) -> None:
    bounds, rows = contract.rows, found.rows
    if bounds.min is not None and rows < bounds.min:
        found.violations.append(
            Violation("rows", None, rows, None, f">= {bounds.min} rows, got {rows}")
        )
    if bounds.max is not None and rows > bounds.max:
        found.violations.append(
            Violation("rows", None, rows, None, f"<= {bounds.max} rows, got {rows}")
        )


def _check_column(spec: ColumnSpec, series: pd.Series[Any], found: _Collector) -> None:
    prepared = prepare(spec.type, series)
    name = spec.name
    if prepared.incompatible is not None:
        count = found.rows - prepared.null_count
        if count:
            present = ~prepared.null if prepared.null is not None else np.ones(found.rows, bool)
            found.add_mask("type", name, present, prepared.incompatible, series, count=count)
    else:
        found.add_mask("type", name, prepared.row_bad(), f"{spec.type} values", series)
    _check_nulls(spec, prepared, found)
    if prepared.incompatible is not None:
        return  # values of the wrong kind: bounds, allowed values and repeats mean nothing
    if found.rows:
        if spec.min is not None:
            _check_bound(spec, prepared, found, upper=False)
        if spec.max is not None:
            _check_bound(spec, prepared, found, upper=True)
    if spec.allowed is not None:
        _check_allowed(spec, prepared, found)
    if spec.unique:
        _check_unique(spec, prepared, found)


def _check_nulls(spec: ColumnSpec, prepared: Prepared, found: _Collector) -> None:
    count = prepared.null_count
    if not count:
        return
    if not spec.nullable:
        found.add_mask("not_null", spec.name, prepared.null, "no nulls", None, count=count)
    elif spec.max_null_share is not None and found.share(count) > spec.max_null_share:
        found.add_mask(
            "null_share",
            spec.name,
            prepared.null,
            f"null share <= {spec.max_null_share:g}",
            None,
            count=count,
            nulls=True,
        )


def _extreme(values: NDArray[Any], upper: bool) -> Any:
    """The largest (or smallest) value, ignoring NaN, without allocating."""
    if values.dtype.kind == "f":
        return np.fmax.reduce(values) if upper else np.fmin.reduce(values)
    return values.max() if upper else values.min()


def _check_bound(spec: ColumnSpec, prepared: Prepared, found: _Collector, *, upper: bool) -> None:
    raw = spec.max if upper else spec.min
    assert raw is not None
    bound: Any = raw
    if spec.type == "datetime":
        bound = bound_in_unit(str(raw), prepared.unit or "ns", upper=upper)
    expected = f"<= {raw}" if upper else f">= {raw}"
    check = "max" if upper else "min"
    if prepared.codes is not None and prepared.code_values is not None:
        with np.errstate(invalid="ignore"):
            table = prepared.code_values > bound if upper else prepared.code_values < bound
        if prepared.code_bad is not None:
            table &= ~prepared.code_bad
        if table.any():
            found.add_mask(check, spec.name, lift(table, prepared.codes), expected, prepared.series)
        return
    values = prepared.values
    if values is None or not len(values):
        return
    extreme = _extreme(values, upper)  # includes invalid rows, so it only rules violations out
    if not (extreme > bound if upper else extreme < bound):
        return
    with np.errstate(invalid="ignore"):
        mask = values > bound if upper else values < bound
    invalid = prepared.invalid()
    if invalid is not None:
        mask &= ~invalid
    found.add_mask(check, spec.name, mask, expected, prepared.series)


def _allowed_text(allowed: list[Any]) -> str:
    shown = ", ".join(repr(v) for v in allowed[:10])
    return f"one of {shown}{', …' if len(allowed) > 10 else ''}"


def _check_allowed(spec: ColumnSpec, prepared: Prepared, found: _Collector) -> None:
    assert spec.allowed is not None
    expected = _allowed_text(spec.allowed)
    series = prepared.series
    if prepared.codes is not None and prepared.uniques is not None:
        table = ~np.asarray(prepared.uniques.isin(spec.allowed), dtype=bool)
        if prepared.code_bad is not None:
            table &= ~prepared.code_bad
        if table.any():
            found.add_mask("allowed", spec.name, lift(table, prepared.codes), expected, series)
        return
    ok = _arrow_isin(series, spec.allowed)
    if ok is None:
        ok = series.isin(spec.allowed).to_numpy(dtype=bool, na_value=False)
    mask = ~ok
    invalid = prepared.invalid()
    if invalid is not None:
        mask &= ~invalid
    found.add_mask("allowed", spec.name, mask, expected, series)


def _arrow_isin(series: pd.Series[Any], allowed: list[Any]) -> BoolArray | None:
    """Arrow's own membership kernel for Arrow text (None: not Arrow text, or odd values)."""
    chunks = arrow_text_chunks(series)
    if chunks is None or not all(isinstance(value, str) for value in allowed):
        return None
    import pyarrow as pa
    import pyarrow.compute as pc

    values = pa.array(allowed, type=chunks[0].type if chunks else pa.large_string())
    parts = [
        np.asarray(
            pc.is_in(chunk, value_set=values, skip_nulls=True).to_numpy(zero_copy_only=False),
            dtype=bool,
        )
        for chunk in chunks
    ]
    if not parts:
        return np.zeros(0, dtype=bool)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _repeat_suspects(prepared: Prepared) -> NDArray[np.intp] | None:
    """Positions that may hold a repeated value (every repeat is among them, and usually only
    repeats); None when the column has no fast path (floats, objects, coded columns)."""
    chunks = arrow_text_chunks(prepared.series)
    values = prepared.values
    if chunks is None and (values is None or values.dtype.kind not in "iuM"):
        return None
    invalid = prepared.invalid()
    positions = np.flatnonzero(~invalid) if invalid is not None else None
    if chunks is not None:
        hashes = text_hashes(chunks)
        found = repeated_hashes(hashes if positions is None else hashes[positions])
        return found if positions is None else positions[found]
    assert values is not None
    if values.dtype.kind == "M":
        values = values.view(np.int64)
    if positions is not None:
        values = values[positions]
    if len(values) < 2 or bool(np.all(values[1:] > values[:-1])):
        found = np.empty(0, dtype=np.intp)  # strictly increasing (ids, times): no repeats
    elif int(values.max()) - int(low := values.min()) < 4 * len(values):
        offsets = (values - low).astype(np.intp)  # dense integers (ids): exact counts
        found = np.flatnonzero(np.bincount(offsets)[offsets] > 1)
    else:
        found = repeated_hashes(int_hashes(values))
    return found if positions is None else positions[found]


def _check_unique(spec: ColumnSpec, prepared: Prepared, found: _Collector) -> None:
    series = prepared.series
    expected = "no repeated values"
    suspects = _repeat_suspects(prepared) if prepared.codes is None else None
    if suspects is not None:
        if not len(suspects):
            return
        # Compare the actual values where hashes repeat: a few rows, usually just the repeats.
        repeat = np.asarray(series.iloc[suspects].duplicated(keep="first").to_numpy(), dtype=bool)
        count = int(np.count_nonzero(repeat))
        if count:
            mask = np.zeros(found.rows, dtype=bool)
            mask[suspects[repeat]] = True
            found.add_mask("unique", spec.name, mask, expected, series, count=count)
        return
    if prepared.codes is None and not isinstance(series.dtype, np.dtype):
        prepared.ensure_codes()  # text and nullable columns: repeats are cheapest on codes
    codes = prepared.codes
    if codes is not None:
        counts = np.bincount(codes.astype(np.intp) + 1)[1:]
        repeats = int(counts.sum()) - int(np.count_nonzero(counts))
        if not repeats:
            return
        mask = pd.Series(codes).duplicated(keep="first").to_numpy() & (codes >= 0)
        found.add_mask("unique", spec.name, mask, expected, series, count=repeats)
        return
    mask = np.asarray(series.duplicated(keep="first").to_numpy(), dtype=bool)
    if prepared.null is not None:
        mask = mask & ~prepared.null  # pandas' arrays are read-only views: never change them
    found.add_mask("unique", spec.name, mask, expected, series)


def _check_callable(name: str, function: RowCheck, found: _Collector) -> None:
    frame = found.frame
    try:
        result = function(frame)
    except Exception as exc:
        raise CheckError(f"check {name!r} raised {type(exc).__name__}: {exc}") from exc
    expected = f"{getattr(function, '__qualname__', name)}(frame) is true"
    if isinstance(result, bool | np.bool_):
        if not result:
            found.violations.append(Violation(name, None, None, None, expected))
        return
    if isinstance(result, pd.Series):
        if not pd.api.types.is_bool_dtype(result.dtype):
            raise CheckError(f"check {name!r} returned {result.dtype} values, not true/false")
        ok = result.to_numpy(dtype=bool, na_value=True)
    else:
        ok = np.asarray(result)
        if ok.dtype != np.bool_:
            raise CheckError(f"check {name!r} returned {ok.dtype} values, not true/false")
    if ok.shape != (found.rows,):
        raise CheckError(
            f"check {name!r} returned {ok.shape[0] if ok.ndim else 1} values for "
            f"{found.rows} rows; return one bool per row, or one for the table"
        )
    found.add_mask(name, None, ~ok, expected, None)
