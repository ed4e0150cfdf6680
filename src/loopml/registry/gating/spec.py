"""Gate files: which checks a candidate model must pass, read from YAML or from Python.

The smallest gate file names the holdout's label column and one floor::

    label: label
    metrics:
      accuracy: {min: 0.8}

Every other section is optional: ``slices``, ``no_regression`` (against the champion),
``invariance``, ``direction``, ``fairness``, ``latency``. A Python gate file defines ``GATE``
(the same mapping) and may add ``CHECKS``, a list of functions ``check(model, frame, y)``
returning a bool or ``(bool, detail)``. Mistakes are reported with the file and the key.
"""

from __future__ import annotations

import math
import runpy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopml.registry.errors import GateFileError

__all__ = [
    "Bound",
    "CustomCheck",
    "DirectionCheck",
    "FairnessCheck",
    "GateSpec",
    "InvarianceCheck",
    "LatencyCheck",
    "MetricCheck",
    "Perturbation",
    "RegressionCheck",
    "SliceCheck",
    "load_gate",
    "parse_gate",
]

_SECTIONS = (
    "label",
    "positive",
    "metrics",
    "slices",
    "no_regression",
    "invariance",
    "direction",
    "fairness",
    "latency",
    "seed",
)


@dataclass(frozen=True, slots=True)
class Bound:
    """An inclusive floor and/or ceiling."""

    min: float | None = None
    max: float | None = None

    def holds(self, value: float | None) -> bool:
        """Whether ``value`` is within the bound (NaN and None never are)."""
        if value is None or math.isnan(value):
            return False
        if self.min is not None and value < self.min:
            return False
        return not (self.max is not None and value > self.max)

    def describe(self) -> str:
        """``>= 0.8``, ``<= 0.5`` or ``in [0.2, 0.8]``."""
        if self.min is not None and self.max is not None:
            return f"in [{self.min:g}, {self.max:g}]"
        if self.min is not None:
            return f">= {self.min:g}"
        return f"<= {self.max:g}"


@dataclass(frozen=True, slots=True)
class MetricCheck:
    """A metric on the whole holdout within a bound."""

    metric: str
    bound: Bound


@dataclass(frozen=True, slots=True)
class SliceCheck:
    """A metric per value of ``column`` (or per bucket of a numeric one), each within ``bound``
    (``min`` for scores such as accuracy, ``max`` for errors such as rmse).

    ``buckets`` splits a numeric column at its quantiles; ``bins`` at given edges. Slices with
    fewer than ``min_rows`` rows are reported but not judged (too few rows to mean anything).
    """

    column: str
    metric: str
    bound: Bound
    buckets: int | None = None
    bins: tuple[float, ...] | None = None
    min_rows: int = 30


@dataclass(frozen=True, slots=True)
class RegressionCheck:
    """No regression against the champion: paired bootstrap interval of the difference."""

    metric: str
    max_drop: float = 0.01
    confidence: float = 0.95
    resamples: int = 1000


@dataclass(frozen=True, slots=True)
class Perturbation:
    """A change to one column: ``swap`` two values, ``set`` one, ``add`` or ``multiply``."""

    column: str
    kind: str
    values: tuple[Any, ...]

    def describe(self) -> str:
        """``plan: swap basic <-> premium`` and the like."""
        if self.kind == "swap":
            return f"{self.column}: swap {self.values[0]} <-> {self.values[1]}"
        if self.kind == "set":
            return f"{self.column} := {self.values[0]}"
        sign = "+" if self.kind == "add" else "x"
        return f"{self.column} {sign} {self.values[0]:g}"


@dataclass(frozen=True, slots=True)
class InvarianceCheck:
    """After the perturbation, the prediction must not change, for at least ``min_share``."""

    name: str
    perturbation: Perturbation
    min_share: float = 0.99
    tolerance: float = 0.0  # allowed change of a probability or regression output


