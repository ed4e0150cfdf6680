"""``loopml.registry.promote`` from Python, on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from gating_helpers import add_holdout, customers, fit, log, write

from loopml.registry import (
    GateFailedError,
    alias_history,
    gate_results,
    get_model,
    get_version,
    promote,
    run_gate,
)
from loopml.store.workspace import Workspace

GATE = "label: churned\nmetrics:\n  accuracy: {min: 0.6}\nno_regression: {metric: roc_auc}\n"


def test_promote_refuses_then_reuses_and_records(db_workspace: Workspace) -> None:
    workspace = db_workspace
    train = customers(seed=0)
    log(fit(train), train, workspace=workspace)
    log(fit(train, shuffle=True), train, workspace=workspace)
    gate = write(workspace.root / "gates.yaml", GATE)
    holdout = add_holdout(workspace.root, customers(seed=1))

    first = promote("churn@1", gate=gate, data=holdout, workspace=workspace)
    assert first.event is not None and first.event.to_version == 1
    assert first.gate is not None and not first.gate.reused
    assert first.event.gate_result_id == first.gate.result.id

    with pytest.raises(GateFailedError, match="churn@v2 was not promoted to champion") as caught:
        promote("churn", 2, gate=gate, data=holdout, workspace=workspace)
    refused = caught.value.gate_run
    assert refused is not None and not refused.passed
    assert "no-regression" in [o.kind for o in refused.report.failures]
    assert get_model("churn", workspace=workspace).aliases == {"champion": 1}

    # Asking again reuses the recorded verdict: no second result is written.
    with pytest.raises(GateFailedError) as again:
        promote("churn", 2, gate=gate, data=holdout, workspace=workspace)
    assert again.value.gate_run.reused
    assert len(gate_results("churn@2", workspace=workspace)) == 1

    # A gate run by hand against the champion is what promote reuses.
    champion = get_version("churn@champion", workspace=workspace)
    assert champion.number == 1
    log(fit(train), train, workspace=workspace)  # v3
    by_hand = run_gate("churn@3", gate, holdout, workspace=workspace)
    assert by_hand.passed and by_hand.result.champion_version_id == champion.id
    third = promote("churn@3", gate=gate, data=holdout, workspace=workspace)
    assert third.gate is not None and third.gate.reused
    assert third.gate.result.id == by_hand.result.id
    events = alias_history("churn", "champion", workspace=workspace)
    assert [(e.from_version, e.to_version) for e in events] == [(None, 1), (1, 3)]
    assert all(e.gate_result_id and not e.forced for e in events)


def test_promote_needs_a_version_and_is_a_no_op_when_already_there(workspace: Workspace) -> None:
    from loopml.errors import UserInputError

    train = customers(seed=0)
    log(fit(train), train, workspace=workspace)
    with pytest.raises(UserInputError, match="name the version to promote"):
        promote("churn", workspace=workspace)
    forced = promote("churn@1", force=True, reason="bootstrap", workspace=workspace)
    assert forced.event is not None and forced.event.forced
    again = promote("churn@1", workspace=workspace)
    assert again.event is None and again.gate is None
