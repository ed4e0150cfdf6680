"""The churn training pipeline of the demo: load → validate → features → train → evaluate.

The train step logs the model to the registry (``churn``, a new version when the model is
new; a cached step logs nothing, its version already exists).

loopml run churn_pipeline.py:churn --param max_depth=10
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

import loopml
from loopml import pipeline, step

FEATURES = ["tenure_months", "monthly_charges", "support_calls", "autopay", "age", "plan"]
LABEL = "churned"


@step
def load(data: Path) -> pd.DataFrame:
    """Every Parquet file of the dataset version (a read-only local copy)."""
    return pd.read_parquet(data)


@step
def validate(frame: pd.DataFrame) -> pd.DataFrame:
    """Refuse data that cannot train a model; report what is wrong."""
    missing = [c for c in [*FEATURES, LABEL] if c not in frame.columns]
    if missing:
        raise ValueError(f"columns missing from the data: {missing}")
    if frame[LABEL].isna().any():
        raise ValueError("the label has missing values")
    loopml.log_metric("rows", len(frame))
    return frame


@step
def features(frame: pd.DataFrame) -> pd.DataFrame:
    """The model's input columns and the label, with a fixed train/test split."""
    table = frame[[*FEATURES, LABEL]].copy()
    # A fixed split by customer id keeps train and test apart across versions.
    table["is_test"] = (frame["customer_id"] % 4 == 0).to_numpy()
    return table


def _estimator(max_depth: int, trees: int) -> Pipeline:
    """Preprocessing and forest in one estimator, so the model takes raw customer rows."""
    prepare = ColumnTransformer(
        [
            ("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
            ("age", SimpleImputer(strategy="median"), ["age"]),
        ],
        remainder="passthrough",
    )
    forest = RandomForestClassifier(n_estimators=trees, max_depth=max_depth, random_state=42)
    return Pipeline([("prepare", prepare), ("forest", forest)])


@step
def train(table: pd.DataFrame, max_depth: int = 8, trees: int = 100) -> Pipeline:
    """A seeded random forest on the training rows, logged to the registry as `churn`."""
    rows = table[~table["is_test"]]
    model = _estimator(max_depth, trees).fit(rows[FEATURES], rows[LABEL])
    loopml.log_model(model, "churn", X_example=rows[FEATURES])
    return model


@step
def evaluate(model: Pipeline, table: pd.DataFrame) -> dict:
    """Accuracy, AUC and log-loss on the test rows, logged as metrics."""
    rows = table[table["is_test"]]
    proba = model.predict_proba(rows[FEATURES])[:, 1]
    metrics = {
        "accuracy": float(accuracy_score(rows[LABEL], proba > 0.5)),
        "auc": float(roc_auc_score(rows[LABEL], proba)),
        "log_loss": float(log_loss(rows[LABEL], np.clip(proba, 1e-6, 1 - 1e-6))),
    }
    loopml.log_metrics(metrics)
    return metrics


@pipeline
def churn(data: str = "churn@latest", max_depth: int = 8, trees: int = 100):
    """Train and evaluate the churn model on a dataset version."""
    # A data reference is keyed by the version's hash: a new version reruns the pipeline.
    table = features(validate(load(loopml.data.ref(data))))
    model = train(table, max_depth=max_depth, trees=trees)
    return model, evaluate(model, table)
