"""A run whose process is killed with ``kill -9`` is later ``crashed``, its flushed data kept."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from tracking_helpers import other_connection, start_python, stored_status, write_script

import loopml
from loopml.store.workspace import Workspace
from loopml.tracking.sql_store import SqlTrackingStore

KILLED_SCRIPT = """
import time
import loopml

run = loopml.start_run(experiment="doomed", name="killed")
for step in range(300):
    loopml.log_metric("loss", 1.0 / (step + 1), step=step)
loopml.log_params({"lr": 0.1})
loopml.get_run(run.id)  # reading the active run back flushes what it logged
print(run.id, flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("noticed_by", ["get_run", "search_runs", "reap_crashed"])
def test_a_killed_process_leaves_a_crashed_run_with_its_flushed_metrics(
    workspace: Workspace, tmp_path: Path, noticed_by: str
) -> None:
    proc = start_python(write_script(tmp_path / "train.py", KILLED_SCRIPT), cwd=workspace.root)
    try:
        assert proc.stdout is not None
        run_id = proc.stdout.readline().strip()
        assert run_id, proc.communicate(timeout=30)[1]
        # Alive: still running, however it is looked at.
        assert loopml.get_run(run_id).status == "running"
        assert SqlTrackingStore(workspace.metadata).reap_crashed() == []
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert stderr == ""

    with other_connection(workspace) as database:
        assert stored_status(database, run_id) == "running"  # nobody has looked yet
    if noticed_by == "get_run":
        assert loopml.get_run(run_id).status == "crashed"
    elif noticed_by == "search_runs":
        frame = loopml.search_runs("doomed")
        assert frame["status"].tolist() == ["crashed"]
        assert loopml.search_runs(filter="attributes.status = 'running'").empty
    else:
        assert SqlTrackingStore(workspace.metadata).reap_crashed() == [run_id]
        with other_connection(workspace) as database:
            assert stored_status(database, run_id) == "crashed"

    run = loopml.get_run(run_id)
    assert run.status == "crashed"
    assert run.info.end_time is not None
    assert run.info.error_message is not None and "stopped" in run.info.error_message
    assert run.params == {"lr": "0.1"}
    history = run.metric_history("loss")
    assert [p.step for p in history] == list(range(300))
    assert run.metrics["loss"] == 1.0 / 300
