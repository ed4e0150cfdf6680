"""Helpers of the registry tests (a plain module: ``conftest`` is not importable by name)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def close_tracking() -> None:
    """End every run still active in this process and close every tracking session."""
    from loopml.tracking import fluent

    databases = [session.store.metadata for session in fluent._sessions.values()]
    fluent._shutdown()
    for database in databases:
        database.close()
    fluent._stack().clear()
    fluent._process_seeds.clear()


def churn_frame(rows: int = 160, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Features with every kind of column a signature knows, and a label that depends on them."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": pd.array(rng.integers(18, 80, rows), dtype="Int64"),
            "active": pd.array(rng.integers(0, 2, rows).astype(bool), dtype="boolean"),
            "plan": pd.Categorical(rng.choice(["basic", "pro", "team"], rows)),
            "spend": rng.normal(50, 10, rows),
            "visits": rng.integers(0, 10, rows),
        }
    )
    frame.loc[3, "age"] = pd.NA
    frame.loc[5, "active"] = pd.NA
    label = ((frame["spend"] > 50) ^ (frame["plan"] == "team")).to_numpy().astype(int)
    return frame, label


def train(frame: pd.DataFrame, label: np.ndarray, seed: int = 0) -> Any:
    """A small gradient-boosted classifier that takes categorical and nullable columns."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(
        max_iter=15, categorical_features="from_dtype", random_state=seed
    )
    return model.fit(frame, label)


def log_versions(name: str, count: int, workspace: Any = None) -> list[Any]:
    """Log ``count`` versions of ``name`` (different seeds) from one run; returns them."""
    import loopml
    from loopml.registry import log_model

    frame, label = churn_frame()
    versions = []
    with loopml.start_run(system_metrics=False, workspace=workspace):
        for seed in range(count):
            versions.append(log_model(train(frame, label, seed), name, X_example=frame))
    return versions
