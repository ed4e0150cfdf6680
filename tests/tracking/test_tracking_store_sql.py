"""The tracking store's plain-SQL paths, on SQLite (through ``sqlite3``) and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from loopml.ids import new_id, shortest_unique_prefixes
from loopml.store.metadata.plainsql import AlchemyDatabase, SqliteDatabase
from loopml.store.workspace import Workspace
from loopml.tracking.model import InputRecord, Metric, NewRun, RunStatus
from loopml.tracking.sql_store import SqlTrackingStore, now_ms


def _store(workspace: Workspace) -> SqlTrackingStore:
    return SqlTrackingStore(workspace=workspace)


def test_a_workspace_store_speaks_sqlite3_on_sqlite(tracked_workspace: Workspace) -> None:
    store = _store(tracked_workspace)
    expected = SqliteDatabase if tracked_workspace.metadata.dialect == "sqlite" else AlchemyDatabase
    assert isinstance(store.db, expected)
    # Both faces see the same runs.
    info = store.create_run(
        experiment="e", name="r", parent_run_id=None, user="u", host="h", pid=1, tags={"t": "1"}
    )
    assert SqlTrackingStore(tracked_workspace.metadata).get_run(info.id).tags == {"t": "1"}


def test_whole_runs_are_written_in_the_callers_transaction(tracked_workspace: Workspace) -> None:
    store = _store(tracked_workspace)
    parent = store.create_run(
        experiment="e", name="parent", parent_run_id=None, user="u", host="h", pid=1, tags={}
    )
    now = now_ms()
    child = NewRun(
        id=new_id(),
        experiment_id=store.experiment_id("e"),
        name="child",
        status=RunStatus.FINISHED,
        start_time=now - 5,
        end_time=now,
        parent_run_id=parent.id,
        user="u",
        host="h",
        pid=1,
        tags={"kind": "step"},
        params={"depth": "2"},
        metrics=(
            Metric("loss", 0.5, 0, now),
            Metric("loss", 0.25, 1, now),
            Metric("acc", float("nan"), 0, now),
        ),
        inputs=(InputRecord("sales", 1, "a" * 64), InputRecord("sales", 1, "a" * 64)),
    )
    running = NewRun(
        id=new_id(),
        experiment_id=store.experiment_id("e"),
        name="busy",
        status=RunStatus.RUNNING,
        start_time=now,
        end_time=None,
        parent_run_id=parent.id,
        user="u",
        host="h",
        pid=1,
    )

    def write(sql: object) -> None:
        store.insert_runs_tx(sql, [child, running])  # type: ignore[arg-type]
        store.log_inputs_tx(sql, parent.id, child.inputs)  # type: ignore[arg-type]
        store.set_status_tx(sql, parent.id, RunStatus.FINISHED)  # type: ignore[arg-type]

    store.db.write(write)
    info = store.get_run(child.id)
    assert info.status == "finished" and (info.start_time, info.end_time) == (now - 5, now)
    assert info.heartbeat_at == now
    assert (info.parent_run_id, info.experiment, info.name) == (parent.id, "e", "child")
    assert info.tags == {"kind": "step"} and info.params == {"depth": "2"}
    assert info.metrics["loss"] == 0.25 and info.metrics["acc"] != info.metrics["acc"]  # NaN
    assert [p.value for p in store.metric_history(child.id, "loss")] == [0.5, 0.25]
    assert [(i.dataset, i.version) for i in info.inputs] == [("sales", 1)]
    assert store.run_header(running.id).status == "running"
    assert store.get_run(parent.id).status == "finished"
    assert [(i.dataset, i.version) for i in store.get_run(parent.id).inputs] == [("sales", 1)]
    assert store.children(parent.id) == sorted([child.id, running.id])
    latest = store.latest_metrics_of([child.id, running.id, parent.id])
    assert set(latest) == {child.id} and latest[child.id]["loss"] == 0.25
    assert store.names_and_statuses([child.id, running.id, "0" * 32]) == {
        child.id: ("child", "finished"),
        running.id: ("busy", "running"),
    }


def test_id_prefixes_are_the_shortest_no_other_run_shares(tracked_workspace: Workspace) -> None:
    store = _store(tracked_workspace)
    ids = [
        store.create_run(
            experiment="e", name=f"r{i}", parent_run_id=None, user="u", host="h", pid=1, tags={}
        ).id
        for i in range(70)
    ]
    # Ids made in the same millisecond share long prefixes: the neighbours decide.
    expected = shortest_unique_prefixes(ids)
    assert store.id_prefixes(ids[:5]) == {i: expected[i] for i in ids[:5]}
    assert store.id_prefixes(ids) == expected  # past the neighbour lookups: every id read
    assert store.id_prefixes([]) == {}
    unknown = "f" * 32
    assert store.id_prefixes([unknown]) == {
        unknown: shortest_unique_prefixes([*ids, unknown])[unknown]
    }


def test_a_tracked_run_on_sqlite_does_not_import_sqlalchemy(workspace: Workspace) -> None:
    script = textwrap.dedent(
        """
        import sys
        import loopml

        with loopml.start_run(experiment="fast") as run:
            loopml.log_params({"lr": 0.1})
            for step in range(50):
                loopml.log_metric("loss", 1 / (step + 1), step=step)
            loopml.set_tag("stage", "dev")
        info = loopml.get_run(run.id)
        assert info.status == "finished" and info.params == {"lr": "0.1"}, info
        assert len(info.metric_history("loss")) == 50
        print("sqlalchemy" in sys.modules)
        """
    )
    path = Path(workspace.root) / "train.py"
    path.write_text(script)
    done = subprocess.run(
        [sys.executable, str(path)], cwd=workspace.root, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
