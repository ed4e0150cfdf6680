"""Model cards: ``loopml models card`` and ``loopml.explain`` on real workspaces and records.

Every card here is made from what loopml itself recorded: dataset versions added to the store,
runs that logged models, a pipeline whose step logged one, and gate results written through
the registry (the reports are built by hand, as a gate runner would write them).
"""

from __future__ import annotations

import base64
import importlib
import platform
import re
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import loopml
from loopml.explain import (
    ModelCard,
    card_sections,
    model_card,
    render_html,
    render_text,
    write_html,
)
from loopml.registry import (
    ModelNotFoundError,
    ModelVersionNotFoundError,
    log_model,
    record_gate_result,
)
from loopml.registry.gating.report import (
    CheckOutcome,
    CheckStatus,
    ConfusionMatrix,
    GateReport,
    Residuals,
    SliceTable,
)
from loopml.registry.model import ModelVersion
from loopml.registry.repository import ModelRepository, NewVersion
from loopml.store.workspace import Workspace
from support import Cli

HOSTILE = "<script>alert('card')</script> & friends"
IMAGE = '<img src="data:image/png;base64,'


def _close_tracking() -> None:
    """End every run still active in this process and close every tracking session."""
    from loopml.tracking import fluent

    databases = [session.store.metadata for session in fluent._sessions.values()]
    fluent._shutdown()
    for database in databases:
        database.close()
    fluent._stack().clear()
    fluent._process_seeds.clear()


@pytest.fixture(autouse=True)
def _fresh_tracking() -> Iterator[None]:
    """No tracking session, active run or writer thread survives a test."""
    _close_tracking()
    yield
    _close_tracking()


def _frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, rows),
            "plan": rng.choice(["basic", "pro", "team"], rows),
            "spend": rng.normal(50, 10, rows),
        }
    )
    frame["churned"] = ((frame["spend"] > 50) ^ (frame["plan"] == "team")).astype(int)
    return frame


def _features(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[["age", "spend"]]


def _add_data(workspace: Workspace) -> None:
    """``customers``: a Parquet dataset of 160 rows; ``notes``: a CSV one (rows unknown)."""
    folder = workspace.root / "data"
    folder.mkdir()
    _frame(160).to_parquet(folder / "customers.parquet", index=False)
    (folder / "notes.csv").write_text("a,b\n1,2\n3,4\n")
    loopml.data.add(folder / "customers.parquet", name="customers", workspace=workspace)
    loopml.data.add(folder / "notes.csv", name="notes", workspace=workspace)


def _log_classifier(workspace: Workspace, description: str | None = HOSTILE) -> ModelVersion:
    from sklearn.linear_model import LogisticRegression

    with loopml.start_run(system_metrics=False, workspace=workspace):
        frame = loopml.data.read_frame("customers@latest", workspace=workspace)
        loopml.data.get("notes@latest", workspace=workspace)
        loopml.log_params({"C": 0.5, "solver": "lbfgs"})
        model = LogisticRegression(C=0.5, max_iter=200).fit(_features(frame), frame["churned"])
        loopml.log_metric("train_accuracy", 0.8125)
        version = log_model(model, "churn", X_example=_features(frame), description=description)
    _close_tracking()
    return version


def _classifier_report(version: ModelVersion) -> GateReport:
    return GateReport(
        model=version.model,
        version=version.number,
        gate_file="gates/churn.yaml",
        gate_file_hash="f" * 64,
        data="customers@v1",
        data_hash="d" * 64,
        rows=160,
        champion=None,
        champion_alias=None,
        task="classification",
        outcomes=(
            CheckOutcome("metric", "accuracy", CheckStatus.PASSED, 0.81, ">= 0.75"),
            CheckOutcome("slice", "accuracy by plan", CheckStatus.PASSED, 0.72, ">= 0.7"),
            CheckOutcome("regression", "vs champion", CheckStatus.SKIPPED, None, "", "no champion"),
        ),
        metrics={"accuracy": 0.81, "f1": 0.78},
        slices=(
            SliceTable(
                column="plan",
                metric="accuracy",
                slices=("basic", "pro", "<b>team</b>"),
                values=(0.85, 0.72, 0.65),
                rows=(60, 50, 50),
                floor=0.7,
            ),
        ),
        confusion=ConfusionMatrix(classes=("0", "1"), counts=((70, 12), (18, 60))),
        duration_s=1.25,
    )


def _record(workspace: Workspace, version: ModelVersion, report: GateReport) -> str:
    result = record_gate_result(
        version.id,
        gate_file_hash=report.gate_file_hash,
        data_hash=report.data_hash,
        champion_version_id=None,
        passed=report.passed,
        report=report.to_json(),
        workspace=workspace,
    )
    return result.id


def _section(text: str, title: str) -> list[str]:
    """The lines of ``# title`` in a plain text card, up to the next section."""
    lines = text.splitlines()
    start = lines.index(f"# {title}")
    body = []
    for line in lines[start + 1 :]:
        if line.startswith("# "):
            break
        if line:
            body.append(line)
    return body


def _rows(text: str, title: str) -> list[dict[str, str]]:
    lines = [line for line in _section(text, title) if "\t" in line]
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]


