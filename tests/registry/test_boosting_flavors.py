"""XGBoost and LightGBM models: stored in the libraries' own formats, loaded back without pickle."""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import pandas as pd
import pytest
import xgboost
from registry_helpers import churn_frame

import loopml
from loopml.artifacts.errors import UnsafeLoadError
from loopml.registry import (
    LoadedModel,
    ProbabilisticModel,
    RegistryError,
    SkopsFlavor,
    UnsupportedModelError,
    load_model,
    log_model,
)
from loopml.registry.boosting import LightGBMFlavor, XGBoostFlavor
from loopml.registry.flavors import flavor_for
from loopml.store.errors import CorruptObjectError
from loopml.store.workspace import Workspace

# Small and single-threaded: a few trees, and no OpenMP pool per worker under `pytest -n 2`.
_XGB = {"n_estimators": 6, "max_depth": 3, "n_jobs": 1, "enable_categorical": True}
_LGB = {"n_estimators": 6, "num_leaves": 7, "n_jobs": 1, "verbose": -1, "min_child_samples": 5}

MODELS: dict[str, Callable[..., Any]] = {
    "xgboost-classifier": lambda seed=0: xgboost.XGBClassifier(**_XGB, random_state=seed),
    "xgboost-regressor": lambda seed=0: xgboost.XGBRegressor(**_XGB, random_state=seed),
    "lightgbm-classifier": lambda seed=0: lightgbm.LGBMClassifier(**_LGB, random_state=seed),
    "lightgbm-regressor": lambda seed=0: lightgbm.LGBMRegressor(**_LGB, random_state=seed),
}


def _data(kind: str) -> tuple[pd.DataFrame, np.ndarray]:
    """The churn frame (nullable integer and boolean, categorical, float and integer columns)."""
    frame, label = churn_frame(rows=240)
    if kind.endswith("regressor"):
        return frame, frame["spend"].to_numpy() * 2 + frame["visits"].to_numpy()
    return frame, label


def _fit(kind: str, seed: int = 0) -> tuple[Any, pd.DataFrame]:
    frame, target = _data(kind)
    return MODELS[kind](seed).fit(frame, target), frame


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_round_trip_gives_identical_predictions_and_records_the_framework(
    workspace: Workspace, kind: str
) -> None:
    model, frame = _fit(kind)
    library = kind.split("-")[0]
    with loopml.start_run(system_metrics=False):
        version = log_model(model, "churn", X_example=frame)
    assert (version.flavor, version.framework) == (library, library)
    module = xgboost if library == "xgboost" else lightgbm
    assert version.framework_version == module.__version__
    assert version.model_class == f"{type(model).__module__}.{type(model).__qualname__}"
    assert version.flavor_options == {}
    assert version.signature is not None
    columns = {c.name: c for c in version.signature.columns}
    assert (columns["plan"].kind, columns["plan"].categories) == (
        "category",
        ("basic", "pro", "team"),
    )
    assert (columns["age"].dtype, columns["active"].dtype) == ("Int64", "boolean")

    loaded = load_model("churn@1")
    assert type(loaded.model) is type(model)
    assert loaded.signature == version.signature
    np.testing.assert_array_equal(loaded.predict(frame), model.predict(frame))
    np.testing.assert_array_equal(loaded.model.predict(frame), model.predict(frame))
    if kind.endswith("classifier"):
        assert isinstance(loaded, ProbabilisticModel)
        np.testing.assert_array_equal(loaded.predict_proba(frame), model.predict_proba(frame))
        np.testing.assert_array_equal(loaded.model.classes_, model.classes_)
        assert version.signature.output is not None
        assert version.signature.output.classes == (0, 1)
    else:
        assert type(loaded) is LoadedModel
        assert not hasattr(loaded, "predict_proba")
    np.testing.assert_array_equal(loaded.model.feature_names_in_, model.feature_names_in_)


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_the_same_model_gives_the_same_digest(workspace: Workspace, library: str) -> None:
    kind = f"{library}-classifier"
    with loopml.start_run(system_metrics=False):
        first = log_model(_fit(kind)[0], "churn")
        second = log_model(_fit(kind)[0], "churn")
        more_trees = MODELS[kind]().set_params(n_estimators=7).fit(*_data(kind))
        third = log_model(more_trees, "churn")
    assert first.digest == second.digest
    assert third.digest != first.digest


