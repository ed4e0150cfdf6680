"""Gate edge cases: metric directions, champions with other inputs, label types, perturbations
that do not fit a column, fairness against a reference, and gates bound by loopml.toml."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
import pytest
from gating_helpers import FEATURES, add_holdout, close_tracking, customers, fit, log, write

from loopml.errors import UserInputError
from loopml.registry import GateFailedError, GateFileError, ProtectedAliasError, promote, run_gate
from loopml.store.workspace import Workspace


@pytest.fixture
def setup(workspace: Workspace) -> tuple[Workspace, str]:
    train = customers(seed=0)
    log(fit(train), train, workspace=workspace)
    return workspace, add_holdout(workspace.root, customers(seed=1))


def _spend_model(workspace: Workspace) -> str:
    """``bill`` v1: a linear regressor of spend; and a holdout of bills."""
    from sklearn.linear_model import LinearRegression

    import loopml
    from loopml.registry import log_model

    frame = customers(seed=0)
    frame["bill"] = frame["spend"] * 2 + np.random.default_rng(0).normal(0, 1, len(frame))
    with loopml.start_run(system_metrics=False, workspace=workspace):
        log_model(LinearRegression().fit(frame[["spend"]], frame["bill"]), "bill",
                  X_example=frame[["spend"]])  # fmt: skip
    close_tracking()
    return add_holdout(workspace.root, frame[["spend", "visits", "bill"]], "bills")


def test_a_bare_number_is_a_ceiling_for_errors(workspace: Workspace) -> None:
    holdout = _spend_model(workspace)
    gate = write(workspace.root / "g.yaml", "label: bill\nmetrics:\n  rmse: 0.5\n  r2: 0.9\n")
    run = run_gate("bill@1", gate, holdout, workspace=workspace)
    rmse, r2 = run.report.outcomes
    assert (rmse.threshold, rmse.status) == ("<= 0.5", "failed")  # rmse is about 1
    assert (r2.threshold, r2.status) == (">= 0.9", "passed")
    for text, message in [
        ("metrics:\n  rmse: {min: 0.1}\n", "rmse is better when lower: give max"),
        ("metrics:\n  accuracy: {max: 0.9}\n", "accuracy is better when higher: give min"),
        ("slices:\n  - {column: visits, metric: mae, min: 0}\n", "give max (a ceiling)"),
        ("no_regression: {metric: median_ae}\n", "median_ae cannot be bootstrapped"),
    ]:
        bad = write(workspace.root / "bad.yaml", "label: bill\n" + text)
        with pytest.raises(GateFileError, match=re.escape(message)):
            run_gate("bill@1", bad, holdout, workspace=workspace)


def test_the_champion_is_scored_on_its_own_inputs(setup: tuple[Workspace, str]) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    import loopml
    from loopml.registry import log_model, move_alias

    workspace, holdout = setup
    move_alias("churn", 1, "champion", reason="r", expected_current=None, force=True,
               workspace=workspace)  # fmt: skip
    train = customers(seed=0)
    fewer = ["plan", "spend"]  # v2 no longer takes visits or gender
    model = Pipeline(
        [
            (
                "prepare",
                ColumnTransformer([("p", OneHotEncoder(), ["plan"])], remainder="passthrough"),
            ),
            ("model", LogisticRegression(max_iter=500)),
        ]
    ).fit(train[fewer], train["churned"])
    with loopml.start_run(system_metrics=False, workspace=workspace):
        log_model(model, "churn", X_example=train[fewer])
    close_tracking()
    gate = write(workspace.root / "g.yaml", "label: churned\nno_regression: {metric: roc_auc}\n")
    run = run_gate("churn@2", gate, holdout, workspace=workspace)
    (outcome,) = run.report.outcomes
    assert outcome.name == "roc_auc vs churn@v1" and outcome.value is not None
    assert "cannot predict" not in outcome.detail


def test_labels_of_another_type_are_refused_in_one_line(setup: tuple[Workspace, str]) -> None:
    workspace, _ = setup
    frame = customers(seed=1)
    frame["churned"] = frame["churned"].map({0: "no", 1: "yes"})
    frame.to_parquet(workspace.root / "text-labels.parquet")
    gate = write(workspace.root / "g.yaml", "label: churned\nmetrics:\n  accuracy: 0.5\n")
    with pytest.raises(UserInputError, match="has values churn@v1 never predicts") as caught:
        run_gate("churn@1", gate, "text-labels.parquet", workspace=workspace)
    assert "\n" not in str(caught.value)


def test_a_slice_metric_the_model_cannot_give_fails(setup: tuple[Workspace, str]) -> None:
    workspace, holdout = setup
    gate = write(
        workspace.root / "g.yaml",
        "label: churned\nslices:\n  - {column: plan, metric: rmse, max: 1}\n",
    )
    run = run_gate("churn@1", gate, holdout, workspace=workspace)
    (outcome,) = run.report.outcomes
    assert outcome.status == "failed" and "undefined on 3 slice(s)" in outcome.detail


def test_fairness_against_a_reference_is_two_sided(setup: tuple[Workspace, str]) -> None:
    workspace, holdout = setup
    gate = write(
        workspace.root / "g.yaml",
        """
label: churned
fairness:
  - {column: plan, metric: positive_rate, reference: basic, min_ratio: 0.8}
  - {column: gender, metric: accuracy, reference: F, min_ratio: 0.8}
""",
    )
    run = run_gate("churn@1", gate, holdout, workspace=workspace)
    plan, gender = run.report.outcomes
    # team customers are predicted to churn far more often than basic ones: far above parity.
    assert plan.status == "failed" and plan.value > 1.25 and "worst: team" in plan.detail
    assert plan.threshold == "in [0.8, 1.25] x basic"
    assert gender.status == "passed"


def test_perturbations_that_do_not_fit_or_do_nothing(setup: tuple[Workspace, str]) -> None:
    workspace, holdout = setup
    gate = write(
        workspace.root / "g.yaml",
        """
