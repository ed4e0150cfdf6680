"""Model signatures: the input a model was trained on, inferred from an example, checked on input.

A signature lists the example's columns with their kind (integer, float, boolean, string,
category, datetime), the exact pandas dtype, whether missing values are allowed, the levels of a
categorical column and the observed range of a numeric or datetime one. Inference never gives
up silently: a column it cannot describe is an error, so a model is never stored without the
signature its example asked for (nullable ``Int64`` and ``boolean`` columns included).

Checking input converts it to exactly what the model saw at training time: the same columns in
the same order with the same dtypes. A missing column, a value of the wrong type that cannot be
converted safely, a missing value where none was allowed, or an unseen category is reported by
column with what was expected; extra columns are dropped with an ``ExtraColumnsWarning``.
Ranges are recorded for monitoring and are not enforced.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopml.registry.errors import ExtraColumnsWarning, SignatureError, SignatureInferenceError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ColumnSpec", "OutputSpec", "Signature", "infer_signature"]

FORMAT = "loopml-signature/1"
KINDS = ("integer", "float", "boolean", "string", "category", "datetime")
# A text column is treated as categorical (its levels recorded and enforced) when it has at most
# this many distinct values, each seen at least twice on average.
MAX_TEXT_LEVELS = 64
_MASKED = frozenset(
    {"Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64"}
    | {"Float32", "Float64", "boolean"}
)
_SHOWN = 5  # values quoted in a message


def _py(value: Any) -> Any:
    """A JSON-friendly Python value for a NumPy/pandas scalar."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value


def _quote(values: Sequence[Any]) -> str:
    shown = ", ".join(repr(_py(v)) for v in values[:_SHOWN])
    return shown + (f" … ({len(values)} in all)" if len(values) > _SHOWN else "")


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """One input column as the model saw it in training."""

    name: str
    kind: str
    dtype: str
    nullable: bool
    categories: tuple[Any, ...] | None = None
    ordered: bool = False
    minimum: Any = None
    maximum: Any = None

    def describe(self) -> str:
        """``Int64, nullable`` / ``category of 'a', 'b'``: what input is expected, in words."""
        text = self.dtype if self.kind != "string" else f"{self.dtype} text"
        if self.categories is not None:
            text += f" with levels {_quote(self.categories)}"
        if self.nullable:
            text += ", nullable"
        return text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        data: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "dtype": self.dtype,
            "nullable": self.nullable,
        }
        if self.categories is not None:
            data["categories"] = list(self.categories)
            data["ordered"] = self.ordered
        if self.minimum is not None or self.maximum is not None:
            data["min"], data["max"] = self.minimum, self.maximum
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnSpec:
        """The inverse of :meth:`to_dict`."""
        categories = data.get("categories")
        return cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            dtype=str(data["dtype"]),
            nullable=bool(data["nullable"]),
            categories=tuple(categories) if categories is not None else None,
            ordered=bool(data.get("ordered", False)),
            minimum=data.get("min"),
            maximum=data.get("max"),
        )


