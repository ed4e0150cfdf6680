"""Many processes tracking into one workspace at once, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from tracking_helpers import other_connection, start_python, stored_points, write_script

import loopml
from loopml.store.metadata import MetadataStore
from loopml.store.workspace import Workspace
from loopml.tracking.sql_store import SqlTrackingStore

PROCESSES = 8
POINTS = 5000

LOGGING_SCRIPT = """
import os
import sys
import time

import loopml

index = int(sys.argv[1])
go = sys.argv[2]
print("ready", flush=True)
while not os.path.exists(go):  # all processes start logging at the same moment
    time.sleep(0.005)
with loopml.start_run(experiment="concurrent", name=f"proc-{index}") as run:
    loopml.log_params({"index": index})
    for step in range(5000):
        loopml.log_metric("x", index * 1_000_000 + step, step=step)
        if step % 100 == 99:
            time.sleep(0.02)  # spread over ~1 s, so that background flushes interleave
print(run.id, flush=True)
"""


@pytest.mark.slow
def test_eight_processes_log_into_one_workspace_at_once(
    tracked_workspace: Workspace, tmp_path: Path
) -> None:
    script = write_script(tmp_path / "worker.py", LOGGING_SCRIPT)
    go = tmp_path / "go"
    procs = [
        start_python(script, str(index), str(go), cwd=tracked_workspace.root)
        for index in range(PROCESSES)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", proc.communicate(timeout=30)[1]
        go.touch()
        outputs = [proc.communicate(timeout=120) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    for proc, (_, stderr) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, stderr
        assert stderr == ""
    run_ids = [stdout.strip() for stdout, _ in outputs]

    total = 0
    with other_connection(tracked_workspace) as database:
        for run_id in run_ids:
            total += stored_points(database, run_id)
    assert total == PROCESSES * POINTS

    for index, run_id in enumerate(run_ids):
        run = loopml.get_run(run_id)
        assert run.status == "finished"
        assert run.info.name == f"proc-{index}"
        assert run.params == {"index": str(index)}
        history = run.metric_history("x")
        assert [p.step for p in history] == list(range(POINTS))
        assert [p.value for p in history] == [index * 1_000_000 + s for s in range(POINTS)]
        stamps = [p.timestamp for p in history]
        assert stamps == sorted(stamps)  # logged, and stored, in order
        assert run.metrics == {"x": index * 1_000_000 + POINTS - 1}
    frame = loopml.search_runs("concurrent")
    assert sorted(frame["name"]) == [f"proc-{i}" for i in range(PROCESSES)]
    assert set(frame["status"]) == {"finished"}


def create_at_once(stores: list[SqlTrackingStore], name: str) -> list[str | BaseException]:
    """``experiment_id(name)`` from every store at the same moment, one thread each."""
    barrier = threading.Barrier(len(stores))
    results: list[str | BaseException] = []

    def create(store: SqlTrackingStore) -> None:
        barrier.wait()
        try:
            results.append(store.experiment_id(name))
        except BaseException as exc:
            results.append(exc)

    threads = [threading.Thread(target=create, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_runs_of_a_new_experiment_started_at_once_share_it(tracked_workspace: Workspace) -> None:
    url = tracked_workspace.settings.database_url
    databases = [MetadataStore.open(url, migrate=False) for _ in range(PROCESSES)]
    stores = [SqlTrackingStore(database) for database in databases]
    try:
        for trial in range(5):
            results = create_at_once(stores, f"new-{trial}")
            assert [r for r in results if isinstance(r, BaseException)] == []
            assert len(results) == PROCESSES and len(set(results)) == 1
    finally:
        for database in databases:
            database.close()
