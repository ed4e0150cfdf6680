"""The metrics a promotion gate can compare: their names, their direction and how to compute them.

Every value comes from scikit-learn's own metric functions, the reference users already trust.
Labels are first coded into one sorted set of labels shared by the holdout and every compared
model, so that integers, strings, booleans and numpy scalars compare the same way everywhere
and both models of a comparison are scored on the same terms (same classes, same positive
class). :mod:`loopml.registry.gating.stats` recomputes the same metrics on bootstrap resamples
from the coded holdout that :func:`code_holdout` builds here.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from loopml.errors import UserInputError

__all__ = [
    "METRICS",
    "Metric",
    "Predictions",
    "compute_metric",
    "correct",
    "metric",
]

Task = Literal["classification", "regression"]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


@dataclass(frozen=True, slots=True)
class Predictions:
    """What one model predicted on the holdout rows.

    ``labels`` is the output of ``predict()``, shape ``(n,)``; ``proba`` the output of
    ``predict_proba()``, shape ``(n, C)``, or None when the model has none; ``classes`` the
    model's ``classes_`` (the order of the probability columns), None for a regressor.
    """

    labels: npt.NDArray[Any]
    proba: npt.NDArray[Any] | None = None
    classes: tuple[Any, ...] | None = None


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric a gate can name, and what it needs.

    ``resamplable`` says whether :func:`loopml.registry.gating.stats.paired_bootstrap` can
    recompute it on resamples (``median_ae`` cannot be, and neither can a multiclass
    ``roc_auc`` or ``average_precision``).
    """

    name: str
    task: Task
    needs_proba: bool
    greater_is_better: bool
    description: str
    aliases: tuple[str, ...] = ()
    resamplable: bool = True


def _m(
    name: str,
    task: Task,
    description: str,
    *,
    proba: bool = False,
    higher: bool = True,
    aliases: tuple[str, ...] = (),
    resamplable: bool = True,
) -> Metric:
    return Metric(name, task, proba, higher, description, aliases, resamplable)


_C: Task = "classification"
_R: Task = "regression"

METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        _m("accuracy", _C, "share of rows whose predicted label is the true one", aliases=("acc",)),
        _m(
            "balanced_accuracy",
            _C,
            "mean recall over the classes present in the holdout",
            aliases=("balanced_acc", "bacc", "balanced_accuracy_score"),
        ),
        _m(
            "precision",
            _C,
            "share of predicted positives that are positive (multiclass: macro average)",
            aliases=("precision_score", "ppv"),
        ),
        _m(
            "recall",
            _C,
            "share of positives predicted positive (multiclass: macro average)",
            aliases=("recall_score", "sensitivity"),
        ),
        _m(
            "f1",
            _C,
            "harmonic mean of precision and recall (multiclass: macro average)",
            aliases=("f1_score", "f_score", "fscore"),
        ),
        _m(
            "roc_auc",
            _C,
            "area under the ROC curve of the positive class's probability "
            "(multiclass: one-vs-rest macro average)",
            proba=True,
            aliases=("auc", "rocauc", "roc_auc_score", "auroc"),
        ),
        _m(
            "log_loss",
            _C,
            "mean negative log-probability of the true class",
            proba=True,
            higher=False,
            aliases=("logloss", "cross_entropy", "logistic_loss"),
        ),
        _m(
            "brier",
            _C,
            "mean squared error of the predicted probabilities "
            "(multiclass: summed over the classes)",
            proba=True,
            higher=False,
            aliases=("brier_score", "brier_score_loss"),
        ),
        _m(
            "average_precision",
            _C,
            "area under the precision-recall curve of the positive class's probability "
            "(multiclass: one-vs-rest macro average)",
            proba=True,
            aliases=("ap", "pr_auc", "average_precision_score"),
        ),
        _m(
            "positive_rate",
            _C,
            "share of rows predicted as the positive class",
            aliases=("predicted_positive_rate", "ppr"),
        ),
        _m(
            "true_positive_rate",
            _C,
            "same as recall",
            aliases=("tpr",),
        ),
        _m(
            "false_positive_rate",
            _C,
            "share of negatives predicted positive (multiclass: macro average)",
            higher=False,
            aliases=("fpr", "fall_out"),
        ),
        _m(
            "rmse",
            _R,
            "root mean squared error",
            higher=False,
            aliases=("root_mean_squared_error",),
        ),
        _m("mse", _R, "mean squared error", higher=False, aliases=("mean_squared_error",)),
        _m("mae", _R, "mean absolute error", higher=False, aliases=("mean_absolute_error",)),
        _m("r2", _R, "coefficient of determination", aliases=("r2_score", "r_squared")),
        _m(
            "mape",
            _R,
            "mean absolute error relative to the true value",
            higher=False,
            aliases=("mean_absolute_percentage_error",),
        ),
        _m(
            "median_ae",
            _R,
            "median absolute error",
            higher=False,
            aliases=("median_absolute_error", "medae"),
            resamplable=False,
        ),
    )
}