@dataclass(frozen=True, slots=True)
class OutputSpec:
    """What ``predict`` returned on the example: its dtype and, for classifiers, the classes."""

    dtype: str
    classes: tuple[Any, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        data: dict[str, Any] = {"dtype": self.dtype}
        if self.classes is not None:
            data["classes"] = list(self.classes)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OutputSpec:
        """The inverse of :meth:`to_dict`."""
        classes = data.get("classes")
        return cls(str(data["dtype"]), tuple(classes) if classes is not None else None)


@dataclass(frozen=True, slots=True)
class Signature:
    """The columns a model takes and how it takes them.

    ``named`` is False when the example was an array (columns are then ``"0"``, ``"1"`` …);
    ``as_array`` is True when the model is given a NumPy array rather than a DataFrame (it was
    fitted without feature names), of ``array_dtype`` when the example was an array.
    """

    columns: tuple[ColumnSpec, ...]
    named: bool = True
    as_array: bool = False
    array_dtype: str | None = None
    output: OutputSpec | None = field(default=None, compare=False)

    @property
    def names(self) -> list[str]:
        """The column names, in order."""
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnSpec:
        """The spec of column ``name``; raises ``KeyError``."""
        for spec in self.columns:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def with_output(self, output: OutputSpec | None) -> Signature:
        """A copy with ``output`` set."""
        return Signature(self.columns, self.named, self.as_array, self.array_dtype, output)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        data: dict[str, Any] = {
            "format": FORMAT,
            "inputs": [c.to_dict() for c in self.columns],
            "named": self.named,
            "as_array": self.as_array,
        }
        if self.array_dtype is not None:
            data["array_dtype"] = self.array_dtype
        if self.output is not None:
            data["output"] = self.output.to_dict()
        return data

    def to_json(self) -> str:
        """Canonical JSON text."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        """The inverse of :meth:`to_dict`."""
        if data.get("format") != FORMAT:
            raise SignatureError(
                f"the stored signature has format {data.get('format')!r}, which this loopml "
                "cannot read; upgrade loopml"
            )
        output = data.get("output")
        return cls(
            columns=tuple(ColumnSpec.from_dict(c) for c in data["inputs"]),
            named=bool(data.get("named", True)),
            as_array=bool(data.get("as_array", False)),
            array_dtype=data.get("array_dtype"),
            output=OutputSpec.from_dict(output) if output is not None else None,
        )

    @classmethod
    def from_json(cls, text: str) -> Signature:
        """The inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))

    # -- checking ------------------------------------------------------------------------------

    def check(self, data: Any, *, what: str = "the model") -> Any:
        """``data`` converted to what the model was trained on, or ``SignatureError``.

        Accepts a DataFrame, a mapping of column to values (or to one value), a list of row
        mappings, or a 2-D array whose columns are taken in signature order. Returns a
        DataFrame, or a NumPy array when the model takes one.
        """
        frame = self._frame(data, what)
        problems: list[tuple[str, str]] = []
        converted: dict[str, Any] = {}
        for spec in self.columns:
            if spec.name not in frame.columns:
                problems.append((spec.name, f"missing (expected {spec.describe()})"))
                continue
            value, problem = _coerce(frame[spec.name], spec)
            if problem is not None:
                problems.append((spec.name, problem))
            else:
                converted[spec.name] = value
        if problems:
            details = "; ".join(f"column {name!r}: {problem}" for name, problem in problems)
            raise SignatureError(
                f"input does not match the signature of {what}: {details}", problems
            )
        known = set(self.names)
        extra = [str(c) for c in frame.columns if c not in known]
        if extra:
            warnings.warn(
                ExtraColumnsWarning(
                    f"ignoring {len(extra)} column(s) not in the signature of {what}: "
                    + ", ".join(repr(c) for c in extra[:_SHOWN])
                    + (" …" if len(extra) > _SHOWN else "")
                ),
                stacklevel=3,
            )
        import pandas as pd

        result = pd.DataFrame(converted, index=frame.index, columns=self.names)
        if self.as_array:
            if self.array_dtype is not None:
                return result.to_numpy(dtype=self.array_dtype)
            return result.to_numpy()
        return result

    def _frame(self, data: Any, what: str) -> pd.DataFrame:
        import numpy as np
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            frame = data
            if not self.named and not set(self.names) <= {str(c) for c in frame.columns}:
                frame = self._positional(frame.to_numpy(dtype=object), what, frame.index)
            elif not self.named:
                frame = frame.rename(columns=str)
            return frame
        if isinstance(data, Mapping):
            values = list(data.values())
            if values and all(np.ndim(v) == 0 for v in values):
                return pd.DataFrame([dict(data)])
            return pd.DataFrame(dict(data))
        if isinstance(data, list) and data and all(isinstance(row, Mapping) for row in data):
            return pd.DataFrame(data)
        array = np.asarray(data)
        if array.ndim == 1 and len(self.columns) == 1:
            array = array.reshape(-1, 1)
        return self._positional(array, what, None)

    def _positional(self, array: Any, what: str, index: Any) -> pd.DataFrame:
        import pandas as pd

        width = len(self.columns)
        if array.ndim != 2 or array.shape[1] != width:
            shape = "x".join(str(n) for n in array.shape) or "a scalar"
            raise SignatureError(
                f"input does not match the signature of {what}: expected {width} columns "
                f"({', '.join(repr(n) for n in self.names[:_SHOWN])}"
                f"{' …' if width > _SHOWN else ''}), got an array of shape {shape}",
                [("*", f"expected {width} columns")],
            )
        return pd.DataFrame(
            {spec.name: array[:, i] for i, spec in enumerate(self.columns)}, index=index
        )


# -- inference ---------------------------------------------------------------------------------