def _fields(text: str, title: str) -> dict[str, str]:
    return {row["field"]: row["value"] for row in _rows(text, title)}


def _images(page: str) -> list[bytes]:
    found = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    return [base64.b64decode(data) for data in found]


# -- the card's facts --------------------------------------------------------------------------


def test_the_card_gathers_lineage_run_gate_and_signature(workspace: Workspace) -> None:
    _add_data(workspace)
    version = _log_classifier(workspace)
    gate_id = _record(workspace, version, _classifier_report(version))

    card = model_card("churn@1", workspace=workspace)

    assert isinstance(card, ModelCard)
    assert card.label == "churn@v1"
    assert card.version.framework == "scikit-learn"
    by_label = {d.label: d for d in card.datasets}
    assert set(by_label) == {"customers@v1", "notes@v1"}
    assert by_label["customers@v1"].rows == 160  # from the Parquet footer
    assert by_label["customers@v1"].path == "data/customers.parquet"
    assert by_label["notes@v1"].rows is None  # CSV: not counted
    assert card.run is not None and card.parent_run is None
    assert card.run.params == {"C": "0.5", "solver": "lbfgs"}
    assert card.run.metrics == {"train_accuracy": 0.8125}  # no system/ metrics
    assert card.code is not None and card.code.manifest.recorded
    assert card.gate is not None and card.gate.result.id == gate_id
    assert card.gate.report is not None and card.gate.report.slices[0].column == "plan"
    assert card.signature is not None and card.signature.names == ["age", "spend"]
    assert card.default_path == workspace.dir / "cards" / "churn-v1.html"
    assert card.notes == ()


def test_the_plain_text_card_shows_every_section(workspace: Workspace) -> None:
    _add_data(workspace)
    version = _log_classifier(workspace)
    _record(workspace, version, _classifier_report(version))

    text = render_text(model_card("churn", workspace=workspace))

    model = _fields(text, "model")
    assert model["model"] == "churn" and model["version"] == "v1"
    assert model["framework"].startswith("scikit-learn ")
    assert model["classes"] == "0, 1"
    data = {row["dataset"]: row for row in _rows(text, "training data")}
    assert data["customers@v1"]["rows"] == "160"
    assert data["notes@v1"]["rows"] == "—"
    assert {r["param"]: r["run"] for r in _rows(text, "params")} == {"C": "0.5", "solver": "lbfgs"}
    assert {r["metric"]: r["run"] for r in _rows(text, "metrics")} == {"train_accuracy": "0.8125"}
    gate = _fields(text, "gate")
    assert gate["result"] == "passed"
    assert gate["holdout"] == "customers@v1 (160 rows)"
    assert gate["champion"] == "none (no champion to compare with)"
    checks = _rows(text, "gate checks")
    assert [(c["check"], c["result"]) for c in checks] == [
        ("metric", "passed"),
        ("slice", "passed"),
        ("regression", "skipped"),
    ]
    assert {r["metric"]: r["value"] for r in _rows(text, "holdout metrics")} == {
        "accuracy": "0.81",
        "f1": "0.78",
    }
    slices = _rows(text, "accuracy by plan")
    assert [(s["slice"], s["rows"], s["accuracy"], s["vs bound"]) for s in slices] == [
        ("basic", "60", "0.85", "ok"),
        ("pro", "50", "0.72", "ok"),
        ("<b>team</b>", "50", "0.65", "below floor"),
    ]
    confusion = _rows(text, "confusion matrix")
    assert confusion == [
        {"true \\ predicted": "0", "0": "70", "1": "12"},
        {"true \\ predicted": "1", "0": "18", "1": "60"},
    ]
    signature = _rows(text, "signature")
    assert [(c["column"], c["kind"], c["nullable"]) for c in signature] == [
        ("age", "integer", "no"),
        ("spend", "float", "no"),
    ]
    contract = _fields(text, "input contract (from the model's signature)")
    assert contract["columns"] == "2"
    assert contract["types"] == "integer: age; float: spend"
    assert _fields(text, "code version")["python"] == platform.python_version()


