"""The life of a run through the user API: status, nesting, params, metric history, values."""

from __future__ import annotations

import math

import pytest
from tracking_helpers import other_connection, stored_points

import loopml
from loopml.store.workspace import Workspace
from loopml.tracking.errors import InvalidValueError, NoActiveRunError, TrackingError


def test_issue_example_records_everything(workspace: Workspace) -> None:
    losses = [1.0 / (epoch + 1) for epoch in range(100)]
    with loopml.start_run(experiment="churn", name="rf-baseline") as run:
        assert loopml.active_run() is run
        assert loopml.get_run(run.id).status == "running"
        loopml.seed(42)
        loopml.log_params({"n_estimators": 200, "max_depth": 8})
        for epoch, loss in enumerate(losses):
            loopml.log_metric("loss", loss, step=epoch)
        loopml.log_metrics({"acc": 0.91, "auc": 0.95})
        loopml.set_tag("team", "growth")
    assert loopml.active_run() is None

    got = loopml.get_run(run.id)
    assert got.status == "finished"
    assert got.info.experiment == "churn" and got.info.name == "rf-baseline"
    assert got.info.user == "tester"
    assert got.info.end_time is not None and got.info.end_time >= got.info.start_time
    assert got.info.error_type is None and got.info.parent_run_id is None
    # Params are strings, as MLflow stores them.
    assert got.params == {"n_estimators": "200", "max_depth": "8"}
    assert got.metrics == {"loss": losses[-1], "acc": 0.91, "auc": 0.95}
    assert got.tags == {"team": "growth"}
    assert got.info.manifest_hash is not None
    # A prefix of the id is enough.
    assert loopml.get_run(run.id[:12]).id == run.id


def test_metric_history_is_in_step_order_with_steps_values_and_timestamps(
    workspace: Workspace,
) -> None:
    steps = [5, 0, 3, 1, 4, 2]
    with loopml.start_run(experiment="history", system_metrics=False) as run:
        for step in steps:
            loopml.log_metric("loss", step * 10.0, step=step)
        loopml.log_metric("lr", 0.1)  # steps default to 0, 1, 2 …
        loopml.log_metric("lr", 0.01)
        loopml.log_metric("lr", 0.001, timestamp=1_700_000_000_000)

    history = loopml.get_run(run.id).metric_history("loss")
    assert [p.step for p in history] == [0, 1, 2, 3, 4, 5]
    assert [p.value for p in history] == [0.0, 10.0, 20.0, 30.0, 40.0, 50.0]
    assert all(abs(p.timestamp - run.info.start_time) < 60_000 for p in history)

    lr = loopml.get_run(run.id).metric_history("lr")
    assert [(p.step, p.value) for p in lr] == [(0, 0.1), (1, 0.01), (2, 0.001)]
    assert lr[2].timestamp == 1_700_000_000_000
    assert loopml.get_run(run.id).metric_history("never-logged") == []
    # The latest value is the one at the highest step, not the last one logged.
    assert loopml.get_run(run.id).metrics["loss"] == 50.0


def test_exception_inside_the_run_marks_it_failed_and_propagates(workspace: Workspace) -> None:
    with (
        pytest.raises(ZeroDivisionError, match="division by zero"),
        loopml.start_run(experiment="failing", system_metrics=False) as run,
    ):
        loopml.log_metric("before", 1.0)
        _ = 1 / 0

    got = loopml.get_run(run.id)
    assert got.status == "failed"
    assert got.info.error_type == "ZeroDivisionError"
    assert got.info.error_message == "division by zero"
    assert got.info.end_time is not None
    # What was logged before the failure is kept.
    assert [p.value for p in got.metric_history("before")] == [1.0]
    assert loopml.active_run() is None


def test_keyboard_interrupt_marks_the_run_killed(workspace: Workspace) -> None:
    with (
        pytest.raises(KeyboardInterrupt),
        loopml.start_run(experiment="interrupted", system_metrics=False) as run,
    ):
        raise KeyboardInterrupt
    assert loopml.get_run(run.id).status == "killed"


def test_nested_runs_need_nested_true(workspace: Workspace) -> None:
    with loopml.start_run(experiment="sweep", system_metrics=False) as parent:
        with pytest.raises(TrackingError, match=r"already active.*nested=True"):
            loopml.start_run(experiment="sweep")
        assert loopml.active_run() is parent
        with loopml.start_run(experiment="sweep", nested=True, system_metrics=False) as child:
            assert loopml.active_run() is child
            loopml.log_metric("fold_acc", 0.8)
        assert loopml.active_run() is parent
        loopml.log_metric("mean_acc", 0.8)

    child_run = loopml.get_run(child.id)
    assert child_run.info.parent_run_id == parent.id
    assert child_run.metrics == {"fold_acc": 0.8}
    assert loopml.get_run(parent.id).metrics == {"mean_acc": 0.8}
    assert loopml.get_run(parent.id).info.parent_run_id is None
    frame = loopml.search_runs("sweep").set_index("run_id")
    assert sorted(frame.index) == sorted([parent.id, child.id])
    assert frame.loc[child.id, "parent_run_id"] == parent.id
    assert frame["parent_run_id"].isna().tolist() == [run_id == parent.id for run_id in frame.index]


