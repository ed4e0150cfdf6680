"""The checks of a gate, each turning the candidate's predictions on the holdout into verdicts.

Every check returns :class:`CheckOutcome` rows rather than raising: a gate report lists every
check, so one broken check (a metric the model cannot give, a column the holdout lacks) fails
on its own row and the others still run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.registry.gating.metrics import Predictions, compute_metric, metric
from loopml.registry.gating.report import CheckOutcome, CheckStatus, SliceTable
from loopml.registry.gating.spec import (
    Bound,
    DirectionCheck,
    FairnessCheck,
    GateSpec,
    InvarianceCheck,
    LatencyCheck,
    Perturbation,
    RegressionCheck,
    SliceCheck,
)

if TYPE_CHECKING:
    import pandas as pd

    from loopml.registry.loaded import LoadedModel

__all__ = ["GateContext", "predict_all", "run_checks"]


@dataclass(slots=True)
class GateContext:
    """What every check reads: the holdout, the candidate and (maybe) the champion."""

    spec: GateSpec
    frame: pd.DataFrame  # the whole holdout, label included
    features: pd.DataFrame  # what the model is given
    y: np.ndarray
    candidate: LoadedModel
    predictions: Predictions
    champion: LoadedModel | None
    champion_note: str  # why there is no champion comparison, when there is none
    task: str
    champion_features: pd.DataFrame | None = None  # the champion's own input columns

    @property
    def positive(self) -> Any:
        """The positive class of a binary classifier (the gate's ``positive``, else the second)."""
        if self.spec.positive is not None:
            return self.spec.positive
        classes = self.predictions.classes
        return classes[-1] if classes else None


def predict_all(model: LoadedModel, features: pd.DataFrame) -> Predictions:
    """Labels, probabilities (where the model gives them) and class order, in one pass."""
    prepared = model.prepare(features)
    raw = model.model
    labels = np.asarray(raw.predict(prepared))
    proba = np.asarray(raw.predict_proba(prepared)) if hasattr(raw, "predict_proba") else None
    classes = getattr(raw, "classes_", None)
    if classes is None and model.signature is not None and model.signature.output is not None:
        classes = model.signature.output.classes
    return Predictions(
        labels=labels,
        proba=proba,
        classes=tuple(np.asarray(classes).tolist()) if classes is not None else None,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _subset(predictions: Predictions, mask: np.ndarray) -> Predictions:
    return Predictions(
        labels=predictions.labels[mask],
        proba=None if predictions.proba is None else predictions.proba[mask],
        classes=predictions.classes,
    )


def _metric(ctx: GateContext, name: str, mask: np.ndarray | None = None) -> float:
    predictions = ctx.predictions if mask is None else _subset(ctx.predictions, mask)
    y = ctx.y if mask is None else ctx.y[mask]
    return float(compute_metric(name, y, predictions, positive=ctx.positive))


def _status(ok: bool) -> str:
    return CheckStatus.PASSED if ok else CheckStatus.FAILED


# -- metric thresholds -----------------------------------------------------------------------


def _metric_checks(ctx: GateContext, metrics: dict[str, float]) -> Iterator[CheckOutcome]:
    for check in ctx.spec.metrics:
        threshold = check.bound.describe()
        try:
            value = _metric(ctx, check.metric)
        except Exception as exc:
            yield CheckOutcome(
                "metric", check.metric, CheckStatus.FAILED, None, threshold, _first_line(exc)
            )
            continue
        metrics[check.metric] = value
        yield CheckOutcome(
            "metric", check.metric, _status(check.bound.holds(value)), value, threshold
        )


# -- slices ------------------------------------------------------------------------------------


def _slice_keys(frame: pd.DataFrame, check: SliceCheck) -> tuple[np.ndarray, list[str]]:
    """Each row's slice name (its value, or its bucket of a numeric column), and the names in
    order: buckets by their lower edge, values sorted, "(outside bins)" and "(missing)" last."""
    import pandas as pd

    column = frame[check.column]
    missing = column.isna().to_numpy(dtype=bool)
    if check.bins is not None or check.buckets is not None:
        if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
            raise ValueError(f"buckets need a numeric column; {check.column} is {column.dtype}")
        numbers = column.astype("float64")
        if check.bins is not None:
            buckets = pd.cut(numbers, list(check.bins), include_lowest=True)
        else:
            buckets = pd.qcut(numbers, check.buckets or 2, duplicates="drop")
        intervals = list(buckets.cat.categories)
        codes = buckets.cat.codes.to_numpy()
        lowest = check.bins[0] if check.bins is not None else float(numbers.min())
        names = _interval_names(intervals, lowest)
        outside = (codes < 0) & ~missing
        labels = np.array([names[c] if c >= 0 else "(missing)" for c in codes], dtype=object)
        labels[outside] = "(outside bins)"
        order = [n for i, n in enumerate(names) if (codes == i).any()]
        if outside.any():
            order.append("(outside bins)")
    else:
        labels = column.astype(object).where(~missing, "(missing)").astype(str).to_numpy()
        order = sorted(set(labels[~missing].tolist()))
    if missing.any():
        order.append("(missing)")
    return labels, order


def _interval_names(intervals: list[Any], lowest: float) -> list[str]:
    """``[0, 10]``, ``(10, 18]``…: the first bucket starts at the column's minimum (pandas
    moves the edge a hair below it to include it), and numbers print short."""
    names = []
    for index, interval in enumerate(intervals):
        left = max(float(interval.left), lowest) if index == 0 else float(interval.left)
        opening = "[" if index == 0 or interval.closed in ("left", "both") else "("
        closing = "]" if interval.closed in ("right", "both") else ")"
        names.append(f"{opening}{left:g}, {float(interval.right):g}{closing}")
    return names


def _slice_checks(ctx: GateContext, tables: list[SliceTable]) -> Iterator[CheckOutcome]:
    for check in ctx.spec.slices:
        subject = f"{check.metric} by {check.column}"
        threshold = f"each {check.bound.describe()}"
        higher_is_better = metric(check.metric).greater_is_better
        if check.column not in ctx.frame.columns:
            yield CheckOutcome(
                "slice",
                subject,
                CheckStatus.FAILED,
                None,
                threshold,
                f"the holdout has no column {check.column!r}",
            )
            continue
        try:
            keys, ordered = _slice_keys(ctx.frame, check)
        except Exception as exc:
            yield CheckOutcome(
                "slice", subject, CheckStatus.FAILED, None, threshold, _first_line(exc)
            )
            continue
        names, values, rows = [], [], []
        worst: tuple[float, str] | None = None
        small = 0
        failing = []
        errors: list[str] = []
        for key in ordered:
            mask = keys == key
            count = int(mask.sum())
            try:
                value: float | None = _metric(ctx, check.metric, mask)
            except Exception as exc:
                value = None  # e.g. AUC on a slice with one class only
                if count >= check.min_rows:
                    errors.append(f"{key}: {_first_line(exc)}")
            names.append(key)
            values.append(value)
            rows.append(count)
            if count < check.min_rows:
                small += 1
                continue
            if value is None or math.isnan(value):
                continue
            if worst is None or (value < worst[0] if higher_is_better else value > worst[0]):
                worst = (value, key)
            if not check.bound.holds(value):
                failing.append(f"{key}={value:.3g}")
        tables.append(
            SliceTable(
                check.column,
                check.metric,
                tuple(names),
                tuple(values),
                tuple(rows),
                floor=check.bound.min,
                ceiling=check.bound.max,
                min_rows=check.min_rows,
            )
        )
        notes = []
        if worst is not None:
            notes.append(f"worst: {worst[1]} ({worst[0]:.3g})")
        if failing:
            notes.append("outside the bound: " + ", ".join(failing[:5]))
        if small:
            notes.append(f"{small} slice(s) under {check.min_rows} rows not judged")
        if errors:
            notes.append(f"undefined on {len(errors)} slice(s): {errors[0]}")
        if worst is None and errors:
            yield CheckOutcome(
                "slice", subject, CheckStatus.FAILED, None, threshold, "; ".join(notes)
            )
            continue
        if worst is None:
            yield CheckOutcome(
                "slice",
                subject,
                CheckStatus.SKIPPED,
                None,
                threshold,
                "; ".join(notes) or "no slice had enough rows",
            )
            continue
        yield CheckOutcome(
            "slice", subject, _status(not failing), worst[0], threshold, "; ".join(notes)
        )


# -- no regression against the champion -------------------------------------------------------


def _regression_checks(ctx: GateContext, check: RegressionCheck) -> Iterator[CheckOutcome]:
    from loopml.registry.gating.metrics import correct
    from loopml.registry.gating.stats import mcnemar, paired_bootstrap

    threshold = f"95% low >= -{check.max_drop:g}"
    if check.confidence != 0.95:
        threshold = f"{check.confidence:.0%} low >= -{check.max_drop:g}"
    subject = f"{check.metric} vs champion"
    if ctx.champion is None:
        yield CheckOutcome(
            "no-regression", subject, CheckStatus.SKIPPED, None, threshold, ctx.champion_note
        )
        return
    champion_label = ctx.champion.label
    subject = f"{check.metric} vs {champion_label}"
    try:
        if ctx.champion_features is None:
            raise ValueError("the holdout lacks columns it needs")
        champion_predictions = predict_all(ctx.champion, ctx.champion_features)
    except Exception as exc:
        yield CheckOutcome(
            "no-regression",
            subject,
            CheckStatus.FAILED,
            None,
            threshold,
            f"the champion cannot predict on the holdout: {_first_line(exc)}",
        )
        return
    try:
        result = paired_bootstrap(
            check.metric,
            ctx.y,
            ctx.predictions,
            champion_predictions,
            resamples=check.resamples,
            confidence=check.confidence,
            seed=ctx.spec.seed,
            positive=ctx.positive,
        )
    except Exception as exc:
        yield CheckOutcome(
            "no-regression", subject, CheckStatus.FAILED, None, threshold, _first_line(exc)
        )
        return
    worse = result.high < 0.0
    too_low = result.low < -check.max_drop
    detail = (
        f"{result.candidate:.4g} vs {result.champion:.4g}: improvement {result.difference:+.4f}"
        f", interval [{result.low:+.4f}, {result.high:+.4f}]"
    )
    if worse:
        detail += "; significantly worse"
    elif too_low:
        detail += f"; could be worse by more than {check.max_drop:g}"
    yield CheckOutcome(
        "no-regression",
        subject,
        _status(not (worse or too_low)),
        result.difference,
        threshold,
        detail,
    )
    if check.metric != "accuracy":
        return
    test = mcnemar(correct(ctx.y, ctx.predictions), correct(ctx.y, champion_predictions))
    alpha = 1.0 - check.confidence
    significantly_worse = test.p_value < alpha and test.champion_only > test.candidate_only
    yield CheckOutcome(
        "no-regression",
        f"McNemar vs {champion_label}",
        _status(not significantly_worse),
        test.p_value,
        f"not worse at p < {alpha:g}",
        f"only candidate right: {test.candidate_only}, only champion right: "
        f"{test.champion_only} ({test.method})",
    )


# -- invariance and direction -----------------------------------------------------------------


def _perturb(features: pd.DataFrame, change: Perturbation) -> tuple[pd.DataFrame, np.ndarray]:
    """A copy with the change applied, and which rows it touched."""
    import pandas as pd

    if change.column not in features.columns:
        raise ValueError(f"{change.column!r} is not one of the model's input columns")
    column = features[change.column]
    changed = features.copy()
    if change.kind in ("swap", "set"):
        if isinstance(column.dtype, pd.CategoricalDtype):
            # A value outside the levels becomes a level, so that the model's signature (not
            # pandas) says what it thinks of it.
            new_levels = [v for v in change.values if v not in column.cat.categories]
            column = column.cat.add_categories(new_levels) if new_levels else column
        new = column.copy()
        try:
            if change.kind == "swap":
                first, second = change.values
                is_first = (column == first).fillna(False).to_numpy(dtype=bool)
                is_second = (column == second).fillna(False).to_numpy(dtype=bool)
                new[is_first] = second
                new[is_second] = first
                touched = is_first | is_second
            else:
                (value,) = change.values
                touched = ~(column == value).fillna(False).to_numpy(dtype=bool)
                new[:] = value
        except (TypeError, ValueError):
            raise ValueError(
                f"{change.describe()} does not fit column {change.column} ({column.dtype}); "
                "give values of its type"
            ) from None
        changed[change.column] = new
        return changed, touched
    if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        raise ValueError(f"{change.kind} needs a numeric column; {change.column} is {column.dtype}")
    (amount,) = change.values
    wide = column.astype("Float64")  # no wrap-around of small integer types, NA kept
    values = wide + amount if change.kind == "add" else wide * amount
    if pd.api.types.is_integer_dtype(column):
        nullable = isinstance(column.dtype, pd.api.extensions.ExtensionDtype)
        values = values.round().astype("Int64" if nullable else "int64")
    elif not isinstance(column.dtype, pd.api.extensions.ExtensionDtype):
        values = values.astype(column.dtype)
    changed[change.column] = values
    # Rows that rounding left as they were are not counted: nothing was changed for them.
    touched = (values.astype("Float64") != wide).fillna(False).to_numpy(dtype=bool)
    return changed, touched


def _score(ctx: GateContext, predictions: Predictions) -> np.ndarray:
    """The positive class's probability (classifiers) or the prediction (regressors)."""
    if predictions.proba is not None and predictions.classes:
        index = list(predictions.classes).index(ctx.positive)
        return np.asarray(predictions.proba[:, index], dtype=float)
    return np.asarray(predictions.labels, dtype=float)


def _perturbed(
    ctx: GateContext, kind: str, name: str, change: Perturbation, threshold: str
) -> tuple[Predictions, np.ndarray] | CheckOutcome:
    """Predictions after the change and the rows it touched, or the outcome that ends the
    check: failed (the change or the prediction did not work) or skipped (no row changed)."""
    try:
        changed, touched = _perturb(ctx.features, change)
        after = predict_all(ctx.candidate, changed)
    except Exception as exc:
        return CheckOutcome(kind, name, CheckStatus.FAILED, None, threshold, _first_line(exc))
    if not touched.any():
        return CheckOutcome(
            kind,
            name,
            CheckStatus.SKIPPED,
            None,
            threshold,
            f"no holdout row is changed by {change.describe()}",
        )
    return after, touched


def _invariance_checks(ctx: GateContext, check: InvarianceCheck) -> CheckOutcome:
    threshold = f"share >= {check.min_share:g}"
    found = _perturbed(ctx, "invariance", check.name, check.perturbation, threshold)
    if isinstance(found, CheckOutcome):
        return found
    after, touched = found
    before = ctx.predictions
    if check.tolerance > 0 and before.proba is not None and after.proba is not None:
        delta = np.abs(np.asarray(after.proba, float) - np.asarray(before.proba, float))
        same = delta.max(axis=1) <= check.tolerance
    elif check.tolerance > 0 and ctx.task == "regression":
        same = np.abs(_score(ctx, after) - _score(ctx, before)) <= check.tolerance
    else:
        same = np.asarray(after.labels == before.labels, dtype=bool)
    share = float(same[touched].mean())
    detail = f"{int((~same[touched]).sum())} of {int(touched.sum())} changed rows moved"
    return CheckOutcome(
        "invariance", check.name, _status(share >= check.min_share), share, threshold, detail
    )


def _direction_checks(ctx: GateContext, check: DirectionCheck) -> CheckOutcome:
    threshold = f"share >= {check.min_share:g}"
    found = _perturbed(ctx, "direction", check.name, check.perturbation, threshold)
    if isinstance(found, CheckOutcome):
        return found
    after, touched = found
    delta = _score(ctx, after) - _score(ctx, ctx.predictions)
    if check.expect == "decrease":
        delta = -delta
    moved = delta > 0 if check.strict else delta >= 0
    share = float(moved[touched].mean())
    against = int((delta[touched] < 0).sum())
    detail = f"{against} of {int(touched.sum())} rows moved the other way"
    return CheckOutcome(
        "direction", check.name, _status(share >= check.min_share), share, threshold, detail
    )


# -- fairness ----------------------------------------------------------------------------------


def _fairness_check(ctx: GateContext, check: FairnessCheck) -> CheckOutcome:
    subject = f"{check.metric} ratio by {check.column}"
    if check.reference is not None:
        threshold = f"in [{check.min_ratio:g}, {_max_ratio(check):g}] x {check.reference}"
    else:
        threshold = f"lowest/highest >= {check.min_ratio:g}"
    if check.column not in ctx.frame.columns:
        return CheckOutcome(
            "fairness",
            subject,
            CheckStatus.FAILED,
            None,
            threshold,
            f"the holdout has no column {check.column!r}",
        )
    column = ctx.frame[check.column]
    values: dict[Any, float] = {}
    small = []
    for group in sorted(column.dropna().unique().tolist(), key=str):
        mask = (column == group).to_numpy(dtype=bool)
        if mask.sum() < check.min_rows:
            small.append(str(group))
            continue
        try:
            values[group] = _metric(ctx, check.metric, mask)
        except Exception as exc:
            return CheckOutcome(
                "fairness", subject, CheckStatus.FAILED, None, threshold, _first_line(exc)
            )
    shown = ", ".join(f"{g}={v:.3g}" for g, v in values.items())
    if small:
        shown += f"; under {check.min_rows} rows, not judged: {', '.join(small)}"
    if len(values) < 2:
        return CheckOutcome(
            "fairness",
            subject,
            CheckStatus.SKIPPED,
            None,
            threshold,
            f"fewer than two groups with enough rows ({shown})",
        )
    if check.reference is not None:
        if check.reference not in values:
            return CheckOutcome(
                "fairness",
                subject,
                CheckStatus.FAILED,
                None,
                threshold,
                f"no group {check.reference!r} with enough rows ({shown})",
            )
        base = values[check.reference]
        ratios = {g: _ratio(v, base) for g, v in values.items() if g != check.reference}
        bound = Bound(check.min_ratio, _max_ratio(check))
        # The worst group is the one farthest from parity, whichever way.
        worst_group = max(ratios, key=lambda g: _distance_from_parity(ratios[g]))
        ok = all(bound.holds(r) and math.isfinite(r) for r in ratios.values())
        return CheckOutcome(
            "fairness",
            subject,
            _status(ok),
            ratios[worst_group],
            threshold,
            f"{shown}; worst: {worst_group}",
        )
    low, high = min(values.values()), max(values.values())
    ratio = _ratio(low, high)
    return CheckOutcome(
        "fairness", subject, _status(ratio >= check.min_ratio), ratio, threshold, shown
    )


def _max_ratio(check: FairnessCheck) -> float:
    """The upper bound of a ratio to the reference: given, or the mirror of the lower one."""
    if check.max_ratio is not None:
        return check.max_ratio
    return 1.0 / check.min_ratio if check.min_ratio > 0 else math.inf


def _distance_from_parity(ratio: float) -> float:
    if ratio <= 0 or not math.isfinite(ratio):
        return math.inf
    return abs(math.log(ratio))


def _ratio(value: float, base: float) -> float:
    if base == 0:
        return 1.0 if value == 0 else math.inf
    return value / base


# -- latency -----------------------------------------------------------------------------------


def _latency_check(ctx: GateContext, check: LatencyCheck) -> CheckOutcome:
    subject = f"p95 predict, {check.rows} row{'s' if check.rows != 1 else ''}"
    threshold = f"<= {check.p95_ms:g} ms"
    features = ctx.features
    batch = features.sample(
        n=check.rows, replace=check.rows > len(features), random_state=ctx.spec.seed
    )
    try:
        for _ in range(2):  # warm caches and lazy imports out of the measurement
            ctx.candidate.predict(batch)
        times = []
        for _ in range(check.repeats):
            start = time.perf_counter()
            ctx.candidate.predict(batch)
            times.append(time.perf_counter() - start)
    except Exception as exc:
        return CheckOutcome(
            "latency", subject, CheckStatus.FAILED, None, threshold, _first_line(exc)
        )
    p95 = float(np.percentile(np.asarray(times) * 1000.0, 95))
    median = float(np.median(times) * 1000.0)
    return CheckOutcome(
        "latency",
        subject,
        _status(p95 <= check.p95_ms),
        p95,
        threshold,
        f"median {median:.3g} ms over {check.repeats} calls",
    )


# -- a Python gate file's own checks ----------------------------------------------------------


def _custom_check(ctx: GateContext, name: str, function: Callable[..., Any]) -> CheckOutcome:
    try:
        verdict = function(ctx.candidate, ctx.frame, ctx.y)
    except Exception as exc:
        return CheckOutcome(
            "custom",
            name,
            CheckStatus.FAILED,
            None,
            "returns true",
            f"{type(exc).__name__}: {_first_line(exc)}",
        )
    detail = ""
    if isinstance(verdict, tuple) and len(verdict) == 2:
        verdict, detail = verdict
    if not isinstance(verdict, bool | np.bool_):
        return CheckOutcome(
            "custom",
            name,
            CheckStatus.FAILED,
            None,
            "returns true",
            f"returned {type(verdict).__name__}; return True/False or (bool, detail)",
        )
    return CheckOutcome("custom", name, _status(bool(verdict)), None, "returns true", str(detail))


def run_checks(
    ctx: GateContext,
    metrics: dict[str, float],
    slices: list[SliceTable],
    progress: Callable[[str], None] | None = None,
) -> list[CheckOutcome]:
    """Every check of the gate, in the file's order of sections; fills metrics and slices."""
    note = progress or (lambda _label: None)
    spec = ctx.spec
    outcomes: list[CheckOutcome] = []
    note("metrics")
    outcomes.extend(_metric_checks(ctx, metrics))
    note("slices")
    outcomes.extend(_slice_checks(ctx, slices))
    if spec.no_regression is not None:
        note("no regression against the champion")
        outcomes.extend(_regression_checks(ctx, spec.no_regression))
    for invariance in spec.invariance:
        note(f"invariance: {invariance.name}")
        outcomes.append(_invariance_checks(ctx, invariance))
    for direction in spec.direction:
        note(f"direction: {direction.name}")
        outcomes.append(_direction_checks(ctx, direction))
    for fairness in spec.fairness:
        note(f"fairness: {fairness.column}")
        outcomes.append(_fairness_check(ctx, fairness))
    for latency in spec.latency:
        note(f"latency: {latency.rows} row{'s' if latency.rows != 1 else ''}")
        outcomes.append(_latency_check(ctx, latency))
    for custom in spec.custom:
        note(f"custom: {custom.name}")
        outcomes.append(_custom_check(ctx, custom.name, custom.function))
    return outcomes
