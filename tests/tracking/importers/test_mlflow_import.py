"""``loopml import mlflow``: against stores written by the real ``mlflow`` package.

MLflow is installed in its own virtual environment (built once, cached under /tmp), so its pins
never touch loopml's environment; a script run there writes a SQLite store and a file store and
prints, as JSON, what MLflow's own client reads back from them. The import must match it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loopml.store.workspace import Workspace
from loopml.tracking.importers.mlflow import MLFLOW_RUN_ID_TAG, import_mlflow
from loopml.tracking.model import RunInfo, RunStatus
from loopml.tracking.sql_store import SqlTrackingStore

MLFLOW_SERIES = "3.17"
MLFLOW_VENV = Path(tempfile.gettempdir()) / f"loopml-mlflow-venv-{MLFLOW_SERIES}"

GENERATOR = r"""
import json, os, sys
import mlflow
from mlflow.tracking import MlflowClient

uri = sys.argv[1]
mlflow.set_tracking_uri(uri)
client = MlflowClient()
os.makedirs("files/plots/sub", exist_ok=True)
with open("files/model.txt", "wb") as f:
    f.write(b"weights 1 2 3\n")
with open("files/plots/sub/a.txt", "wb") as f:
    f.write(b"A" * 10)
with open("files/plots/b.bin", "wb") as f:
    f.write(bytes(range(256)))

mlflow.set_experiment("exp-one")
with mlflow.start_run(run_name="parent") as parent:
    mlflow.log_params({"lr": 0.1, "depth": 3, "note": "x" * 300})
    for step in range(50):
        value = float("nan") if step == 7 else 1.0 / (step + 1)
        mlflow.log_metric("loss", value, step=step)
    mlflow.log_metric("val/acc", 0.5, step=0)
    mlflow.log_metric("val/acc", 0.75, step=1)
    mlflow.set_tag("team", "growth")
    mlflow.log_artifact("files/model.txt")
    mlflow.log_artifacts("files/plots", artifact_path="plots")
    with mlflow.start_run(run_name="child", nested=True) as child:
        mlflow.log_param("fold", 1)
        mlflow.log_metric("acc", 0.9)
mlflow.set_experiment("exp two")
with mlflow.start_run(run_name="failing") as failing:
    mlflow.log_metric("acc", 0.1)
client.set_terminated(failing.info.run_id, "FAILED")
killed = client.create_run(mlflow.get_experiment_by_name("exp two").experiment_id,
                           run_name="stopped")
client.log_param(killed.info.run_id, "p", "v")
client.set_terminated(killed.info.run_id, "KILLED")
with mlflow.start_run(run_name="removed") as removed:
    mlflow.log_metric("acc", 0.2)
client.delete_run(removed.info.run_id)

runs = []
for name in ("exp-one", "exp two"):
    experiment = client.get_experiment_by_name(name)
    for run in client.search_runs(
        [experiment.experiment_id], run_view_type=3  # ViewType.ALL: deleted ones too
    ):
        history = {
            key: [
                [m.step, m.timestamp, "nan" if m.value != m.value else m.value]
                for m in client.get_metric_history(run.info.run_id, key)
            ]
            for key in run.data.metrics
        }
        target = "downloaded-" + run.info.run_id
        os.makedirs(target)
        root = client.download_artifacts(run.info.run_id, "", target)
        files = {}
        for folder, _, names in os.walk(root):
            for item in names:
                path = os.path.join(folder, item)
                files[os.path.relpath(path, root)] = open(path, "rb").read().hex()
        runs.append({
            "id": run.info.run_id,
            "experiment": name,
            "name": run.info.run_name,
            "status": run.info.status,
            "start_time": run.info.start_time,
            "end_time": run.info.end_time,
            "deleted": run.info.lifecycle_stage == "deleted",
            "params": run.data.params,
            "tags": run.data.tags,
            "metrics": history,
            "artifacts": files,
        })
