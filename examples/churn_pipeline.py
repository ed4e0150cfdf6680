"""The churn training pipeline of the demo: load → validate → features → train → evaluate.

loopml run churn_pipeline.py:churn --param max_depth=10
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

import loopml
from loopml import pipeline, step

FEATURES = ["tenure_months", "monthly_charges", "support_calls", "autopay", "age"]
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
    """Numeric features: age imputed, booleans as ints, plan one-hot."""
    table = frame[FEATURES].assign(
        age=frame["age"].fillna(frame["age"].median()),
        autopay=frame["autopay"].astype(int),
        **{f"plan_{p}": (frame["plan"] == p).astype(int) for p in ("basic", "premium")},
    )
    table[LABEL] = frame[LABEL].astype(int)
    # A fixed split by customer id keeps train and test apart across versions.
    table["is_test"] = (frame["customer_id"] % 4 == 0).to_numpy()
    return table


@step
def train(table: pd.DataFrame, max_depth: int = 8, trees: int = 100) -> RandomForestClassifier:
    """A seeded random forest on the training rows."""
    rows = table[~table["is_test"]]
    model = RandomForestClassifier(n_estimators=trees, max_depth=max_depth, random_state=42)
    model.fit(rows.drop(columns=[LABEL, "is_test"]), rows[LABEL])
    return model


@step
def evaluate(model: RandomForestClassifier, table: pd.DataFrame) -> dict:
    """Accuracy, AUC and log-loss on the test rows, logged as metrics."""
    rows = table[table["is_test"]]
    proba = model.predict_proba(rows.drop(columns=[LABEL, "is_test"]))[:, 1]
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
