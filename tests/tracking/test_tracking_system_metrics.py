"""System metrics are sampled in the background while a run is active."""

from __future__ import annotations

import time

import loopml
from loopml.store.workspace import Workspace


def test_system_metrics_are_recorded_while_the_run_lasts(workspace: Workspace) -> None:
    with loopml.start_run(system_metrics=True, system_metrics_interval=0.2) as run:
        time.sleep(1.1)
    ended = time.monotonic()
    got = loopml.get_run(run.id)
    cpu = got.metric_history("system/cpu_percent")
    memory = got.metric_history("system/memory_mb")
    assert len(cpu) >= 3 and len(memory) >= 3
    assert [p.step for p in cpu] == list(range(len(cpu)))
    assert all(0.0 <= p.value <= 100.0 * 1024 for p in cpu)
    assert all(p.value > 0 for p in memory)
    assert all(run.info.start_time <= p.timestamp <= got.info.end_time for p in memory)  # type: ignore[operator]
    assert "system/memory_percent" in got.metrics
    # Sampling stops with the run.
    time.sleep(max(0.0, 0.5 - (time.monotonic() - ended)))
    assert len(loopml.get_run(run.id).metric_history("system/cpu_percent")) == len(cpu)


def test_no_system_metrics_when_turned_off(workspace: Workspace) -> None:
    with loopml.start_run(system_metrics=False, system_metrics_interval=0.1) as run:
        time.sleep(0.4)
    assert not [key for key in loopml.get_run(run.id).metrics if key.startswith("system/")]
