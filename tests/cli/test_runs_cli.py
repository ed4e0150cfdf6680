"""``loopml runs …`` driven through the in-process CLI, reading its piped (tab-separated) output."""

from __future__ import annotations

import json
import math
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import loopml
from loopml.store.tree import Tree, TreeEntry
from loopml.store.workspace import Workspace
from loopml.tracking import fluent
from loopml.tracking.model import ArtifactRecord, RunStatus
from loopml.tracking.sql_store import SqlTrackingStore

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def ws(workspace: Workspace) -> Iterator[Workspace]:
    """The test workspace; tracking sessions (process-global) are closed afterwards."""
    try:
        yield workspace
    finally:
        fluent._shutdown()


def make_run(
    ws: Workspace,
    name: str,
    params: dict[str, object],
    losses: list[float],
    *,
    experiment: str = "exp",
    acc: float = 0.5,
) -> str:
    """A finished run with params, a ``loss`` history and an ``acc`` metric."""
    with loopml.start_run(experiment, name, workspace=ws, system_metrics=False) as run:
        run.log_params(params)
        for step, value in enumerate(losses):
            run.log_metric("loss", value, step=step)
        run.log_metric("acc", acc)
    return run.id


def table(text: str) -> list[dict[str, str]]:
    """Parse piped output: a header line and tab-separated rows."""
    lines = [line for line in text.splitlines() if line]
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]


def prefixes(cli) -> dict[str, str]:
    """Run name → the id prefix ``runs ls`` shows for it."""
    return {r["name"]: r["run"] for r in table(cli("runs", "ls", "--deleted").stdout)}


def sections(text: str) -> dict[str, list[dict[str, str]]]:
    """Parse ``# title`` sections, each a piped table."""
    found: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("# "):
            current = line[2:]
            found[current] = []
        elif current is not None and line:
            found[current].append(line)
    return {title: table("\n".join(lines)) for title, lines in found.items()}


# -- ls --------------------------------------------------------------------------------------


def test_ls_lists_runs_with_params_and_metrics(ws: Workspace, cli) -> None:
    a = make_run(ws, "first", {"lr": 0.1, "depth": 3}, [1.0, 0.5], acc=0.7)
    b = make_run(ws, "second", {"lr": 0.2, "depth": 3}, [0.9, 0.25], acc=0.9)

    result = cli("runs", "ls")

    assert result.exit_code == 0, result.output
    rows = table(result.stdout)
    assert list(rows[0])[:6] == ["run", "experiment", "name", "status", "started", "duration"]
    assert {"params.lr", "params.depth", "metrics.loss", "metrics.acc"} <= set(rows[0])
    assert [r["name"] for r in rows] == ["second", "first"]  # newest first
    by_name = {r["name"]: r for r in rows}
    assert len(by_name["first"]["run"]) >= 8
    assert a.startswith(by_name["first"]["run"]) and b.startswith(by_name["second"]["run"])
    assert by_name["first"]["status"] == "finished"
    assert by_name["first"]["params.lr"] == "0.1"
    assert float(by_name["second"]["metrics.loss"]) == 0.25
    assert float(by_name["second"]["metrics.acc"]) == 0.9


def test_ls_filter_sort_max_and_experiment(ws: Workspace, cli) -> None:
    make_run(ws, "a", {"lr": 0.1}, [1.0], acc=0.6)
    make_run(ws, "b", {"lr": 0.2}, [1.0], acc=0.9)
    make_run(ws, "c", {"lr": 0.3}, [1.0], acc=0.8, experiment="other")

    sorted_rows = table(cli("runs", "ls", "--sort", "metrics.acc DESC").stdout)
    assert [r["name"] for r in sorted_rows] == ["b", "c", "a"]

    filtered = table(cli("runs", "ls", "--filter", "metrics.acc > 0.7").stdout)
    assert sorted(r["name"] for r in filtered) == ["b", "c"]

    only = table(cli("runs", "ls", "--experiment", "other").stdout)
    assert [r["name"] for r in only] == ["c"]

    limited = table(cli("runs", "ls", "--sort", "params.lr", "--max", "1").stdout)
    assert [r["name"] for r in limited] == ["a"]

    bad = cli("runs", "ls", "--filter", "metrics.acc >")
    assert bad.exit_code != 0
    assert "invalid filter" in bad.stderr and "Traceback" not in bad.output


