"""Gate metrics agree with scikit-learn, and the paired bootstrap and McNemar's test are right."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as sk

from loopml.errors import UserInputError
from loopml.registry.gating import stats
from loopml.registry.gating.metrics import METRICS, Predictions, compute_metric, correct, metric
from loopml.registry.gating.stats import (
    _resample_indices,
    _resample_values,
    mcnemar,
    paired_bootstrap,
)

# -- holdouts -----------------------------------------------------------------------------------


def _binary(rows: int, seed: int, skill: float, *, ties: bool = False) -> tuple[Any, Predictions]:
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < 0.35).astype(np.int64)
    return y, _binary_model(y, rng, skill, ties=ties)


def _binary_model(
    y: Any, rng: np.random.Generator, skill: float, *, ties: bool = False
) -> Predictions:
    score = 1 / (1 + np.exp(-(rng.normal(size=len(y)) + skill * (2 * y - 1))))
    if ties:
        score = np.round(score, 1)
    return Predictions(
        labels=(score > 0.5).astype(np.int64),
        proba=np.column_stack([1 - score, score]),
        classes=(np.int64(0), np.int64(1)),
    )


CLASSES = ("ant", "bee", "cat")


def _multiclass_model(y: Any, rng: np.random.Generator, skill: float) -> Predictions:
    logits = rng.normal(size=(len(y), 3))
    logits[np.arange(len(y)), np.searchsorted(CLASSES, y)] += skill
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return Predictions(
        labels=np.asarray(CLASSES)[proba.argmax(axis=1)],
        proba=proba,
        classes=tuple(np.asarray(CLASSES)),
    )


def _multiclass(rows: int, seed: int) -> tuple[Any, Predictions, Predictions]:
    rng = np.random.default_rng(seed)
    y = np.asarray(CLASSES, dtype=object)[rng.choice(3, rows, p=[0.5, 0.3, 0.2])]
    return y, _multiclass_model(y, rng, 1.5), _multiclass_model(y, rng, 1.0)


def _regression(rows: int, seed: int) -> tuple[Any, Predictions, Predictions]:
    rng = np.random.default_rng(seed)
    y = rng.normal(50.0, 10.0, rows)
    return (
        y,
        Predictions(labels=y + rng.normal(0, 3, rows)),
        Predictions(labels=y + rng.normal(1, 4, rows)),
    )


# -- scikit-learn, called directly, as the reference ------------------------------------------


def _sklearn(name: str, y: Any, p: Predictions, *, positive: Any = None) -> float:
    """The metric straight from scikit-learn, on the original labels."""
    labels = p.labels
    binary = positive is not None
    if name == "accuracy":
        return float(sk.accuracy_score(y, labels))
    if name == "balanced_accuracy":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(sk.balanced_accuracy_score(y, labels))
    if name in ("precision", "recall", "f1"):
        function = {"precision": sk.precision_score, "recall": sk.recall_score}.get(
            name, sk.f1_score
        )
        if binary:
            return float(function(y, labels, pos_label=positive, zero_division=0.0))
        return float(function(y, labels, average="macro", zero_division=0.0))
    if name == "false_positive_rate":
        tn, fp, _, _ = sk.confusion_matrix(y == positive, labels == positive, labels=[0, 1]).ravel()
        return float(fp / (fp + tn)) if fp + tn else 0.0
    if name == "positive_rate":
        return float(np.mean(labels == positive))
    if name in ("roc_auc", "average_precision", "brier", "log_loss"):
        assert p.proba is not None and p.classes is not None
        if name == "log_loss":
            return float(sk.log_loss(y, p.proba, labels=list(p.classes)))
        if not binary:
            if name == "brier":
                return float(sk.brier_score_loss(y, p.proba, labels=list(p.classes)))
            return float(sk.roc_auc_score(y, p.proba, multi_class="ovr", labels=list(p.classes)))
        score = p.proba[:, list(p.classes).index(positive)]
        truth = (np.asarray(y) == positive).astype(int)
        function = {
            "roc_auc": sk.roc_auc_score,
            "average_precision": sk.average_precision_score,
            "brier": sk.brier_score_loss,
        }[name]
        return float(function(truth, score))
    function = {
        "rmse": sk.root_mean_squared_error,
        "mse": sk.mean_squared_error,
        "mae": sk.mean_absolute_error,
        "r2": sk.r2_score,
        "mape": sk.mean_absolute_percentage_error,
        "median_ae": sk.median_absolute_error,
    }[name]
    return float(function(y, labels))


def _subset(p: Predictions, rows: Any) -> Predictions:
    return Predictions(
        labels=p.labels[rows],
        proba=None if p.proba is None else p.proba[rows],
        classes=p.classes,
    )


# -- compute_metric -------------------------------------------------------------------------------

BINARY_METRICS = [
    "accuracy",
    "balanced_accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "log_loss",
    "brier",
    "average_precision",
    "positive_rate",
    "false_positive_rate",
]


@pytest.mark.parametrize("name", BINARY_METRICS)
def test_binary_metrics_agree_with_sklearn(name: str) -> None:
    y, model = _binary(300, 1, 1.0)
    assert compute_metric(name, y, model) == pytest.approx(
        _sklearn(name, y, model, positive=1), rel=1e-12
    )


def test_true_positive_rate_is_recall() -> None:
    y, model = _binary(300, 2, 1.0)
    assert compute_metric("true_positive_rate", y, model) == compute_metric("recall", y, model)


def test_positive_class_can_be_named() -> None:
    y, model = _binary(300, 3, 1.0)
    for name in ("precision", "recall", "f1", "roc_auc", "average_precision"):
        assert compute_metric(name, y, model, positive=0) == pytest.approx(
            _sklearn(name, y, model, positive=0)
        )


@pytest.mark.parametrize(
    "name",
    [
        "accuracy",
        "balanced_accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "log_loss",
        "brier",
    ],
)
def test_multiclass_string_labels_agree_with_sklearn(name: str) -> None:
    y, model, _ = _multiclass(400, 4)
    assert compute_metric(name, y, model) == pytest.approx(_sklearn(name, y, model), rel=1e-12)


def test_multiclass_false_positive_rate_is_the_macro_average() -> None:
    y, model, _ = _multiclass(400, 5)
    matrices = sk.multilabel_confusion_matrix(y, model.labels)
    expected = np.mean([fp / (fp + tn) for (tn, fp), _ in matrices])
    assert compute_metric("fpr", y, model) == pytest.approx(expected)


@pytest.mark.parametrize("name", ["rmse", "mse", "mae", "r2", "mape", "median_ae"])
def test_regression_metrics_agree_with_sklearn(name: str) -> None:
    y, model, _ = _regression(200, 6)
    assert compute_metric(name, y, model) == pytest.approx(_sklearn(name, y, model), rel=1e-12)


def test_string_and_bool_labels() -> None:
    y = np.array(["no", "yes", "yes", "no", "yes"], dtype=object)
    model = Predictions(
        labels=np.array(["no", "yes", "no", "no", "yes"]),
        proba=np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3], [0.1, 0.9]]),
        classes=tuple(np.array(["no", "yes"])),
    )
    assert compute_metric("recall", y, model) == pytest.approx(2 / 3)  # positive: "yes"
    assert compute_metric("roc_auc", y, model) == 1.0
    # a target read back from Parquet as bool, a model trained on numpy bools
    flags = y == "yes"
    as_bool = Predictions(model.labels == "yes", model.proba, (np.False_, np.True_))
    assert compute_metric("f1", flags, as_bool) == pytest.approx(0.8)
    assert list(correct(y, model)) == [True, True, False, True, True]


def test_labels_of_different_types_are_refused() -> None:
    model = Predictions(labels=np.array(["0", "1"]), classes=("0", "1"))
    with pytest.raises(UserInputError, match="different types"):
        compute_metric("accuracy", np.array([0, 1]), model)
    with pytest.raises(UserInputError, match="drop rows with missing labels"):
        compute_metric("accuracy", np.array(["0", None], dtype=object), model)


def test_aliases_resolve() -> None:
    assert metric("auc").name == "roc_auc"
    assert metric("logloss").name == "log_loss"
    assert metric("Log-Loss").name == "log_loss"
    assert metric("r2_score").name == "r2"
    assert metric("tpr").name == "true_positive_rate"
    assert metric("fpr").greater_is_better is False
    assert {m.task for m in METRICS.values()} == {"classification", "regression"}


def test_unknown_metric_lists_the_known_ones() -> None:
    with pytest.raises(UserInputError, match=r"unknown metric 'acuracy'.*: accuracy, balanced_"):
        metric("acuracy")


def test_probability_metric_without_predict_proba() -> None:
    y, model = _binary(50, 7, 1.0)
    with pytest.raises(UserInputError, match=r"roc_auc needs predicted probabilities.*_proba"):
        compute_metric("roc_auc", y, Predictions(labels=model.labels, classes=model.classes))


def test_task_mismatch_is_refused() -> None:
    y, model = _binary(50, 8, 1.0)
    with pytest.raises(UserInputError, match="regression metric but the model is a classifier"):
        compute_metric("rmse", y, model)
    target, regressor, _ = _regression(50, 8)
    with pytest.raises(UserInputError, match=r"classification metric.*regressor"):
        compute_metric("accuracy", target, regressor)


# -- the paired bootstrap ----------------------------------------------------------------------


def _reference(
    name: str,
    y: Any,
    candidate: Predictions,
    champion: Predictions,
    resamples: int,
    seed: int,
    positive: Any = None,
) -> tuple[Any, Any]:
    """scikit-learn on each resample of :func:`_resample_indices`, one at a time."""
    ours, theirs = [], []
    for rows in _resample_indices(len(y), resamples, seed):
        sample = np.asarray(y)[rows]
        if name in ("roc_auc", "average_precision") and len(np.unique(sample)) < 2:
            ours.append(np.nan)
            theirs.append(np.nan)
            continue
        ours.append(_sklearn(name, sample, _subset(candidate, rows), positive=positive))
        theirs.append(_sklearn(name, sample, _subset(champion, rows), positive=positive))
    return np.array(ours), np.array(theirs)


def _check_against_reference(
    name: str, y: Any, candidate: Predictions, champion: Predictions, positive: Any = None
) -> None:
    resamples, seed = 25, 11
    got = _resample_values(
        name, y, candidate, champion, resamples=resamples, seed=seed, positive=positive
    )
    expected = _reference(name, y, candidate, champion, resamples, seed, positive)
    for ours, reference in zip(got, expected, strict=True):
        assert ours.shape == (resamples,)
        np.testing.assert_allclose(ours, reference, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    ("name", "ties"),
    [(name, False) for name in BINARY_METRICS]
    # tied scores (shared by both labels, or not) are what the ranking metrics must get right
    + [("roc_auc", True), ("average_precision", True), ("brier", True)],
)
def test_resampled_binary_values_equal_sklearn_on_the_same_rows(name: str, ties: bool) -> None:
    rng = np.random.default_rng(12)
    y = (rng.random(150) < 0.3).astype(np.int64)
    candidate = _binary_model(y, rng, 1.2, ties=ties)
    champion = _binary_model(y, rng, 0.8, ties=ties)
    _check_against_reference(name, y, candidate, champion, positive=1)


@pytest.mark.parametrize(
    "name", ["accuracy", "balanced_accuracy", "precision", "recall", "f1", "log_loss", "brier"]
)
def test_resampled_multiclass_values_equal_sklearn_on_the_same_rows(name: str) -> None:
    y, candidate, champion = _multiclass(120, 13)
    _check_against_reference(name, y, candidate, champion)


@pytest.mark.parametrize("name", ["rmse", "mse", "mae", "r2", "mape"])
def test_resampled_regression_values_equal_sklearn_on_the_same_rows(name: str) -> None:
    y, candidate, champion = _regression(100, 14)
    _check_against_reference(name, y, candidate, champion)


def test_identical_models_differ_by_exactly_zero() -> None:
    y, model = _binary(500, 15, 1.0)
    for name in ("accuracy", "roc_auc", "f1", "log_loss"):
        result = paired_bootstrap(name, y, model, model, resamples=200)
        assert (result.difference, result.low, result.high) == (0.0, 0.0, 0.0)
        assert result.resamples == 200 and result.rows == 500


def test_a_clearly_better_candidate_has_an_interval_above_zero() -> None:
    rng = np.random.default_rng(16)
    y = (rng.random(2000) < 0.4).astype(np.int64)
    good, poor = _binary_model(y, rng, 2.0), _binary_model(y, rng, 0.3)
    for name in ("accuracy", "roc_auc", "f1", "log_loss", "brier"):
        result = paired_bootstrap(name, y, good, poor, resamples=300)
        assert 0 < result.low < result.difference < result.high, name
        backwards = paired_bootstrap(name, y, poor, good, resamples=300)
        assert backwards.high < 0


def test_lower_is_better_metrics_are_turned_into_improvements() -> None:
    rng = np.random.default_rng(17)
    y = (rng.random(1000) < 0.4).astype(np.int64)
    good, poor = _binary_model(y, rng, 2.0), _binary_model(y, rng, 0.3)
    result = paired_bootstrap("log_loss", y, good, poor, resamples=100)
    assert result.candidate < result.champion
    assert result.difference == pytest.approx(result.champion - result.candidate)
    assert result.difference > 0
    target, close, far = _regression(300, 17)
    assert paired_bootstrap("rmse", target, close, far, resamples=100).low > 0


def test_interval_is_the_percentile_interval_of_the_differences() -> None:
    y, candidate, champion = _regression(200, 18)
    ours, theirs = _resample_values("mae", y, candidate, champion, resamples=500, seed=3)
    result = paired_bootstrap("mae", y, candidate, champion, resamples=500, seed=3, confidence=0.9)
    low, high = np.quantile(theirs - ours, [0.05, 0.95])
    assert (result.low, result.high) == pytest.approx((low, high))
    assert result.confidence == 0.9


def test_degenerate_auc_resamples_are_dropped() -> None:
    y = np.array([0, 0, 0, 0, 0, 0, 0, 1])
    score = np.linspace(0.1, 0.8, 8)
    candidate = Predictions((score > 0.5).astype(int), np.column_stack([1 - score, score]), (0, 1))
    champion = Predictions(np.zeros(8, dtype=int), np.full((8, 2), 0.5), (0, 1))
    result = paired_bootstrap("roc_auc", y, candidate, champion, resamples=300, seed=5)
    with_positive = sum(int((y[rows] == 1).any()) for rows in _resample_indices(8, 300, 5))
    assert 0 < result.resamples == with_positive < 300


def test_same_seed_same_interval_whatever_the_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    y, candidate = _binary(400, 19, 1.0)
    champion = _binary_model(y, np.random.default_rng(20), 0.5)
    serial = _resample_values("roc_auc", y, candidate, champion, resamples=300, seed=9)
    monkeypatch.setattr(stats, "_CHUNK_DRAWS", 4000)  # 10 resamples a chunk: many chunks
    monkeypatch.setattr(stats, "_threads", lambda draws: 2)
    threaded = _resample_values("roc_auc", y, candidate, champion, resamples=300, seed=9)
    monkeypatch.setattr(stats, "_threads", lambda draws: 1)
    chunked = _resample_values("roc_auc", y, candidate, champion, resamples=300, seed=9)
    np.testing.assert_array_equal(threaded[0], chunked[0])
    np.testing.assert_array_equal(threaded[1], chunked[1])
    assert serial[0].shape == threaded[0].shape == (300,)
    first = paired_bootstrap("f1", y, candidate, champion, resamples=100, seed=1)
    assert paired_bootstrap("f1", y, candidate, champion, resamples=100, seed=1) == first


def test_big_tables_take_the_same_values(monkeypatch: pytest.MonkeyPatch) -> None:
    y, candidate, champion = _multiclass(90, 23)
    names = ("f1", "balanced_accuracy", "log_loss")
    joint = [_resample_values(name, y, candidate, champion, resamples=30) for name in names]
    # a confusion table per model instead of one joint table; counts held a few at a time
    monkeypatch.setattr(stats, "_JOINT_CELLS", 1)
    monkeypatch.setattr(stats, "_COUNTS_LIMIT", 40)
    for name, expected in zip(names, joint, strict=True):
        got = _resample_values(name, y, candidate, champion, resamples=30)
        np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("bins", [200, 60_000, 70_000])
def test_narrow_packed_tables_count_like_plain_ones(bins: int) -> None:
    rng = np.random.default_rng(24)
    keys = rng.integers(0, bins // 2, (500, 2))
    keys[:, 1] += bins // 2
    seen: list[Any] = []

    def finish(counts: Any) -> tuple[Any, Any]:
        seen.append(counts.copy())
        return np.zeros(len(counts)), np.zeros(len(counts))

    plan = stats._plan_of(keys, bins, finish)
    assert plan.keys is not None and plan.keys.ndim == 1  # two narrow bins read as one item
    stats._chunk_values(plan, 500, 3, np.random.default_rng(7))
    draws = stats._draws(500, 3, np.random.default_rng(7))
    expected = [np.bincount(keys[rows].reshape(-1), minlength=bins) for rows in draws]
    np.testing.assert_array_equal(np.concatenate(seen), np.stack(expected))


def test_what_cannot_be_bootstrapped_says_what_can() -> None:
    target, close, far = _regression(50, 21)
    with pytest.raises(UserInputError, match=r"median_ae cannot be bootstrapped.*mae"):
        paired_bootstrap("median_ae", target, close, far)
    y, candidate, champion = _multiclass(60, 21)
    with pytest.raises(UserInputError, match="more than two classes; use accuracy or log_loss"):
        paired_bootstrap("roc_auc", y, candidate, champion)


def test_bad_bootstrap_arguments() -> None:
    y, model = _binary(20, 22, 1.0)
    with pytest.raises(UserInputError, match="confidence must be between 0 and 1"):
        paired_bootstrap("accuracy", y, model, model, confidence=95)
    with pytest.raises(UserInputError, match="resamples must be a whole number"):
        paired_bootstrap("accuracy", y, model, model, resamples=0)


# -- McNemar ------------------------------------------------------------------------------------


def _pairs(both: int, candidate_only: int, champion_only: int, neither: int) -> tuple[Any, Any]:
    ours = [True] * both + [True] * candidate_only + [False] * champion_only + [False] * neither
    theirs = [True] * both + [False] * candidate_only + [True] * champion_only + [False] * neither
    return np.array(ours), np.array(theirs)


def test_mcnemar_exact_for_few_discordant_rows() -> None:
    result = mcnemar(*_pairs(50, 8, 2, 10))
    assert (result.candidate_only, result.champion_only, result.method) == (8, 2, "exact")
    # two-sided binomial, 10 trials at 1/2: P(X <= 2) + P(X >= 8) = 2 * (1 + 10 + 45) / 1024
    assert result.p_value == pytest.approx(112 / 1024)
    assert result.statistic == 2.0


def test_mcnemar_chi_square_with_continuity_correction() -> None:
    result = mcnemar(*_pairs(100, 30, 10, 5))
    assert result.method == "chi-square (continuity-corrected)"
    assert result.statistic == pytest.approx((20 - 1) ** 2 / 40)
    # one degree of freedom: P(chi2 > x) = erfc(sqrt(x / 2))
    assert result.p_value == pytest.approx(math.erfc(math.sqrt(9.025 / 2)))


def test_mcnemar_without_discordant_rows() -> None:
    result = mcnemar(*_pairs(10, 0, 0, 3))
    assert (result.statistic, result.p_value) == (0.0, 1.0)
    with pytest.raises(UserInputError, match="same holdout rows"):
        mcnemar(np.ones(3, dtype=bool), np.ones(4, dtype=bool))