@dataclass(frozen=True, slots=True)
class DirectionCheck:
    """After the perturbation, the score must move ``expect``-wards for at least ``min_share``.

    The score is the positive class's probability (classifiers) or the prediction (regressors).
    Not strict by default: a row whose score stays put does not count against the model.
    """

    name: str
    perturbation: Perturbation
    expect: str  # "increase" or "decrease"
    min_share: float = 0.9
    strict: bool = False


@dataclass(frozen=True, slots=True)
class FairnessCheck:
    """A metric per group of ``column``; the ratio of groups within bounds.

    Without ``reference``, the ratio is the lowest group's value over the highest's and must be
    at least ``min_ratio`` (0.8: the four-fifths rule). With a reference group, every group's
    value over the reference's must lie in ``[min_ratio, max_ratio]``.
    """

    column: str
    metric: str = "positive_rate"
    min_ratio: float = 0.8
    max_ratio: float | None = None
    reference: Any = None
    min_rows: int = 30


@dataclass(frozen=True, slots=True)
class LatencyCheck:
    """The 95th percentile of ``predict`` time on a batch of ``rows`` rows, in milliseconds."""

    rows: int
    p95_ms: float
    repeats: int = 50


@dataclass(frozen=True, slots=True)
class CustomCheck:
    """A Python gate file's own check: ``check(model, frame, y) -> bool | (bool, detail)``."""

    name: str
    function: Callable[..., Any]


@dataclass(frozen=True, slots=True)
class GateSpec:
    """A parsed gate file."""

    label: str
    path: str
    digest: str
    positive: Any = None
    metrics: tuple[MetricCheck, ...] = ()
    slices: tuple[SliceCheck, ...] = ()
    no_regression: RegressionCheck | None = None
    invariance: tuple[InvarianceCheck, ...] = ()
    direction: tuple[DirectionCheck, ...] = ()
    fairness: tuple[FairnessCheck, ...] = ()
    latency: tuple[LatencyCheck, ...] = ()
    custom: tuple[CustomCheck, ...] = field(default=())
    seed: int = 0


