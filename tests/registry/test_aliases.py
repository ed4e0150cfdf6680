"""Aliases: references, audited moves, protection with gates, compare-and-swap, archiving."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import pytest
from registry_helpers import log_versions

from loopml.errors import InvalidReferenceError, UserInputError
from loopml.registry import (
    AliasConflictError,
    ModelNotFoundError,
    ModelVersionNotFoundError,
    ProtectedAliasError,
    RegistryError,
    alias_history,
    archive_version,
    get_model,
    get_version,
    load_model,
    move_alias,
    record_gate_result,
    remove_alias,
    restore_version,
)
from loopml.store.workspace import Workspace


def test_aliases_are_references(workspace: Workspace) -> None:
    log_versions("churn", 3)
    move_alias("churn", 2, "challenger", reason="try the new features", expected_current=None)
    assert load_model("churn@challenger").version.number == 2
    assert get_version("churn", "challenger").number == 2
    assert get_version("churn@v2").aliases == ("challenger",)
    assert get_version("churn@3").number == get_version("churn@latest").number == 3
    assert get_model("churn").aliases == {"challenger": 2}
    for bad in ("v3", "3", "latest"):
        with pytest.raises(UserInputError, match="looks like a version"):
            move_alias("churn", 1, bad, reason="no", expected_current=None)


def test_every_move_is_an_event_with_who_when_from_to_and_why(db_workspace: Workspace) -> None:
    log_versions("churn", 3)
    move_alias("churn", 1, "staging", reason="first", expected_current=None, user="ann")
    move_alias("churn", 3, "staging", reason="newer data", expected_current=1, user="bob")
    assert move_alias("churn", 3, "staging", reason="again", expected_current=3) is None
    remove_alias("churn", "staging", reason="retired", expected_current=3)
    events = alias_history("churn")
    assert [(e.alias, e.from_version, e.to_version, e.user, e.reason) for e in events] == [
        ("staging", None, 1, "ann", "first"),
        ("staging", 1, 3, "bob", "newer data"),
        ("staging", 3, None, "tester", "retired"),
    ]
    assert all(e.created_at > 0 and not e.forced and e.gate_result_id is None for e in events)
    assert [e.created_at for e in events] == sorted(e.created_at for e in events)
    with pytest.raises(UserInputError, match="give a reason"):
        move_alias("churn", 2, "staging", reason="  ", expected_current=None)


def test_protected_alias_needs_a_passed_gate_or_force(db_workspace: Workspace) -> None:
    versions = log_versions("churn", 3)
    with pytest.raises(ProtectedAliasError, match="'champion' is a protected alias"):
        move_alias("churn", 1, "champion", reason="ship it", expected_current=None)
    event = move_alias(
        "churn", 1, "champion", reason="first model", expected_current=None, force=True
    )
    assert event is not None and event.forced

    def gate(version: int, passed: bool = True, champion: int | None = 1) -> str:
        return record_gate_result(
            versions[version - 1].id,
            gate_file_hash="a" * 64,
            data_hash="b" * 64,
            champion_version_id=versions[champion - 1].id if champion else None,
            passed=passed,
            report='{"checks": []}',
        ).id

    with pytest.raises(ProtectedAliasError, match="failed"):
        move_alias(
            "churn", 2, "champion", reason="r", expected_current=1, gate_result_id=gate(2, False)
        )
    with pytest.raises(ProtectedAliasError, match="judged another version"):
        move_alias("churn", 2, "champion", reason="r", expected_current=1, gate_result_id=gate(3))
    with pytest.raises(ProtectedAliasError, match="run the gate again"):
        move_alias(
            "churn",
            2,
            "champion",
            reason="r",
            expected_current=1,
            gate_result_id=gate(2, champion=2),
        )
    passed = gate(2)
    event = move_alias(
        "churn", 2, "champion", reason="beat v1", expected_current=1, gate_result_id=passed
    )
    assert event is not None and event.gate_result_id == passed and not event.forced
    assert alias_history("churn", "champion")[-1].gate_result_id == passed
    # Removing a protected alias needs force too.
    with pytest.raises(ProtectedAliasError):
        remove_alias("churn", "champion", reason="r", expected_current=2)


def test_protected_aliases_come_from_loopml_toml(workspace: Workspace) -> None:
    config = workspace.root / "loopml.toml"
    config.write_text(config.read_text() + '\n[registry]\nprotected_aliases = ["prod"]\n')
    log_versions("churn", 1)
    move_alias("churn", 1, "champion", reason="not protected here", expected_current=None)
    with pytest.raises(ProtectedAliasError, match="'prod'"):
        move_alias("churn", 1, "prod", reason="r", expected_current=None)


def _race(root: Path, current: int, targets: list[int]) -> dict[int, object]:
    """Move champion from ``current`` to each target at once; what each move returned."""
    barrier = threading.Barrier(len(targets))
    outcomes: dict[int, object] = {}

    def move(target: int) -> None:
        # A workspace (engine) per thread, as two processes would have.
        with Workspace.open(root) as own:
            barrier.wait()
            try:
                outcomes[target] = move_alias(
                    "churn",
                    target,
                    "champion",
                    reason=f"to v{target}",
                    expected_current=current,
                    force=True,
                    workspace=own,
                )
            except AliasConflictError as exc:
                outcomes[target] = exc

    threads = [threading.Thread(target=move, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_concurrent_moves_one_wins_the_other_gets_a_clear_error(db_workspace: Workspace) -> None:
    log_versions("churn", 3)
    move_alias("churn", 1, "champion", reason="start", expected_current=None, force=True)
    for _ in range(3):
        current = get_model("churn").aliases["champion"]
        outcomes = _race(db_workspace.root, current, [v for v in (1, 2, 3) if v != current])
        errors = [o for o in outcomes.values() if isinstance(o, AliasConflictError)]
        wins = [t for t, o in outcomes.items() if not isinstance(o, Exception)]
        assert len(wins) == 1 and len(errors) == 1, outcomes
        winner = wins[0]
        assert get_model("churn").aliases["champion"] == winner
        message = str(errors[0])
        assert f"churn@champion points to v{winner}, not v{current} as expected" in message
        assert "nothing was changed" in message and "\n" not in message
    moves = [(e.from_version, e.to_version) for e in alias_history("churn", "champion")]
    assert len(moves) == 4  # the start and one winner per round: no lost or silent update
    assert all(a == b[0] for (_, a), b in itertools.pairwise(moves))


def test_archived_versions_are_not_latest_nor_aliasable(workspace: Workspace) -> None:
    log_versions("churn", 3)
    move_alias("churn", 1, "baseline", reason="keep", expected_current=None)
    with pytest.raises(RegistryError, match="churn@v1 is baseline; move or remove"):
        archive_version("churn@v1")
    assert archive_version("churn", 3).archived
    assert get_version("churn").number == 2
    assert get_version("churn@v3").archived  # still there, by number
    with pytest.raises(RegistryError, match="archived; restore it first"):
        move_alias("churn", 3, "candidate", reason="r", expected_current=None)
    with pytest.raises(UserInputError, match="name the version"):
        archive_version("churn")
    restore_version("churn@v3")
    assert get_version("churn").number == 3


def test_bad_references_are_one_line_errors(workspace: Workspace) -> None:
    log_versions("churn", 2)
    cases: list[tuple[str, type[Exception], str]] = [
        ("churn@v9", ModelVersionNotFoundError, "churn@v9 does not exist; churn has v1 to v2"),
        ("nosuch", ModelNotFoundError, "no model named 'nosuch'"),
        ("churn@champion", ModelVersionNotFoundError, "names no alias or version of churn"),
        ("churn@a@b", InvalidReferenceError, "single '@'"),
        ("bad name", InvalidReferenceError, "invalid reference"),
        ("churn@", InvalidReferenceError, "nothing after '@'"),
    ]
    for text, kind, message in cases:
        with pytest.raises(kind, match=message) as caught:
            load_model(text)
        assert "\n" not in str(caught.value)