# -- show and prefixes ---------------------------------------------------------------------


def test_show_by_prefix(ws: Workspace, cli, tmp_path: Path) -> None:
    data_file = ws.root / "data.csv"
    data_file.write_text("x,y\n1,2\n")
    loopml.data.add(data_file, name="table", workspace=ws)
    artifact = tmp_path / "model.bin"
    artifact.write_bytes(b"weights")
    with loopml.start_run("exp", "shown", workspace=ws, system_metrics=False) as run:
        run.log_params({"lr": 0.1})
        run.log_metric("loss", 0.5)
        run.set_tag("team", "growth")
        run.log_artifact(artifact)
        loopml.data.get("table", workspace=ws)
        with loopml.start_run("exp", "kid", nested=True, workspace=ws, system_metrics=False):
            pass

    shown = prefixes(cli)["shown"]
    assert run.id.startswith(shown) and len(shown) >= 8

    result = cli("runs", "show", shown)

    assert result.exit_code == 0, result.output
    found = sections(result.stdout)
    info = {r["field"]: r["value"] for r in found["run"]}
    assert info["id"] == run.id
    assert info["name"] == "shown" and info["status"] == "finished"
    assert "python" in info and "command" in info and "manifest" in info
    assert found["params"] == [{"param": "lr", "value": "0.1"}]
    assert found["metrics"] == [{"metric": "loss", "latest": "0.5"}]
    assert {"tag": "team", "value": "growth"} in found["tags"]
    assert found["artifacts"][0]["path"] == "model.bin"
    assert found["artifacts"][0]["size"] == "7"
    assert found["inputs"][0]["dataset"] == "table@v1"
    assert [c["name"] for c in found["children"]] == ["kid"]


def test_prefix_errors(ws: Workspace, cli) -> None:
    a = make_run(ws, "a", {}, [1.0])
    b = make_run(ws, "b", {}, [1.0])
    common = next(a[:i] for i in range(len(a), 0, -1) if b.startswith(a[:i]))
    assert common  # time-ordered ids share their leading characters

    ambiguous = cli("runs", "show", common)
    assert ambiguous.exit_code == 1
    assert "ambiguous" in ambiguous.stderr
    assert len(ambiguous.stderr.strip().splitlines()) == 1

    missing = cli("runs", "show", "ffffffff")
    assert missing.exit_code == 1 and "no run with id ffffffff" in missing.stderr

    not_an_id = cli("runs", "show", "zz-top")
    assert not_an_id.exit_code != 0 and "is not a run id" in not_an_id.stderr


# -- compare -------------------------------------------------------------------------------


def test_compare_shows_differing_params(ws: Workspace, cli) -> None:
    a = make_run(ws, "a", {"lr": 0.1, "depth": 3}, [1.0, 0.4], acc=0.7)
    b = make_run(ws, "b", {"lr": 0.2, "depth": 3}, [1.0, 0.3], acc=0.8)

    short = prefixes(cli)
    result = cli("runs", "compare", short["a"], short["b"])

    assert result.exit_code == 0, result.output
    found = sections(result.stdout)
    params = {r["param"]: r for r in found["params"]}
    columns = list(found["params"][0])
    assert a.startswith(columns[1]) and b.startswith(columns[2])
    assert params["lr"][columns[1]] == "0.1" and params["lr"][columns[2]] == "0.2"
    assert params["lr"]["differs"] == "*"
    assert params["depth"]["differs"] == ""
    metrics = {r["metric"]: r for r in found["metrics (final)"]}
    assert float(metrics["loss"][columns[1]]) == 0.4 and metrics["loss"]["differs"] == "*"
    code = {r["code"]: r for r in found["code"]}
    assert code["uncommitted changes"]["differs"] == ""
    # Both runs ran in this process: the same packages, so only Python is listed.
    assert [r["package"] for r in found["environment"]] == ["python"]

    one = cli("runs", "compare", a)
    assert one.exit_code != 0 and "at least two" in one.stderr