print("RESULT " + json.dumps(runs))
"""


def _build_venv() -> Path:
    """A virtual environment with mlflow, built once and reused by later test sessions."""
    python = MLFLOW_VENV / "bin" / "python"
    if (MLFLOW_VENV / ".ready").exists():
        return python
    build = Path(tempfile.mkdtemp(prefix=f"{MLFLOW_VENV.name}.build-", dir=MLFLOW_VENV.parent))
    try:
        subprocess.run([sys.executable, "-m", "venv", str(build)], check=True, timeout=300)
        install = subprocess.run(
            [
                str(build / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--quiet",
                f"mlflow=={MLFLOW_SERIES}.*",
            ],
            capture_output=True,
            text=True,
            timeout=1500,
        )
        if install.returncode != 0:
            pytest.fail(f"cannot install mlflow=={MLFLOW_SERIES}.*: {install.stderr[-2000:]}")
        (build / ".ready").write_text(f"mlflow=={MLFLOW_SERIES}.*\n")
        if MLFLOW_VENV.exists() and not (MLFLOW_VENV / ".ready").exists():
            shutil.rmtree(MLFLOW_VENV)  # an unfinished environment of an older layout
        try:
            # Console scripts keep the build path in their shebangs; only bin/python is used.
            os.rename(build, MLFLOW_VENV)
        except OSError:
            if not (MLFLOW_VENV / ".ready").exists():  # not another worker's finished venv
                raise
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return python


@pytest.fixture(scope="session")
def mlflow_python() -> Path:
    """The Python of the cached MLflow virtual environment."""
    return _build_venv()


def _generate(python: Path, folder: Path, uri: str) -> list[dict[str, Any]]:
    folder.mkdir(parents=True)
    script = folder / "generate.py"
    script.write_text(GENERATOR)
    env = {
        **os.environ,
        "MLFLOW_ALLOW_FILE_STORE": "true",  # the file store is in maintenance mode in 3.x
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "GIT_PYTHON_REFRESH": "quiet",
    }
    proc = subprocess.run(
        [str(python), str(script), uri],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    runs: list[dict[str, Any]] = json.loads(line.removeprefix("RESULT "))
    return runs


@pytest.fixture(scope="session")
def mlflow_stores(
    mlflow_python: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[list[str], list[dict[str, Any]]]]:
    """CLI arguments of each store, and what MLflow reads back from it."""
    base = tmp_path_factory.mktemp("mlflow")
    sql = base / "sql"
    files = base / "files"
    return {
        "sqlite": (
            ["--tracking-uri", f"sqlite:///{sql / 'mlflow.db'}"],
            _generate(mlflow_python, sql, f"sqlite:///{sql / 'mlflow.db'}"),
        ),
        "file": (
            ["--from", str(files / "mlruns")],
            _generate(mlflow_python, files, "file:./mlruns"),
        ),
    }


def _imported(store: SqlTrackingStore) -> dict[str, RunInfo]:
    with store.metadata.read() as conn:
        ids = [r for (r,) in conn.exec_driver_sql("SELECT id FROM runs")]
    found = {}
    for ident in ids:
        info = store.get_run(ident)
        found[info.tags[MLFLOW_RUN_ID_TAG]] = info
    return found


def _artifact_files(workspace: Workspace, info: RunInfo) -> dict[str, bytes]:
    files = {}
    for artifact in info.artifacts:
        if artifact.kind == "file":
            files[artifact.path] = workspace.objects.read_bytes(artifact.digest)
        else:
            for entry in workspace.objects.get_tree(artifact.digest):
                files[f"{artifact.path}/{entry.path}"] = workspace.objects.read_bytes(entry.digest)
    return files


@pytest.mark.slow
@pytest.mark.timeout(2400)
@pytest.mark.parametrize("kind", ["sqlite", "file"])
def test_import_matches_what_mlflow_reads(
    kind: str,
    mlflow_stores: dict[str, tuple[list[str], list[dict[str, Any]]]],
    workspace: Workspace,
    cli: Any,
) -> None:
    args, expected = mlflow_stores[kind]

    result = cli("import", "mlflow", *args)

    assert result.exit_code == 0, result.output
    params = sum(len(r["params"]) for r in expected)
    points = sum(len(h) for r in expected for h in r["metrics"].values())
    tags = sum(len(r["tags"]) for r in expected)
    artifacts = sum(len({p.split("/")[0] for p in r["artifacts"]}) for r in expected)
    files = sum(len(r["artifacts"]) for r in expected)
    assert (
        f": 2 experiments, {len(expected)} runs, {params} params, {points} metric points, "
        f"{tags} tags, {artifacts} artifacts ({files} files" in result.stdout
    )
    assert "'exp two' is named 'exp-two'" in result.stderr

    store = SqlTrackingStore(workspace.metadata)
    imported = _imported(store)
    assert set(imported) == {r["id"] for r in expected}
    by_name = {r["name"]: r for r in expected}
    for run in expected:
        info = imported[run["id"]]
        assert info.name == run["name"]
        assert info.experiment == run["experiment"].replace(" ", "-")
        assert info.status is RunStatus(run["status"].lower())
        assert (info.start_time, info.end_time) == (run["start_time"], run["end_time"])
        assert info.deleted is run["deleted"]
        assert info.params == run["params"]
        assert info.tags == {**run["tags"], MLFLOW_RUN_ID_TAG: run["id"]}
        assert sorted(store.metric_keys(info.id)) == sorted(run["metrics"])
        for key, history in run["metrics"].items():
            got = [
                [m.step, m.timestamp, "nan" if math.isnan(m.value) else m.value]
                for m in store.metric_history(info.id, key)
            ]
            assert got == history, key
        assert _artifact_files(workspace, info) == {
            path: bytes.fromhex(data) for path, data in run["artifacts"].items()
        }

    parent = imported[by_name["parent"]["id"]]
    child = imported[by_name["child"]["id"]]
    assert child.parent_run_id == parent.id
    assert store.children(parent.id) == [child.id]
    loss = store.metric_history(parent.id, "loss")
    assert [m.step for m in loss] == list(range(50))
    assert math.isnan(loss[7].value) and loss[49].value == pytest.approx(1 / 50)
    assert parent.metrics["val/acc"] == 0.75
    assert imported[by_name["stopped"]["id"]].status is RunStatus.KILLED
    assert imported[by_name["failing"]["id"]].status is RunStatus.FAILED
    assert imported[by_name["removed"]["id"]].deleted

    again = cli("import", "mlflow", *args)
    assert again.exit_code == 0, again.output
    assert (
        f": 0 experiments, 0 runs ({len(expected)} already imported, skipped), 0 params, "
        "0 metric points, 0 tags, 0 artifacts" in again.stdout
    )
    assert len(_imported(store)) == len(expected)
    with store.metadata.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM run_metrics").scalar_one() == points


# -- bad input and a hand-written file store (no mlflow needed) -----------------------------


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def tiny_mlruns(tmp_path: Path) -> Path:
    """A file store as MLflow 2.x writes it, with one run of one experiment."""
    root = tmp_path / "mlruns"
    _write(root / "5" / "meta.yaml", "experiment_id: '5'\nname: tiny\nlifecycle_stage: active\n")
    run = root / "5" / "abc123"
    _write(
        run / "meta.yaml",
        "run_id: abc123\nrun_name: only\nexperiment_id: '5'\nstatus: 3\nstart_time: 1000\n"
        "end_time: 2500\nuser_id: someone\nlifecycle_stage: active\n"
        f"artifact_uri: file://{run / 'artifacts'}\n",
    )
    _write(run / "params" / "lr", "0.01")
    _write(run / "tags" / "mlflow.runName", "only")
    _write(run / "metrics" / "train" / "loss", "1000 2.0 0\n1001 nan 1\n1002 1.5 2\n")
    _write(run / "artifacts" / "notes.txt", "hello")
    _write(root / ".trash" / "README", "not an experiment")
    return root


def test_hand_written_file_store(workspace: Workspace, tiny_mlruns: Path) -> None:
    result = import_mlflow(workspace, mlruns=tiny_mlruns)

    assert (result.experiments, result.runs, result.params, result.tags) == (1, 1, 1, 1)
    assert (result.metric_points, result.artifacts, result.artifact_files) == (3, 1, 1)
    store = SqlTrackingStore(workspace.metadata)
    info = next(iter(_imported(store).values()))
    assert (info.name, info.experiment, info.user) == ("only", "tiny", "someone")
    assert (info.start_time, info.end_time, info.status) == (1000, 2500, RunStatus.FINISHED)
    history = store.metric_history(info.id, "train/loss")
    assert [m.step for m in history] == [0, 1, 2] and math.isnan(history[1].value)
    assert info.metrics["train/loss"] == 1.5
    assert _artifact_files(workspace, info) == {"notes.txt": b"hello"}

    again = import_mlflow(workspace, tracking_uri=f"file://{tiny_mlruns}")
    assert (again.runs, again.skipped_runs, again.experiments) == (0, 1, 0)


def test_moved_file_store_still_finds_artifacts(
    workspace: Workspace, tiny_mlruns: Path, tmp_path: Path
) -> None:
    moved = tmp_path / "elsewhere"
    tiny_mlruns.rename(moved)

    result = import_mlflow(workspace, mlruns=moved)

    assert (result.runs, result.artifacts) == (1, 1)


def _sqlite_without_mlflow(path: Path) -> Path:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE something (x INTEGER)")
    conn.close()
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tracking-uri", "sqlite:///{tmp}/absent.db"], "no MLflow database at"),
        (["--tracking-uri", "sqlite:///{tmp}/text.db"], "cannot read"),
        (["--tracking-uri", "sqlite:///{tmp}/other.db"], "is not an MLflow tracking database"),
        (["--tracking-uri", "{tmp}/nowhere"], "neither an existing file or folder"),
        (["--tracking-uri", "bogus://x"], "cannot open"),
        (["--from", "{tmp}/absent"], "does not exist"),
        (["--from", "{tmp}/empty"], "is not an MLflow file store"),
        (["--from", "{tmp}/text.db"], "is not a folder"),
        (["--from", "{tmp}/badyaml"], "is not valid YAML"),
        ([], "give either --tracking-uri"),
        (["--from", "{tmp}/empty", "--tracking-uri", "sqlite:///x.db"], "not both"),
    ],
)
def test_bad_input_is_one_line(
    workspace: Workspace, cli: Any, tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "text.db").write_text("this is not a database\n" * 100)
    _sqlite_without_mlflow(tmp_path / "other.db")
    (tmp_path / "empty").mkdir()
    _write(tmp_path / "badyaml" / "1" / "meta.yaml", "name: [unclosed\n")

    result = cli("import", "mlflow", *(a.format(tmp=tmp_path) for a in args))

    assert result.exit_code != 0
    assert message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert not (tmp_path / "absent.db").exists()  # opening never creates a database


@pytest.fixture(autouse=True)
def _no_leftover_sessions() -> Iterator[None]:
    yield
    from loopml.tracking import fluent

    fluent._shutdown()