def infer_signature(example: Any, model: Any = None) -> Signature:
    """The signature of ``example`` (a DataFrame, or a 2-D NumPy array).

    ``model`` tells whether it was fitted with feature names: an estimator fitted on an array
    (no ``feature_names_in_``) is given arrays, so that it never warns about names it lacks.
    """
    import numpy as np
    import pandas as pd

    if isinstance(example, pd.Series):
        example = example.to_frame()
    if isinstance(example, pd.DataFrame):
        bad = [c for c in example.columns if not isinstance(c, str)]
        if bad:
            raise SignatureInferenceError(
                f"the example's column names must be text; {_quote(bad)} are not "
                "(rename them, or pass the example as a NumPy array)"
            )
        if len(set(example.columns)) != len(example.columns):
            raise SignatureInferenceError("the example has duplicate column names; rename them")
        if len(example) == 0:
            raise SignatureInferenceError("the example has no rows; pass some training rows")
        names = list(example.columns)
        fitted = getattr(model, "feature_names_in_", None)
        if fitted is not None and set(map(str, fitted)) <= set(names):
            # The model's own columns, in its order: a label or id column in the example is
            # then an extra column at prediction time, not a required one.
            names = [str(n) for n in fitted]
        columns = tuple(_infer_column(name, example[name]) for name in names)
        fitted_on_array = (
            model is not None
            and hasattr(model, "n_features_in_")
            and not hasattr(model, "feature_names_in_")
        )
        return Signature(columns, named=True, as_array=fitted_on_array)
    if isinstance(example, np.ndarray):
        array = example
        if array.ndim == 1:
            array = array.reshape(-1, 1)
        if array.ndim != 2 or array.shape[0] == 0:
            raise SignatureInferenceError(
                f"the example must be a 2-D array with at least one row, got shape {array.shape}"
            )
        columns = tuple(
            _infer_column(str(i), pd.Series(array[:, i])) for i in range(array.shape[1])
        )
        return Signature(columns, named=False, as_array=True, array_dtype=str(array.dtype))
    raise SignatureInferenceError(
        f"cannot infer a signature from a {type(example).__name__}; pass X_example as a "
        "pandas DataFrame or a 2-D NumPy array"
    )


def _range(values: pd.Series) -> tuple[Any, Any]:
    if len(values) == 0:
        return None, None
    low, high = _py(values.min()), _py(values.max())
    if isinstance(low, float) and not math.isfinite(low):
        low = None
    if isinstance(high, float) and not math.isfinite(high):
        high = None
    return low, high


def _infer_column(name: str, series: pd.Series) -> ColumnSpec:
    import numpy as np
    import pandas as pd
    from pandas.api import types

    dtype = series.dtype
    dtype_name = str(dtype)
    missing = series.isna()
    nullable = bool(missing.any()) or dtype_name in _MASKED
    values = series[~missing]
    if isinstance(dtype, pd.CategoricalDtype):
        known = tuple(_py(v) for v in dtype.categories)
        if not all(isinstance(v, str | int | float | bool) for v in known):
            raise SignatureInferenceError(
                f"column {name!r}: categories must be text or numbers to be recorded"
            )
        return ColumnSpec(name, "category", "category", nullable, known, bool(dtype.ordered))
    if types.is_bool_dtype(dtype):
        return ColumnSpec(name, "boolean", dtype_name, nullable)
    if types.is_integer_dtype(dtype) or types.is_float_dtype(dtype):
        kind = "integer" if types.is_integer_dtype(dtype) else "float"
        low, high = _range(values)
        return ColumnSpec(name, kind, dtype_name, nullable, minimum=low, maximum=high)
    if types.is_datetime64_any_dtype(dtype):
        low, high = _range(values)
        return ColumnSpec(name, "datetime", dtype_name, nullable, minimum=low, maximum=high)
    if dtype == np.dtype(object) or types.is_string_dtype(dtype):
        found = {type(v) for v in values}
        if not found:
            raise SignatureInferenceError(
                f"column {name!r} has only missing values in the example, so its type is "
                "unknown; give it a dtype (e.g. .astype('Int64')) or drop it"
            )
        if all(issubclass(t, bool | np.bool_) for t in found):
            return ColumnSpec(name, "boolean", dtype_name, nullable)
        if all(issubclass(t, str) for t in found):
            levels = values.unique()
            categories: tuple[Any, ...] | None = None
            if len(levels) <= MAX_TEXT_LEVELS and 2 * len(levels) <= len(values):
                categories = tuple(sorted(str(v) for v in levels))
            return ColumnSpec(name, "string", dtype_name, nullable, categories)
        kinds = ", ".join(sorted(t.__name__ for t in found))
        raise SignatureInferenceError(
            f"column {name!r} mixes value types ({kinds}); convert it to one dtype before "
            "logging the model"
        )
    raise SignatureInferenceError(
        f"column {name!r} has dtype {dtype_name}, which signatures do not support; convert "
        f"it to numbers, text, booleans, a category or datetimes ({', '.join(KINDS)})"
    )


