"""Running pipelines: parallel workers, retries, timeouts, failures, results and tracking."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import loopml
from loopml.pipelines import PipelineRun, RunOptions, StepFailedError
from loopml.pipelines.records import StepRecords
from loopml.store.workspace import Workspace

if TYPE_CHECKING:
    from conftest import Project


def statuses(run: PipelineRun) -> dict[str, str]:
    return {s.name: s.status for s in run.steps}


# --- parallel execution ------------------------------------------------------------------------

MEET = """
    import time
    from pathlib import Path
    from loopml import pipeline, step

    def _meet(me: str, other: str, folder: str) -> str:
        base = Path(folder)
        (base / f"{me}.ready").touch()
        deadline = time.monotonic() + 30
        while not (base / f"{other}.ready").exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{me} never saw {other}: the steps did not run together")
            time.sleep(0.01)
        return me

    @step
    def left(folder: str) -> str:
        return _meet("left", "right", folder)

    @step
    def right(folder: str) -> str:
        return _meet("right", "left", folder)

    @step
    def both(a: str, b: str) -> str:
        return f"{a}+{b}"

    @pipeline
    def meet(folder: str):
        return both(left(folder), right(folder))
    """


def test_independent_steps_run_in_parallel_worker_processes(
    project: Project, tmp_path: Path
) -> None:
    # Each of the two steps waits for a file the other creates: they finish only if they run
    # at the same time (one after the other, the first would time out).
    project.write("flow", MEET)
    folder = tmp_path / "rendezvous"
    folder.mkdir()
    run = project.load().meet.run({"folder": str(folder)}, options=RunOptions(workers=2))
    assert statuses(run) == {"left": "ran", "right": "ran", "both": "ran"}
    assert run.outputs == "left+right"


DIAMOND = """
    import numpy as np
    import pandas as pd
    import loopml
    from loopml import pipeline, step

    @step
    def source(n: int) -> pd.DataFrame:
        keys = [f"k{i % 3}" for i in range(n)]
        return pd.DataFrame({"x": np.arange(n, dtype="float64"), "k": keys})

    @step
    def squares(df: pd.DataFrame) -> np.ndarray:
        return df["x"].to_numpy() ** 2

    @step
    def stats(df: pd.DataFrame) -> dict:
        loopml.log_metric("rows", len(df))
        return {"mean": float(df["x"].mean()), "groups": sorted(df["k"].unique().tolist())}

    @step
    def combine(arr: np.ndarray, info: dict) -> tuple[dict, pd.DataFrame]:
        frame = pd.DataFrame({"sq": arr})
        return {**info, "total": float(arr.sum())}, frame

    @pipeline
    def diamond(n: int = 6):
        df = source(n)
        return combine(squares(df), stats(df))
    """


def test_worker_processes_give_the_same_results_as_in_process(project: Project) -> None:
    import pandas as pd

    project.write("flow", DIAMOND)
    flow = project.load()
    local = flow.diamond.run({}, options=RunOptions(workers=1))
    pooled = flow.diamond.run({}, options=RunOptions(workers=2, cache=False))
    assert statuses(pooled) == {"source": "ran", "squares": "ran", "stats": "ran", "combine": "ran"}

    info, frame = pooled.outputs
    assert info == {"mean": 2.5, "groups": ["k0", "k1", "k2"], "total": 55.0}
    pd.testing.assert_frame_equal(frame, local.outputs[1])
    assert info == local.outputs[0]
    for name in ("source", "squares", "stats", "combine"):
        assert local.step(name).outputs == pooled.step(name).outputs, name  # same digests

    worker_step = loopml.get_run(pooled.step("stats").run_id)
    assert worker_step.info.parent_run_id == pooled.id
    assert worker_step.metrics["rows"] == 6  # logged in the worker process, into the step's run


# --- retries, timeouts and failures --------------------------------------------------------------


def test_retries_back_off_and_are_recorded(
    project: Project, workspace: Workspace, tmp_path: Path
) -> None:
    project.write(
        "flow",
        """
        from pathlib import Path
        from loopml import pipeline, step

        @step(retries=2, retry_delay=0.01)
        def flaky(counter: str) -> int:
            path = Path(counter)
            attempt = int(path.read_text()) + 1 if path.exists() else 1
            path.write_text(str(attempt))
            if attempt < 3:
                raise ConnectionError(f"attempt {attempt} failed")
            return attempt

        @step(retries=1, retry_delay=0.01)
        def hopeless(counter: str) -> int:
            path = Path(counter)
            attempt = int(path.read_text()) + 1 if path.exists() else 1
            path.write_text(str(attempt))
            raise ConnectionError(f"attempt {attempt} failed")

        @pipeline
        def eventually(counter: str):
            return flaky(counter)

        @pipeline
        def never(counter: str):
            return hopeless(counter)
        """,
    )
    flow = project.load()
    records = StepRecords(workspace.metadata)

    run = flow.eventually(counter=str(tmp_path / "flaky"))
    assert run.outputs == 3
    flaky = run.step("flaky")
    assert flaky.status == "ran"
    assert flaky.duration >= 0.03  # slept 0.01 s, then 0.02 s: the delay doubles
    assert records.get(flaky.run_id).attempts == 3  # type: ignore[union-attr]

    with pytest.raises(StepFailedError, match="attempt 2 failed") as caught:
        flow.never(counter=str(tmp_path / "hopeless"))
    failed = caught.value.pipeline_run.step("hopeless")  # type: ignore[attr-defined]
    assert failed.status == "failed"
    assert records.get(failed.run_id).attempts == 2  # type: ignore[union-attr]
    assert (tmp_path / "hopeless").read_text() == "2"


@pytest.mark.parametrize("workers", [1, 2])
def test_a_step_past_its_timeout_fails(project: Project, workers: int) -> None:
    project.write(
        "flow",
        """
        import time
        from loopml import pipeline, step

        @step(timeout=0.5)
        def slow() -> int:
            time.sleep(30)
            return 1

        @pipeline
        def pipe():
            return slow()
        """,
    )
    flow = project.load()
    started = time.monotonic()
    with pytest.raises(StepFailedError) as caught:
        flow.pipe.run({}, options=RunOptions(workers=workers))
    assert time.monotonic() - started < 20
    assert caught.value.node == "slow"
    assert "StepTimeoutError" in str(caught.value) and "timeout of 0.5 s" in str(caught.value)
    assert statuses(caught.value.pipeline_run) == {"slow": "failed"}  # type: ignore[attr-defined]


FAILING = """
    from pathlib import Path
    from loopml import pipeline, step

    def check(value: int) -> None:
        if value > 1:
            raise ValueError(f"bad value {value}")  # HELPER LINE

    @step
    def prepare(n: int) -> int:
        return n

    @step
    def boom(n: int) -> int:
        check(n * 2)  # STEP LINE
        return n

    @step
    def after(n: int) -> int:
        Path("after-ran").touch()
        return n

    @pipeline
    def pipe(n: int = 1):
        return after(boom(prepare(n)))
    """


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_step_names_itself_shows_user_code_and_stops_downstream(
    project: Project, workers: int
) -> None:
    path = project.write("flow", FAILING)
    lines = path.read_text().splitlines()
    step_line = next(i for i, text in enumerate(lines, 1) if "# STEP LINE" in text)
    helper_line = next(i for i, text in enumerate(lines, 1) if "# HELPER LINE" in text)
    flow = project.load()

    with pytest.raises(StepFailedError) as caught:
        flow.pipe.run({}, options=RunOptions(workers=workers))
    error = caught.value
    assert error.node == "boom"
    assert str(error) == "step 'boom' failed: ValueError: bad value 2"
    trace = error.user_traceback
    assert f'File "{path}", line {step_line}, in boom' in trace
    assert f'File "{path}", line {helper_line}, in check' in trace
    assert trace.rstrip().endswith("ValueError: bad value 2")
    for internal in ("loopml/pipelines", "loopml/tracking", "loopml/artifacts", "concurrent"):
        assert internal not in trace

    run: PipelineRun = error.pipeline_run  # type: ignore[attr-defined]
    assert run.status == "failed"
    assert statuses(run) == {"prepare": "ran", "boom": "failed"}  # `after` never started
    assert not Path("after-ran").exists()
    assert loopml.get_run(run.id).status == "failed"
    step_run = loopml.get_run(run.step("boom").run_id)
    assert step_run.status == "failed"
    assert step_run.info.error_type == "ValueError"


def test_a_materializer_error_shows_no_loopml_frames(project: Project) -> None:
    project.write(
        "flow",
        """
        from loopml import pipeline, step

        @step
        def make() -> object:
            return object()

        @pipeline
        def pipe():
            return make()
        """,
    )
    with pytest.raises(StepFailedError) as caught:
        project.load().pipe()
    assert "UnsupportedTypeError: no materializer for builtins.object" in str(caught.value)
    assert "loopml/" not in caught.value.user_traceback.replace("@loopml.materializer", "")


# --- what a run reports --------------------------------------------------------------------------


def test_steps_outputs_and_tracking_runs(project: Project) -> None:
    project.write(
        "flow",
        """
        import time
        import loopml
        from loopml import pipeline, step

        @step
        def load(n: int) -> list:
            return list(range(n))

        @step
        def train(rows: list, depth: int = 2) -> dict:
            loopml.log_metric("rows", len(rows))
            time.sleep(0.05)
            return {"total": sum(rows), "depth": depth}

        @pipeline
        def pipe(n: int = 4, depth: int = 2):
            return train(load(n), depth=depth)
        """,
    )
    flow = project.load()
    run = flow.pipe()
    assert run.status == "finished"
    assert [(s.name, s.status) for s in run.steps] == [("load", "ran"), ("train", "ran")]
    assert run.step("train").duration >= 0.05
    assert run.outputs == {"total": 6, "depth": 2}

    pipeline_run = loopml.get_run(run.id)
    assert pipeline_run.info.parent_run_id is None
    assert pipeline_run.status == "finished"
    assert pipeline_run.tags["loopml.kind"] == "pipeline"
    assert pipeline_run.params["n"] == "4" and pipeline_run.params["depth"] == "2"
    # Step metrics roll up to the pipeline run (durations stay on the steps).
    assert pipeline_run.metrics["rows"] == 4.0
    assert "duration_s" not in pipeline_run.metrics
    for result in run.steps:
        child = loopml.get_run(result.run_id)
        assert child.info.parent_run_id == run.id
        assert child.info.name == result.name
        assert child.status == "finished"
    assert loopml.get_run(run.step("train").run_id).metrics["rows"] == 4
    assert loopml.get_run(run.step("train").run_id).params["depth"] == "2"

    again = flow.pipe()
    assert again.id != run.id
    assert [(s.name, s.status, s.duration) for s in again.steps] == [
        ("load", "cached", 0.0),
        ("train", "cached", 0.0),
    ]
    assert again.outputs == {"total": 6, "depth": 2}
    cached = loopml.get_run(again.step("train").run_id)
    assert cached.info.parent_run_id == again.id
    assert cached.tags["loopml.step.status"] == "cached"


def test_a_400_step_chain_traces_and_plans(project: Project) -> None:
    project.write(
        "flow",
        """
        from loopml import pipeline, step

        @step
        def inc(x: int) -> int:
            return x + 1

        @pipeline
        def chain(n: int = 400):
            x = inc(0)
            for _ in range(n - 1):
                x = inc(x)
            return x
        """,
    )
    flow = project.load()
    graph = flow.chain.trace(flow.chain.bind({}))
    names = list(graph.nodes)
    assert len(names) == 400 and len(set(names)) == 400
    assert names[:3] == ["inc", "inc_2", "inc_3"] and names[-1] == "inc_400"
    assert len(graph.levels()) == 400
    assert graph.upstream_of("inc_400") == set(names)
    assert graph.downstream_of("inc") == set(names)

    planned = flow.chain.plan()
    assert len(planned) == 400
    assert all(p.action == "run" for p in planned)
    assert planned[0].reason == "never ran with this step"
    assert planned[-1].reason == "upstream inc_399 runs"
