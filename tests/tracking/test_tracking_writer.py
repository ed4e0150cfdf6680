"""Logging costs nothing: the background writer, its batches, its bound, and flushing at exit."""

from __future__ import annotations

import inspect
import os
import socket
import sqlite3
import time
from pathlib import Path

import pytest
from tracking_helpers import (
    CountingStore,
    other_connection,
    python,
    stored_points,
    write_script,
)

import loopml
from loopml.store.workspace import Workspace
from loopml.tracking.errors import TrackingError
from loopml.tracking.model import Metric
from loopml.tracking.sql_store import SqlTrackingStore
from loopml.tracking.store import TrackingStore
from loopml.tracking.writer import BackgroundWriter


def new_run(store: TrackingStore, experiment: str = "writer") -> str:
    info = store.create_run(
        experiment=experiment,
        name="r",
        parent_run_id=None,
        user="tester",
        host=socket.gethostname(),
        pid=os.getpid(),
        tags={},
    )
    return info.id


def points(count: int, key: str = "x") -> list[Metric]:
    return [Metric(key, float(i), i, 1_700_000_000_000 + i) for i in range(count)]


def test_sql_store_satisfies_the_tracking_store_protocol(workspace: Workspace) -> None:
    # Checked by mypy (the assignment) and here at run time (the signatures).
    store: TrackingStore = SqlTrackingStore(workspace.metadata)
    assert store is not None
    members = [
        name
        for name, value in vars(TrackingStore).items()
        if inspect.isfunction(value) and not name.startswith("_")
    ]
    assert "log_batch" in members and "heartbeat" in members and len(members) >= 10
    for name in members:
        wanted = inspect.signature(getattr(TrackingStore, name)).parameters
        given = inspect.signature(getattr(SqlTrackingStore, name)).parameters
        for parameter in wanted.values():
            assert parameter.name in given, f"SqlTrackingStore.{name} lacks {parameter.name}"
            assert given[parameter.name].kind == parameter.kind, f"{name}({parameter.name})"
            if parameter.default is not inspect.Parameter.empty:
                assert given[parameter.name].default == parameter.default, name
        for extra in set(given) - set(wanted):
            assert given[extra].default is not inspect.Parameter.empty, f"{name}({extra})"


def test_a_point_is_written_only_when_flushed(workspace: Workspace) -> None:
    store = SqlTrackingStore(workspace.metadata)
    run_id = new_run(store)
    writer = BackgroundWriter(store, flush_interval=60, heartbeat_interval=60)
    try:
        writer.add_metric(run_id, Metric("x", 1.0, 0, 1))
        assert writer.pending == 1
        with other_connection(workspace) as database:
            assert stored_points(database, run_id) == 0
            writer.flush(run_id)
            assert writer.pending == 0
            assert stored_points(database, run_id) == 1
    finally:
        writer.close()


def test_many_points_become_one_batch(workspace: Workspace) -> None:
    counting = CountingStore(SqlTrackingStore(workspace.metadata))
    run_id = new_run(counting)
    writer = BackgroundWriter(counting, flush_interval=60, heartbeat_interval=60)
    try:
        # A log_metrics-sized batch of 10,000 points is one store call.
        writer.add(run_id, metrics=points(10_000, "a"))
        writer.flush()
        assert counting.batches == [(run_id, 0, 10_000, 0)]
        # So are 10,000 single log_metric points logged between two flushes …
        for metric in points(10_000, "b"):
            writer.add_metric(run_id, metric)
        # … and params, points and tags together.
        writer.add(run_id, params=[("p", "1")], metrics=points(3, "c"), tags=[("t", "v")])
        writer.flush(run_id)
        assert counting.batches[1:] == [(run_id, 1, 10_003, 1)]
    finally:
        writer.close()
    run = counting.get_run(run_id)
    assert run.params == {"p": "1"} and run.tags == {"t": "v"}
    assert run.metrics == {"a": 9999.0, "b": 9999.0, "c": 2.0}
    assert len(counting.metric_history(run_id, "b")) == 10_000


