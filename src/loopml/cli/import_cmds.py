"""``loopml import …``: bring runs recorded by other tools into the workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from loopml.cli.output import RichProgress, err, human_bytes, out

__all__ = ["app"]

app = typer.Typer(help="Import runs from other tracking tools (MLflow).", no_args_is_help=True)


@app.command("mlflow")
def mlflow(
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            "--tracking-uri",
            "-u",
            help="MLflow's database, e.g. sqlite:///mlflow.db (or file:./mlruns).",
        ),
    ] = None,
    source: Annotated[
        Path | None, typer.Option("--from", help="MLflow's file store folder, e.g. ./mlruns.")
    ] = None,
) -> None:
    """Import MLflow experiments, runs, params, metric histories, tags and local artifacts.

    Runs imported before (tag mlflow.run_id) are skipped, so importing again adds only new runs.
    """
    from loopml.store.workspace import Workspace
    from loopml.tracking.importers.mlflow import import_mlflow

    with Workspace.open() as workspace:
        result = import_mlflow(
            workspace, tracking_uri=tracking_uri, mlruns=source, progress=RichProgress()
        )
    for original, renamed in sorted(result.renamed_experiments.items()):
        err.print(f"note: MLflow experiment {original!r} is named {renamed!r} in loopml")
    for warning in result.warnings:
        err.print(f"warning: {warning}")
    skipped = f" ({result.skipped_runs} already imported, skipped)" if result.skipped_runs else ""
    out.print(
        f"imported from {result.source}: {result.experiments} experiments, "
        f"{result.runs} runs{skipped}, {result.params} params, "
        f"{result.metric_points} metric points, {result.tags} tags, "
        f"{result.artifacts} artifacts ({result.artifact_files} files, "
        f"{human_bytes(result.artifact_bytes)})"
    )
