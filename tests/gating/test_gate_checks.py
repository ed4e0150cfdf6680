"""Gate checks through ``loopml.registry.run_gate``, on a real workspace and real models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gating_helpers import add_holdout, customers, fit, log, write

from loopml.registry import GateFileError, gate_results, run_gate
from loopml.registry.gating.report import GateReport
from loopml.store.workspace import Workspace


def _by_kind(report: GateReport, kind: str) -> list:
    return [o for o in report.outcomes if o.kind == kind]


@pytest.fixture
def setup(workspace: Workspace) -> tuple[Workspace, str]:
    """Version 1 of churn (a good model) and a holdout dataset version."""
    train = customers(seed=0)
    log(fit(train), train, workspace=workspace)
    return workspace, add_holdout(workspace.root, customers(seed=1))


def test_the_smallest_gate_file_works_as_written(setup: tuple[Workspace, str]) -> None:
    workspace, holdout = setup
    gate = write(
        workspace.root / "gates.yaml", "label: churned\nmetrics:\n  accuracy: {min: 0.6}\n"
    )
    run = run_gate("churn@1", gate, holdout, workspace=workspace)
    assert run.passed
    (outcome,) = run.report.outcomes
    assert (outcome.kind, outcome.name, outcome.status) == ("metric", "accuracy", "passed")
    assert 0.6 <= outcome.value <= 1.0
    assert run.report.rows == 2000 and run.report.data == "holdout@v1"
    # Recorded, keyed by what it judged, with the report that round-trips.
    (recorded,) = gate_results("churn@1", workspace=workspace)
    assert recorded.id == run.result.id and recorded.passed
    assert recorded.data_hash == run.report.data_hash
    assert recorded.champion_version_id is None
    assert GateReport.from_json(recorded.report) == run.report


def test_metric_floors_and_ceilings(setup: tuple[Workspace, str]) -> None:
    workspace, holdout = setup
    gate = write(
        workspace.root / "gates.yaml",
        "label: churned\nmetrics:\n  accuracy: {min: 0.999}\n  auc: {min: 0.6}\n"
        "  log_loss: {max: 0.01}\n  f1: 0.1\n",
    )
    run = run_gate("churn@1", gate, holdout, workspace=workspace)
    verdicts = {o.name: o.status for o in run.report.outcomes}
    assert verdicts == {
        "accuracy": "failed",
        "roc_auc": "passed",
        "log_loss": "failed",
        "f1": "passed",
    }
    assert not run.passed and not gate_results("churn@1", workspace=workspace)[0].passed
    assert {"accuracy", "roc_auc", "log_loss", "f1"} <= set(run.report.metrics)


def test_slices_by_value_and_by_bucket_report_the_worst(setup: tuple[Workspace, str]) -> None:
    workspace, holdout = setup
    gate = write(
        workspace.root / "gates.yaml",
        """
label: churned
slices:
  - {column: plan, metric: accuracy, min: 0.5}
  - {column: spend, buckets: 4, metric: accuracy, min: 0.99}
  - {column: visits, bins: [0, 5, 10], metric: accuracy, min: 0.0, min_rows: 5000}
