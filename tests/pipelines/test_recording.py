"""What a pipeline run leaves in the metadata store, and how it writes it.

A cached step is recorded as fully as a step that ran: a finished child run with its tags,
params, dataset inputs and the metrics of the run that computed its outputs, a step record with
its outputs, and lineage edges. Cached steps are written together, in one transaction, and a
fully cached run on SQLite never imports SQLAlchemy. A run killed half-way leaves nothing that
claims a success it did not have.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

import loopml
from loopml.pipelines import PipelineRun, StepFailedError
from loopml.pipelines.records import StepRecords
from loopml.store.metadata.plainsql import AlchemyDatabase, SqliteDatabase
from loopml.store.workspace import Workspace, init_workspace
from loopml.tracking.sql_store import SqlTrackingStore
from support import postgres_schema, run_loopml

if TYPE_CHECKING:
    from conftest import Project

FLOW = """
    from pathlib import Path

    import loopml
    from loopml import pipeline, step

    @step
    def prep(data: Path, scale: int) -> list:
        return [int(line) * scale for line in data.read_text().split()]

    @step
    def train(rows: list, depth: int = 2) -> dict:
        loopml.log_metric("score", sum(rows) / depth)
        loopml.log_metric("score", sum(rows) / depth + 1)
        loopml.set_tag("trained", "yes")
        return {"total": sum(rows), "depth": depth}

    @step
    def report(model: dict, title: str) -> str:
        return f"{title}: {model['total']}"

    @pipeline
    def pipe(scale: int = 3, depth: int = 2, title: str = "churn"):
        model = train(prep(loopml.data.ref("sales@latest"), scale=scale), depth=depth)
        return report(model, title=title)
    """

CHAIN = """
    from loopml import pipeline, step

    @step
    def inc(x: int) -> int:
        return x + 1

    @pipeline
    def chain(n: int = 3):
        x = inc(0)
        for _ in range(n - 1):
            x = inc(x)
        return x
    """


def statuses(run: PipelineRun) -> dict[str, str]:
    return {s.name: s.status for s in run.steps}


@pytest.fixture(params=["sqlite3", "sqlalchemy"])
def driver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The standard library's ``sqlite3`` (the fast path) or SQLAlchemy on the same file."""
    if request.param == "sqlalchemy":
        monkeypatch.setattr(SqliteDatabase, "open_current", classmethod(lambda cls, url: None))
    return str(request.param)


def _sales(workspace: Workspace) -> None:
    sales = workspace.root / "sales.txt"
    sales.write_text("1\n2\n3\n")
    loopml.data.add(sales, name="sales")


def _edges(records: StepRecords, step_run_id: str) -> set[tuple[str, str, str]]:
    return set(records.sources_of("step_run", step_run_id))


def test_a_cached_rerun_records_every_step_as_fully_as_a_run_one(
    project: Project, workspace: Workspace, driver: str
) -> None:
    _sales(workspace)
    project.write("flow", FLOW)
    flow = project.load()
    first = flow.pipe()
    again = flow.pipe()
    assert statuses(first) == {"prep": "ran", "train": "ran", "report": "ran"}
    assert statuses(again) == {"prep": "cached", "train": "cached", "report": "cached"}
    assert again.outputs == first.outputs == "churn: 18"

    expected_db = SqliteDatabase if driver == "sqlite3" else AlchemyDatabase
    assert isinstance(workspace.sql, expected_db)
    records = StepRecords(workspace.sql)
    pipeline_run = loopml.get_run(again.id)
    assert pipeline_run.status == "finished"
    # Metrics roll up from the cached steps as from the steps that ran.
    assert pipeline_run.metrics == loopml.get_run(first.id).metrics == {"score": 10.0}
    assert [(i.dataset, i.version) for i in pipeline_run.info.inputs] == [("sales", 1)]

    assert [r.node for r in records.for_pipeline_run(again.id)] == ["prep", "train", "report"]
    for ran, cached in zip(first.steps, again.steps, strict=True):
        before, after = loopml.get_run(ran.run_id), loopml.get_run(cached.run_id)
        assert after.info.parent_run_id == again.id
        assert after.info.name == ran.name
        assert after.info.experiment == before.info.experiment == "pipe"
        assert after.status == "finished"
        assert after.info.end_time is not None and after.info.end_time >= after.info.start_time
        assert after.info.manifest_hash == pipeline_run.info.manifest_hash is not None
        assert after.params == before.params
        assert after.info.inputs == before.info.inputs
        assert after.tags == {
            "loopml.step": before.tags["loopml.step"],
            "loopml.kind": "step",
            "loopml.step.status": "cached",
        }
        # The metrics of the run that computed the outputs, not its duration.
        assert "duration_s" in before.metrics
        assert after.metrics == {k: v for k, v in before.metrics.items() if k != "duration_s"}

        old, new = records.get(ran.run_id), records.get(cached.run_id)
        assert old is not None and new is not None
        assert (new.status, new.duration_ms, new.attempts, new.error) == ("cached", 0, 0, None)
        assert (new.pipeline_run_id, new.node, new.step) == (again.id, old.node, old.step)
        assert (new.cache_key, new.code_hash, new.key_parts) == (
            old.cache_key,
            old.code_hash,
            old.key_parts,
        )
        assert new.outputs == old.outputs and new.outputs
        assert _edges(records, cached.run_id) == _edges(records, ran.run_id)
        for output in new.outputs:
            assert cached.run_id in records.producers_of(output.digest)
    assert loopml.get_run(again.step("prep").run_id).params == {"scale": "3"}
    prep = loopml.get_run(again.step("prep").run_id).info
    assert [(i.dataset, i.version) for i in prep.inputs] == [("sales", 1)]
    assert ("dataset_version", "sales@v1", "data") in _edges(records, again.step("prep").run_id)