class _Reader:
    """Typed access to a gate file's mapping, with errors that name the file and the key."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> GateFileError:
        return GateFileError(f"{self.source}: {where}: {message}")

    def mapping(self, value: Any, where: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(where, f"expected a mapping, got {_kind(value)}")
        return value

    def sequence(self, value: Any, where: str) -> Sequence[Any]:
        if isinstance(value, Mapping):
            return [value]  # one entry written without the list dash
        if not isinstance(value, list):
            raise self.fail(where, f"expected a list, got {_kind(value)}")
        return value

    def keys(self, value: Mapping[str, Any], where: str, allowed: Sequence[str]) -> None:
        for key in value:
            if key not in allowed:
                raise self.fail(where, f"unknown key {key!r}; expected one of {', '.join(allowed)}")

    def number(self, value: Any, where: str, *, low: float | None = None) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise self.fail(where, f"expected a number, got {value!r}")
        if low is not None and value < low:
            raise self.fail(where, f"must be at least {low:g}, got {value!r}")
        return float(value)

    def share(self, value: Any, where: str) -> float:
        number = self.number(value, where)
        if not 0.0 <= number <= 1.0:
            raise self.fail(where, f"must be a share between 0 and 1, got {value!r}")
        return number

    def integer(self, value: Any, where: str, *, low: int = 1) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise self.fail(where, f"expected a whole number of at least {low}, got {value!r}")
        return value

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, f"expected a name, got {value!r}")
        return value

    def metric(self, value: Any, where: str) -> str:
        from loopml.registry.gating.metrics import metric

        name = self.text(value, where)
        try:
            return metric(name).name
        except Exception as exc:  # the metric table's message lists the known names
            raise self.fail(where, str(exc)) from None


def _resamplable(name: str) -> bool:
    from loopml.registry.gating.metrics import metric

    return metric(name).resamplable


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _bound(reader: _Reader, value: Any, where: str, metric_name: str) -> Bound:
    """A metric's bound; a bare number is the side that keeps bad models out: a floor for
    scores (``accuracy: 0.8``), a ceiling for errors (``rmse: 2.5``)."""
    from loopml.registry.gating.metrics import metric

    higher_is_better = metric(metric_name).greater_is_better
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = reader.number(value, where)
        return Bound(min=number) if higher_is_better else Bound(max=number)
    spec = reader.mapping(value, where)
    reader.keys(spec, where, ("min", "max"))
    low = reader.number(spec["min"], f"{where}.min") if "min" in spec else None
    high = reader.number(spec["max"], f"{where}.max") if "max" in spec else None
    if low is None and high is None:
        raise reader.fail(where, "give min, max or both, e.g. {min: 0.8}")
    if low is not None and high is not None and low > high:
        raise reader.fail(where, f"min {low:g} is above max {high:g}")
    # A bound only on the side a better model moves towards would let every worse model pass.
    if higher_is_better and low is None:
        raise reader.fail(where, f"{metric_name} is better when higher: give min (a floor)")
    if not higher_is_better and high is None:
        raise reader.fail(where, f"{metric_name} is better when lower: give max (a ceiling)")
    return Bound(low, high)


def _perturbation(reader: _Reader, spec: Mapping[str, Any], where: str) -> Perturbation:
    column = reader.text(spec.get("column"), f"{where}.column")
    kinds = [k for k in ("swap", "set", "add", "multiply") if k in spec]
    if len(kinds) != 1:
        raise reader.fail(
            where, "give exactly one of swap: [A, B], set: VALUE, add: N, multiply: N"
        )
    kind = kinds[0]
    value = spec[kind]
    if kind == "swap":
        if not isinstance(value, list) or len(value) != 2 or value[0] == value[1]:
            raise reader.fail(f"{where}.swap", "expected two different values, e.g. [F, M]")
        return Perturbation(column, kind, (value[0], value[1]))
    if kind == "set":
        return Perturbation(column, kind, (value,))
    return Perturbation(column, kind, (reader.number(value, f"{where}.{kind}"),))


def parse_gate(
    data: Any, *, source: str, digest: str, custom: Sequence[CustomCheck] = ()
) -> GateSpec:
    """A :class:`GateSpec` from a gate file's parsed mapping."""
    reader = _Reader(source)
    spec = reader.mapping(data, "the file")
    reader.keys(spec, "top level", _SECTIONS)
    if "label" not in spec:
        raise reader.fail("top level", "name the holdout's label column, e.g. `label: churned`")
    label = reader.text(spec["label"], "label")

    metrics = []
    for name, value in reader.mapping(spec.get("metrics") or {}, "metrics").items():
        canonical = reader.metric(name, f"metrics.{name}")
        metrics.append(MetricCheck(canonical, _bound(reader, value, f"metrics.{name}", canonical)))

    slices = []
    for i, value in enumerate(reader.sequence(spec.get("slices") or [], "slices")):
        where = f"slices[{i}]"
        item = reader.mapping(value, where)
        reader.keys(item, where, ("column", "metric", "min", "max", "buckets", "bins", "min_rows"))
        if "buckets" in item and "bins" in item:
            raise reader.fail(where, "give buckets (quantiles) or bins (edges), not both")
        bins = None
        if "bins" in item:
            raw = reader.sequence(item["bins"], f"{where}.bins")
            bins = tuple(reader.number(b, f"{where}.bins") for b in raw)
            if len(bins) < 2 or list(bins) != sorted(set(bins)):
                raise reader.fail(f"{where}.bins", "expected at least two increasing edges")
        if "min" not in item and "max" not in item:
            raise reader.fail(
                where, "give the bound every slice must meet, e.g. min: 0.7 (or max: for errors)"
            )
        slice_metric = reader.metric(item.get("metric", "accuracy"), f"{where}.metric")
        slices.append(
            SliceCheck(
                column=reader.text(item.get("column"), f"{where}.column"),
                metric=slice_metric,
                bound=_bound(
                    reader, {k: item[k] for k in ("min", "max") if k in item}, where, slice_metric
                ),
                buckets=(
                    reader.integer(item["buckets"], f"{where}.buckets", low=2)
                    if "buckets" in item
                    else None
                ),
                bins=bins,
                min_rows=reader.integer(item.get("min_rows", 30), f"{where}.min_rows"),
            )
        )

    regression = None
    raw_regression = spec.get("no_regression")
    if raw_regression is not None and raw_regression is not False:
        if raw_regression is True:
            raw_regression = {}
        item = reader.mapping(raw_regression, "no_regression")
        reader.keys(item, "no_regression", ("metric", "max_drop", "confidence", "resamples"))
        default_metric = metrics[0].metric if metrics else "accuracy"
        confidence = reader.number(item.get("confidence", 0.95), "no_regression.confidence")
        if not 0.5 <= confidence < 1.0:
            raise reader.fail("no_regression.confidence", "must be in [0.5, 1), e.g. 0.95")
        regression_metric = reader.metric(
            item.get("metric", default_metric), "no_regression.metric"
        )
        if not _resamplable(regression_metric):
            raise reader.fail(
                "no_regression.metric",
                f"{regression_metric} cannot be bootstrapped; use e.g. mae, rmse or accuracy",
            )
        regression = RegressionCheck(
            metric=regression_metric,
            max_drop=reader.number(item.get("max_drop", 0.01), "no_regression.max_drop", low=0),
            confidence=confidence,
            resamples=reader.integer(
                item.get("resamples", 1000), "no_regression.resamples", low=100
            ),
        )

    invariance = []
    for i, value in enumerate(reader.sequence(spec.get("invariance") or [], "invariance")):
        where = f"invariance[{i}]"
        item = reader.mapping(value, where)
        reader.keys(
            item,
            where,
            ("name", "column", "swap", "set", "add", "multiply", "min_share", "tolerance"),
        )
        change = _perturbation(reader, item, where)
        invariance.append(
            InvarianceCheck(
                name=str(item.get("name") or change.describe()),
                perturbation=change,
                min_share=reader.share(item.get("min_share", 0.99), f"{where}.min_share"),
                tolerance=reader.number(item.get("tolerance", 0.0), f"{where}.tolerance", low=0),
            )
        )

    direction = []
    for i, value in enumerate(reader.sequence(spec.get("direction") or [], "direction")):
        where = f"direction[{i}]"
        item = reader.mapping(value, where)
        reader.keys(
            item,
            where,
            ("name", "column", "swap", "set", "add", "multiply", "expect", "min_share", "strict"),
        )
        change = _perturbation(reader, item, where)
        expect = item.get("expect")
        if expect not in ("increase", "decrease"):
            raise reader.fail(f"{where}.expect", f"expected increase or decrease, got {expect!r}")
        strict = item.get("strict", False)
        if not isinstance(strict, bool):
            raise reader.fail(f"{where}.strict", f"expected true or false, got {strict!r}")
        direction.append(
            DirectionCheck(
                name=str(item.get("name") or f"{change.describe()} -> {expect}"),
                perturbation=change,
                expect=expect,
                min_share=reader.share(item.get("min_share", 0.9), f"{where}.min_share"),
                strict=strict,
            )
        )

    fairness = []
    for i, value in enumerate(reader.sequence(spec.get("fairness") or [], "fairness")):
        where = f"fairness[{i}]"
        item = reader.mapping(value, where)
        reader.keys(
            item, where, ("column", "metric", "min_ratio", "max_ratio", "reference", "min_rows")
        )
        min_ratio = reader.number(item.get("min_ratio", 0.8), f"{where}.min_ratio", low=0)
        max_ratio = (
            reader.number(item["max_ratio"], f"{where}.max_ratio", low=0)
            if "max_ratio" in item
            else None
        )
        if max_ratio is not None and "reference" not in item:
            raise reader.fail(
                where, "max_ratio needs a reference group (without one the ratio is at most 1)"
            )
        fairness.append(
            FairnessCheck(
                column=reader.text(item.get("column"), f"{where}.column"),
                metric=reader.metric(item.get("metric", "positive_rate"), f"{where}.metric"),
                min_ratio=min_ratio,
                max_ratio=max_ratio,
                reference=item.get("reference"),
                min_rows=reader.integer(item.get("min_rows", 30), f"{where}.min_rows"),
            )
        )

    latency = []
    for i, value in enumerate(reader.sequence(spec.get("latency") or [], "latency")):
        where = f"latency[{i}]"
        item = reader.mapping(value, where)
        reader.keys(item, where, ("rows", "p95_ms", "repeats"))
        if "rows" not in item or "p95_ms" not in item:
            raise reader.fail(where, "give rows and p95_ms, e.g. {rows: 1000, p95_ms: 200}")
        rows = reader.integer(item["rows"], f"{where}.rows")
        latency.append(
            LatencyCheck(
                rows=rows,
                p95_ms=reader.number(item["p95_ms"], f"{where}.p95_ms", low=0),
                repeats=reader.integer(
                    item.get("repeats", 50 if rows <= 100 else 20), f"{where}.repeats", low=5
                ),
            )
        )

    seed = reader.integer(spec.get("seed", 0), "seed", low=0)
    checks = len(metrics) + len(slices) + len(invariance) + len(direction) + len(fairness)
    checks += len(latency) + len(custom) + (regression is not None)
    if checks == 0:
        raise reader.fail(
            "top level", "the gate has no checks; add one, e.g. metrics: {accuracy: {min: 0.8}}"
        )
    return GateSpec(
        label=label,
        path=source,
        digest=digest,
        positive=spec.get("positive"),
        metrics=tuple(metrics),
        slices=tuple(slices),
        no_regression=regression,
        invariance=tuple(invariance),
        direction=tuple(direction),
        fairness=tuple(fairness),
        latency=tuple(latency),
        custom=tuple(custom),
        seed=seed,
    )


