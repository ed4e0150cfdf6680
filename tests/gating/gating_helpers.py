"""Helpers of the gate tests (a plain module: ``conftest`` is not importable by name)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

FEATURES = ["plan", "spend", "visits", "gender"]


def close_tracking() -> None:
    """End every run still active in this process and close every tracking session."""
    from loopml.tracking import fluent

    databases = [session.store.metadata for session in fluent._sessions.values()]
    fluent._shutdown()
    for database in databases:
        database.close()
    fluent._stack().clear()
    fluent._process_seeds.clear()


def customers(rows: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Customers whose churn rises with spend and depends on the plan, never on gender."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "plan": pd.Categorical(rng.choice(["basic", "pro", "team"], rows, p=[0.5, 0.4, 0.1])),
            "spend": rng.normal(50, 15, rows).round(2),
            "visits": rng.integers(0, 10, rows),
            "gender": pd.Categorical(rng.choice(["F", "M"], rows)),
        }
    )
    logit = 0.15 * (frame["spend"] - 50) + np.where(frame["plan"] == "team", 1.5, -0.5)
    frame["churned"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


def fit(frame: pd.DataFrame, *, shuffle: bool = False) -> Any:
    """One-hot plans and genders into a logistic regression (``shuffle``: learned from
    permuted labels, so useless). Linear and single-threaded: quick on a busy machine."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    label = frame["churned"].to_numpy()
    if shuffle:
        label = np.random.default_rng(1).permutation(label)
    prepare = ColumnTransformer(
        [("categories", OneHotEncoder(handle_unknown="ignore"), ["plan", "gender"])],
        remainder="passthrough",
    )
    model = Pipeline([("prepare", prepare), ("model", LogisticRegression(max_iter=500))])
    return model.fit(frame[FEATURES], label)


def log(model: Any, frame: pd.DataFrame, name: str = "churn", workspace: Any = None) -> Any:
    """Log ``model`` as the next version of ``name`` from a run of its own."""
    import loopml
    from loopml.registry import log_model

    with loopml.start_run(system_metrics=False, workspace=workspace):
        version = log_model(model, name, X_example=frame[FEATURES])
    close_tracking()
    return version


def add_holdout(root: Path, frame: pd.DataFrame, name: str = "holdout") -> str:
    """Save ``frame`` under ``data/NAME`` and record it as a dataset version; its reference."""
    from loopml.data import add

    folder = root / "data" / name
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(folder / "part.parquet")
    version = add(folder, name=name)
    return version.label


def write(path: Path, text: str) -> Path:
    """Write a gate file."""
    path.write_text(text, encoding="utf-8")
    return path
