"""NaN and infinities are metric values like any other, on SQLite and on PostgreSQL."""

from __future__ import annotations

import math

import loopml
from loopml.store.workspace import Workspace


def test_nan_and_infinities_round_trip(tracked_workspace: Workspace) -> None:
    values = [1.5, math.nan, math.inf, -math.inf, 0.0, -0.0, 1e308, 5e-324]
    with loopml.start_run(experiment="odd", system_metrics=False) as run:
        for step, value in enumerate(values):
            loopml.log_metric("odd", value, step=step)
        loopml.log_metrics({"nan": math.nan, "inf": math.inf, "ninf": -math.inf})
        loopml.log_metric("nan_then_one", math.nan, step=0)
        loopml.log_metric("nan_then_one", 1.0, step=1)

    got = loopml.get_run(run.id)
    history = got.metric_history("odd")
    assert [p.step for p in history] == list(range(len(values)))
    for point, value in zip(history, values, strict=True):
        if math.isnan(value):
            assert math.isnan(point.value)
        else:
            assert point.value == value
    # Latest values.
    assert math.isnan(got.metrics["nan"])
    assert got.metrics["inf"] == math.inf
    assert got.metrics["ninf"] == -math.inf
    assert got.metrics["odd"] == 5e-324
    assert got.metrics["nan_then_one"] == 1.0
    assert math.isnan(got.metric_history("nan")[0].value)

    frame = loopml.search_runs("odd")
    assert math.isnan(frame["metrics.nan"][0])
    assert frame["metrics.inf"][0] == math.inf
    assert frame["metrics.ninf"][0] == -math.inf
    # Infinities compare as numbers; NaN matches no comparison.
    assert len(loopml.search_runs("odd", filter="metrics.inf > 1e308")) == 1
    assert len(loopml.search_runs("odd", filter="metrics.ninf < -1e308")) == 1
    assert loopml.search_runs("odd", filter="metrics.nan > 0").empty
    assert loopml.search_runs("odd", filter="metrics.nan <= 0").empty
