"""The Python verbs of gates: ``run_gate``, ``promote`` and ``gate_results``, by reference.

``loopml gate run`` and ``loopml models promote`` call these same functions.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from loopml.refs import Ref
from loopml.registry.gating.promote import Promotion
from loopml.registry.gating.promote import promote as _promote
from loopml.registry.gating.report import GateReport
from loopml.registry.gating.runner import GateRun, report_of
from loopml.registry.gating.runner import run_gate as _run_gate
from loopml.registry.gating.spec import GateSpec
from loopml.registry.model import GateResult

if TYPE_CHECKING:
    from loopml.store.workspace import Workspace

__all__ = ["gate_report", "gate_results", "promote", "run_gate"]


def _resolve(
    ref: str | Ref, version: str | int | None, workspace: Workspace | None
) -> tuple[Workspace, Ref]:
    from loopml.registry.api import _workspace, model_ref

    return _workspace(workspace), model_ref(ref, version)


def run_gate(
    ref: str | Ref,
    gate: str | Path | GateSpec,
    data: str,
    *,
    version: str | int | None = None,
    against: str | None = "champion",
    workspace: Workspace | None = None,
    progress: Callable[[str], None] | None = None,
) -> GateRun:
    """Run the gate file ``gate`` on model ``ref`` (``churn@7``) with holdout ``data``.

    The result is recorded in the registry (keyed by gate file, data, model and champion
    version); ``.passed`` and ``.report`` tell what happened. ``against``: the alias (or
    version) to test for regression against; ``None`` skips that comparison.
    """
    from loopml.registry.repository import ModelRepository

    ws, parsed = _resolve(ref, version, workspace)
    candidate = ModelRepository(ws.metadata).resolve(parsed)
    return _run_gate(candidate, gate, data, against=against, workspace=ws, progress=progress)


def promote(
    ref: str | Ref,
    version: str | int | None = None,
    *,
    to: str = "champion",
    gate: str | Path | None = None,
    data: str | None = None,
    force: bool = False,
    reason: str = "",
    rerun: bool = False,
    workspace: Workspace | None = None,
    progress: Callable[[str], None] | None = None,
) -> Promotion:
    """Move alias ``to`` to the version ``ref`` names if it passes the gate.

    Raises :class:`~loopml.registry.errors.GateFailedError` (with ``.gate_run``) when it does
    not. A recorded result for the same version, gate file, data and champion is reused unless
    ``rerun``. ``force`` with a ``reason`` moves the alias without a gate, recorded as forced.
    """
    from loopml.errors import UserInputError
    from loopml.registry.repository import ModelRepository

    ws, parsed = _resolve(ref, version, workspace)
    if not parsed.explicit:
        raise UserInputError(f"name the version to promote, e.g. {parsed.name}@v1")
    candidate = ModelRepository(ws.metadata).resolve(parsed)
    return _promote(
        candidate,
        to=to,
        gate=gate,
        data=data,
        force=force,
        reason=reason,
        rerun=rerun,
        workspace=ws,
        progress=progress,
    )


def gate_results(
    ref: str | Ref, version: str | int | None = None, *, workspace: Workspace | None = None
) -> list[GateResult]:
    """Every gate result of a model version, newest first."""
    from loopml.registry.gates import GateResults
    from loopml.registry.repository import ModelRepository

    ws, parsed = _resolve(ref, version, workspace)
    found = ModelRepository(ws.metadata).resolve(parsed)
    return GateResults(ws.metadata).for_version(found.id)


def gate_report(result: GateResult) -> GateReport:
    """The full report a gate result keeps (checks, metrics, slices, confusion matrix)."""
    return report_of(result)
