"""``loopml run``, ``loopml resume`` and ``loopml runs dag``, driven through the in-process CLI.

The flows are real modules of a package in the test's workspace (the ``project`` fixture), named
on the command line as ``pkg/flow.py:pipeline`` the way a user names them. Output is piped, so
each step prints ``name<TAB>status<TAB>duration``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from support import run_loopml

if TYPE_CHECKING:
    from conftest import Project
    from support import Cli, CliResult

FLOW = """
    import pandas as pd
    from loopml import pipeline, step

    OFFSET = 1

    def scale(column):
        return column * 2

    @step
    def load(n: int) -> pd.DataFrame:
        return pd.DataFrame({"x": range(n)})

    @step
    def features(df: pd.DataFrame, window: int = 7) -> pd.DataFrame:
        return df.assign(y=scale(df["x"]) + window + OFFSET)

    @step
    def train(df: pd.DataFrame, depth: int = 8) -> dict:
        if not isinstance(depth, int):
            raise TypeError(f"depth should be an int, got {type(depth).__name__}")
        return {"depth": depth, "total": int(df["y"].sum())}

    @pipeline
    def churn(n: int = 10, window: int = 7, depth: int = 8):
        df = features(load(n), window=window)
        return train(df, depth=depth)
    """

FAILING = """
    from pathlib import Path
    import pandas as pd
    from loopml import pipeline, step

    def count(name):
        with open(f"ran-{name}.txt", "a") as handle:
            handle.write("x\\n")

    def check(df):
        if Path("fail.flag").exists():
            raise ValueError("fail.flag is present")
        return {"rows": len(df)}

    @step
    def load(n: int) -> pd.DataFrame:
        count("load")
        return pd.DataFrame({"x": range(n)})

    @step(cache=False)
    def features(df: pd.DataFrame) -> pd.DataFrame:
        count("features")
        return df.assign(y=df["x"] * 2)

    @step
    def train(df: pd.DataFrame) -> dict:
        count("train")
        return check(df)

    @step
    def report(metrics: dict) -> dict:
        count("report")
        return {"ok": True, **metrics}

    @pipeline
    def flow(n: int = 5):
        return report(train(features(load(n))))
    """


def steps(result: CliResult) -> dict[str, str]:
    """Step name → status, from the lines a piped ``run`` prints."""
    found = {}
    for line in result.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and re.fullmatch(r"\d+\.\d\ds", parts[2]):
            found[parts[0]] = parts[1]
    return found


def run_id(result: CliResult) -> str:
    match = re.search(r"^run ([0-9a-f]+) (finished|failed)", result.stdout, re.MULTILINE)
    assert match, result.output
    return match.group(1)


def target(project: Project, name: str = "flow", fn: str = "churn") -> str:
    return f"{project.package}/{name}.py:{fn}"


def table(text: str) -> list[dict[str, str]]:
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]


def test_run_caches_and_reruns_only_what_a_parameter_touches(cli: Cli, project: Project) -> None:
    project.write("flow", FLOW)
    first = cli("run", target(project))
    assert first.exit_code == 0, first.output
    assert steps(first) == {"load": "ran", "features": "ran", "train": "ran"}
    # One line per step, then the run and its status.
    lines = first.stdout.strip().splitlines()
    assert len(lines) == 4
    assert re.fullmatch(r"run [0-9a-f]{8,} finished: 3 ran", lines[-1])

    second = cli("run", target(project))
    assert steps(second) == {"load": "cached", "features": "cached", "train": "cached"}
    assert run_id(second) != run_id(first)

    # The value is YAML: depth=3 is an int (train raises otherwise), and only train reruns.
    third = cli("run", target(project), "--param", "depth=3")
    assert third.exit_code == 0, third.output
    assert steps(third) == {"load": "cached", "features": "cached", "train": "ran"}

    fourth = cli("run", target(project), "-p", "window=2", "-p", "depth=3")
    assert steps(fourth) == {"load": "cached", "features": "ran", "train": "ran"}

    # `runs ls` lists the four pipeline runs, not their twelve step runs (unless --steps).
    listed = cli("runs", "ls")
    assert listed.exit_code == 0, listed.output
    assert len(listed.stdout.strip().splitlines()) == 1 + 4
    with_steps = cli("runs", "ls", "--steps")
    assert len(with_steps.stdout.strip().splitlines()) == 1 + 4 + 12


def test_dry_run_says_which_parameter_input_or_code_changed(cli: Cli, project: Project) -> None:
    project.write("flow", FLOW)
    assert cli("run", target(project)).exit_code == 0

    same = table(cli("run", target(project), "--dry-run").stdout)
    assert [(r["step"], r["action"]) for r in same] == [
        ("load", "cached"),
        ("features", "cached"),
        ("train", "cached"),
    ]

    planned = {
        r["step"]: r
        for r in table(cli("run", target(project), "--dry-run", "-p", "window=3").stdout)
    }
    assert planned["load"]["action"] == "cached"
    assert planned["features"]["action"] == "would run"
    assert "parameter window changed" in planned["features"]["reason"]
    assert planned["train"]["action"] == "would run"

    # A helper the step calls is part of its code.
    project.edit("flow", "return column * 2", "return column * 3")
    project.purge()
    planned = {r["step"]: r for r in table(cli("run", target(project), "--dry-run").stdout)}
    assert planned["load"]["action"] == "cached"
    assert planned["features"]["action"] == "would run"
    assert "code changed" in planned["features"]["reason"]
    # A dry run ran nothing: the plan is the same the second time.
    again = {r["step"]: r["action"] for r in table(cli("run", target(project), "--dry-run").stdout)}
    assert again == {"load": "cached", "features": "would run", "train": "would run"}

    changed = cli("run", target(project))
    assert steps(changed) == {"load": "cached", "features": "ran", "train": "ran"}


def test_params_file_and_overrides(cli: Cli, project: Project, tmp_path: Path) -> None:
    project.write("flow", FLOW)
    params = tmp_path / "params.yaml"
    params.write_text("depth: 4\nwindow: 2\n")
    result = cli("run", target(project), "--params", str(params), "--param", "depth=5")
    assert result.exit_code == 0, result.output
    shown = cli("runs", "show", run_id(result)).stdout
    section = shown.split("# params\n", 1)[1].split("#", 1)[0]
    assert dict(r.split("\t") for r in section.strip().splitlines()[1:]) == {
        "n": "10",
        "window": "2",
        "depth": "5",
    }


def test_only_from_and_no_cache(cli: Cli, project: Project) -> None:
    project.write("flow", FLOW)
    assert cli("run", target(project)).exit_code == 0

    only = cli("run", target(project), "--only", "train", "-p", "depth=9")
    assert only.exit_code == 0, only.output
    assert steps(only) == {"load": "cached", "features": "cached", "train": "ran"}

    start = cli("run", target(project), "--from", "features")
    assert steps(start) == {"load": "cached", "features": "ran", "train": "ran"}

    everything = cli("run", target(project), "--no-cache")
    assert steps(everything) == {"load": "ran", "features": "ran", "train": "ran"}

    # --only needs its upstream outputs computed with these inputs.
    missing = cli("run", target(project), "--only", "train", "-p", "n=99")
    assert missing.exit_code == 2
    assert "run the pipeline without --only first" in missing.stderr

    unknown = cli("run", target(project), "--only", "nope")
    assert unknown.exit_code == 2
    assert "no step named 'nope'" in unknown.stderr
    assert "load, features, train" in unknown.stderr


def test_a_failing_step_shows_the_users_traceback(cli: Cli, project: Project) -> None:
    project.write("flow", FAILING)
    Path("fail.flag").touch()
    result = cli("run", target(project, fn="flow"))
    assert result.exit_code == 1
    assert steps(result) == {"load": "ran", "features": "ran", "train": "failed"}
    assert re.search(r"^run [0-9a-f]+ failed: 2 ran, 1 failed$", result.stdout, re.MULTILINE)
    err = result.stderr
    assert err.startswith("error: step 'train' failed: ValueError: fail.flag is present\n")
    flow_file = str(project.folder / "flow.py")
    assert f'File "{flow_file}", line' in err
    assert "in train" in err and "in check" in err
    assert 'raise ValueError("fail.flag is present")' in err
    assert "loopml/pipelines" not in err and "loopml/cli" not in err
    assert "typer" not in err and "click" not in err


def test_bad_targets_and_parameters_are_one_line_errors(
    cli: Cli, project: Project, tmp_path: Path
) -> None:
    project.write("flow", FLOW)
    not_a_mapping = tmp_path / "list.yaml"
    not_a_mapping.write_text("- 1\n- 2\n")
    cases = [
        (("run", f"{project.package}/missing.py:churn"), "does not exist"),
        (("run", target(project, fn="nothing")), "has no 'nothing'"),
        (("run", target(project, fn="train")), "is a @step, not a pipeline"),
        (("run", target(project, fn="OFFSET")), "is an int, not a pipeline"),
        (("run", f"{project.package}/flow.py"), "should look like path/to/flow.py:"),
        (("run", target(project), "--param", "depth"), "--param expects NAME=VALUE"),
        (("run", target(project), "--param", "color=red"), "unexpected keyword argument"),
        (("run", target(project), "--param", "depth=[1,"), "is not a YAML value"),
        (("run", target(project), "--params", str(not_a_mapping)), "must be a YAML mapping"),
        (("run", target(project), "--executor", "spark"), "unknown executor 'spark'"),
        (("run", target(project), "--only", "load", "--from", "load"), "not both"),
    ]
    for args, message in cases:
        result = cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr.startswith("error: "), (args, result.output)
        assert message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
        assert result.stdout == "", (args, result.stdout)


def test_resume_continues_the_failed_run(cli: Cli, project: Project) -> None:
    project.write("flow", FAILING)
    Path("fail.flag").touch()
    failed = cli("run", target(project, fn="flow"))
    assert failed.exit_code == 1
    run = run_id(failed)

    dag = table(cli("runs", "dag", run).stdout)
    assert [(r["step"], r["status"], r["upstream"]) for r in dag] == [
        ("load", "ran", ""),
        ("features", "ran", "load"),
        ("train", "failed", "features"),
        ("report", "not run", "train"),
    ]

    # Still failing: resuming again fails the same way, and the run stays resumable.
    again = cli("resume", run)
    assert again.exit_code == 1
    assert steps(again) == {"load": "cached", "features": "cached", "train": "failed"}
    assert "error: step 'train' failed: ValueError" in again.stderr

    Path("fail.flag").unlink()
    resumed = cli("resume", run)
    assert resumed.exit_code == 0, resumed.output
    assert steps(resumed) == {
        "load": "cached",
        "features": "cached",
        "train": "ran",
        "report": "ran",
    }
    assert run_id(resumed) == run  # the same run continued
    assert "(resumed)" in resumed.stdout
    # The completed steps ran once (features has cache=False: it was reused, not re-run).
    ran = {
        name: len(Path(f"ran-{name}.txt").read_text().split())
        for name in ("load", "features", "train", "report")
    }
    assert ran == {"load": 1, "features": 1, "train": 3, "report": 1}

    dag = table(cli("runs", "dag", run).stdout)
    assert [(r["step"], r["status"]) for r in dag] == [
        ("load", "ran"),
        ("features", "ran"),
        ("train", "ran"),
        ("report", "ran"),
    ]
    shown = cli("runs", "show", run).stdout
    assert re.search(r"^status\tfinished$", shown, re.MULTILINE)
    assert re.search(r"^loopml.resumes\t2$", shown, re.MULTILINE)
    children = table(shown.split("# children\n", 1)[1])
    # The failed attempts stay in the history as failed child runs.
    assert sorted((c["name"], c["status"]) for c in children) == [
        ("features", "finished"),
        ("load", "finished"),
        ("report", "finished"),
        ("train", "failed"),
        ("train", "failed"),
        ("train", "finished"),
    ]

    finished = cli("resume", run)
    assert finished.exit_code == 2
    assert "nothing to resume" in finished.stderr


def test_resume_and_dag_refuse_what_is_not_a_pipeline_run(cli: Cli, project: Project) -> None:
    import loopml

    with loopml.start_run("plain", system_metrics=False) as plain:
        pass
    for command in ("resume", "reproduce"):
        result = cli(command, plain.id)
        assert result.exit_code == 2
        assert "is not a pipeline run" in result.stderr
    assert cli("runs", "dag", "ffffffff").exit_code == 1


def test_the_installed_script_with_worker_processes(project: Project) -> None:
    """The real ``loopml`` script; steps run in spawned worker processes."""
    project.write("flow", FAILING)
    root = project.root
    (root / "fail.flag").touch()
    failed = run_loopml("run", target(project, fn="flow"), "--workers", "2", cwd=root)
    assert failed.exit_code == 1, failed.output
    assert steps(failed) == {"load": "ran", "features": "ran", "train": "failed"}
    assert failed.stderr.startswith("error: step 'train' failed: ValueError: fail.flag is present")
    assert f'File "{project.folder / "flow.py"}", line' in failed.stderr
    assert "loopml/pipelines" not in failed.stderr

    (root / "fail.flag").unlink()
    resumed = run_loopml("resume", run_id(failed), "--workers", "2", cwd=root)
    assert resumed.exit_code == 0, resumed.output
    assert steps(resumed) == {
        "load": "cached",
        "features": "cached",
        "train": "ran",
        "report": "ran",
    }
    assert run_id(resumed) == run_id(failed)
    assert (root / "ran-load.txt").read_text() == "x\n"
