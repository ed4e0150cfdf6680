"""Steps and pipelines: tracing, identity, inputs, exact caching, and what outputs become.

Every pipeline here is a real module in the test's workspace (see ``conftest.Project``), run
the way a user runs one: ``pipe(**params)`` from the project folder.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import loopml
from loopml.artifacts import UnsafeLoadError
from loopml.pipelines import PipelineDefinitionError, PipelineRun, RunOptions, StepFailedError
from loopml.pipelines.loader import load_target
from loopml.store.workspace import Workspace

if TYPE_CHECKING:
    from conftest import Project
    from support import Cli


def statuses(run: PipelineRun) -> dict[str, str]:
    return {s.name: s.status for s in run.steps}


# --- tracing ---------------------------------------------------------------------------------


def test_a_tracing_error_is_reported_before_any_step_runs(project: Project) -> None:
    from loopml.tracking import fluent

    project.write(
        "flow",
        """
        from pathlib import Path
        from loopml import pipeline, step

        @step
        def load() -> str:
            Path("load-ran").touch()
            raise RuntimeError("load must not run")

        @step
        def train(rows: int) -> int:
            return rows

        @pipeline
        def pipe():
            return train(load())
        """,
    )
    flow = project.load()
    with pytest.raises(PipelineDefinitionError) as caught:
        flow.pipe()
    message = str(caught.value)
    assert "'train' expects rows: int" in message and "'load' returns str" in message
    assert not Path("load-ran").exists()
    assert not fluent._sessions  # not even the pipeline's tracking run was started


def test_the_dag_exists_before_anything_runs(project: Project) -> None:
    project.write(
        "flow",
        """
        from loopml import pipeline, step

        @step
        def a() -> int:
            raise RuntimeError("never called while tracing")

        @step
        def b(x: int, y: int = 1) -> int:
            return x + y

        @pipeline
        def pipe(y: int = 5):
            first = a()
            return b(b(first, y), y=first)
        """,
    )
    flow = project.load()
    graph = flow.pipe.trace(flow.pipe.bind({}))
    assert list(graph.nodes) == ["a", "b", "b_2"]
    assert graph.nodes["b_2"].upstream == ["b", "a"]
    assert graph.levels() == [["a"], ["b"], ["b_2"]]
    assert [(i.name, i.kind, i.value) for i in graph.nodes["b"].inputs] == [
        ("x", "output", None),
        ("y", "value", 5),
    ]


def test_tuple_annotation_means_several_outputs(project: Project) -> None:
    project.write(
        "flow",
        """
        from loopml import pipeline, step

        @step
        def split(n: int) -> tuple[int, str]:
            return n, "x" * n

        @step
        def many(n: int) -> tuple[int, ...]:
            return tuple(range(n))

        @step
        def join(count: int, text: str, rest: list) -> str:
            return f"{count}:{text}:{len(rest)}"

        @pipeline
        def pipe(n: int = 3):
            count, text = split(n)
            return join(count, text, many(n)), count
        """,
    )
    flow = project.load()
    assert flow.split.outputs == 2 and flow.many.outputs == 1
    run = flow.pipe()
    assert run.status == "finished"
    assert run.outputs == ("3:xxx:3", 3)


def test_a_step_called_outside_a_pipeline_is_a_plain_call(project: Project) -> None:
    from loopml.tracking import fluent

    project.write(
        "flow",
        """
        from loopml import step

        @step(retries=3)
        def double(x: int) -> int:
            return 2 * x

        @step
        def pair(x: int) -> tuple[int, int]:
            return x, -x
        """,
    )
    flow = project.load()
    assert flow.double(21) == 42
    assert flow.pair(x=2) == (2, -2)
    assert flow.double.__name__ == "double" and flow.double.__doc__ is None
    assert not fluent._sessions  # nothing was tracked, no workspace was opened


MISUSES = [
    "if out: pass",
    "out + 1",
    "1 + out",
    "out * 2",
    "-out",
    "out < 3",
    "out == 3",
    "out['col']",
    "out.mean()",
    "len(out)",
    "list(out)",
    "float(out)",
    "f'data/{out}.csv'",
    "str(out)",
    "3 in out",
]


@pytest.mark.parametrize("misuse", MISUSES)
def test_using_a_step_output_as_a_value_is_a_definition_error(
    project: Project, misuse: str
) -> None:
    project.write(
        "flow",
        f"""
        from loopml import pipeline, step

        @step
        def make() -> int:
            return 1

        @pipeline
        def pipe():
            out = make()
            {misuse}
        """,
    )
    flow = project.load()
    with pytest.raises(PipelineDefinitionError, match="output of step 'make' is only known"):
        flow.pipe()


def test_bad_parameters_and_arguments_are_clear_errors(project: Project) -> None:
    project.write(
        "flow",
        """
        from loopml import pipeline, step

        @step
        def add(x: int, y: int) -> int:
            return x + y

        @pipeline
        def pipe(n: int = 1, depth: int = 2):
            return add(n, depth)

        @pipeline
        def missing_arg():
            return add(1)

        @pipeline
        def object_arg():
            return add(1, object())
        """,
    )
    flow = project.load()
    with pytest.raises(PipelineDefinitionError) as unknown:
        flow.pipe(nope=3)
    assert "'nope'" in str(unknown.value) and "its parameters: n, depth" in str(unknown.value)
    with pytest.raises(PipelineDefinitionError, match=r"step 'add' called wrongly.*'y'"):
        flow.missing_arg()
    with pytest.raises(PipelineDefinitionError, match="argument 'y' is a object; pass JSON-able"):
        flow.object_arg()
    with pytest.raises(PipelineDefinitionError, match="must be JSON-able"):
        flow.pipe(n=object())


def test_keyword_arguments_and_the_numeric_tower(project: Project) -> None:
    project.write(
        "flow",
        """
        from loopml import pipeline, step

        @step
        def one() -> int:
            return 1

        @step
        def gather(**options: int) -> dict:
            return options

        @step
        def halve(x: float) -> float:
            return x / 2

        @step
        def total(*numbers: int) -> int:
            return sum(numbers)

        @step
        def positional(x: int, /) -> int:
            return x

        @pipeline
        def pipe(a: int = 2):
            return gather(a=a, b=one()), halve(one())

        @pipeline
        def starred():
            return total(1, 2)

        @pipeline
        def slashed():
            return positional(1)
        """,
    )
    flow = project.load()
    graph = flow.pipe.trace(flow.pipe.bind({}))
    assert [(i.name, i.kind) for i in graph.nodes["gather"].inputs] == [
        ("a", "value"),
        ("b", "output"),
    ]
    assert flow.pipe().outputs == ({"a": 2, "b": 1}, 0.5)  # an int output feeds a float input
    with pytest.raises(PipelineDefinitionError, match=r"takes \*numbers.*named parameters"):
        flow.starred()
    with pytest.raises(PipelineDefinitionError, match="positional-only parameter 'x'"):
        flow.slashed()


def test_step_options_are_checked() -> None:
    def fn(x: int) -> int:
        return x

    for options, problem in [
        ({"retries": -1}, "retries must be 0 or more"),
        ({"timeout": 0}, "timeout must be positive"),
        ({"retry_delay": -0.5}, "retry_delay must be 0 or more"),
    ]:
        with pytest.raises(PipelineDefinitionError, match=problem):
            loopml.step(**options)(fn)
    assert loopml.step(packages="numpy")(fn).packages == ("numpy",)
    assert loopml.step(packages=["numpy", "pandas"])(fn).packages == ("numpy", "pandas")


# --- identity ----------------------------------------------------------------------------------

CHURN = """
    from loopml import pipeline, step

    @step
    def load(n: int) -> list:
        return list(range(n))

    @step
    def total(rows: list) -> int:
        return sum(rows)

    @pipeline
    def churn(n: int = 4):
        return total(load(n))
    """


def test_identity_and_cache_are_the_same_imported_or_loaded_from_a_file(
    project: Project,
) -> None:
    project.write("flows/__init__", "")
    project.write("flows/churn", CHURN)
    imported = project.load("flows.churn")
    assert imported.load.identity == f"{project.package}.flows.churn:load"
    first = imported.churn()
    assert statuses(first) == {"load": "ran", "total": "ran"}

    project.purge()
    loaded = load_target(f"{project.package}/flows/churn.py:churn")
    assert loaded.identity == f"{project.package}.flows.churn:churn"
    assert loaded is sys.modules[f"{project.package}.flows.churn"].churn
    second = loaded()
    assert statuses(second) == {"load": "cached", "total": "cached"}
    assert second.outputs == 6


# --- inputs ------------------------------------------------------------------------------------


def test_a_path_input_is_hashed_by_content(project: Project) -> None:
    project.write(
        "flow",
        """
        from pathlib import Path
        from loopml import pipeline, step

        @step
        def count(p: Path) -> int:
            assert isinstance(p, Path)
            return len(p.read_text().splitlines())

        @pipeline
        def pipe(p: Path = Path("data.csv")):
            return count(p)
        """,
    )
    data = Path("data.csv")
    data.write_text("a\nb\n")
    flow = project.load()
    assert flow.pipe().outputs == 2
    assert statuses(flow.pipe()) == {"count": "cached"}

    stat = data.stat()
    os.utime(data, ns=(stat.st_atime_ns + 10**9, stat.st_mtime_ns + 10**9))  # touched, same bytes
    assert statuses(flow.pipe()) == {"count": "cached"}

    data.write_text("a\nb\nc\n")
    rerun = flow.pipe()
    assert statuses(rerun) == {"count": "ran"}
    assert rerun.outputs == 3

    folder = Path("folder")
    folder.mkdir()
    (folder / "x.txt").write_text("1\n2\n")
    assert statuses(flow.pipe(p=folder / "x.txt")) == {"count": "ran"}
    assert statuses(flow.pipe(p=folder / "x.txt")) == {"count": "cached"}


def test_a_plain_string_is_just_a_string(project: Project) -> None:
    project.write(
        "flow",
        """
        from loopml import pipeline, step

        @step
        def echo(p: str) -> str:
            return p

        @pipeline
        def pipe(p: str = "data.csv"):
            return echo(p)
        """,
    )
    Path("data.csv").write_text("one\n")
    flow = project.load()
    assert flow.pipe().outputs == "data.csv"
    Path("data.csv").write_text("two, longer\n")
    assert statuses(flow.pipe()) == {"echo": "cached"}
    assert statuses(flow.pipe(p="other.csv")) == {"echo": "ran"}


def test_a_dataset_ref_is_keyed_by_its_version_and_read_only(
    project: Project, workspace: Workspace
) -> None:
    project.write(
        "flow",
        """
        from pathlib import Path
        import loopml
        from loopml import pipeline, step

        @step
        def summarise(data: Path) -> dict:
            return {
                "is_path": isinstance(data, Path),
                "text": data.read_text(),
                "read_only": data.stat().st_mode & 0o222 == 0,
            }

        @pipeline
        def pipe(version: str = "sales@latest"):
            return summarise(loopml.data.ref(version))
        """,
    )
    sales = Path("sales.csv")
    sales.write_text("x\n1\n")
    loopml.data.add(sales, name="sales")
    flow = project.load()

    first = flow.pipe()
    assert first.outputs == {"is_path": True, "text": "x\n1\n", "read_only": True}
    assert statuses(flow.pipe()) == {"summarise": "cached"}

    sales.write_text("x\n1\n2\n")
    loopml.data.add(sales, name="sales")
    moved = flow.pipe()  # latest now names v2: other data, so the step runs
    assert statuses(moved) == {"summarise": "ran"}
    assert moved.outputs["text"] == "x\n1\n2\n"
    # The key is the version's content: sales@v1 is what sales@latest named at first.
    assert statuses(flow.pipe(version="sales@v1")) == {"summarise": "cached"}


# --- exact caching of code ---------------------------------------------------------------------

FLOW = """
    from loopml import pipeline, step
    from . import helpers_a

    @step
    def compute(x: int) -> int:
        # first comment
        '''What compute does.'''
        return helpers_a.helper_a(x)

    @step
    def report(value: int) -> str:
        return f"value={value}"

    @pipeline
    def pipe(x: int = 2):
        return report(compute(x))
    """
HELPERS_A = """
    from .helpers_b import helper_b

    def helper_a(x):
        return helper_b(x) + 1
    """
HELPERS_B = """
    FACTOR = 10

    def helper_b(x):
        '''Scale by the factor.'''
        return x * FACTOR
    """


@pytest.fixture
def deep(project: Project) -> Project:
    """compute → helpers_a.helper_a → helpers_b.helper_b (+ helpers_b.FACTOR); run once."""
    project.write("helpers_b", HELPERS_B)
    project.write("helpers_a", HELPERS_A)
    project.write("flow", FLOW)
    first = project.load().pipe()
    assert statuses(first) == {"compute": "ran", "report": "ran"}
    assert first.outputs == "value=21"
    return project


def rerun(project: Project, **params: Any) -> PipelineRun:
    run: PipelineRun = project.load().pipe(**params)
    return run


def test_editing_a_helper_two_calls_deep_reruns_the_step(deep: Project) -> None:
    assert statuses(rerun(deep)) == {"compute": "cached", "report": "cached"}
    deep.edit("helpers_b", "return x * FACTOR", "return x * FACTOR + 100")
    planned = deep.load().pipe.plan()
    assert [(p.name, p.action, p.reason) for p in planned] == [
        ("compute", "run", "code changed"),
        ("report", "run", "upstream compute runs"),
    ]
    run = rerun(deep)
    assert statuses(run) == {"compute": "ran", "report": "ran"}
    assert run.outputs == "value=121"


def test_a_code_change_that_keeps_the_output_reruns_only_that_step(deep: Project) -> None:
    deep.edit("helpers_b", "return x * FACTOR", "return FACTOR * x")
    assert statuses(rerun(deep)) == {"compute": "ran", "report": "cached"}


def test_reloading_an_edited_helper_in_a_live_process_is_seen(deep: Project) -> None:
    flow = deep.load()
    assert statuses(flow.pipe()) == {"compute": "cached", "report": "cached"}
    deep.edit("helpers_b", "return x * FACTOR", "return x * FACTOR * 2")
    importlib.reload(sys.modules[f"{deep.package}.helpers_b"])
    importlib.reload(sys.modules[f"{deep.package}.helpers_a"])  # picks the new helper_b
    run = flow.pipe()  # the step module itself was not re-imported
    assert statuses(run) == {"compute": "ran", "report": "ran"}
    assert run.outputs == "value=41"


def test_comments_docstrings_and_formatting_do_not_count(deep: Project) -> None:
    deep.edit("flow", "# first comment", "# another comment entirely\n    # and more")
    deep.edit("flow", "'''What compute does.'''", '"""Now documented differently."""')
    deep.edit("flow", "return helpers_a.helper_a(x)", "return helpers_a.helper_a(  x  )  # hi")
    deep.edit("helpers_b", "'''Scale by the factor.'''", "'''Multiply.'''")
    deep.edit("helpers_b", "return x * FACTOR", "return (x *\n            FACTOR)")
    deep.edit("helpers_a", "def helper_a(x):", "\n\ndef helper_a(x):  # reformatted\n")
    assert statuses(rerun(deep)) == {"compute": "cached", "report": "cached"}


def test_editing_a_module_level_constant_reruns(deep: Project) -> None:
    deep.edit("helpers_b", "FACTOR = 10", "FACTOR = 20")
    run = rerun(deep)
    assert statuses(run) == {"compute": "ran", "report": "ran"}
    assert run.outputs == "value=41"


def test_editing_a_project_class_the_step_uses_reruns(project: Project) -> None:
    project.write(
        "models",
        """
        class Scaler:
            offset = 1

            def apply(self, x):
                return x + self.offset
        """,
    )
    project.write(
        "flow",
        """
        from loopml import pipeline, step
        from .models import Scaler

        @step
        def scaled(x: int) -> int:
            return Scaler().apply(x)

        @pipeline
        def pipe(x: int = 1):
            return scaled(x)
        """,
    )
    assert project.load().pipe().outputs == 2
    assert statuses(project.load().pipe()) == {"scaled": "cached"}
    project.edit("models", "return x + self.offset", "return x - self.offset")
    run = project.load().pipe()
    assert statuses(run) == {"scaled": "ran"}
    assert run.outputs == 0


def test_parameters_are_part_of_the_key(deep: Project) -> None:
    assert statuses(rerun(deep, x=3)) == {"compute": "ran", "report": "ran"}
    assert statuses(rerun(deep, x=2)) == {"compute": "cached", "report": "cached"}
    assert statuses(rerun(deep, x=3)) == {"compute": "cached", "report": "cached"}


def test_declared_package_versions_are_part_of_the_key(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    from importlib import metadata

    from loopml.pipelines import keys

    project.write(
        "flow",
        """
        from loopml import pipeline, step

        @step(packages=["numpy"])
        def with_numpy(x: int) -> int:
            return x

        @step
        def without(x: int) -> int:
            return x

        @pipeline
        def pipe(x: int = 1):
            return with_numpy(x), without(x)
        """,
    )
    flow = project.load()
    assert statuses(flow.pipe()) == {"with_numpy": "ran", "without": "ran"}
    assert statuses(flow.pipe()) == {"with_numpy": "cached", "without": "cached"}

    real = metadata.version

    def upgraded(name: str) -> str:
        return "999.0" if name == "numpy" else real(name)

    monkeypatch.setattr(metadata, "version", upgraded)
    assert keys.package_versions(("numpy",)) == {"numpy": "999.0"}
    assert statuses(flow.pipe()) == {"with_numpy": "ran", "without": "cached"}


def test_cache_off_per_step_and_per_run(project: Project) -> None:
    project.write(
        "flow",
        """
        from loopml import pipeline, step

        @step(cache=False)
        def always(x: int) -> int:
            return x

        @step
        def usually(x: int) -> int:
            return x + 1

        @pipeline
        def pipe(x: int = 1):
            return usually(always(x))
        """,
    )
    flow = project.load()
    assert statuses(flow.pipe()) == {"always": "ran", "usually": "ran"}
    assert statuses(flow.pipe()) == {"always": "ran", "usually": "cached"}
    forced = flow.pipe.run({}, options=RunOptions(cache=False))
    assert statuses(forced) == {"always": "ran", "usually": "ran"}
    assert forced.outputs == 2


# --- outputs -----------------------------------------------------------------------------------


def test_step_outputs_are_garbage_collection_roots(
    project: Project, workspace: Workspace, cli: Cli
) -> None:
    project.write(
        "flow",
        """
        from pathlib import Path
        import pandas as pd
        from loopml import pipeline, step

        @step
        def frame(n: int) -> pd.DataFrame:
            return pd.DataFrame({"x": range(n)})

        @step
        def folder(n: int) -> Path:
            out = Path("build") / f"n{n}"
            (out / "sub").mkdir(parents=True, exist_ok=True)
            for i in range(n):
                (out / "sub" / f"{i}.txt").write_text(str(i) * (i + 1))
            return out

        @step
        def total(df: pd.DataFrame, files: Path, extra: int = 0) -> dict:
            names = sorted(p.relative_to(files).as_posix() for p in files.rglob("*.txt"))
            return {"sum": int(df["x"].sum()) + extra, "files": names}

        @pipeline
        def pipe(n: int = 3, extra: int = 0):
            return total(frame(n), folder(n), extra=extra)
        """,
    )
    flow = project.load()
    first = flow.pipe()
    expected = {"sum": 3, "files": ["sub/0.txt", "sub/1.txt", "sub/2.txt"]}
    assert first.outputs == expected
    garbage = workspace.objects.add_bytes(b"nobody points at me")
    shutil.rmtree("build")

    result = cli("gc", "--yes", "--grace", "0")
    assert result.exit_code == 0, result.output
    assert not workspace.objects.has(garbage)
    for s in first.steps:
        for out in s.outputs:
            assert workspace.objects.has(out.digest), (s.name, out.materializer)

    shutil.rmtree(workspace.dir / "cache" / "outputs")  # loads must come from the store
    again = flow.pipe()
    assert statuses(again) == {"frame": "cached", "folder": "cached", "total": "cached"}
    assert again.outputs == expected
    downstream = flow.pipe(extra=1)  # reads both stored outputs back
    assert statuses(downstream) == {"frame": "cached", "folder": "cached", "total": "ran"}
    assert downstream.outputs == {**expected, "sum": 4}


def test_a_user_materializer_carries_outputs_between_steps(project: Project) -> None:
    project.write(
        "flow",
        """
        import json
        from loopml import materializer, pipeline, step

        class Point:
            def __init__(self, x: float, y: float) -> None:
                self.x, self.y = x, y

        @materializer(Point)
        class PointFormat:
            def save(self, value: Point) -> bytes:
                return json.dumps([value.x, value.y]).encode()

            def load(self, data: bytes) -> Point:
                return Point(*json.loads(data))

        @step
        def make(x: float) -> Point:
            return Point(x, -x)

        @step
        def norm(p: Point) -> float:
            return abs(p.x) + abs(p.y)

        @pipeline
        def pipe(x: float = 1.5):
            point = make(x)
            return point, norm(point)
        """,
    )
    flow = project.load()
    run = flow.pipe()
    point, norm = run.outputs
    assert isinstance(point, flow.Point) and (point.x, point.y) == (1.5, -1.5)
    assert norm == 3.0
    assert run.step("make").outputs[0].materializer == f"user:{project.package}.flow.Point"


def test_an_unknown_output_type_names_the_fix(project: Project) -> None:
    project.write(
        "flow",
        """
        from loopml import pipeline, step

        class Opaque:
            pass

        @step
        def make() -> Opaque:
            return Opaque()

        @pipeline
        def pipe():
            return make()
        """,
    )
    with pytest.raises(StepFailedError) as caught:
        project.load().pipe()
    message = str(caught.value)
    assert f"no materializer for {project.package}.flow.Opaque" in message
    assert "@loopml.materializer(YourType)" in message and "@step(pickle=True)" in message


def test_pickle_is_opt_in_and_signed_by_this_workspace(
    project: Project, workspace: Workspace
) -> None:
    project.write(
        "flow",
        """
        from loopml import pipeline, step

        class Box:
            def __init__(self, value: int) -> None:
                self.value = value

        @step(pickle=True)
        def boxed(value: int) -> Box:
            return Box(value)

        @step
        def unbox(box: Box) -> int:
            return box.value

        @pipeline
        def pipe(value: int = 7):
            box = boxed(value)
            return box, unbox(box)
        """,
    )
    flow = project.load()
    run = flow.pipe()
    box, value = run.outputs
    assert isinstance(box, flow.Box) and box.value == 7 and value == 7
    assert run.step("boxed").outputs[0].materializer == "pickle"

    # The same objects, judged with another workspace's key, as if copied from elsewhere.
    key = workspace.dir / "pickle.key"
    key.chmod(0o600)
    key.write_bytes(os.urandom(32))
    again = flow.pipe()
    assert statuses(again) == {"boxed": "cached", "unbox": "cached"}
    with pytest.raises(UnsafeLoadError, match="did not write"):
        again.outputs  # noqa: B018