def test_compare_code_data_and_environment(ws: Workspace, cli) -> None:
    data_file = ws.root / "data.csv"
    data_file.write_text("x\n1\n")
    loopml.data.add(data_file, name="table", workspace=ws)
    with loopml.start_run("exp", "old", workspace=ws, system_metrics=False):
        loopml.data.get("table", workspace=ws)
    data_file.write_text("x\n1\n2\n")
    loopml.data.add(data_file, name="table", workspace=ws)
    with loopml.start_run("exp", "new", workspace=ws, system_metrics=False) as new:
        loopml.data.get("table", workspace=ws)
    # Pretend the second run ran from another commit with another numpy.
    store = SqlTrackingStore(ws.metadata)
    manifest = json.loads(ws.objects.read_bytes(store.get_run(new.id).manifest_hash or ""))
    environment = json.loads(ws.objects.read_bytes(manifest["environment"]))
    environment["packages"] = [
        "numpy==0.0.1" if p.lower().startswith("numpy==") else p for p in environment["packages"]
    ]
    manifest["environment"] = ws.objects.add_bytes(json.dumps(environment).encode())
    manifest["git"] = {"commit": "c0ffee", "dirty": True, "diff_hash": "d1ff", "changed_files": []}
    digest = ws.objects.add_bytes(json.dumps(manifest).encode())
    store.metadata.run_write(
        lambda conn: conn.exec_driver_sql(
            "UPDATE runs SET manifest_hash = ? WHERE id = ?", (digest, new.id)
        )
    )
    short = prefixes(cli)

    found = sections(cli("runs", "compare", short["old"], short["new"]).stdout)

    data = {r["dataset"]: r for r in found["data"]}
    assert (data["table"][short["old"]], data["table"][short["new"]]) == ("v1", "v2")
    assert data["table"]["differs"] == "*"
    code = {r["code"]: r for r in found["code"]}
    assert code["git commit"][short["new"]] == "c0ffee" and code["git commit"]["differs"] == "*"
    assert code["uncommitted changes"][short["new"]] == "yes"
    packages = {r["package"]: r for r in found["environment"]}
    assert set(packages) == {"python", "numpy"}
    assert packages["numpy"][short["new"]] == "0.0.1" and packages["numpy"]["differs"] == "*"
    assert packages["python"]["differs"] == ""


# -- export --------------------------------------------------------------------------------


def test_export_writes_run_json_and_artifacts(ws: Workspace, cli, tmp_path: Path) -> None:
    folder = tmp_path / "plots"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.txt").write_text("A")
    (folder / "b.txt").write_text("BB")
    single = tmp_path / "model.bin"
    single.write_bytes(b"\x00weights")
    with loopml.start_run("exp", "exported", workspace=ws, system_metrics=False) as run:
        run.log_params({"lr": 0.1})
        for step, value in enumerate([1.0, math.nan, 0.5]):
            run.log_metric("loss", value, step=step)
        run.log_artifact(single)
        run.log_artifact(folder)
    target = tmp_path / "out"

    result = cli("runs", "export", run.id[:12], "--to", str(target))

    assert result.exit_code == 0, result.output
    document = json.loads((target / "run.json").read_text())
    assert document["info"]["id"] == run.id
    assert document["params"] == {"lr": "0.1"}
    assert [p["step"] for p in document["metrics"]["loss"]] == [0, 1, 2]
    assert [p["value"] for p in document["metrics"]["loss"]] == [1.0, "nan", 0.5]
    assert document["manifest"]["run_id"] == run.id
    assert any(p.startswith("loopml==") for p in document["environment"]["packages"])
    assert (target / "artifacts" / "model.bin").read_bytes() == b"\x00weights"
    assert (target / "artifacts" / "plots" / "sub" / "a.txt").read_text() == "A"
    assert (target / "artifacts" / "plots" / "b.txt").read_text() == "BB"

    again = cli("runs", "export", run.id, "--to", str(target))
    assert again.exit_code == 2 and "not empty" in again.stderr
    forced = cli("runs", "export", run.id, "--to", str(target), "--force")
    assert forced.exit_code == 0, forced.output