def test_lightgbm_keeps_string_labels_and_several_classes(workspace: Workspace) -> None:
    frame, label = churn_frame(rows=240)
    names = np.array(["stay", "leave", "pause"])[label + (frame["visits"] > 6).to_numpy()]
    model = lightgbm.LGBMClassifier(**_LGB).fit(frame, names)
    with loopml.start_run(system_metrics=False):
        version = log_model(model, "churn", X_example=frame)
    loaded = load_model("churn")
    assert isinstance(loaded, ProbabilisticModel)
    assert list(loaded.model.classes_) == ["leave", "pause", "stay"]
    assert version.signature is not None and version.signature.output is not None
    assert version.signature.output.classes == ("leave", "pause", "stay")
    np.testing.assert_array_equal(loaded.predict(frame), model.predict(frame))
    np.testing.assert_array_equal(loaded.predict_proba(frame), model.predict_proba(frame))


def test_early_stopping_keeps_the_best_iteration(workspace: Workspace) -> None:
    frame, label = churn_frame(rows=320)
    train, valid = (frame.iloc[:240], label[:240]), (frame.iloc[240:], label[240:])
    fast = {"n_estimators": 200, "learning_rate": 0.5}
    xgb_model = xgboost.XGBClassifier(**{**_XGB, **fast}, early_stopping_rounds=2)
    xgb_model.fit(*train, eval_set=[valid], verbose=False)
    lgb_model = lightgbm.LGBMClassifier(**{**_LGB, **fast})
    lgb_model.fit(
        *train,
        eval_X=(valid[0],),
        eval_y=(valid[1],),
        callbacks=[lightgbm.early_stopping(2, verbose=False)],
    )
    for model, best in (
        (xgb_model, xgb_model.best_iteration),
        (lgb_model, lgb_model.best_iteration_),
    ):
        assert 0 < best < 199
        with loopml.start_run(system_metrics=False):
            version = log_model(model, "stopped", X_example=frame)
        loaded = load_model(f"stopped@{version.number}").model
        assert getattr(loaded, "best_iteration_", getattr(loaded, "best_iteration", None)) == best
        np.testing.assert_array_equal(loaded.predict_proba(frame), model.predict_proba(frame))


def test_the_archive_holds_the_library_s_own_model_file(workspace: Workspace) -> None:
    model, frame = _fit("xgboost-classifier")
    saved = XGBoostFlavor().save(model, workspace.objects)
    archive = zipfile.ZipFile(io.BytesIO(workspace.objects.read_bytes(saved.digest)))
    assert sorted(archive.namelist()) == ["booster.json", "loopml-model.json"]
    booster = xgboost.Booster(model_file=bytearray(archive.read("booster.json")))
    np.testing.assert_array_equal(
        booster.predict(xgboost.DMatrix(frame, enable_categorical=True)),
        model.predict_proba(frame)[:, 1],
    )

    model, frame = _fit("lightgbm-regressor")
    saved = LightGBMFlavor().save(model, workspace.objects)
    archive = zipfile.ZipFile(io.BytesIO(workspace.objects.read_bytes(saved.digest)))
    text = archive.read("booster.txt").decode()
    np.testing.assert_array_equal(
        lightgbm.Booster(model_str=text).predict(frame), model.predict(frame)
    )


def test_flavours_are_chosen_by_the_model_s_exact_type() -> None:
    assert flavor_for(xgboost.XGBClassifier()).name == "xgboost"
    assert flavor_for(xgboost.XGBRFRegressor()).name == "xgboost"
    assert flavor_for(lightgbm.LGBMRegressor()).name == "lightgbm"

    class Custom(xgboost.XGBClassifier):  # may predict differently: not rebuilt as its base
        pass

    assert not XGBoostFlavor().handles(Custom())
    assert not LightGBMFlavor().handles(xgboost.XGBClassifier())