def test_cached_steps_are_written_in_one_transaction(
    project: Project, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.write("flow", CHAIN)
    flow = project.load()
    for n in (3, 9):
        flow.chain(n=n)

    writes: list[str] = []
    real = SqliteDatabase.write

    def counted(self: SqliteDatabase, fn: Any, **options: Any) -> Any:
        name = getattr(fn, "__qualname__", "?")
        # Params and metrics logged through the background writer are flushed whenever its
        # timer fires, so how many batches that takes is not the pipeline's to decide.
        if "log_batch" not in name:
            writes.append(name)
        return real(self, fn, **options)

    monkeypatch.setattr(SqliteDatabase, "write", counted)

    def cached_writes(n: int) -> int:
        writes.clear()
        run = flow.chain(n=n)
        assert set(statuses(run).values()) == {"cached"} and len(run.steps) == n
        return len(writes)

    # Starting the run, recording its cached steps, ending it and sharing its manifest: a
    # fixed number of writes, however many cached steps there are.
    assert cached_writes(3) == cached_writes(9)
    assert sum("flush" in name for name in writes) == 1


def test_a_step_that_runs_after_cached_ones_finds_them_recorded(
    project: Project, workspace: Workspace
) -> None:
    project.write(
        "flow",
        """
        import loopml
        from loopml import pipeline, step
        from loopml.pipelines.records import StepRecords
        from loopml.tracking.fluent import session_workspace

        @step
        def first(x: int) -> int:
            return x + 1

        @step(cache=False)
        def look(x: int) -> list:
            pipeline_run = loopml.active_run().info.parent_run_id
            records = StepRecords(session_workspace().sql).for_pipeline_run(pipeline_run)
            return [[r.node, r.status, len(r.outputs)] for r in records]

        @pipeline
        def pipe():
            return look(first(1))
        """,
    )
    flow = project.load()
    assert statuses(flow.pipe()) == {"first": "ran", "look": "ran"}
    run = flow.pipe()
    assert statuses(run) == {"first": "cached", "look": "ran"}
    # The cached step was recorded, with its output, before the next step began.
    assert run.outputs == [["first", "cached", 1], ["look", "running", 0]]
    records = StepRecords(workspace.sql).for_pipeline_run(run.id)
    assert [(r.node, r.status) for r in records] == [("first", "cached"), ("look", "ran")]


KILLED = """
    import os
    import signal
    from pathlib import Path

    from loopml import pipeline, step

    @step
    def one(x: int) -> int:
        return x + 1

    @step
    def two(x: int) -> int:
        return x * 2

    @step(cache=False)
    def three(x: int) -> int:
        if Path("kill.flag").exists():
            os.kill(os.getpid(), signal.SIGKILL)
        return x - 1

    @pipeline
    def pipe(x: int = 1):
        return three(two(one(x)))
    """


def test_a_run_killed_after_cached_steps_leaves_consistent_records(project: Project) -> None:
    project.write("flow", KILLED)
    root = project.root
    target = f"{project.package}/flow.py:pipe"
    (root / "kill.flag").touch()
    killed = run_loopml("run", target, cwd=root)
    assert killed.exit_code == -signal.SIGKILL, killed.output
    (root / "kill.flag").unlink()
    done = run_loopml("run", target, cwd=root)
    assert done.exit_code == 0, done.output
    (root / "kill.flag").touch()
    killed_again = run_loopml("run", target, cwd=root)  # one and two cached, three killed
    assert killed_again.exit_code == -signal.SIGKILL, killed_again.output
    assert "one\tcached" in killed_again.stdout and "two\tcached" in killed_again.stdout

    with Workspace.open(root) as workspace:
        store = SqlTrackingStore(workspace=workspace)
        records = StepRecords(workspace.sql)
        pipeline_runs = _pipeline_runs(workspace)
        assert [store.get_run(r).status for r in pipeline_runs] == [
            "crashed",
            "finished",
            "crashed",
        ]
        latest = pipeline_runs[-1]
        steps = records.for_pipeline_run(latest)
        assert [(s.node, s.status) for s in steps] == [
            ("one", "cached"),
            ("two", "cached"),
            ("three", "running"),
        ]
        for step in steps:
            info = store.get_run(step.id)
            if step.status == "cached":
                # Born finished, with its outputs: never half-recorded.
                assert info.status == "finished" and step.outputs
                assert info.tags["loopml.step.status"] == "cached"
            else:
                assert info.status == "crashed" and not step.outputs
        # No record anywhere claims a success without its outputs and its finished run.
        every = [s for r in pipeline_runs for s in records.for_pipeline_run(r)]
        for step in every:
            if step.status in ("ran", "cached"):
                assert step.outputs and store.get_run(step.id).status == "finished"

    (root / "kill.flag").unlink()
    resumed = run_loopml("resume", latest[:12], cwd=root)
    assert resumed.exit_code == 0, resumed.output
    assert "three\tran" in resumed.stdout


def _pipeline_runs(workspace: Workspace) -> list[str]:
    """Ids of the pipeline runs, oldest first."""
    rows = workspace.sql.read(
        lambda sql: sql.rows(
            "SELECT r.id FROM runs AS r JOIN run_tags AS t ON t.run_id = r.id "
            "WHERE t.\"key\" = 'loopml.kind' AND t.\"value\" = 'pipeline' ORDER BY r.id"
        )
    )
    return [str(ident) for (ident,) in rows]


IMPORTS = """
    import sys
    from loopml.cli.main import run

    try:
        run(["run", sys.argv[1]])
    except SystemExit as exc:
        assert not exc.code, exc.code
    heavy = sorted(m for m in ("sqlalchemy", "alembic", "pandas", "pyarrow", "yaml", "psutil")
                   if m in sys.modules)
    print("HEAVY", ",".join(heavy))
    """


def test_a_fully_cached_cli_run_imports_no_heavy_library(project: Project) -> None:
    project.write("flow", CHAIN)
    root = project.root
    target = f"{project.package}/flow.py:chain"
    first = run_loopml("run", target, cwd=root)
    assert first.exit_code == 0, first.output
    script = root / "check_imports.py"
    script.write_text(textwrap.dedent(IMPORTS))
    checked = subprocess.run(
        [sys.executable, str(script), target],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LOOPML_USER": "tester"},
    )
    assert checked.returncode == 0, checked.stderr
    assert "inc_3\tcached" in checked.stdout
    assert checked.stdout.splitlines()[-1] == "HEAVY "


@pytest.fixture
def pg_project(project: Project, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    """The project, its workspace keeping its metadata on PostgreSQL."""
    from loopml.tracking import fluent

    with postgres_schema() as url:
        monkeypatch.setenv("LOOPML_DATABASE_URL", url)
        workspace, _ = init_workspace(project.root)
        try:
            yield project
        finally:
            # Before the schema is dropped: nothing may still be writing into it.
            fluent._shutdown()
            workspace.close()


@pytest.mark.postgres
def test_pipeline_records_on_postgresql(pg_project: Project) -> None:
    pg_project.write(
        "flow",
        """
        import loopml
        from loopml import pipeline, step

        @step
        def load(n: int) -> list:
            return list(range(n))

        @step
        def train(rows: list, depth: int = 2) -> dict:
            loopml.log_metric("rows", len(rows))
            return {"total": sum(rows), "depth": depth}

        @step
        def fail(model: dict, really: bool = False) -> int:
            if really:
                raise ValueError("asked to fail")
            return model["total"]

        @pipeline
        def pipe(n: int = 4, really: bool = False):
            return fail(train(load(n)), really=really)
        """,
    )
    flow = pg_project.load()
    first = flow.pipe()
    again = flow.pipe()
    assert statuses(again) == {"load": "cached", "train": "cached", "fail": "cached"}
    with Workspace.open(pg_project.root) as workspace:
        assert isinstance(workspace.sql, AlchemyDatabase)
        records = StepRecords(workspace.sql)
        cached = records.get(again.step("train").run_id)
        ran = records.get(first.step("train").run_id)
        assert cached is not None and ran is not None
        assert cached.status == "cached" and cached.outputs == ran.outputs
        assert _edges(records, cached.id) == _edges(records, ran.id)
        child = loopml.get_run(again.step("train").run_id)
        assert child.status == "finished" and child.metrics == {"rows": 4.0}
        assert loopml.get_run(again.id).metrics == {"rows": 4.0}

        with pytest.raises(StepFailedError):
            flow.pipe(really=True)
        failed = records.for_pipeline_run(_pipeline_runs(workspace)[-1])
        assert [(r.node, r.status) for r in failed] == [
            ("load", "cached"),
            ("train", "cached"),
            ("fail", "failed"),
        ]
        assert failed[-1].error is not None and "asked to fail" in failed[-1].error