""",
    )
    run = run_gate("churn@1", gate, holdout, workspace=workspace)
    plan, spend, visits = _by_kind(run.report, "slice")
    assert plan.status == "passed" and plan.detail.startswith("worst: ")
    table = run.report.slices[0]
    assert table.slices == ("basic", "pro", "team") and sum(table.rows) == 2000
    assert plan.value == pytest.approx(min(v for v in table.values if v is not None))
    # Four quantile buckets of spend, in order; a floor of 0.99 fails and names them.
    assert spend.status == "failed" and "outside the bound: " in spend.detail
    assert len(run.report.slices[1].slices) == 4
    edges = [float(s.split(",")[0].strip("([")) for s in run.report.slices[1].slices]
    assert edges == sorted(edges)
    # Slices smaller than min_rows are reported but not judged.
    assert visits.status == "skipped" and "not judged" in visits.detail


def test_no_regression_is_skipped_without_a_champion(setup: tuple[Workspace, str]) -> None:
    workspace, holdout = setup
    gate = write(workspace.root / "gates.yaml", "label: churned\nno_regression: true\n")
    run = run_gate("churn@1", gate, holdout, workspace=workspace)
    (outcome,) = run.report.outcomes
    assert outcome.kind == "no-regression" and outcome.status == "skipped"
    assert "no champion yet" in outcome.detail and run.passed


def test_a_worse_candidate_fails_against_the_champion(setup: tuple[Workspace, str]) -> None:
    from loopml.registry import move_alias

    workspace, holdout = setup
    train = customers(seed=0)
    log(fit(train, shuffle=True), train, workspace=workspace)  # v2: learned noise
    log(fit(train), train, workspace=workspace)  # v3: the same recipe as v1
    move_alias("churn", 1, "champion", reason="first", expected_current=None, force=True,
               workspace=workspace)  # fmt: skip
    gate = write(
        workspace.root / "gates.yaml",
        "label: churned\nno_regression: {metric: accuracy, max_drop: 0.01}\n",
    )
    worse = run_gate("churn@2", gate, holdout, workspace=workspace)
    bootstrap, mcnemar = worse.report.outcomes
    assert bootstrap.status == "failed" and "significantly worse" in bootstrap.detail
    assert bootstrap.value < -0.05
    assert mcnemar.name == "McNemar vs churn@v1" and mcnemar.status == "failed"
    assert worse.report.champion == 1 and worse.report.champion_alias == "champion"
    assert worse.result.champion_version_id is not None

    same = run_gate("churn@3", gate, holdout, workspace=workspace)
    assert same.passed, same.report.outcomes
    assert same.report.outcomes[0].value == 0.0  # identical predictions, no difference

    # Against an explicit version, and with the comparison switched off.
    versus = run_gate("churn@1", gate, holdout, against="v2", workspace=workspace)
    assert versus.passed and versus.report.champion == 2
    alone = run_gate("churn@2", gate, holdout, against=None, workspace=workspace)
    assert alone.report.outcomes[0].status == "skipped"


def test_invariance_and_direction(setup: tuple[Workspace, str]) -> None:
    workspace, holdout = setup
    gate = write(
        workspace.root / "gates.yaml",
        """
label: churned
invariance:
  - {name: gender swap, column: gender, swap: [F, M], min_share: 0.9}
  - {column: plan, set: team, min_share: 0.99}
direction:
  - {name: higher spend, column: spend, add: 20, expect: increase, min_share: 0.8}
  - {column: spend, add: 20, expect: decrease, min_share: 0.8}
""",
    )
    run = run_gate("churn@1", gate, holdout, workspace=workspace)
    swap, plan, up, down = run.report.outcomes
    assert swap.name == "gender swap" and swap.status == "passed" and swap.value >= 0.9
    assert plan.name == "plan := team" and plan.status == "failed"
    assert up.status == "passed" and up.value >= 0.8
    assert down.status == "failed" and "moved the other way" in down.detail


def test_fairness_ratio_between_groups(setup: tuple[Workspace, str]) -> None:
    workspace, holdout = setup
    gate = write(
        workspace.root / "gates.yaml",
        """
label: churned
fairness:
  - {column: gender, metric: positive_rate, min_ratio: 0.7}
  - {column: plan, metric: positive_rate, min_ratio: 0.8}
  - {column: plan, metric: accuracy, reference: basic, min_ratio: 0.5, max_ratio: 2.0}
""",
    )
    run = run_gate("churn@1", gate, holdout, workspace=workspace)
    gender, plan, reference = run.report.outcomes
    assert gender.status == "passed" and "F=" in gender.detail and "M=" in gender.detail
    assert plan.status == "failed" and plan.value < 0.8  # team churns far more often
    assert reference.status == "passed" and "worst:" in reference.detail


def test_latency_budget(setup: tuple[Workspace, str]) -> None:
    workspace, holdout = setup
    gate = write(
        workspace.root / "gates.yaml",
        """
label: churned
latency:
  - {rows: 1, p95_ms: 10000, repeats: 5}
  - {rows: 1000, p95_ms: 0.000001, repeats: 5}
""",
    )
    run = run_gate("churn@1", gate, holdout, workspace=workspace)
    one, thousand = run.report.outcomes
    assert one.status == "passed" and one.name == "p95 predict, 1 row" and one.value > 0
    assert thousand.status == "failed" and "median" in thousand.detail


def test_a_python_gate_file_with_its_own_check(setup: tuple[Workspace, str]) -> None:
    workspace, holdout = setup
    gate = write(
        workspace.root / "gates.py",
        """
GATE = {"label": "churned", "metrics": {"accuracy": {"min": 0.5}}}

def predicts_both_classes(model, frame, label):
    predicted = set(model.predict(frame.drop(columns=["churned"])).tolist())
    return predicted == {0, 1}, f"classes predicted: {sorted(predicted)}"

def never_true(model, frame, label):
    return False

