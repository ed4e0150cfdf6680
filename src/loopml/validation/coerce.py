"""A column as its contract type sees it: nulls, values that fail the type, comparable values.

Safe-conversion rule: a column whose dtype is not the contract's type still passes when every
non-null value converts without loss, and each value that does not is a ``type`` violation.

====================  ===========================================================================
contract type         accepted
====================  ===========================================================================
``int``               integer dtypes (numpy or nullable); floats that are whole numbers; text of
                      whole numbers. Never booleans.
``float``             integer and float dtypes; text of numbers.
``bool``              boolean dtypes (numpy or nullable); the numbers 0 and 1; the text
                      true/false/1/0 (any case).
``string``            string dtypes; objects that are all text. Never numbers.
``category``          any dtype (the ``allowed`` list says which values may appear).
``datetime``          datetime64 (any unit, with or without a time zone); ISO 8601 text.
====================  ===========================================================================

Every conversion is vectorised. A categorical column is handled through its codes: the checks
run once per category and reach the rows with one gather. Text and object columns that need
converting are factorized first, so each distinct value is converted once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from pandas.api import types as ptypes

__all__ = ["Prepared", "bound_in_unit", "lift", "prepare"]

BoolArray = NDArray[np.bool_]

_NAT = np.iinfo(np.int64).min
_EPOCH = dt.datetime(1970, 1, 1)
_PER_MICROSECOND = {"s": (1, 1_000_000), "ms": (1, 1000), "us": (1, 1), "ns": (1000, 1)}
_TRUE_TEXT = frozenset({"true", "1"})
_FALSE_TEXT = frozenset({"false", "0"})


def lift(table: NDArray[Any], codes: NDArray[np.integer[Any]], fill: Any = False) -> NDArray[Any]:
    """Per-code values spread to rows through ``codes`` (code -1, a null, gets ``fill``)."""
    extended = np.append(table, np.asarray([fill], dtype=table.dtype))
    lifted: NDArray[Any] = extended[codes]
    return lifted


@dataclass
class Prepared:
    """One column ready for checking.

    Row-level data (``values``, ``bad``) or coded data (``codes`` into ``uniques`` with
    ``code_values``/``code_bad`` per distinct value): checks use whichever is there.
    """

    series: pd.Series[Any]
    null: BoolArray | None  # rows that are null; None when there are none
    null_count: int
    incompatible: str | None = None  # the dtype cannot hold the type at all
    values: NDArray[Any] | None = None  # row-level comparable values (garbage where invalid)
    bad: BoolArray | None = None  # non-null rows whose value fails the type
    codes: NDArray[np.integer[Any]] | None = None  # row -> index into uniques, -1 for null
    uniques: pd.Index[Any] | None = None
    code_values: NDArray[Any] | None = None
    code_bad: BoolArray | None = None
    unit: str | None = None  # the unit of datetime values ("s", "ms", "us", "ns")

    def ensure_codes(self) -> None:
        """Factorize the column (once) when a check is cheaper through codes."""
        if self.codes is None:
            codes, uniques = pd.factorize(self.series, use_na_sentinel=True)
            self.codes, self.uniques = codes, pd.Index(uniques)

    def row_bad(self) -> BoolArray | None:
        """Rows whose value fails the type (None when none does)."""
        if self.bad is not None:
            return self.bad
        if self.code_bad is not None and self.codes is not None and self.code_bad.any():
            return lift(self.code_bad, self.codes)
        return None

    def invalid(self) -> BoolArray | None:
        """Rows that value checks must skip: nulls and values that failed the type."""
        bad = self.row_bad()
        if bad is None:
            return self.null
        return bad if self.null is None else (bad | self.null)


def _kind(dtype: Any) -> str:
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
    if isinstance(dtype, np.dtype) and dtype.kind == "O":
        return "object"
    if ptypes.is_string_dtype(dtype):
        return "string"
    return "other"


def _nulls(series: pd.Series[Any], kind: str) -> tuple[BoolArray | None, int]:
    if kind in ("int", "bool") and isinstance(series.dtype, np.dtype):
        return None, 0  # numpy integers and booleans cannot hold a null
    null = np.asarray(series.isna().to_numpy(), dtype=bool)
    count = int(np.count_nonzero(null))
    return (null if count else None), count


def _numbers(series: pd.Series[Any], kind: str) -> NDArray[Any]:
    """Row values of a numeric or boolean column as numpy (nulls hold an arbitrary value)."""
    if isinstance(series.dtype, np.dtype):
        return series.to_numpy()
    if kind == "float":
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    if kind == "bool":
        return series.to_numpy(dtype=bool, na_value=False)
    unsigned = ptypes.is_unsigned_integer_dtype(series.dtype)
    return series.to_numpy(dtype=np.uint64 if unsigned else np.int64, na_value=0)


def _nonzero_or_none(mask: BoolArray) -> BoolArray | None:
    return mask if mask.any() else None


def prepare(target: str, series: pd.Series[Any]) -> Prepared:
    """Nulls, type failures and comparable values of ``series`` for the contract type."""
    kind = _kind(series.dtype)
    if kind == "category":
        return _prepare_categorical(target, series)
    null, null_count = _nulls(series, kind)
    prepared = Prepared(series, null, null_count)
    if target == "category":
        return prepared
    if target == "string":
        if kind == "object":
            _convert_coded(prepared, target)
        elif kind != "string":
            prepared.incompatible = f"a string column, not {series.dtype}"
        return prepared
    if target == "datetime":
        if kind == "datetime":
            array: Any = series.array
            if not isinstance(array, pd.arrays.DatetimeArray):
                array = pd.array(series.astype("datetime64[ns]"))
            prepared.values = np.asarray(array.asi8)
            prepared.unit = str(array.unit)
        elif kind in ("string", "object"):
            _convert_coded(prepared, target)
        else:
            prepared.incompatible = f"a datetime column, not {series.dtype}"
        return prepared
    # int, float, bool
    if kind in ("string", "object"):
        _convert_coded(prepared, target)
        return prepared
    accepted = ("bool", "int", "float") if target == "bool" else ("int", "float")
    if kind not in accepted:
        prepared.incompatible = f"a {target} column, not {series.dtype}"
        return prepared
    values = _numbers(series, kind)
    prepared.values = values
    if target == "int" and kind == "float":
        with np.errstate(invalid="ignore"):
            whole = np.isfinite(values) & (values == np.trunc(values))
        bad = ~whole
        if null is not None:
            bad &= ~null
        prepared.bad = _nonzero_or_none(bad)
    elif target == "bool" and kind in ("int", "float"):
        bad = (values != 0) & (values != 1)
        if null is not None:
            bad &= ~null
        prepared.bad = _nonzero_or_none(bad)
    return prepared


def _prepare_categorical(target: str, series: pd.Series[Any]) -> Prepared:
    """Checks through the codes: convert the categories once, gather by code for rows."""
    codes = np.asarray(series.cat.codes.to_numpy())
    categories = series.cat.categories
    null = codes < 0
    null_count = int(np.count_nonzero(null))
    prepared = Prepared(series, null if null_count else None, null_count)
    prepared.codes, prepared.uniques = codes, categories
    per_category = prepare(target, pd.Series(categories))
    prepared.incompatible = per_category.incompatible
    prepared.unit = per_category.unit
    if per_category.codes is not None:  # categories that themselves needed converting
        inner = per_category.codes
        if per_category.code_values is not None:
            prepared.code_values = per_category.code_values[inner]
        if per_category.code_bad is not None:
            prepared.code_bad = per_category.code_bad[inner]
    else:
        prepared.code_values = per_category.values
        prepared.code_bad = per_category.bad
    return prepared


def _convert_coded(prepared: Prepared, target: str) -> None:
    """Convert each distinct value of a text or object column once."""
    try:
        prepared.ensure_codes()
    except TypeError:  # unhashable objects (lists, dicts)
        prepared.incompatible = f"a {target} column, not objects such as lists or dicts"
        return
    assert prepared.uniques is not None
    uniques = np.asarray(prepared.uniques.to_numpy(dtype=object), dtype=object)
    if target == "string":
        prepared.code_bad = np.fromiter(
            (not isinstance(v, str) for v in uniques), dtype=bool, count=len(uniques)
        )
    elif target in ("int", "float"):
        prepared.code_values, prepared.code_bad = _objects_to_numbers(uniques, target == "int")
    elif target == "bool":
        prepared.code_values, prepared.code_bad = _objects_to_bools(uniques)
    elif target == "datetime":
        prepared.code_values, prepared.code_bad = _objects_to_datetimes(uniques)
        prepared.unit = "ns"


def _objects_to_numbers(
    uniques: NDArray[np.object_], whole: bool
) -> tuple[NDArray[np.float64], BoolArray]:
    is_bool = np.fromiter(
        (isinstance(v, bool | np.bool_) for v in uniques), dtype=bool, count=len(uniques)
    )
    candidates = pd.Series(uniques, dtype=object).where(~is_bool)
    numbers = pd.to_numeric(candidates, errors="coerce")
    values = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        bad = np.isnan(values)
        if whole:
            bad |= ~(np.isfinite(values) & (values == np.trunc(values)))
    return values, bad


def _as_bool(value: object) -> bool | None:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | float | np.integer | np.floating) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE_TEXT:
            return True
        if text in _FALSE_TEXT:
            return False
    return None


def _objects_to_bools(uniques: NDArray[np.object_]) -> tuple[BoolArray, BoolArray]:
    converted = [_as_bool(v) for v in uniques]
    values = np.fromiter((v is True for v in converted), dtype=bool, count=len(converted))
    bad = np.fromiter((v is None for v in converted), dtype=bool, count=len(converted))
    return values, bad


def _objects_to_datetimes(uniques: NDArray[np.object_]) -> tuple[NDArray[np.int64], BoolArray]:
    """ISO 8601 text and date/time objects as int64 nanoseconds since the epoch, in UTC."""
    usable = np.fromiter(
        (isinstance(v, str | dt.date | np.datetime64) for v in uniques),
        dtype=bool,
        count=len(uniques),
    )
    candidates = pd.Series(uniques, dtype=object).where(usable)
    try:
        converted = pd.to_datetime(candidates, errors="coerce", utc=True, format="ISO8601")
    except (ValueError, TypeError, OverflowError):
        converted = pd.to_datetime(candidates, errors="coerce", utc=True, format="mixed")
    naive = converted.dt.tz_convert(None).to_numpy(dtype="datetime64[ns]")
    values = np.asarray(naive).view(np.int64)
    return values, values == _NAT


def bound_in_unit(text: str, unit: str, *, upper: bool) -> int:
    """A datetime bound as an integer in ``unit`` since the epoch, comparable with ``asi8``.

    A naive bound is taken as UTC (as naive column values are); a lower bound rounds up and an
    upper bound down, so a coarse unit never lets a value just outside through. The result is
    clipped to the int64 range.
    """
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    micros = (moment - _EPOCH) // dt.timedelta(microseconds=1)
    multiply, divide = _PER_MICROSECOND.get(unit, (1000, 1))
    scaled = micros * multiply
    value = -((-scaled) // divide) if not upper else scaled // divide
    info = np.iinfo(np.int64)
    return max(info.min + 1, min(info.max, value))
