"""Drafting a contract from a frame that is known to be good.

The draft describes the frame with a little slack, so that the next good batch passes too:
ranges widen by ``slack`` of their span (rounded outward to readable numbers, never below zero
for a column that has no negative value), row bounds by ``slack`` of the row count, and the
null share cap sits just above the share seen. Allowed values are listed for categorical
columns and for text columns with few distinct values that repeat; ``unique`` only for integer
and text columns whose non-null values are all distinct. Edit the YAML afterwards: the draft
is a starting point, not a judgement.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING, Any

from loopml.errors import UserInputError
from loopml.validation.contract import ColumnSpec, Contract, RowBounds

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from numpy.typing import NDArray

    from loopml.validation.coerce import Prepared

__all__ = ["infer"]

_EPOCH = dt.datetime(1970, 1, 1)
_MICROS_PER = {"s": 1_000_000, "ms": 1000, "us": 1}

_OBJECT_TYPES = {
    "string": "string",
    "empty": "string",
    "boolean": "bool",
    "integer": "int",
    "floating": "float",
    "mixed-integer-float": "float",
    "decimal": "float",
    "datetime": "datetime",
    "datetime64": "datetime",
    "date": "datetime",
}


def infer(frame: pd.DataFrame, *, slack: float = 0.1, max_categories: int = 50) -> Contract:
    """A draft contract describing ``frame``: types, nulls, ranges, categories, uniqueness, rows.

    ``slack`` widens ranges and row bounds (0.1: by a tenth); text columns with at most
    ``max_categories`` distinct values (each seen at least twice on average) get ``allowed``.
    """
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise UserInputError(f"infer needs a pandas DataFrame, not a {type(frame).__name__}")
    if not (isinstance(slack, int | float) and 0 <= slack <= 10):
        raise UserInputError(f"slack must be a number from 0 to 10, not {slack!r}")
    if max_categories < 0:
        raise UserInputError(f"max_categories must be 0 or more, not {max_categories}")
    names = [str(label) for label in frame.columns]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UserInputError(f"the frame has two columns named {repeated[0]!r}")
    rows = len(frame)
    columns = [
        _infer_column(name, frame.iloc[:, position], rows, slack, max_categories)
        for position, name in enumerate(names)
    ]
    bounds = RowBounds(
        min=math.floor(rows * max(0.0, 1 - slack)), max=math.ceil(rows * (1 + slack))
    )
    return Contract(columns=columns, rows=bounds)


def _column_type(name: str, series: pd.Series[Any]) -> str:
    import pandas as pd
    from pandas.api import types as ptypes

    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if ptypes.is_bool_dtype(dtype):
        return "bool"
    if ptypes.is_integer_dtype(dtype):
        return "int"
    if ptypes.is_float_dtype(dtype):
        return "float"
    if ptypes.is_datetime64_any_dtype(dtype):
        return "datetime"
    if getattr(dtype, "kind", None) == "O":
        kind = ptypes.infer_dtype(series, skipna=True)
        if kind in _OBJECT_TYPES:
            return _OBJECT_TYPES[kind]
        raise UserInputError(
            f"column {name!r} holds {kind} values; give it one type (int, float, bool, text, "
            "datetime) before inferring a contract"
        )
    if ptypes.is_string_dtype(dtype):
        return "string"
    raise UserInputError(
        f"column {name!r} has dtype {dtype}, which a contract cannot describe; convert it to "
        "int, float, bool, text, category or datetime"
    )


def _valid_values(prepared: Prepared) -> NDArray[Any] | None:
    """The comparable values of the rows that are neither null nor of the wrong type."""
    import numpy as np

    if prepared.codes is not None:
        if prepared.code_values is None:
            return None
        keep = np.ones(len(prepared.code_values), dtype=bool)
        if prepared.code_bad is not None:
            keep &= ~prepared.code_bad
        used = np.zeros(len(prepared.code_values), dtype=bool)
        used[prepared.codes[prepared.codes >= 0]] = True
        return prepared.code_values[keep & used]
    if prepared.values is None:
        return None
    invalid = prepared.invalid()
    return prepared.values if invalid is None else prepared.values[~invalid]


def _infer_column(
    name: str, series: pd.Series[Any], rows: int, slack: float, max_categories: int
) -> ColumnSpec:
    from loopml.validation.coerce import prepare

    kind = _column_type(name, series)
    prepared = prepare(kind, series)
    fields: dict[str, Any] = {"nullable": prepared.null_count > 0}
    if prepared.null_count:
        share = prepared.null_count / rows
        fields["max_null_share"] = min(
            1.0, math.ceil(round((share * (1 + slack) + 0.001) * 1000, 6)) / 1000
        )
    if kind in ("int", "float", "datetime"):
        values = _valid_values(prepared)
        if values is not None and len(values):
            low: Any
            high: Any
            if kind == "datetime":
                low, high = _datetime_range(values, prepared.unit or "ns", slack, series)
            else:
                low, high = _number_range(values, kind, slack)
            fields.update(min=low, max=high)
    if kind == "category":
        categories = [_plain(v) for v in series.cat.categories]
        if len(categories) <= max_categories and all(
            isinstance(v, bool | int | float | str) for v in categories
        ):
            fields["allowed"] = categories
    elif kind in ("string", "int"):
        fields.update(_infer_distinct(kind, prepared, rows, max_categories))
    return ColumnSpec(name=name, type=kind, **fields)


def _plain(value: Any) -> Any:
    import numpy as np

    return value.item() if isinstance(value, np.generic) else value


def _infer_distinct(
    kind: str, prepared: Prepared, rows: int, max_categories: int
) -> dict[str, Any]:
    """``allowed`` for repetitive text, ``unique`` for integer or text with no repeats."""
    present = rows - prepared.null_count
    if present < 2:
        return {}
    if kind == "int" and prepared.codes is None:
        series = prepared.series
        distinct = series if prepared.null is None else series[~prepared.null]
        return {"unique": bool(distinct.is_unique)}
    prepared.ensure_codes()
    assert prepared.uniques is not None
    uniques = prepared.uniques
    if prepared.code_bad is not None and prepared.code_bad.any():
        return {}  # values of the wrong type: no claim about the rest
    fields: dict[str, Any] = {"unique": len(uniques) == present}
    if kind == "string" and len(uniques) <= max_categories and 2 * len(uniques) <= present:
        fields["allowed"] = sorted(str(v) for v in uniques.to_numpy(dtype=object))
    return fields


def _nice(value: float, step: float, *, up: bool) -> float:
    """``value`` rounded outward to a multiple of ``step`` (a power of ten)."""
    ratio = round(value / step, 9)  # 0.02 / 0.01 is 1.9999999999999998 in floats
    scaled = math.ceil(ratio) if up else math.floor(ratio)
    digits = max(0, -math.floor(math.log10(step)))
    return round(scaled * step, digits)


def _number_range(
    values: NDArray[Any], kind: str, slack: float
) -> tuple[float | int | None, float | int | None]:
    import numpy as np

    if kind == "float":
        finite = values[np.isfinite(values)]
        if not len(finite):
            return None, None
        low, high = float(finite.min()), float(finite.max())
        span = high - low
        pad = span * slack if span else (abs(low) * slack or 1.0)
        if pad <= 0:
            lower, upper = low, high
        else:
            step = 10.0 ** math.floor(math.log10(pad))
            lower, upper = _nice(low - pad, step, up=False), _nice(high + pad, step, up=True)
        if low >= 0:
            lower = max(lower, 0.0)
        has_low_inf = bool(np.isneginf(values).any())
        has_high_inf = bool(np.isposinf(values).any())
        return (None if has_low_inf else lower), (None if has_high_inf else upper)
    low_int, high_int = int(values.min()), int(values.max())
    span_int = high_int - low_int
    pad_int = math.ceil(span_int * slack) if span_int else max(1, math.ceil(abs(low_int) * slack))
    lower_int = low_int - pad_int
    if low_int >= 0:
        lower_int = max(lower_int, 0)
    return lower_int, high_int + pad_int


def _to_datetime(value: int, unit: str, *, up: bool) -> dt.datetime:
    if unit == "ns":
        micros = -((-value) // 1000) if up else value // 1000
    else:
        micros = value * _MICROS_PER.get(unit, 1)
    return _EPOCH + dt.timedelta(microseconds=micros)


def _datetime_range(
    values: NDArray[np.int64], unit: str, slack: float, series: pd.Series[Any]
) -> tuple[str, str]:
    low = _to_datetime(int(values.min()), unit, up=False)
    high = _to_datetime(int(values.max()), unit, up=True)
    span = high - low
    pad = span * slack if span else dt.timedelta(days=1)
    lower = (low - pad).replace(microsecond=0)
    upper = high + pad
    if upper.microsecond:
        upper = upper.replace(microsecond=0) + dt.timedelta(seconds=1)
    aware = getattr(series.dtype, "tz", None) is not None
    suffix = "+00:00" if aware else ""
    return lower.isoformat() + suffix, upper.isoformat() + suffix