CHECKS = [predicts_both_classes, never_true]
""",
    )
    run = run_gate("churn@1", gate, holdout, workspace=workspace)
    metric, both, never = run.report.outcomes
    assert metric.status == "passed"
    assert (both.name, both.status, both.detail) == (
        "predicts_both_classes",
        "passed",
        "classes predicted: [0, 1]",
    )
    assert never.status == "failed" and not run.passed


def test_a_regression_model_with_error_metrics(workspace: Workspace) -> None:
    from sklearn.linear_model import Ridge

    frame = customers(seed=0)
    frame["bill"] = (
        frame["spend"] * 2 + frame["visits"] + np.random.default_rng(0).normal(0, 1, 2000)
    )
    model = Ridge().fit(frame[["spend", "visits"]], frame["bill"])
    import loopml
    from loopml.registry import log_model

    with loopml.start_run(system_metrics=False, workspace=workspace):
        log_model(model, "bill", X_example=frame[["spend", "visits"]])
    holdout = add_holdout(workspace.root, frame[["spend", "visits", "bill"]], "bills")
    gate = write(
        workspace.root / "gates.yaml",
        "label: bill\nmetrics:\n  rmse: {max: 1.5}\n  r2: {min: 0.99}\n  mae: {max: 0.01}\n"
        "slices:\n  - {column: visits, bins: [0, 5, 9], metric: rmse, max: 1.5}\n"
        "  - {column: visits, bins: [0, 5, 9], metric: mae, max: 0.5}\n",
    )
    run = run_gate("bill@1", gate, holdout, workspace=workspace)
    statuses = [o.status for o in run.report.outcomes]
    assert statuses == ["passed", "passed", "failed", "passed", "failed"]
    rmse_slices, _ = run.report.slices
    # For an error the worst slice is the largest one, and the bound is a ceiling.
    assert run.report.outcomes[3].value == max(rmse_slices.values)
    assert rmse_slices.ceiling == 1.5 and rmse_slices.floor is None
    assert "outside the bound" in run.report.outcomes[4].detail
    assert run.report.task == "regression" and run.report.confusion is None
    assert run.report.residuals is not None and sum(run.report.residuals.counts) == 2000


def test_a_file_holdout_and_a_csv(setup: tuple[Workspace, str]) -> None:
    workspace, _ = setup
    customers(seed=2).to_csv(workspace.root / "fresh.csv", index=False)
    gate = write(workspace.root / "gates.yaml", "label: churned\nmetrics:\n  accuracy: 0.5\n")
    run = run_gate("churn@1", gate, "fresh.csv", workspace=workspace)
    assert run.passed and run.report.data == "fresh.csv" and run.report.rows == 2000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("metrics:\n  accuracy: {min: 0.8}\n", "gates.yaml: top level: name the holdout's label"),
        ("label: churned\nmetric:\n  accuracy: 0.8\n", "unknown key 'metric'"),
        ("label: churned\nmetrics:\n  acurracy: {min: 0.8}\n", "gates.yaml: metrics.acurracy:"),
        (
            "label: churned\nmetrics:\n  accuracy: {min: high}\n",
            "metrics.accuracy.min: expected a number",
        ),
        ("label: churned\n", "the gate has no checks"),
        (
            "label: churned\nslices:\n  - {column: plan, buckets: 4, bins: [1, 2], min: 0.5}\n",
            "not both",
        ),
        ("label: churned\ninvariance:\n  - {column: plan}\n", "give exactly one of swap"),
        ("label: [churned\n", "gates.yaml:2: not valid YAML"),
        ("label: nope\nmetrics:\n  accuracy: 0.5\n", "label 'nope' is not a column of holdout@v1"),
        ("label: churned\npositive: yes\nmetrics:\n  f1: 0.5\n", "positive: 'yes' is not one of"),
    ],
)
def test_gate_file_mistakes_are_named(
    setup: tuple[Workspace, str], text: str, message: str
) -> None:
    workspace, holdout = setup
    gate = write(workspace.root / "gates.yaml", text)
    with pytest.raises(GateFileError, match=None) as caught:
        run_gate("churn@1", gate, holdout, workspace=workspace)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert gate_results("churn@1", workspace=workspace) == []


def test_a_missing_gate_file(setup: tuple[Workspace, str], tmp_path: Path) -> None:
    workspace, holdout = setup
    with pytest.raises(GateFileError, match="no gate file"):
        run_gate("churn@1", tmp_path / "missing.yaml", holdout, workspace=workspace)