def load_gate(path: str | Path) -> GateSpec:
    """Read a gate file: ``.yaml``/``.yml`` (or any other text) as YAML, ``.py`` as Python."""
    from loopml.store.hashing import hash_bytes

    file = Path(path)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise GateFileError(f"no gate file {file}; write one, e.g. `label: y` + metrics") from None
    except IsADirectoryError:
        raise GateFileError(f"{file} is a folder, not a gate file") from None
    except OSError as exc:
        raise GateFileError(f"cannot read gate file {file}: {exc.strerror}") from None
    digest = hash_bytes(raw)
    source = str(file)
    if file.suffix == ".py":
        return _load_python(file, source, digest)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise GateFileError(f"{file}: not a text (UTF-8) file") from None
    from loopml.validation.yamlfile import parse

    try:
        data = parse(text, source)
    except Exception as exc:  # the YAML reader names the file and the line
        raise GateFileError(str(exc)) from None
    return parse_gate(data, source=source, digest=digest)


def _load_python(file: Path, source: str, digest: str) -> GateSpec:
    """Run a Python gate file (the user's own code, like a pipeline) and read GATE and CHECKS."""
    try:
        namespace = runpy.run_path(str(file), run_name="loopml_gate")
    except SystemExit as exc:
        raise GateFileError(f"{source}: it called exit({exc.code}) while being read") from None
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise GateFileError(f"{source}: running it failed: {type(exc).__name__}: {first}") from exc
    if "GATE" not in namespace:
        raise GateFileError(f"{source}: define GATE = {{'label': ..., 'metrics': {{...}}}}")
    raw_checks = namespace.get("CHECKS", [])
    if not isinstance(raw_checks, list | tuple) or not all(callable(c) for c in raw_checks):
        raise GateFileError(f"{source}: CHECKS must be a list of functions")
    custom = [
        CustomCheck(getattr(c, "__name__", f"check_{i}"), c) for i, c in enumerate(raw_checks)
    ]
    return parse_gate(namespace["GATE"], source=source, digest=digest, custom=custom)