def test_export_refuses_paths_that_escape(ws: Workspace, cli, tmp_path: Path) -> None:
    run_id = make_run(ws, "sneaky", {}, [1.0])
    store = SqlTrackingStore(ws.metadata)
    digest = ws.objects.add_bytes(b"evil")
    store.log_artifacts(run_id, [ArtifactRecord("../escaped.txt", digest, 4, "file")])
    target = tmp_path / "out"

    result = cli("runs", "export", run_id, "--to", str(target))

    assert result.exit_code != 0
    assert "would leave the export folder" in result.stderr
    assert not (tmp_path / "escaped.txt").exists()

    tree = Tree.build([TreeEntry("../../escaped.txt", 4, 0o644, digest)])
    tree_digest = ws.objects.add_tree(tree)
    store.metadata.run_write(
        lambda conn: conn.exec_driver_sql("DELETE FROM run_artifacts WHERE run_id = ?", (run_id,))
    )
    store.log_artifacts(run_id, [ArtifactRecord("folder", tree_digest, 4, "tree")])
    again = cli("runs", "export", run_id, "--to", str(tmp_path / "out2"))
    assert again.exit_code != 0
    assert "would leave the export folder" in again.stderr
    assert not (tmp_path / "escaped.txt").exists()


# -- delete, restore -------------------------------------------------------------------------


def test_delete_and_restore(ws: Workspace, cli) -> None:
    keep = make_run(ws, "keep", {}, [1.0])
    drop = make_run(ws, "drop", {}, [1.0])

    deleted = cli("runs", "delete", prefixes(cli)["drop"])
    assert deleted.exit_code == 0, deleted.output
    assert "deleted run" in deleted.stdout

    assert [r["name"] for r in table(cli("runs", "ls").stdout)] == ["keep"]
    assert {r["name"] for r in table(cli("runs", "ls", "--deleted").stdout)} == {"keep", "drop"}
    assert cli("runs", "show", drop).exit_code == 0  # still readable by id

    restored = cli("runs", "restore", drop)
    assert restored.exit_code == 0, restored.output
    assert {r["name"] for r in table(cli("runs", "ls").stdout)} == {"keep", "drop"}
    assert keep != drop


# -- plot ------------------------------------------------------------------------------------


def test_plot_png_and_html(ws: Workspace, cli) -> None:
    a = make_run(ws, "a", {}, [1.0, 0.5, math.nan, 0.2])
    make_run(ws, "b", {}, [0.9, 0.4, 0.3])

    result = cli("runs", "plot", a, prefixes(cli)["b"], "--metric", "loss", "--out", "chart.png")

    assert result.exit_code == 0, result.output
    path = ws.root / "chart.png"
    assert result.stdout.strip() == "chart.png"
    assert path.read_bytes()[:8] == PNG_MAGIC

    page = cli("runs", "plot", a, "--metric", "loss", "--out", "chart.html")
    assert page.exit_code == 0, page.output
    assert "data:image/png;base64," in (ws.root / "chart.html").read_text()

    default = cli("runs", "plot", a, "--metric", "loss")
    assert default.exit_code == 0 and (ws.root / "loss.png").read_bytes()[:8] == PNG_MAGIC

    missing = cli("runs", "plot", a, "--metric", "nope")
    assert missing.exit_code != 0 and "has no metric 'nope'" in missing.stderr
    wrong = cli("runs", "plot", a, "--metric", "loss", "--out", "chart.jpg")
    assert wrong.exit_code == 2 and ".png or .html" in wrong.stderr


# -- gc --------------------------------------------------------------------------------------


def test_gc_marks_crashed_runs(ws: Workspace, cli) -> None:
    finished = make_run(ws, "fine", {}, [1.0])
    child = subprocess.Popen(["true"])
    child.wait()  # a process id that no longer runs
    store = SqlTrackingStore(ws.metadata)
    orphan = store.create_run(
        experiment="exp",
        name="orphan",
        parent_run_id=None,
        user="tester",
        host=socket.gethostname(),
        pid=child.pid,
        tags={},
    )

    result = cli("runs", "gc")

    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and "marked crashed" in lines[0] and "orphan" in lines[0]
    assert orphan.id.startswith(lines[0].split()[3])
    assert store.get_run(orphan.id).status is RunStatus.CRASHED
    assert store.get_run(finished).status is RunStatus.FINISHED
    assert cli("runs", "gc").stdout.strip() == "no crashed runs"
