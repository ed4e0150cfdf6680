"""log_model and load_model: storage, signatures, input checking, versions and lineage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from registry_helpers import churn_frame, log_versions, train

import loopml
from loopml.registry import (
    ExtraColumnsWarning,
    ProbabilisticModel,
    SignatureError,
    SignatureInferenceError,
    UnsupportedModelError,
    infer_signature,
    list_versions,
    load_model,
    log_model,
)
from loopml.store.workspace import Workspace
from loopml.tracking.errors import NoActiveRunError


def test_round_trip_gives_identical_predictions(
    db_workspace: Workspace, churn: tuple[pd.DataFrame, np.ndarray]
) -> None:
    frame, label = churn
    model = train(frame, label)
    with loopml.start_run(system_metrics=False) as run:
        version = log_model(model, "churn", X_example=frame)
    assert (version.model, version.number, version.run_id) == ("churn", 1, run.id)
    assert version.framework == "scikit-learn"
    import sklearn

    assert version.framework_version == sklearn.__version__
    assert version.model_class.endswith("HistGradientBoostingClassifier")
    assert version.flavor == "skops"

    loaded = load_model("churn@1")
    assert isinstance(loaded, ProbabilisticModel)
    assert loaded.version.id == version.id
    assert loaded.signature == version.signature
    np.testing.assert_array_equal(loaded.predict(frame), model.predict(frame))
    np.testing.assert_array_equal(loaded.predict_proba(frame), model.predict_proba(frame))
    assert db_workspace.objects.has(version.digest)


def test_identical_models_have_the_same_digest_and_numbers_count_up(
    workspace: Workspace, churn: tuple[pd.DataFrame, np.ndarray]
) -> None:
    frame, label = churn
    with loopml.start_run(system_metrics=False):
        first = log_model(train(frame, label), "churn", X_example=frame)
        second = log_model(train(frame, label), "churn", X_example=frame)
        other = log_model(train(frame, label, seed=1), "other", X_example=frame)
    assert first.digest == second.digest
    assert (first.number, second.number, other.number) == (1, 2, 1)
    assert [v.number for v in list_versions("churn")] == [1, 2]
    # A digest prefix is a reference too (the newest version with that content answers).
    assert load_model(f"churn@{first.digest[:10]}").version.number == 2


def test_signature_inference_covers_nullable_categorical_and_ranges(
    churn: tuple[pd.DataFrame, np.ndarray],
) -> None:
    frame, _ = churn
    frame = frame.assign(
        city=np.where(np.arange(len(frame)) % 2 == 0, "paris", "oslo"),
        note=[f"free text {i}" for i in range(len(frame))],
        seen=pd.date_range("2024-01-01", periods=len(frame), freq="D"),
        weight=pd.array([1.5] * (len(frame) - 1) + [None], dtype="Float64"),
    )
    signature = infer_signature(frame)
    columns = {c.name: c for c in signature.columns}
    age, active, plan = columns["age"], columns["active"], columns["plan"]
    assert (age.kind, age.dtype, age.nullable) == ("integer", "Int64", True)
    assert (age.minimum, age.maximum) == (int(frame["age"].min()), int(frame["age"].max()))
    assert (active.kind, active.dtype, active.nullable) == ("boolean", "boolean", True)
    assert (plan.kind, plan.categories, plan.nullable) == (
        "category",
        ("basic", "pro", "team"),
        False,
    )
    assert columns["spend"].kind == "float" and not columns["spend"].nullable
    assert columns["spend"].minimum == pytest.approx(frame["spend"].min())
    assert (columns["visits"].dtype, columns["visits"].nullable) == ("int64", False)
    assert columns["city"].categories == ("oslo", "paris")  # few levels: treated as categorical
    assert columns["note"].kind == "string" and columns["note"].categories is None
    assert columns["seen"].kind == "datetime" and columns["seen"].minimum.startswith("2024-01-01")
    assert columns["weight"].nullable and columns["weight"].dtype == "Float64"
    # The signature survives its JSON form exactly.
    assert type(signature).from_json(signature.to_json()) == signature


def test_unsupported_columns_are_errors_never_a_silent_skip() -> None:
    with pytest.raises(SignatureInferenceError, match="'mixed' mixes value types"):
        infer_signature(pd.DataFrame({"mixed": ["a", 1, "b"]}))
    with pytest.raises(SignatureInferenceError, match="'empty' has only missing values"):
        infer_signature(pd.DataFrame({"empty": [None, None]}))
    with pytest.raises(SignatureInferenceError, match="complex128"):
        infer_signature(pd.DataFrame({"z": [1 + 2j]}))


def test_input_is_checked_by_column_with_what_was_expected(
    workspace: Workspace, churn: tuple[pd.DataFrame, np.ndarray]
) -> None:
    frame, label = churn
    with loopml.start_run(system_metrics=False):
        log_model(train(frame, label), "churn", X_example=frame)
    loaded = load_model("churn")
    bad = frame.head(4).drop(columns=["visits"])
    bad["plan"] = ["basic", "gold", "pro", "platinum"]
    bad["spend"] = ["a lot", "some", "none", "all"]
    with pytest.raises(SignatureError) as caught:
        loaded.predict(bad)
    problems = dict(caught.value.problems)
    assert set(problems) == {"visits", "plan", "spend"}
    assert problems["visits"] == "missing (expected int64)"
    assert "unseen categories 'gold', 'platinum'" in problems["plan"]
    assert "expected one of 'basic', 'pro', 'team'" in problems["plan"]
    assert "expected float64" in problems["spend"] and "'a lot'" in problems["spend"]
    message = str(caught.value)
    assert "\n" not in message and message.startswith("input does not match")
    assert "churn@v1" in message

    fractional = frame.head(3).assign(visits=[1.0, 2.5, 3.0])
    with pytest.raises(SignatureError, match=r"column 'visits': expected whole numbers"):
        loaded.predict(fractional)
    missing = frame.head(3).assign(spend=[1.0, None, 2.0])
    with pytest.raises(SignatureError, match=r"'spend': 1 missing value\(s\)"):
        loaded.predict(missing)


def test_safe_conversions_and_nullable_columns_work(
    workspace: Workspace, churn: tuple[pd.DataFrame, np.ndarray]
) -> None:
    frame, label = churn
    model = train(frame, label)
    with loopml.start_run(system_metrics=False):
        log_model(model, "churn", X_example=frame)
    loaded = load_model("churn@v1")
    # As JSON would bring it: plain Python objects, floats for integers, text for categories.
    rows = frame.head(8)
    loose = pd.DataFrame(
        {
            "age": [None if pd.isna(v) else float(v) for v in rows["age"]],
            "active": [None if pd.isna(v) else bool(v) for v in rows["active"]],
            "plan": [str(v) for v in rows["plan"]],
            "spend": [float(v) for v in rows["spend"]],
            "visits": [int(v) for v in rows["visits"]],
        },
        index=rows.index,
    )
    np.testing.assert_array_equal(loaded.predict(loose), model.predict(rows))
    records = loose.head(2).to_dict(orient="records")
    np.testing.assert_array_equal(loaded.predict(records), model.predict(rows.head(2)))
    prepared = loaded.prepare(loose)
    assert list(prepared.dtypes.astype(str)) == ["Int64", "boolean", "category", "float64", "int64"]


def test_signature_follows_the_model_s_own_columns(
    workspace: Workspace, churn: tuple[pd.DataFrame, np.ndarray]
) -> None:
    frame, label = churn
    model = train(frame, label)
    example = frame.assign(label=label)[["label", "visits", *frame.columns[:-1]]]
    with loopml.start_run(system_metrics=False):
        version = log_model(model, "churn", X_example=example)
    assert version.signature is not None
    assert version.signature.names == list(frame.columns)  # the model's order, no label


def test_extra_columns_are_ignored_with_a_warning(
    workspace: Workspace, churn: tuple[pd.DataFrame, np.ndarray]
) -> None:
    frame, label = churn
    model = train(frame, label)
    with loopml.start_run(system_metrics=False):
        log_model(model, "churn", X_example=frame)
    loaded = load_model("churn")
    with pytest.warns(ExtraColumnsWarning, match="'customer_id'"):
        predictions = loaded.predict(frame.assign(customer_id=range(len(frame))))
    np.testing.assert_array_equal(predictions, model.predict(frame))


def test_models_fitted_on_arrays_get_arrays(workspace: Workspace) -> None:
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(3)
    features = rng.normal(size=(50, 3))
    model = LinearRegression().fit(features, features @ [1.0, 2.0, 3.0])
    with loopml.start_run(system_metrics=False):
        version = log_model(model, "reg", X_example=features)
    assert version.signature is not None and version.signature.as_array
    assert not hasattr(load_model("reg"), "predict_proba")
    loaded = load_model("reg")
    np.testing.assert_allclose(loaded.predict(features[:5]), model.predict(features[:5]))
    with pytest.raises(SignatureError, match="expected 3 columns"):
        loaded.predict(features[:, :2])


def test_lineage_links_the_run_and_the_datasets_it_read(workspace: Workspace) -> None:
    from loopml.pipelines.records import StepRecords

    frame, label = churn_frame()
    frame.assign(label=label).to_parquet(workspace.root / "train.parquet")
    loopml.data.add("train.parquet", name="churn-data", workspace=workspace)
    with loopml.start_run(system_metrics=False) as run:
        data = loopml.data.read_frame("churn-data@v1")
        features = data.drop(columns=["label"])
        version = log_model(train(features, data["label"].to_numpy()), "churn", X_example=features)
    lineage = load_model("churn@1").lineage
    assert lineage.run_id == run.id
    assert [d.label for d in lineage.datasets] == ["churn-data@v1"]
    records = StepRecords(workspace.metadata)
    assert ("run", run.id, "trained") in records.sources_of("model_version", version.id)
    assert ("dataset_version", "churn-data@v1", "churn-data") in records.sources_of("run", run.id)
    assert ("model_version", version.id, "model") in records.sources_of("object", version.digest)


def test_log_model_needs_a_run_and_a_storable_model(workspace: Workspace) -> None:
    with pytest.raises(NoActiveRunError, match="start_run"):
        log_model(object(), "churn")
    with (
        loopml.start_run(system_metrics=False),
        pytest.raises(UnsupportedModelError, match=r"no model flavour stores a builtins\.object"),
    ):
        log_model(object(), "churn")


def test_versions_count_up_per_name(db_workspace: Workspace) -> None:
    log_versions("a", 3)
    log_versions("b", 1)
    assert [v.number for v in list_versions("a")] == [1, 2, 3]
    assert [v.number for v in list_versions("b")] == [1]
    assert load_model("a").version.number == 3