def test_a_version_without_gate_results_still_gets_a_card(workspace: Workspace) -> None:
    _add_data(workspace)
    _log_classifier(workspace, description=None)

    card = model_card("churn@latest", workspace=workspace)
    assert card.gate is None
    text = render_text(card)
    assert _section(text, "gate") == ["no gate has been run yet"]
    assert "# gate checks" not in text
    page = render_html(card)
    assert IMAGE not in page  # no gate report, no plots
    assert "no gate run yet" in page


def test_a_version_without_a_run_still_gets_a_card(workspace: Workspace) -> None:
    # An imported model: stored in the registry with no run, no data and no signature.
    digest = workspace.objects.add_bytes(b"an imported model")
    new = NewVersion(
        digest=digest,
        size=17,
        flavor="skops",
        flavor_options={},
        framework="sklearn",
        framework_version="1.0",
        model_class="sklearn.dummy.DummyClassifier",
        signature=None,
        run_id=None,
        description="imported",
        user="tester",
        inputs=[],
    )
    ModelRepository(workspace.metadata).add_version("legacy", new)

    card = model_card("legacy@v1", workspace=workspace)
    assert card.run is None and card.code is None and card.gate is None and card.datasets == ()
    text = render_text(card)
    assert _section(text, "training run") == [
        "no training run is linked to this version (logged outside a run, or imported)"
    ]
    assert _section(text, "training data") == [
        "no training run is linked to this version, so its training data is unknown"
    ]
    assert _section(text, "code version") == [
        "no training run is linked to this version, so its code version is unknown"
    ]
    assert _section(text, "signature") == ["no signature: the model was logged without X_example"]
    assert "# params" not in text
    assert "<html" in render_html(card)


def test_unknown_models_and_versions_raise_the_registry_errors(
    workspace: Workspace, cli: Cli
) -> None:
    with pytest.raises(ModelNotFoundError):
        model_card("nothing@v1", workspace=workspace)
    _add_data(workspace)
    _log_classifier(workspace)
    with pytest.raises(ModelVersionNotFoundError, match="churn has v1 to v1"):
        model_card("churn@v9", workspace=workspace)

    result = cli("models", "card", "churn@v9")
    assert result.exit_code != 0
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "churn has v1 to v1" in result.stderr


_GIT = ("git", "-c", "user.name=Tester", "-c", "user.email=tester@example.com")


