"""``loopml gate run``, ``gate ls`` and ``models promote`` through the real CLI (piped)."""

from __future__ import annotations

import pytest
from gating_helpers import add_holdout, customers, fit, log, write

from loopml.registry import alias_history, get_model
from loopml.store.workspace import Workspace
from support import Cli

GATE = """
label: churned
metrics:
  accuracy: {min: 0.6}
slices:
  - {column: plan, metric: accuracy, min: 0.5}
no_regression: {metric: accuracy, max_drop: 0.01}
"""


@pytest.fixture
def models(workspace: Workspace) -> tuple[Workspace, str]:
    """churn v1 (good), v2 (trained on noise), a holdout, and gates.yaml."""
    train = customers(seed=0)
    log(fit(train), train, workspace=workspace)
    log(fit(train, shuffle=True), train, workspace=workspace)
    write(workspace.root / "gates.yaml", GATE)
    return workspace, add_holdout(workspace.root, customers(seed=1))


def _rows(text: str) -> list[list[str]]:
    return [line.split("\t") for line in text.splitlines() if not line.startswith("#")]


def test_gate_run_prints_a_table_and_exits_by_verdict(
    models: tuple[Workspace, str], cli: Cli
) -> None:
    _, holdout = models
    result = cli("gate", "run", "churn@1", "--gate", "gates.yaml", "--data", holdout)
    assert result.exit_code == 0, result.output
    header, *rows = _rows(result.stdout)
    assert header == ["check", "subject", "value", "threshold", "result", "detail"]
    assert [(r[0], r[1], r[4]) for r in rows] == [
        ("metric", "accuracy", "passed"),
        ("slice", "accuracy by plan", "passed"),
        ("no-regression", "accuracy vs champion", "skipped"),
    ]
    assert result.stderr.startswith("passed: 3 checks; gate result ")

    result = cli("gate", "run", "churn", "2", "--gate", "gates.yaml", "--data", holdout)
    assert result.exit_code == 1
    assert "FAILED: 2 of 3 checks failed" in result.stderr

    listing = cli("gate", "ls", "churn@2")
    assert listing.exit_code == 0
    header, row = _rows(listing.stdout)
    assert header[:3] == ["id", "when", "result"] and row[2] == "FAILED"
    assert row[3] == "gates.yaml" and row[4] == holdout and row[6] == "2/3"
    shown = cli("gate", "ls", "churn@2", "--show", row[0][:10])
    assert shown.exit_code == 0 and "accuracy by plan" in shown.stdout


def test_gate_run_bad_input_exits_2(models: tuple[Workspace, str], cli: Cli) -> None:
    _, holdout = models
    result = cli("gate", "run", "churn@1", "--gate", "nope.yaml", "--data", holdout)
    assert result.exit_code == 2 and "no gate file nope.yaml" in result.stderr
    result = cli("gate", "run", "churn@1", "--data", "holdout@v9")
    assert result.exit_code == 1
    assert result.stderr == "error: holdout@v9 does not exist; holdout has v1 to v1\n"
    result = cli("gate", "run", "churn@1", "--gate", "gates.yaml")
    assert result.exit_code == 2 and "--data" in result.stderr
    result = cli("gate", "run", "churn@7", "--gate", "gates.yaml", "--data", holdout)
    assert result.exit_code != 0 and "churn" in result.stderr


def test_promote_runs_the_gate_and_refuses_a_worse_model(
    models: tuple[Workspace, str], cli: Cli
) -> None:
    workspace, holdout = models
    args = ("--to", "champion", "--gate", "gates.yaml", "--data", holdout)
    result = cli("models", "promote", "churn", "1", *args)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == "churn@champion: - -> v1 (gate passed)"

    result = cli("models", "promote", "churn@2", *args)
    assert result.exit_code == 1
    assert "no-regression\taccuracy vs churn@v1" in result.stdout
    assert "\tfailed\t" in result.stdout
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("error: churn@v2 was not promoted to champion: the gate failed")
    )
    assert get_model("churn", workspace=workspace).aliases["champion"] == 1

    # The same gate on the same data against the same champion is not run again.
    again = cli("models", "promote", "churn@2", *args)
    assert again.exit_code == 1 and "reused" in again.stderr
    rerun = cli("models", "promote", "churn@2", *args, "--rerun")
    assert rerun.exit_code == 1 and "reused" not in rerun.stderr

    forced = cli("models", "promote", "churn@2", "--force")
    assert forced.exit_code == 2 and "--reason" in forced.stderr
    forced = cli("models", "promote", "churn@2", "--force", "--reason", "incident 42")
    assert forced.exit_code == 0
    assert forced.stdout.strip() == "churn@champion: v1 -> v2 (forced)"

    first, second = alias_history("churn", "champion", workspace=workspace)
    assert first.gate_result_id is not None and not first.forced
    assert second.forced and second.reason == "incident 42" and second.gate_result_id is None
    history = cli("models", "history", "churn")
    assert "forced" in history.stdout and "gate " in history.stdout


def test_promote_uses_the_defaults_of_loopml_toml(models: tuple[Workspace, str], cli: Cli) -> None:
    workspace, holdout = models
    result = cli("models", "promote", "churn@1")
    assert result.exit_code == 2
    assert "needs --gate and --data" in result.stderr and "[registry.models.churn]" in result.stderr
    config = workspace.root / "loopml.toml"
    config.write_text(
        config.read_text()
        + f'\n[registry.models.churn]\ngate = "gates.yaml"\nholdout = "{holdout}"\n'
    )
    result = cli("models", "promote", "churn@1")
    assert result.exit_code == 0, result.output
    assert get_model("churn", workspace=workspace).aliases["champion"] == 1


def test_a_gate_result_is_bound_to_the_champion_it_was_run_against(
    models: tuple[Workspace, str], cli: Cli
) -> None:
    workspace, holdout = models
    train = customers(seed=0)
    log(fit(train), train, workspace=workspace)  # v3, as good as v1
    gate_args = ("--gate", "gates.yaml", "--data", holdout)
    result = cli("gate", "run", "churn@3", *gate_args)  # no champion yet
    assert result.exit_code == 0
    gate_id = result.stderr.split("gate result ")[1].split()[0]
    assert cli("models", "promote", "churn@1", *gate_args).exit_code == 0
    # The champion moved since: the old result (against nobody) no longer allows the move.
    moved = cli("models", "alias", "churn@3", "champion", "--gate", gate_id, "--reason", "x")
    assert moved.exit_code == 2 and "run the gate again" in moved.stderr
    # promote runs it again against v1, and v3 passes.
    promoted = cli("models", "promote", "churn@3", *gate_args)
    assert promoted.exit_code == 0, promoted.output
    assert "v1 -> v3 (gate passed)" in promoted.stdout