def test_a_pipeline_ending_in_a_booster_stays_with_skops(workspace: Workspace) -> None:
    from sklearn.pipeline import Pipeline

    frame, label = churn_frame(rows=240)
    for step in (MODELS["xgboost-classifier"](), MODELS["lightgbm-classifier"]()):
        pipeline = Pipeline([("model", step)]).fit(frame, label)
        with loopml.start_run(system_metrics=False):
            version = log_model(pipeline, "pipe", X_example=frame)
        assert version.flavor == "skops"
        # The libraries' types are recorded one by one, never trusted by prefix.
        trusted = version.flavor_options.get("trusted", [])
        assert f"{type(step).__module__}.{type(step).__qualname__}" in trusted
        loaded = load_model(f"pipe@{version.number}")
        np.testing.assert_array_equal(loaded.predict_proba(frame), pipeline.predict_proba(frame))


def test_unfitted_models_and_custom_objectives_are_refused(workspace: Workspace) -> None:
    with pytest.raises(UnsupportedModelError, match="not fitted"):
        XGBoostFlavor().save(xgboost.XGBRegressor(), workspace.objects)

    def squared(y: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return pred - y, np.ones_like(pred)

    frame, target = _data("lightgbm-regressor")
    for model in (
        xgboost.XGBRegressor(**_XGB, objective=squared),
        lightgbm.LGBMRegressor(**_LGB, objective=squared),
    ):
        model.fit(frame, target)
        with pytest.raises(UnsupportedModelError, match="objective"):
            flavor_for(model).save(model, workspace.objects)


def test_a_tampered_object_is_refused(workspace: Workspace) -> None:
    model, _ = _fit("lightgbm-classifier")
    with loopml.start_run(system_metrics=False):
        version = log_model(model, "churn")
    path = Path(workspace.objects.backend.loose_path(version.digest))
    data = bytearray(path.read_bytes())
    data[-40] ^= 1
    os.chmod(path, 0o644)
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptObjectError):
        load_model("churn@1")


def _archive(meta: dict[str, Any], member: str = "booster.json", body: bytes = b"{}") -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("loopml-model.json", json.dumps(meta))
        archive.writestr(member, body)
    return out.getvalue()


@pytest.mark.parametrize(
    ("meta", "error", "message"),
    [
        ({"class": "Booster"}, UnsafeLoadError, "not one loopml rebuilds"),
        ({"class": "os.system"}, UnsafeLoadError, "not one loopml rebuilds"),
        ({"class": "XGBClassifier", "format": 99}, RegistryError, "format 99"),
        ({"class": "XGBClassifier", "library": "lightgbm"}, RegistryError, "not a xgboost"),
    ],
)
def test_an_archive_naming_anything_else_is_refused(
    workspace: Workspace, meta: dict[str, Any], error: type[Exception], message: str
) -> None:
    data = _archive({"format": 1, "library": "xgboost", "params": {}, **meta})
    digest = workspace.objects.add_bytes(data)
    with pytest.raises(error, match=message):
        XGBoostFlavor().load(digest, workspace.objects, {})
    digest = workspace.objects.add_bytes(b"not a zip")
    with pytest.raises(RegistryError, match="not an archive loopml wrote"):
        XGBoostFlavor().load(digest, workspace.objects, {})


def test_skops_does_not_trust_the_boosting_libraries_by_prefix(workspace: Workspace) -> None:
    """A crafted skops archive may name a function to call; one of XGBoost's runs openssl."""
    import skops.io

    from loopml.artifacts.skops_format import loads_trusted

    args = skops.io.dumps((True, False, str(workspace.root)))
    state = json.loads(zipfile.ZipFile(io.BytesIO(args)).read("schema.json"))
    schema = {
        "__class__": "run_federated_learning",
        "__module__": "xgboost.testing.federated",
        "__loader__": "ConstructorFromReduceNode",
        "content": {k: v for k, v in state.items() if k not in ("protocol", "_skops_version")},
        "__id__": 1,
        "protocol": state["protocol"],
        "_skops_version": state["_skops_version"],
    }
    crafted = io.BytesIO()
    with zipfile.ZipFile(crafted, "w") as archive:
        archive.writestr("schema.json", json.dumps(schema))
    before = sorted(Path.cwd().iterdir())
    with pytest.raises(UnsafeLoadError, match="run_federated_learning"):
        loads_trusted(crafted.getvalue())
    digest = workspace.objects.add_bytes(crafted.getvalue())
    with pytest.raises(UnsafeLoadError, match="run_federated_learning"):
        SkopsFlavor().load(digest, workspace.objects, {})
    assert sorted(Path.cwd().iterdir()) == before  # no key files: nothing ran