def test_logging_without_an_active_run_is_a_clear_error(workspace: Workspace) -> None:
    with pytest.raises(NoActiveRunError, match="start_run"):
        loopml.log_metric("loss", 1.0)
    with pytest.raises(NoActiveRunError):
        loopml.log_params({"a": 1})
    with pytest.raises(NoActiveRunError):
        loopml.end_run()


def test_logging_to_an_ended_run_is_an_error(workspace: Workspace) -> None:
    with loopml.start_run(system_metrics=False) as run:
        pass
    with pytest.raises(TrackingError, match="has ended"):
        run.log_metric("late", 1.0)
    with pytest.raises(TrackingError, match="has ended"):
        run.log_params({"late": 1})


def test_end_run_ends_the_active_run(workspace: Workspace) -> None:
    run = loopml.start_run(experiment="manual", system_metrics=False)
    loopml.log_metric("x", 1.0)
    loopml.end_run()
    assert loopml.active_run() is None
    assert loopml.get_run(run.id).status == "finished"
    other = loopml.start_run(experiment="manual", system_metrics=False)
    loopml.end_run("killed")
    assert loopml.get_run(other.id).status == "killed"


def test_params_are_strings_and_may_not_change(workspace: Workspace) -> None:
    with loopml.start_run(system_metrics=False) as run:
        loopml.log_params({"lr": 0.1, "layers": [64, 32], "flag": True, "none": None})
        loopml.log_param("lr", 0.1)  # the same value again is fine
        with pytest.raises(InvalidValueError, match=r"'lr' was already logged as '0.1'"):
            loopml.log_param("lr", 0.2)
        with pytest.raises(InvalidValueError, match="already logged"):
            loopml.log_params({"new": 1, "layers": [64]})
        loopml.log_param("new", 2)  # the refused batch left nothing behind
        with pytest.raises(InvalidValueError, match="limit"):
            loopml.log_param("huge", "x" * 10_000)
        with pytest.raises(InvalidValueError, match="invalid param name"):
            loopml.log_param("bad\nname", 1)
    assert loopml.get_run(run.id).params == {
        "lr": "0.1",
        "layers": "[64, 32]",
        "flag": "True",
        "none": "None",
        "new": "2",
    }


def test_tags_may_change(workspace: Workspace) -> None:
    with loopml.start_run(tags={"stage": "dev"}, system_metrics=False) as run:
        loopml.set_tag("team", "growth")
        loopml.set_tags({"team": "core", "priority": 1})
    assert loopml.get_run(run.id).tags == {"stage": "dev", "team": "core", "priority": "1"}


@pytest.mark.parametrize("value", ["0.5", None, True, False, b"1", [1.0], 1 + 2j])
def test_a_non_numeric_metric_is_refused_at_the_call(workspace: Workspace, value: object) -> None:
    with loopml.start_run(system_metrics=False) as run:
        with pytest.raises(InvalidValueError, match="'score' must be a number"):
            loopml.log_metric("score", value)  # type: ignore[arg-type]
        with pytest.raises(InvalidValueError, match="'score' must be a number"):
            loopml.log_metrics({"fine": 1.0, "score": value})  # type: ignore[dict-item]
        loopml.log_metric("score", 1)  # ints are numbers
    got = loopml.get_run(run.id)
    assert [(p.step, p.value) for p in got.metric_history("score")] == [(0, 1.0)]
    # The refused batch wrote nothing, not even its valid part, and used no step.
    assert got.metric_history("fine") == []
    with loopml.start_run(system_metrics=False) as again:
        with pytest.raises(InvalidValueError):
            loopml.log_metrics({"fine": 1.0, "score": value})  # type: ignore[dict-item]
        loopml.log_metric("fine", 2.0)
    assert [(p.step, p.value) for p in loopml.get_run(again.id).metric_history("fine")] == [
        (0, 2.0)
    ]


def test_numpy_numbers_are_metrics(workspace: Workspace) -> None:
    import numpy as np

    with loopml.start_run(system_metrics=False) as run:
        loopml.log_metric("f32", np.float32(0.5))  # type: ignore[arg-type]
        loopml.log_metric("i64", np.int64(3))  # type: ignore[arg-type]
    assert loopml.get_run(run.id).metrics == {"f32": 0.5, "i64": 3.0}


def test_invalid_metric_names_are_refused(workspace: Workspace) -> None:
    with loopml.start_run(system_metrics=False):
        for name in ("", "a" * 251, "semi;colon", "new\nline"):
            with pytest.raises(InvalidValueError, match="invalid metric name"):
                loopml.log_metric(name, 1.0)


def test_seed_seeds_random_and_numpy(workspace: Workspace) -> None:
    import random

    import numpy as np

    with loopml.start_run(system_metrics=False):
        assert loopml.seed(7) == 7
        first = (random.random(), float(np.random.rand()))
        loopml.seed(7)
        assert (random.random(), float(np.random.rand())) == first
        for bad in (-1, 2**32, 1.5, True):
            with pytest.raises(InvalidValueError, match="seed"):
                loopml.seed(bad)  # type: ignore[arg-type]


def test_end_run_flushes_everything(workspace: Workspace) -> None:
    run = loopml.start_run(experiment="flush", system_metrics=False)
    for step in range(3000):
        loopml.log_metric("x", float(step), step=step)
    loopml.log_metrics({"y": math.pi})
    loopml.end_run()
    # Read through a connection of its own, as another process would, right away.
    with other_connection(workspace) as database:
        assert stored_points(database, run.id) == 3001