_ALIASES: dict[str, str] = {
    alias: m.name for m in METRICS.values() for alias in (m.name, *m.aliases)
}


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def metric(name: str) -> Metric:
    """The metric called ``name`` or one of its aliases (``auc``, ``log-loss``, ``r2_score``…)."""
    found = _ALIASES.get(_key(name))
    if found is None:
        raise UserInputError(f"unknown metric {name!r}; choose one of: {', '.join(METRICS)}")
    return METRICS[found]


# -- the coded holdout ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CodedHoldout:
    """The true values and every compared model's outputs, checked and coded once for a metric.

    For classification, ``y`` and ``predicted`` are codes into ``universe`` (the sorted labels of
    the holdout, the predictions and the models' classes), ``columns[i]`` gives the code of each
    of model ``i``'s probability columns, and ``positive`` is the code of the positive class
    (None for a multiclass holdout when none was named). For regression, ``y`` and ``predicted``
    are float64 values and the rest is empty.
    """

    metric: Metric
    rows: int
    y: npt.NDArray[Any]
    predicted: tuple[npt.NDArray[Any], ...]
    proba: tuple[FloatArray | None, ...] = ()
    columns: tuple[IntArray | None, ...] = ()
    universe: npt.NDArray[Any] | None = None
    binary: bool = False
    positive: int | None = None

    @property
    def classes(self) -> int:
        """How many distinct labels the codes run over."""
        return 0 if self.universe is None else len(self.universe)

    def positive_mask(self) -> npt.NDArray[np.bool_]:
        """Per row: is the true label the positive class (binary holdouts)."""
        return np.asarray(self.y == self.positive)

    def true_columns(self, model: int) -> IntArray:
        """Per row: the probability column of model ``model`` that holds the true class."""
        columns = self.columns[model]
        assert columns is not None
        column_of = np.full(self.classes, -1, dtype=np.intp)
        column_of[columns] = np.arange(len(columns))
        return np.asarray(column_of[self.y], dtype=np.intp)

    def positive_scores(self, model: int) -> FloatArray:
        """Model ``model``'s probability of the positive class, per row (binary holdouts)."""
        proba, columns = self.proba[model], self.columns[model]
        assert proba is not None and columns is not None
        return proba[:, int(np.flatnonzero(columns == self.positive)[0])]


def _label_kind(values: npt.NDArray[Any]) -> str:
    if values.dtype.kind in "biuf":
        return "number"
    if values.dtype.kind in "USTa":
        return "text"
    items = values.tolist()
    if all(isinstance(v, str) for v in items):
        return "text"
    if all(isinstance(v, int | float | np.number | np.bool_) for v in items):
        return "number"
    return "mixed"