label: churned
invariance:
  - {column: plan, set: enterprise}
  - {column: visits, set: 2.5}
direction:
  - {column: visits, add: 0.4, expect: increase, strict: true}
  - {column: visits, add: 0.6, expect: increase, min_share: 0.0}
""",
    )
    run = run_gate("churn@1", gate, holdout, workspace=workspace)
    unseen, fractional, rounded_away, rounded_up = run.report.outcomes
    # The model's signature, not pandas, says why a new category cannot be scored.
    assert unseen.status == "failed" and "enterprise" in unseen.detail
    assert fractional.status == "failed" and "does not fit column visits" in fractional.detail
    # +0.4 rounds back to the same whole number: no row was changed, nothing to judge.
    assert rounded_away.status == "skipped" and "no holdout row is changed" in rounded_away.detail
    assert rounded_up.status == "passed" and "of 2000 rows" in rounded_up.detail


def test_a_custom_check_must_return_a_verdict(setup: tuple[Workspace, str]) -> None:
    workspace, holdout = setup
    gate = write(
        workspace.root / "gates.py",
        "GATE = {'label': 'churned'}\n"
        "def array(model, frame, y):\n"
        "    return model.predict(frame.drop(columns=['churned'])) == y\n"
        "CHECKS = [array]\n",
    )
    run = run_gate("churn@1", gate, holdout, workspace=workspace)
    (outcome,) = run.report.outcomes
    assert outcome.status == "failed" and "returned ndarray" in outcome.detail
    exiting = write(workspace.root / "exits.py", "import sys\nsys.exit(3)\n")
    with pytest.raises(GateFileError, match=r"called exit\(3\)"):
        run_gate("churn@1", exiting, holdout, workspace=workspace)


def test_loopml_toml_binds_the_champion_to_its_gate(setup: tuple[Workspace, str]) -> None:
    workspace, holdout = setup
    write(workspace.root / "gates.yaml", "label: churned\nmetrics:\n  accuracy: 0.6\n")
    trivial = write(workspace.root / "trivial.yaml", "label: churned\nmetrics:\n  accuracy: 0\n")
    config = workspace.root / "loopml.toml"
    config.write_text(config.read_text() + '\n[registry.models.churn]\ngate = "gates.yaml"\n')
    with pytest.raises(ProtectedAliasError, match=r"moves only on the gate loopml\.toml names"):
        promote("churn@1", gate=trivial, data=holdout, workspace=workspace)
    # A result of another gate file cannot move it by id either.
    other = run_gate("churn@1", trivial, holdout, workspace=workspace)
    from loopml.registry import move_alias

    with pytest.raises(ProtectedAliasError, match="moves only on the gate"):
        move_alias("churn", 1, "champion", reason="r", expected_current=None,
                   gate_result_id=other.result.id, workspace=workspace)  # fmt: skip
    done = promote("churn@1", data=holdout, workspace=workspace)
    assert done.event is not None and done.event.gate_result_id is not None
    # An alias that is not protected takes any gate.
    challenger = promote(
        "churn@1", to="challenger", gate=trivial, data=holdout, workspace=workspace
    )
    assert challenger.event is not None


def test_a_reused_failure_says_how_to_run_again(setup: tuple[Workspace, str]) -> None:
    workspace, holdout = setup
    gate = write(workspace.root / "g.yaml", "label: churned\nmetrics:\n  accuracy: 0.999\n")
    with pytest.raises(GateFailedError) as first:
        promote("churn@1", gate=gate, data=holdout, workspace=workspace)
    assert "--rerun" not in str(first.value)
    with pytest.raises(GateFailedError, match="--rerun runs the gate again"):
        promote("churn@1", gate=gate, data=holdout, workspace=workspace)


def test_the_card_shows_the_gate_that_moved_the_alias(setup: tuple[Workspace, str]) -> None:
    from loopml.explain import model_card

    workspace, holdout = setup
    gate = write(workspace.root / "g.yaml", "label: churned\nmetrics:\n  accuracy: 0.6\n")
    moved = promote("churn@1", gate=gate, data=holdout, workspace=workspace)
    strict = write(workspace.root / "s.yaml", "label: churned\nmetrics:\n  accuracy: 0.999\n")
    later = run_gate("churn@1", strict, holdout, against=None, workspace=workspace)
    assert not later.passed
    card: Any = model_card("churn@champion", workspace=workspace)
    assert moved.gate is not None and card.gate.result.id == moved.gate.result.id
    assert card.gate.grounds == "champion" and card.gate.total == 2


def test_integer_columns_keep_their_kind_when_perturbed() -> None:
    from loopml.registry.gating.checks import _perturb
    from loopml.registry.gating.spec import Perturbation

    frame = pd.DataFrame(
        {
            "small": pd.Series([250, 5, 0], dtype="uint8"),
            "nullable": pd.array([1, None, 3], dtype="Int64"),
        }
    )
    changed, touched = _perturb(frame, Perturbation("small", "add", (10.0,)))
    assert changed["small"].tolist() == [260, 15, 10] and touched.tolist() == [True] * 3
    changed, touched = _perturb(frame, Perturbation("nullable", "multiply", (2.0,)))
    assert changed["nullable"].tolist() == [2, pd.NA, 6] and touched.tolist() == [True, False, True]
    assert str(changed["nullable"].dtype) == "Int64"
    assert list(FEATURES) == ["plan", "spend", "visits", "gender"]
