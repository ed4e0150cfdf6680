"""Promotion: move a protected alias only on the grounds of a passed gate (or a recorded force).

``promote`` runs the gate against the alias's current holder, or reuses a recorded result that
still applies (same version, gate file, data and champion), then moves the alias
compare-and-swap with the result's id, so the move's event names the gate that allowed it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from loopml.errors import UserInputError
from loopml.refs import Ref, RefKind, validate_label
from loopml.registry.errors import GateFailedError, ProtectedAliasError
from loopml.registry.gating.runner import GateRun, holdout_key, report_of, run_gate
from loopml.registry.gating.spec import load_gate
from loopml.registry.model import AliasEvent, ModelVersion

if TYPE_CHECKING:
    from loopml.store.workspace import Workspace

__all__ = ["Promotion", "promote"]


@dataclass(frozen=True, slots=True)
class Promotion:
    """What ``promote`` did: the alias event (None: already there) and the gate it relied on."""

    version: ModelVersion
    alias: str
    event: AliasEvent | None
    gate: GateRun | None


def promote(
    candidate: ModelVersion,
    *,
    to: str = "champion",
    gate: str | Path | None = None,
    data: str | None = None,
    force: bool = False,
    reason: str = "",
    rerun: bool = False,
    workspace: Workspace,
    progress: Callable[[str], None] | None = None,
) -> Promotion:
    """Point ``to`` at ``candidate`` if it passes the gate; raise :class:`GateFailedError` if not.

    ``gate`` and ``data`` default to ``[registry.models.NAME]`` in ``loopml.toml``. With
    ``force`` (and a ``reason``) the gate is not run and the event is recorded as forced.
    """
    from loopml.registry.api import move_alias
    from loopml.registry.gates import GateResults
    from loopml.registry.repository import ModelRepository
    from loopml.registry.settings import model_defaults, protected_aliases

    alias = validate_label(to, "alias")
    name = candidate.model
    current = ModelRepository(workspace.metadata).get_model(name).aliases.get(alias)
    if current == candidate.number:
        return Promotion(candidate, alias, None, None)
    if force:
        if not reason.strip():
            raise UserInputError('--force needs --reason "…"; it is kept in the history')
        event = move_alias(
            name,
            candidate.number,
            alias,
            reason=reason,
            expected_current=current,
            force=True,
            workspace=workspace,
        )
        return Promotion(candidate, alias, event, None)
    defaults = model_defaults(workspace, name)
    gate = gate if gate is not None else defaults.gate
    data = data if data is not None else defaults.holdout
    if gate is None or data is None:
        missing = " and ".join(
            flag for flag, value in (("--gate", gate), ("--data", data)) if value is None
        )
        raise UserInputError(
            f"promoting {candidate.label} to {alias} needs {missing}; give them, set gate and "
            f'holdout under [registry.models.{name}] in loopml.toml, or use --force --reason "…"'
        )
    spec = load_gate(gate)
    if defaults.gate is not None and alias in protected_aliases(workspace):
        from loopml.store.hashing import hash_file

        if defaults.gate.is_file() and hash_file(defaults.gate) != spec.digest:
            raise ProtectedAliasError(
                f"{name}@{alias} moves only on the gate loopml.toml names for {name} "
                f"({defaults.gate.name}), not {gate}; leave --gate out, or use --force --reason"
            )
    run: GateRun | None = None
    if not rerun:
        _, data_hash = holdout_key(workspace, data)
        champion_id = None
        if current is not None:
            champion_id = (
                ModelRepository(workspace.metadata)
                .resolve(Ref(name, RefKind.VERSION, version=current))
                .id
            )
        found = GateResults(workspace.metadata).applicable(
            model_version_id=candidate.id,
            gate_file_hash=spec.digest,
            data_hash=data_hash,
            champion_version_id=champion_id,
        )
        if found is not None:
            run = GateRun(report=report_of(found), result=found, reused=True)
    if run is None:
        run = run_gate(candidate, spec, data, against=alias, workspace=workspace, progress=progress)
    if not run.passed:
        failed = ", ".join(f"{o.kind} {o.name}" for o in run.report.failures)
        again = " (a recorded result; --rerun runs the gate again)" if run.reused else ""
        raise GateFailedError(
            f"{candidate.label} was not promoted to {alias}: the gate failed ({failed}); "
            f"gate result {run.result.id[:12]}{again}",
            gate_run=run,
        )
    event = move_alias(
        name,
        candidate.number,
        alias,
        reason=reason.strip() or f"passed {spec.path} on {run.report.data}",
        expected_current=current,
        gate_result_id=run.result.id,
        workspace=workspace,
    )
    return Promotion(candidate, alias, event, run)