def _unify(parts: Sequence[npt.NDArray[Any]]) -> tuple[npt.NDArray[Any], list[IntArray]]:
    """Code every part into one sorted set of labels; returns (labels, codes per part)."""
    kinds = {_label_kind(p) for p in parts if p.size}
    if "mixed" in kinds:
        raise UserInputError(
            "the labels mix types or have missing values; "
            "drop rows with missing labels and give labels of one type"
        )
    if len(kinds) > 1:
        # numpy would silently turn numbers into strings here, so that 1 and "1" would match
        raise UserInputError(
            "the holdout's labels and the model's predictions are of different types "
            "(numbers and text); give a target column of the type the model predicts"
        )
    joined = np.concatenate(parts)
    try:
        universe, inverse = np.unique(joined, return_inverse=True)
    except TypeError as exc:
        raise UserInputError(
            f"the labels cannot be compared with each other ({exc}); "
            "drop rows with missing labels and give labels of one type"
        ) from exc
    inverse = inverse.astype(np.intp, copy=False).reshape(-1)
    bounds = np.cumsum([0, *(len(p) for p in parts)])
    return universe, [inverse[a:b] for a, b in itertools.pairwise(bounds)]


def _show(label: Any) -> str:
    return repr(label.item() if isinstance(label, np.generic) else label)


def _as_1d(values: Any, what: str, rows: int | None) -> npt.NDArray[Any]:
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise UserInputError(f"{what} must be one value per row, not shape {array.shape}")
    if rows is not None and len(array) != rows:
        raise UserInputError(
            f"{what}: {len(array)} rows, but the holdout has {rows}; predict on the holdout rows"
        )
    return array


def _looks_continuous(labels: npt.NDArray[Any]) -> bool:
    if labels.dtype.kind != "f":
        return False
    finite = labels[np.isfinite(labels)]
    return bool(np.any(finite != np.round(finite)))


def _find(universe: npt.NDArray[Any], value: Any) -> int | None:
    for code, label in enumerate(universe.tolist()):
        if isinstance(label, str) == isinstance(value, str) and label == value:
            return code
    return None


def code_holdout(
    m: Metric, y_true: Any, models: Sequence[Predictions], positive: Any = None
) -> CodedHoldout:
    """Check the holdout and the models' outputs against what ``m`` needs, and code them."""
    y = _as_1d(y_true, "the holdout's target", None)
    rows = len(y)
    if rows == 0:
        raise UserInputError(f"{m.name} needs at least one holdout row; give a non-empty holdout")
    labels = [_as_1d(p.labels, "the model's predictions", rows) for p in models]
    if m.task == "regression":
        return _prepare_regression(m, y, labels, models)
    for p, predicted in zip(models, labels, strict=True):
        if p.classes is None and _looks_continuous(predicted):
            raise UserInputError(
                f"{m.name} is a classification metric but the model predicts continuous values "
                "(a regressor); use rmse, mae, r2 or another regression metric"
            )
    class_parts = [np.asarray(list(p.classes)) for p in models if p.classes is not None]
    universe, codes = _unify([y, *labels, *class_parts])
    y_codes, predicted_codes = codes[0], tuple(codes[1 : 1 + len(models)])
    class_codes = iter(codes[1 + len(models) :])
    columns = tuple(next(class_codes) if p.classes is not None else None for p in models)
    binary = len(universe) <= 2
    code: int | None = None
    if positive is not None:
        code = _find(universe, positive)
        if code is None:
            raise UserInputError(
                f"the positive class {positive!r} is not among the labels "
                f"({', '.join(_show(v) for v in universe[:10])}); name one of them"
            )
    elif binary:
        first = next((c for p, c in zip(models, columns, strict=True) if p.classes), None)
        code = int(first[1]) if first is not None and len(first) == 2 else len(universe) - 1
    proba: list[FloatArray | None] = []
    for p, cols in zip(models, columns, strict=True):
        proba.append(_checked_proba(m, p, cols, y_codes, universe, binary, code))
    return CodedHoldout(
        metric=m,
        rows=rows,
        y=y_codes,
        predicted=predicted_codes,
        proba=tuple(proba),
        columns=columns,
        universe=universe,
        binary=binary,
        positive=code,
    )