# -- conversion --------------------------------------------------------------------------------


def _got(series: pd.Series, values: pd.Series) -> str:
    """What the input column holds, in words, for a message."""
    import numpy as np

    if series.dtype == np.dtype(object):
        names = sorted({type(v).__name__ for v in values})
        sample = [v for v in values[:1]]
        return f"{'/'.join(names)} values such as {_quote(sample)}" if names else "object"
    sample = list(values[:1])
    return f"{series.dtype}" + (f" such as {_quote(sample)}" if sample else "")


def _all_of(values: pd.Series, kinds: tuple[type, ...], exclude: tuple[type, ...] = ()) -> bool:
    return all(isinstance(v, kinds) and not isinstance(v, exclude) for v in values)


def _astype(series: Any, dtype: Any) -> Any:
    """``series.astype(dtype)`` with a dtype known only at run time."""
    return series.astype(dtype)


def _coerce(series: pd.Series, spec: ColumnSpec) -> tuple[Any, str | None]:
    """The column converted to the spec's dtype, or a problem in words."""
    import numpy as np
    import pandas as pd
    from pandas.api import types

    missing = series.isna().to_numpy(dtype=bool)
    count = int(missing.sum())
    if count and not spec.nullable:
        return None, (
            f"{count} missing value(s), but the model was trained without missing values here "
            f"(expected {spec.describe()})"
        )
    values = series[~missing]
    dtype = series.dtype
    is_object = dtype == np.dtype(object)
    wrong = f"expected {spec.describe()}, got {_got(series, values)}"
    numbers = (int, float, np.integer, np.floating)
    booleans = (bool, np.bool_)
    try:
        if spec.kind in ("integer", "float"):
            if types.is_bool_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
                return None, wrong
            if is_object and not _all_of(values, numbers, booleans):
                return None, wrong
            if not (is_object or types.is_numeric_dtype(dtype)):
                return None, wrong
            if spec.kind == "integer" and not types.is_integer_dtype(dtype):
                floats = values.to_numpy(dtype=float)
                fractional = values[~(np.isfinite(floats) & (floats == np.round(floats)))]
                if len(fractional):
                    return None, (
                        f"expected whole numbers ({spec.describe()}), "
                        f"got {_quote(list(fractional))}"
                    )
            if count and spec.dtype not in _MASKED:
                # float64 input with NaN: through the masked type so NaN stays missing.
                return _astype(series.astype("Float64"), spec.dtype), None
            return _astype(series, spec.dtype), None
        if spec.kind == "boolean":
            if types.is_bool_dtype(dtype) or (is_object and _all_of(values, booleans)):
                return _astype(series, object if spec.dtype == "object" else spec.dtype), None
            return None, wrong
        if spec.kind in ("string", "category"):
            text = types.is_string_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype)
            if spec.kind == "string" and not (text and _all_of(values, (str,))):
                return None, wrong
            if spec.categories is not None:
                known = set(spec.categories)
                unseen = sorted({_py(v) for v in values} - known, key=str)
                if unseen:
                    return None, (
                        f"unseen categories {_quote(unseen)} "
                        f"(expected one of {_quote(spec.categories)})"
                    )
            if spec.kind == "category":
                categorical = pd.Categorical(
                    _astype(series, object),
                    categories=list(spec.categories or ()),
                    ordered=spec.ordered,
                )
                return pd.Series(categorical, index=series.index), None
            return _astype(series, object if spec.dtype == "object" else spec.dtype), None
        if spec.kind == "datetime":
            if types.is_datetime64_any_dtype(dtype):
                return _astype(series, spec.dtype), None
            if types.is_numeric_dtype(dtype) or types.is_bool_dtype(dtype):
                return None, wrong
            parsed = pd.to_datetime(series, errors="coerce", format="ISO8601")
            bad = values[parsed[~missing].isna().to_numpy(dtype=bool)]
            if len(bad):
                return None, f"expected datetimes ({spec.dtype}), got {_quote(list(bad))}"
            return _astype(parsed, spec.dtype), None
    except (ValueError, TypeError, OverflowError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, f"cannot be converted safely to {spec.dtype} ({reason})"
    return None, f"has a kind this loopml does not know ({spec.kind}); upgrade loopml"