def test_the_buffer_is_bounded(workspace: Workspace) -> None:
    slow = CountingStore(SqlTrackingStore(workspace.metadata), delay=0.02)
    run_id = new_run(slow)
    bound = 50
    writer = BackgroundWriter(slow, flush_interval=0.01, heartbeat_interval=60, max_pending=bound)
    highest = 0
    try:
        for metric in points(1500):
            writer.add_metric(run_id, metric)
            highest = max(highest, writer.pending)
        for start in range(0, 500, 10):  # log_metrics-sized groups
            group = [Metric("y", float(i), i, 1) for i in range(start, start + 10)]
            writer.add(run_id, metrics=group)
            highest = max(highest, writer.pending)
        writer.flush()
    finally:
        writer.close()
    # The logging calls waited for the slow store instead of letting the buffer grow.
    assert bound // 2 <= highest <= bound
    assert len(slow.batches) >= 2000 // bound
    with other_connection(workspace) as database:
        assert stored_points(database, run_id) == 2000


def test_a_failure_in_the_background_is_raised_on_the_next_call(workspace: Workspace) -> None:
    store = SqlTrackingStore(workspace.metadata)
    writer = BackgroundWriter(store, flush_interval=60, heartbeat_interval=60)
    try:
        writer.add_metric("0" * 32, Metric("x", 1.0, 0, 1))  # no such run: a foreign key fails
        with pytest.raises(TrackingError, match="in the background"):
            writer.flush()
        writer.flush()  # reported once
    finally:
        writer.close()


def test_log_metric_does_not_wait_for_a_locked_database(workspace: Workspace) -> None:
    path = workspace.metadata.sqlite_path
    assert path is not None
    with loopml.start_run(experiment="locked", system_metrics=False) as run:
        # Another connection holds the write lock; a write now would wait for it (30 s).
        locker = sqlite3.connect(path, isolation_level=None, timeout=30)
        locker.execute("BEGIN IMMEDIATE")
        try:
            started = time.monotonic()
            for step in range(10_000):
                loopml.log_metric("loss", 1.0 / (step + 1), step=step)
            loopml.log_metrics({"acc": 0.9, "auc": 0.8})
            elapsed = time.monotonic() - started
            with other_connection(workspace) as database:
                assert stored_points(database, run.id) == 0
        finally:
            locker.execute("ROLLBACK")
            locker.close()
    assert elapsed < 3.0, f"10,000 log_metric calls took {elapsed:.1f} s"
    with other_connection(workspace) as database:
        assert stored_points(database, run.id) == 10_002


EXIT_SCRIPT = """
import sys
import loopml

run = loopml.start_run(experiment="exit", name="no-with")
print(run.id, flush=True)
for step in range(5000):
    loopml.log_metric("loss", step / 5000, step=step)
loopml.log_params({"mode": sys.argv[1]})
if sys.argv[1] == "raise":
    raise ValueError("boom at the end")
"""


def test_normal_exit_flushes_and_finishes_the_run(workspace: Workspace, tmp_path: Path) -> None:
    done = python(write_script(tmp_path / "train.py", EXIT_SCRIPT), "quiet", cwd=workspace.root)
    assert done.returncode == 0
    assert done.stderr == ""  # no traceback or warning at shutdown
    run = loopml.get_run(done.stdout.strip())
    assert run.status == "finished"
    assert run.info.end_time is not None
    assert run.params == {"mode": "quiet"}
    history = run.metric_history("loss")
    assert [p.step for p in history] == list(range(5000))
    assert run.metrics["loss"] == 4999 / 5000


def test_an_uncaught_exception_at_exit_fails_the_run(workspace: Workspace, tmp_path: Path) -> None:
    done = python(write_script(tmp_path / "train.py", EXIT_SCRIPT), "raise", cwd=workspace.root)
    assert done.returncode == 1
    assert "ValueError: boom at the end" in done.stderr
    run = loopml.get_run(done.stdout.strip())
    assert run.status == "failed"
    assert (run.info.error_type, run.info.error_message) == ("ValueError", "boom at the end")
    assert len(run.metric_history("loss")) == 5000
    assert run.params == {"mode": "raise"}