def _prepare_regression(
    m: Metric, y: npt.NDArray[Any], labels: list[npt.NDArray[Any]], models: Sequence[Predictions]
) -> CodedHoldout:
    if any(p.classes is not None for p in models):
        raise UserInputError(
            f"{m.name} is a regression metric but the model is a classifier; "
            "use accuracy, f1, roc_auc or another classification metric"
        )
    try:
        values = [np.asarray(a, dtype=np.float64) for a in (y, *labels)]
    except (TypeError, ValueError) as exc:
        raise UserInputError(
            f"{m.name} needs numeric targets and predictions ({exc}); give a numeric target column"
        ) from exc
    if not all(np.isfinite(v).all() for v in values):
        raise UserInputError(
            f"{m.name} got a missing or infinite target or prediction; "
            "drop or fill those holdout rows"
        )
    return CodedHoldout(metric=m, rows=len(y), y=values[0], predicted=tuple(values[1:]))


def _checked_proba(
    m: Metric,
    p: Predictions,
    columns: IntArray | None,
    y: IntArray,
    universe: npt.NDArray[Any],
    binary: bool,
    positive: int | None,
) -> FloatArray | None:
    if not m.needs_proba:
        return None
    if p.proba is None:
        raise UserInputError(
            f"{m.name} needs predicted probabilities but the model has no predict_proba; "
            "use a metric on labels such as accuracy or f1"
        )
    if columns is None:
        raise UserInputError(
            f"{m.name} needs to know which class each probability column is for, but the model "
            "has no classes_; use a metric on labels such as accuracy or f1"
        )
    proba = np.asarray(p.proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape != (len(y), len(columns)):
        raise UserInputError(
            f"the model's probabilities have shape {proba.shape}, expected "
            f"({len(y)}, {len(columns)}) for its {len(columns)} classes; "
            "give predict_proba's output on the holdout"
        )
    if not np.isfinite(proba).all():
        raise UserInputError(
            f"{m.name} got missing or infinite probabilities; check the model's predict_proba"
        )
    unknown = np.setdiff1d(y, columns)
    if unknown.size:
        raise UserInputError(
            f"the holdout has label {_show(universe[unknown[0]])}, which the model has no "
            f"probability for ({m.name} needs one); drop those rows or retrain on all labels"
        )
    if binary and positive is not None and positive not in columns:
        raise UserInputError(
            f"the positive class {_show(universe[positive])} is not among the model's classes; "
            "name one of its classes as the positive class"
        )
    return proba


# -- computing a metric with scikit-learn ---------------------------------------------------------


def _sklearn() -> Any:
    from sklearn import metrics  # slow to import: only when a metric is computed

    return metrics


def _label_metric(name: str, h: CodedHoldout, i: int) -> float:
    sk = _sklearn()
    y, p = h.y, h.predicted[i]
    if name == "accuracy":
        return float(sk.accuracy_score(y, p))
    if name == "balanced_accuracy":
        with warnings.catch_warnings():
            # a class predicted but absent from the holdout is left out, as documented
            warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
            return float(sk.balanced_accuracy_score(y, p))
    if name == "positive_rate":
        if h.positive is None:
            raise UserInputError(
                "positive_rate needs a positive class with more than two classes; name one"
            )
        return float(np.mean(p == h.positive))
    if name == "false_positive_rate":
        return _false_positive_rate(h, y, p)
    function = {
        "precision": sk.precision_score,
        "recall": sk.recall_score,
        "true_positive_rate": sk.recall_score,
        "f1": sk.f1_score,
    }[name]
    if h.binary:
        return float(function(y, p, pos_label=h.positive, average="binary", zero_division=0.0))
    return float(function(y, p, average="macro", zero_division=0.0))


def _false_positive_rate(h: CodedHoldout, y: IntArray, p: IntArray) -> float:
    sk = _sklearn()
    if h.binary:
        matrix = sk.confusion_matrix(y == h.positive, p == h.positive, labels=[False, True])
        counts = np.asarray(matrix[:1], dtype=np.float64)  # the negatives' row: tn, fp
    else:
        # one row per class present in the holdout or the predictions, as sklearn's macro does
        matrices = sk.multilabel_confusion_matrix(y, p)
        counts = np.asarray(matrices[:, 0, :], dtype=np.float64)  # tn, fp per class
    negatives = counts.sum(axis=1)
    rates = np.divide(counts[:, 1], negatives, out=np.zeros(len(counts)), where=negatives > 0)
    return float(rates.mean())


def _proba_metric(name: str, h: CodedHoldout, i: int) -> float:
    sk = _sklearn()
    proba = h.proba[i]
    assert proba is not None
    if h.binary:
        truth, score = h.positive_mask(), h.positive_scores(i)
        if name in ("roc_auc", "average_precision") and (truth.all() or not truth.any()):
            raise UserInputError(
                f"{name} needs both classes in the holdout, which has only one; "
                "use a larger holdout or accuracy"
            )
        function = {
            "roc_auc": sk.roc_auc_score,
            "average_precision": sk.average_precision_score,
            "brier": sk.brier_score_loss,
        }.get(name)
        if function is not None:
            return float(function(truth, score))
    columns = h.true_columns(i)
    labels = np.arange(proba.shape[1])
    if name == "log_loss":
        return float(sk.log_loss(columns, proba, labels=labels))
    if name == "brier":
        return float(sk.brier_score_loss(columns, proba, labels=labels))
    if name == "roc_auc":
        return float(sk.roc_auc_score(columns, proba, multi_class="ovr", labels=labels))
    # average_precision, multiclass: one-vs-rest over the model's classes
    truth_matrix = np.equal.outer(columns, labels)
    return float(sk.average_precision_score(truth_matrix, proba, average="macro"))


def _regression_metric(name: str, h: CodedHoldout, i: int) -> float:
    sk = _sklearn()
    function: Callable[..., Any] = {
        "rmse": sk.root_mean_squared_error,
        "mse": sk.mean_squared_error,
        "mae": sk.mean_absolute_error,
        "r2": sk.r2_score,
        "mape": sk.mean_absolute_percentage_error,
        "median_ae": sk.median_absolute_error,
    }[name]
    return float(function(h.y, h.predicted[i]))


def evaluate(h: CodedHoldout, i: int) -> float:
    """The holdout's metric for model ``i``, from scikit-learn."""
    name = h.metric.name
    try:
        if h.metric.task == "regression":
            return _regression_metric(name, h, i)
        compute = _proba_metric if h.metric.needs_proba else _label_metric
        value = compute(name, h, i)
    except ValueError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserInputError(f"cannot compute {name} on this holdout: {first}") from exc
    if np.isnan(value):
        raise UserInputError(f"{name} is undefined on this holdout; use a larger holdout")
    return value


def compute_metric(
    name: str, y_true: Any, predictions: Predictions, *, positive: Any = None
) -> float:
    """The metric ``name`` of one model's predictions on the holdout ``y_true``.

    For two classes the positive class is ``positive`` if given, else the model's second class
    (else the larger label), and precision, recall, f1 and the rates are about that class. With
    more classes they are macro averages over the classes present (as scikit-learn's
    ``average="macro"``), ``roc_auc`` and ``average_precision`` are one-vs-rest macro averages,
    and ``positive`` only serves ``positive_rate``, which needs it.
    """
    m = metric(name)
    return evaluate(code_holdout(m, y_true, [predictions], positive), 0)


def correct(y_true: Any, predictions: Predictions) -> npt.NDArray[np.bool_]:
    """Per row: is the predicted label the true one (what McNemar's test compares)."""
    y = _as_1d(y_true, "the holdout's target", None)
    labels = _as_1d(predictions.labels, "the model's predictions", len(y))
    _, (y_codes, label_codes) = _unify([y, labels])
    return np.asarray(y_codes == label_codes)
