"""``loopml gate run`` and ``loopml gate ls``: model test suites against a holdout.

``gate run`` exits 0 when every check passed (or was skipped), 1 when one failed, and 2 on bad
input (a missing gate file, a malformed one, a holdout without the label column).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from loopml.cli.output import err, out, print_table

if TYPE_CHECKING:
    from loopml.registry.gating.report import GateReport
    from loopml.registry.gating.runner import GateRun

__all__ = ["app", "print_gate_run", "print_report", "progress_line"]

app = typer.Typer(
    help="Model test suites: run a gate file against a model version on a holdout.",
    no_args_is_help=True,
)

_COLUMNS = ["check", "subject", "value", "threshold", "result", "detail"]


@contextlib.contextmanager
def progress_line(title: str) -> Iterator[Callable[[str], None]]:
    """A spinner naming the check being run, on a terminal; silent when piped."""
    if not err.is_terminal:
        yield lambda _label: None
        return
    with err.status(title) as status:
        yield lambda label: status.update(f"{title}: {label}")


def _result_cell(status: str) -> str:
    if not out.is_terminal:
        return status
    return {"passed": "✔ passed", "failed": "✘ FAILED", "skipped": "- skipped"}.get(status, status)


def print_report(report: GateReport) -> None:
    """The gate's table, then one verdict line."""
    from loopml.registry.gating.report import rows_of

    against = f" against v{report.champion}" if report.champion is not None else ""
    title = (
        f"gate {report.gate_file} on {report.model}@v{report.version}{against}, "
        f"{report.data} ({report.rows} rows)"
    )
    rows = [(*row[:4], _result_cell(row[4]), row[5]) for row in rows_of(report.outcomes)]
    if out.is_terminal:
        print_table(_COLUMNS, rows, title=title)
    else:
        out.print(f"# {title}")
        print_table(_COLUMNS, rows)


def print_gate_run(run: GateRun) -> None:
    """The table and a verdict line (to stderr, so piped tables stay clean)."""
    report = run.report
    print_report(report)
    failed = len(report.failures)
    reused = ""
    if run.reused:
        when = dt.datetime.fromtimestamp(run.result.created_at / 1000).strftime("%Y-%m-%d %H:%M")
        reused = f" (recorded {when}, reused)"
    if failed:
        err.print(
            f"FAILED: {failed} of {len(report.outcomes)} checks failed; gate result "
            f"{run.result.id}{reused}"
        )
    else:
        err.print(f"passed: {len(report.outcomes)} checks; gate result {run.result.id}{reused}")


@app.command("run")
def run(
    ref: Annotated[str, typer.Argument(help="The candidate: NAME@REF (churn@7) or NAME.")],
    version: Annotated[str | None, typer.Argument(help="A version, when NAME is alone.")] = None,
    gate: Annotated[
        Path, typer.Option("--gate", "-g", help="The gate file (YAML, or Python with GATE).")
    ] = Path("gates.yaml"),
    data: Annotated[
        str, typer.Option("--data", "-d", help="Holdout: a dataset version or a Parquet/CSV file.")
    ] = "",
    against: Annotated[
        str,
        typer.Option(
            "--against",
            help="Alias or version to test for regression against ('none' to skip).",
        ),
    ] = "champion",
) -> None:
    """Run a gate file on a model version with a holdout; record it; exit 1 on any failure."""
    from loopml.errors import UserInputError
    from loopml.registry.gating.api import run_gate
    from loopml.store.workspace import Workspace

    if not data:
        raise UserInputError("give the holdout with --data, e.g. --data holdout@v2")
    compare = None if against.strip().lower() in ("none", "-", "") else against
    with Workspace.open() as workspace, progress_line("running the gate") as progress:
        result = run_gate(
            ref,
            gate,
            data,
            version=version,
            against=compare,
            workspace=workspace,
            progress=progress,
        )
    print_gate_run(result)
    if not result.passed:
        raise typer.Exit(1)


@app.command("ls")
def ls(
    ref: Annotated[str, typer.Argument(help="NAME@REF (churn@7) or NAME (its latest).")],
    version: Annotated[str | None, typer.Argument(help="A version, when NAME is alone.")] = None,
    show: Annotated[
        str | None, typer.Option("--show", help="Print the full table of this result id.")
    ] = None,
) -> None:
    """Gate results recorded for a model version, newest first."""
    from loopml.registry.gating.api import gate_report, gate_results
    from loopml.store.workspace import Workspace

    with Workspace.open() as workspace:
        results = gate_results(ref, version, workspace=workspace)
    if show is not None:
        chosen = [r for r in results if r.id.startswith(show)]
        if len(chosen) != 1:
            from loopml.errors import UserInputError

            raise UserInputError(f"{show!r} matches {len(chosen)} gate results of {ref}")
        print_report(gate_report(chosen[0]))
        return
    rows = []
    for result in results:
        report = gate_report(result)
        rows.append(
            (
                result.id if not out.is_terminal else result.id[:12],
                dt.datetime.fromtimestamp(result.created_at / 1000).strftime("%Y-%m-%d %H:%M"),
                "passed" if result.passed else "FAILED",
                report.gate_file,
                report.data,
                f"v{report.champion}" if report.champion is not None else "-",
                f"{len(report.failures)}/{len(report.outcomes)}",
                result.user,
            )
        )
    if not rows:
        out.print(f"no gate has been run on {ref} yet (`loopml gate run {ref} --data …`)")
        return
    print_table(["id", "when", "result", "gate", "data", "against", "failed", "user"], rows)