def _git(*args: str, cwd: Path) -> str:
    proc = subprocess.run(
        [*_GIT, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.strip()


def test_the_code_version_is_the_git_commit_and_its_dirty_flag(workspace: Workspace) -> None:
    root = workspace.root
    (root / "train.py").write_text("print('train')\n")
    _git("init", "--quiet", "--initial-branch=main", cwd=root)
    _git("add", "train.py", cwd=root)
    _git("-c", "commit.gpgsign=false", "commit", "--quiet", "-m", "first", cwd=root)
    head = _git("rev-parse", "HEAD", cwd=root)
    (root / "train.py").write_text("print('train harder')\n")  # uncommitted
    _add_data(workspace)
    _log_classifier(workspace)

    card = model_card("churn@v1", workspace=workspace)
    assert card.code is not None
    assert card.code.manifest.git_commit == head and card.code.manifest.git_dirty
    code = _fields(render_text(card), "code version")
    assert code["git commit"] == f"{head} (uncommitted changes)"
    assert code["git branch"] == "main"
    assert "train.py" in code["changed files"]


# -- the command -------------------------------------------------------------------------------


def test_the_command_prints_the_card_and_writes_html(workspace: Workspace, cli: Cli) -> None:
    _add_data(workspace)
    version = _log_classifier(workspace)
    _record(workspace, version, _classifier_report(version))

    result = cli("models", "card", "churn@1")
    assert result.exit_code == 0, result.output
    assert {r["dataset"]: r["rows"] for r in _rows(result.stdout, "training data")} == {
        "customers@v1": "160",
        "notes@v1": "—",
    }
    assert _fields(result.stdout, "gate")["result"] == "passed"
    assert result.stdout == render_text(model_card("churn@1", workspace=workspace))

    # NAME VERSION works as in `models show`.
    again = cli("models", "card", "churn", "1", "--html")
    assert again.exit_code == 0, again.output
    written = Path(again.stdout.strip())
    assert written == workspace.dir / "cards" / "churn-v1.html"
    page = written.read_text(encoding="utf-8")
    _check_page(page)
    assert len(_images(page)) == 2  # accuracy by plan, confusion matrix
    assert 'alt="accuracy by plan"' in page and 'alt="confusion matrix"' in page
    assert not list(written.parent.glob(".*"))  # no temporary file left beside it

    chosen = workspace.root / "out" / "card.html"
    result = cli("models", "card", "churn@v1", "-o", str(chosen))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(chosen)
    _check_page(chosen.read_text(encoding="utf-8"))


def _check_page(page: str) -> None:
    """Self-contained, escaped, and with images that are real PNGs."""
    assert page.startswith("<!doctype html>")
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&#x27;card&#x27;)&lt;/script&gt; &amp; friends" in page
    assert "&lt;b&gt;team&lt;/b&gt;" in page
    # Nothing is fetched: no links to resources, every image is inline.
    assert not re.search(r"(?:src|href)\s*=\s*['\"](?!data:)", page)
    assert "http://" not in page and "https://" not in page
    for png in _images(page):
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert IMAGE in page


def test_write_html_refuses_a_folder_with_one_line(workspace: Workspace, cli: Cli) -> None:
    _add_data(workspace)
    _log_classifier(workspace)
    folder = workspace.root / "cards"
    folder.mkdir()
    result = cli("models", "card", "churn@1", "-o", str(folder))
    assert result.exit_code != 0
    assert len(result.stderr.strip().splitlines()) == 1
    assert "is a folder; give a file name" in result.stderr


# -- regression ------------------------------------------------------------------------------


def test_a_regression_card_plots_residuals(workspace: Workspace, tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression

    _add_data(workspace)
    with loopml.start_run(system_metrics=False, workspace=workspace):
        frame = loopml.data.read_frame("customers@v1", workspace=workspace)
        model = LinearRegression().fit(frame[["age"]], frame["spend"])
        version = log_model(model, "spend", X_example=frame[["age"]])
    _close_tracking()
    report = GateReport(
        model="spend",
        version=version.number,
        gate_file="gates/spend.yaml",
        gate_file_hash="a" * 64,
        data="customers@v1",
        data_hash="b" * 64,
        rows=160,
        champion=None,
        champion_alias=None,
        task="regression",
        outcomes=(CheckOutcome("metric", "rmse", CheckStatus.FAILED, 12.5, "<= 10"),),
        metrics={"rmse": 12.5, "r2": -0.02},
        slices=(
            SliceTable("plan", "rmse", ("basic", "pro", "team"), (11.0, None, 14.0), (60, 0, 50)),
        ),
        residuals=Residuals(
            edges=(-30.0, -15.0, 0.0, 15.0, 30.0), counts=(10, 70, 65, 15), mean=0.4, std=10.2
        ),
    )
    _record(workspace, version, report)

    card = model_card("spend@v1", workspace=workspace)
    text = render_text(card)
    assert _fields(text, "gate")["result"] == "failed"
    assert _fields(text, "residuals") == {
        "mean": "0.4",
        "std": "10.2",
        "bins": "4",
        "range": "-30 to 30",
        "rows": "160",
    }
    assert "# confusion matrix" not in text
    path = write_html(card, tmp_path / "spend.html")
    page = path.read_text(encoding="utf-8")
    assert len(_images(page)) == 2  # rmse by plan, residuals
    assert 'alt="residuals"' in page and 'alt="confusion matrix"' not in page
    assert "gate failed" in page
    assert [s.figure for s in card_sections(card) if s.figure] == ["slice:0", "residuals"]


# -- a model logged by a pipeline step ------------------------------------------------------

FLOW = """
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    import loopml
    from loopml import pipeline, step
    from loopml.validation import ColumnSpec, Contract

    CUSTOMERS = Contract(
        columns=[
            ColumnSpec("age", "int", nullable=False, min=0, max=120),
            ColumnSpec("spend", "float", nullable=False),
        ]
    )

    @step
    def load(raw) -> pd.DataFrame:
        return pd.read_parquet(raw)

    @step(input_contract={"frame": CUSTOMERS})
    def train(frame: pd.DataFrame, C: float = 1.0) -> float:
        loopml.log_param("features", "age,spend")
        model = LogisticRegression(C=C, max_iter=200).fit(frame[["age", "spend"]], frame["churned"])
        accuracy = float(model.score(frame[["age", "spend"]], frame["churned"]))
        loopml.log_metric("accuracy", accuracy)
        loopml.log_model(model, "churn", X_example=frame[["age", "spend"]])
        return accuracy

    @pipeline
    def churn(C: float = 1.0):
        return train(load(loopml.data.ref("customers@latest")), C=C)
"""


@pytest.fixture
def flow(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The pipeline module above, as a package of the workspace on ``sys.path``."""
    package = f"cardproj_{uuid.uuid4().hex[:10]}"
    folder = workspace.root / package
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "flow.py").write_text(textwrap.dedent(FLOW).lstrip("\n"))
    monkeypatch.syspath_prepend(str(workspace.root))
    importlib.invalidate_caches()
    try:
        yield importlib.import_module(f"{package}.flow")
    finally:
        for name in [m for m in sys.modules if m == package or m.startswith(f"{package}.")]:
            del sys.modules[name]


def test_a_model_logged_by_a_pipeline_step_shows_steps_contracts_and_both_runs(
    workspace: Workspace, flow: Any
) -> None:
    _add_data(workspace)
    run = flow.churn(C=0.5)
    _close_tracking()

    card = model_card("churn@v1", workspace=workspace)
    assert card.run is not None and card.run.kind == "step" and card.run.name == "train"
    assert card.parent_run is not None and card.parent_run.id == run.id
    assert [d.label for d in card.datasets] == ["customers@v1"]
    assert card.datasets[0].rows == 160
    assert card.code is not None
    assert [s.node for s in card.code.steps] == ["load", "train"]
    assert [s.logged_model for s in card.code.steps] == [False, True]
    assert [s.node for s in card.code.contracts] == ["train"]
    assert all(len(s.code_hash) == 64 for s in card.code.steps)

    text = render_text(card)
    params = {r["param"]: r for r in _rows(text, "params")}
    # The step run has its own param beside the pipeline's; both columns are shown.
    assert params["C"]["step run"] == "0.5" and params["C"]["pipeline run"] == "0.5"
    assert params["features"]["step run"] == "age,spend"
    assert params["features"]["pipeline run"] == ""
    steps = {r["step"]: r for r in _rows(text, "pipeline steps")}
    assert steps["train"]["logged the model"] == "yes"
    assert steps["train"]["code hash"] == card.code.steps[1].code_hash
    contracts = _rows(text, "data contracts (of the training pipeline's steps)")
    assert [c["step"] for c in contracts] == ["train"]
    assert contracts[0]["input contract"].startswith("frame=")
    assert contracts[0]["output contract"] == ""
    assert "input contract (from the model's signature)" not in text
    # Step runs share the pipeline run's manifest: the code version is known.
    code = _section(text, "code version")
    assert "from the manifest of the training run" in code
    assert "the code did not run from a git repository" in code
