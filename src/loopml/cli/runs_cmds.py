"""``loopml runs …``: list, show, compare, export, delete, restore, plot and reap runs."""

from __future__ import annotations

import datetime as dt
import math
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from loopml.cli.output import human_bytes, out, print_table

if TYPE_CHECKING:
    from loopml.store.workspace import Workspace
    from loopml.tracking.compare import ComparedRow, RunComparison, RunListing
    from loopml.tracking.sql_store import SqlTrackingStore

__all__ = ["app"]

app = typer.Typer(
    help="Experiment runs: ls, show, compare, export, delete, restore, plot, gc.",
    no_args_is_help=True,
)

_RUNS_ARG = typer.Argument(help="Run ids or unique id prefixes.")


@contextmanager
def _tracking() -> Iterator[tuple[Workspace, SqlTrackingStore]]:
    from loopml.store.workspace import Workspace
    from loopml.tracking.sql_store import SqlTrackingStore

    with Workspace.open() as workspace:
        yield workspace, SqlTrackingStore(workspace.metadata)


def _when(epoch_ms: int | None) -> str:
    if epoch_ms is None:
        return ""
    return dt.datetime.fromtimestamp(epoch_ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def _duration(ms: int | None) -> str:
    if ms is None:
        return ""
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _number(value: float | None) -> str:
    if value is None:
        return ""
    if not out.is_terminal:
        return repr(float(value))  # piped: every digit
    if math.isnan(value) or math.isinf(value):
        return str(value)
    return f"{value:.6g}"


def _cell(value: str | float | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return _number(value)
    return value


def _section(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A titled table on a terminal; ``# title`` then tab-separated lines when piped."""
    if not rows:
        return
    if out.is_terminal:
        print_table(columns, rows, title=title)
        return
    sys.stdout.write(f"# {title}\n")
    print_table(columns, rows)


@app.command("ls")
def ls(
    experiment: Annotated[
        list[str] | None, typer.Option("--experiment", "-e", help="Only this experiment.")
    ] = None,
    filter_string: Annotated[
        str | None,
        typer.Option("--filter", "-f", help="e.g. \"metrics.acc > 0.9 and params.depth = '8'\"."),
    ] = None,
    sort: Annotated[
        list[str] | None,
        typer.Option("--sort", "-s", help="e.g. 'metrics.acc DESC' (repeatable)."),
    ] = None,
    max_results: Annotated[int, typer.Option("--max", "-n", help="At most this many runs.")] = 100,
    deleted: Annotated[bool, typer.Option("--deleted", help="Include deleted runs.")] = False,
    steps: Annotated[
        bool, typer.Option("--steps", help="Include the child runs of pipeline steps.")
    ] = False,
) -> None:
    """List runs, newest first: status, duration, params and latest metrics.

    Pipeline steps' child runs are left out unless --steps (`loopml runs dag RUN` shows them).
    """
    from loopml.tracking.compare import list_runs

    with _tracking() as (_, store):
        listing = list_runs(
            store,
            experiments=experiment,
            filter_string=filter_string,
            order_by=sort,
            max_results=max_results,
            include_deleted=deleted,
            include_steps=steps,
        )
    if not listing.rows:
        if out.is_terminal:
            out.print("no runs; `loopml.start_run()` records one")
        return
    _print_listing(listing)


def _print_listing(listing: RunListing) -> None:
    base = ["run", "experiment", "name", "status", "started", "duration"]
    params, metrics = list(listing.param_keys), list(listing.metric_keys)
    rows = [
        [
            r.prefix,
            r.experiment,
            r.name,
            r.status,
            _when(r.start_time),
            _duration(r.duration_ms),
        ]
        for r in listing.rows
    ]
    hidden = 0
    if out.is_terminal:
        # Keep the columns that fit the terminal; piped output has them all.
        width = sum(
            max(len(c), *(len(str(row[i])) for row in rows)) + 3 for i, c in enumerate(base)
        )
        kept_params: list[str] = []
        kept_metrics: list[str] = []
        for kind, key in [("p", k) for k in params] + [("m", k) for k in metrics]:
            values = [
                (r.params.get(key, "") if kind == "p" else _number(r.metrics.get(key)))
                for r in listing.rows
            ]
            need = max(len(key) + 7, *(len(v) for v in values)) + 3
            if width + need > max(out.width, 80):
                hidden += 1
                continue
            width += need
            (kept_params if kind == "p" else kept_metrics).append(key)
        params, metrics = kept_params, kept_metrics
    columns = base + [f"params.{k}" for k in params] + [f"metrics.{k}" for k in metrics]
    for row, run in zip(rows, listing.rows, strict=True):
        row.extend(run.params.get(k, "") for k in params)
        row.extend(_number(run.metrics.get(k)) for k in metrics)
    print_table(columns, rows)
    if hidden:
        out.print(f"{hidden} more param/metric columns; pipe the output (| cat) to see them all")


@app.command("show")
def show(run: Annotated[str, typer.Argument(help="Run id or unique id prefix.")]) -> None:
    """Show a run: info, params, metrics, tags, artifacts, inputs, manifest and children."""
    from loopml.tracking.compare import run_details

    with _tracking() as (workspace, store):
        details = run_details(store, workspace.objects, run)
    info = details.run
    rows: list[tuple[str, str]] = [
        ("id", info.id),
        ("experiment", info.experiment),
        ("name", info.name),
        ("status", info.status.value + (" (deleted)" if info.deleted else "")),
        ("started", _when(info.start_time)),
        ("ended", _when(info.end_time)),
        ("duration", _duration(info.duration_ms)),
        ("user", info.user),
        ("host", info.host),
    ]
    if details.parent_prefix:
        rows.append(("parent", details.parent_prefix))
    if info.error_type or info.error_message:
        rows.append(("error", f"{info.error_type or ''}: {info.error_message or ''}".strip(": ")))
    manifest = details.manifest
    if manifest.git_commit:
        dirty = " (uncommitted changes)" if manifest.git_dirty else ""
        rows.append(("git commit", manifest.git_commit + dirty))
    if manifest.git_branch:
        rows.append(("git branch", manifest.git_branch))
    if manifest.diff_hash:
        rows.append(("diff hash", manifest.diff_hash))
    if manifest.python:
        rows.append(("python", manifest.python))
    if manifest.platform:
        rows.append(("platform", manifest.platform))
    if manifest.command:
        rows.append(("command", " ".join(manifest.command)))
    if manifest.seeds:
        rows.append(("seeds", ", ".join(f"{k}={v}" for k, v in sorted(manifest.seeds.items()))))
    if info.manifest_hash:
        rows.append(("manifest", info.manifest_hash[:12]))
    _section("run", ["field", "value"], [(k, v) for k, v in rows if v])
    _section("params", ["param", "value"], sorted(info.params.items()))
    _section(
        "metrics",
        ["metric", "latest"],
        [(k, _number(v)) for k, v in sorted(info.metrics.items())],
    )
    _section("tags", ["tag", "value"], sorted(info.tags.items()))
    _section(
        "artifacts",
        ["path", "kind", "size", "digest"],
        [
            (a.path, a.kind, human_bytes(a.size) if out.is_terminal else a.size, a.digest[:12])
            for a in info.artifacts
        ],
    )
    _section(
        "inputs",
        ["dataset", "hash"],
        [(f"{i.dataset}@v{i.version}", i.hash[:12]) for i in info.inputs],
    )
    _section("children", ["run", "name", "status"], details.children)


def _comparison_section(
    title: str, prefixes: Sequence[str], compared: Sequence[ComparedRow], key: str
) -> None:
    if not compared:
        return
    columns = [key, *prefixes]
    if out.is_terminal:
        from rich.table import Table

        table = Table(title=title, title_justify="left", header_style="bold")
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in compared:
            table.add_row(
                row.key,
                *(_cell(v) for v in row.values),
                style="bold yellow" if row.differs else None,
            )
        out.print(table)
        return
    sys.stdout.write(f"# {title}\n")
    print_table(
        [*columns, "differs"],
        [
            [row.key, *(_cell(v) for v in row.values), "*" if row.differs else ""]
            for row in compared
        ],
    )


@app.command("compare")
def compare(runs: Annotated[list[str], _RUNS_ARG]) -> None:
    """Compare runs side by side: params, final metrics, code, data and packages."""
    from loopml.tracking.compare import compare_runs

    with _tracking() as (workspace, store):
        result = compare_runs(store, workspace.objects, runs)
    prefixes = result.prefixes
    _comparison_section("runs", prefixes, _run_rows(result), "run")
    _comparison_section("params", prefixes, result.params, "param")
    _comparison_section("metrics (final)", prefixes, result.metrics, "metric")
    _comparison_section("code", prefixes, result.code, "code")
    _comparison_section("data", prefixes, result.data, "dataset")
    _comparison_section("environment", prefixes, result.environment, "package")
    if out.is_terminal:
        out.print("rows in yellow differ between the runs")


def _run_rows(result: RunComparison) -> list[ComparedRow]:
    from loopml.tracking.compare import ComparedRow

    infos = result.runs
    return [
        ComparedRow("name", tuple(r.name for r in infos)),
        ComparedRow("experiment", tuple(r.experiment for r in infos)),
        ComparedRow("status", tuple(r.status.value for r in infos)),
        ComparedRow("started", tuple(_when(r.start_time) for r in infos)),
        ComparedRow("duration", tuple(_duration(r.duration_ms) for r in infos)),
    ]


@app.command("export")
def export(
    run: Annotated[str, typer.Argument(help="Run id or unique id prefix.")],
    to: Annotated[Path, typer.Option("--to", help="Folder to write (must be empty).")],
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Write into a folder that is not empty.")
    ] = False,
) -> None:
    """Write run.json (info, params, full metric history, tags, manifest) and the artifacts."""
    from loopml.tracking.export import export_run

    with _tracking() as (workspace, store):
        result = export_run(store, workspace.objects, run, to, force=force)
    out.print(
        f"exported run {result.run_id} to {result.directory}: run.json "
        f"({result.metric_points} metric points), {result.files} artifact files "
        f"({human_bytes(result.bytes)})"
    )


def _set_deleted(runs: Sequence[str], deleted: bool) -> None:
    from loopml.tracking.compare import id_prefixes, resolve_runs

    verb = "deleted" if deleted else "restored"
    with _tracking() as (_, store):
        ids = resolve_runs(store, runs)
        store.set_deleted(ids, deleted)
        prefixes = id_prefixes(store, ids)
    for ident in ids:
        out.print(f"{verb} run {prefixes[ident]}")


@app.command("delete")
def delete(runs: Annotated[list[str], _RUNS_ARG]) -> None:
    """Hide runs (soft delete): `runs ls --deleted` still lists them, `runs restore` undoes it."""
    _set_deleted(runs, True)


@app.command("restore")
def restore(runs: Annotated[list[str], _RUNS_ARG]) -> None:
    """Undo `runs delete`."""
    _set_deleted(runs, False)


@app.command("plot")
def plot(
    runs: Annotated[list[str], _RUNS_ARG],
    metric: Annotated[str, typer.Option("--metric", "-m", help="Metric to draw.")],
    to: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="A .png or .html file (default: METRIC.png)."),
    ] = None,
) -> None:
    """Draw a metric's history (step on x) for each run and save the chart."""
    from loopml.tracking.plot import plot_metric

    with _tracking() as (_, store):
        result = plot_metric(store, runs, metric, to)
    out.print(str(result.path))


@app.command("gc")
def gc() -> None:
    """Mark crashed the running runs whose heartbeat stopped or whose process is gone."""
    from loopml.tracking.compare import id_prefixes

    with _tracking() as (_, store):
        crashed = store.reap_crashed()
        prefixes = id_prefixes(store, crashed)
        names = {ident: store.get_run(ident).name for ident in crashed}
    if not crashed:
        out.print("no crashed runs")
        return
    for ident in crashed:
        out.print(f"marked crashed: run {prefixes[ident]} ({names[ident]})")
