"""``loopml run``, ``resume``, ``reproduce``, ``lineage`` and ``runs dag``: pipelines from a shell.

The commands parse arguments and print; the work is done by ``loopml.pipelines`` (``Pipeline``,
``resume``, ``reproduce``, ``lineage``, ``dag``). Heavy modules are imported inside the
commands so that ``loopml --help`` stays fast.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from loopml.cli.output import err, out, print_table

if TYPE_CHECKING:
    from loopml.pipelines.errors import StepFailedError
    from loopml.pipelines.lineage import LineageNode
    from loopml.pipelines.reproduce import CodeChange, Reproduction
    from loopml.pipelines.runner import PipelineRun, PlannedStep, StepResult
    from loopml.store.workspace import Workspace

__all__ = ["parse_params", "register"]

_STYLES = {"ran": "green", "cached": "dim", "failed": "bold red", "not run": "yellow"}


def register(app: typer.Typer) -> None:
    """Add the pipeline commands to the ``loopml`` app (``dag`` belongs to ``loopml runs``)."""
    app.command("run")(run_pipeline)
    app.command("resume")(resume)
    app.command("reproduce")(reproduce)
    app.command("lineage")(lineage)


# -- parameters ------------------------------------------------------------------------------


def _yaml_value(text: str, where: str) -> Any:
    import yaml

    from loopml.errors import UserInputError

    if not text.strip():
        return ""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        reason = str(getattr(exc, "problem", None) or exc).splitlines()[0]
        raise UserInputError(f"{where}: {text!r} is not a YAML value ({reason})") from None
    return _plain(value, text)


def _plain(value: Any, text: str | None = None) -> Any:
    """YAML dates stay the text they were written as (parameters are JSON)."""
    if isinstance(value, dt.date | dt.datetime):
        return text if text is not None else value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def parse_params(pairs: list[str], file: Path | None) -> dict[str, Any]:
    """Parameters from a YAML mapping file, then ``NAME=VALUE`` pairs (YAML values) over it."""
    values: dict[str, Any] = {}
    if file is None and not pairs:
        return values
    import yaml

    from loopml.errors import UserInputError

    if file is not None:
        try:
            loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise UserInputError(f"cannot read {file}: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            reason = str(getattr(exc, "problem", None) or exc).splitlines()[0]
            raise UserInputError(f"{file} is not valid YAML: {reason}") from None
        loaded = {} if loaded is None else loaded
        if not isinstance(loaded, dict) or not all(isinstance(k, str) for k in loaded):
            raise UserInputError(f"{file} must be a YAML mapping of parameter names to values")
        values.update({k: _plain(v) for k, v in loaded.items()})
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UserInputError(f"--param expects NAME=VALUE, got {pair!r}")
        values[name] = _yaml_value(text, f"--param {name}")
    return values


# -- printing --------------------------------------------------------------------------------


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}s"


def _step_line(result: StepResult) -> None:
    """One line per finished step: name, status, duration."""
    if out.is_terminal:
        from rich.text import Text

        out.print(
            Text.assemble(
                (f"{result.name:<24} ", "bold"),
                (f"{result.status:<7}", _STYLES.get(result.status, "")),
                f" {_seconds(result.duration):>8}",
            )
        )
    else:
        sys.stdout.write(f"{result.name}\t{result.status}\t{_seconds(result.duration)}\n")
        sys.stdout.flush()


def _prefix(workspace: Workspace, run_id: str) -> str:
    from loopml.tracking.sql_store import SqlTrackingStore

    return SqlTrackingStore(workspace=workspace).id_prefixes([run_id])[run_id]


def _summary(workspace: Workspace, run: PipelineRun, verb: str = "") -> None:
    counts: dict[str, int] = {}
    for step in run.steps:
        counts[step.status] = counts.get(step.status, 0) + 1
    counted = ", ".join(f"{n} {status}" for status, n in counts.items()) or "no steps"
    out.print(f"run {_prefix(workspace, run.id)} {run.status}{verb}: {counted}")


def _report_failure(workspace: Workspace, exc: StepFailedError, verb: str = "") -> None:
    from rich.text import Text

    run: PipelineRun | None = getattr(exc, "pipeline_run", None)
    if run is not None:
        _summary(workspace, run, verb)
    err.print(Text.assemble(("error: ", "bold red"), str(exc)))
    first, _, rest = exc.user_traceback.partition("\n")
    lines = (rest if str(exc).endswith(first) else exc.user_traceback).rstrip("\n").splitlines()
    frames = next((i for i, line in enumerate(lines) if line.startswith('  File "')), None)
    if frames is not None:
        lines.insert(frames, "Traceback (most recent call last):")
    if lines and lines != [first]:
        err.print("\n".join(lines))


def _print_plan(planned: list[PlannedStep]) -> None:
    rows = [(p.name, "would run" if p.action == "run" else "cached", p.reason) for p in planned]
    print_table(["step", "action", "reason"], rows)


# -- commands --------------------------------------------------------------------------------


def run_pipeline(
    target: Annotated[str, typer.Argument(help="The pipeline: path/to/flow.py:pipeline_name.")],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="NAME=VALUE, the value read as YAML (repeatable)."),
    ] = None,
    params_file: Annotated[
        Path | None,
        typer.Option("--params", help="A YAML file of parameters (--param overrides it)."),
    ] = None,
    executor: Annotated[str, typer.Option("--executor", help="local or ray.")] = "local",
    workers: Annotated[
        int, typer.Option("--workers", "-w", min=1, help="Steps run at once (local executor).")
    ] = 1,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Run every step.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would run and why; run nothing.")
    ] = False,
    only: Annotated[
        str | None,
        typer.Option("--only", help="Run this step (its upstream steps must be cached)."),
    ] = None,
    start_from: Annotated[
        str | None, typer.Option("--from", help="Run this step and all after it, cache off.")
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="A Ray cluster (default: local Ray).")
    ] = None,
) -> None:
    """Run a pipeline: one line per step as it finishes, then the run id and its status."""
    from loopml.errors import UserInputError
    from loopml.pipelines.errors import StepFailedError
    from loopml.pipelines.resume import load_pipeline, session_workspace
    from loopml.pipelines.runner import RunOptions

    if executor not in ("local", "ray"):
        raise UserInputError(f"unknown executor {executor!r}; use local or ray")
    if only is not None and start_from is not None:
        raise UserInputError("use --only or --from, not both")
    params = parse_params(param or [], params_file)
    pipe = load_pipeline(target)
    options = RunOptions(
        executor=executor,
        workers=workers,
        cache=not no_cache,
        only=only,
        start_from=start_from,
        ray_address=ray_address,
        on_step=_step_line,
    )
    if dry_run:
        from loopml.store.workspace import Workspace

        with Workspace.open() as workspace:
            _print_plan(pipe.plan(params, workspace=workspace, options=options))
        return
    workspace = session_workspace()
    try:
        result = pipe.run(params, workspace=workspace, options=options)
    except StepFailedError as exc:
        _report_failure(workspace, exc)
        raise typer.Exit(1) from None
    _summary(workspace, result)


def resume(
    run: Annotated[str, typer.Argument(help="A failed pipeline run: id or unique id prefix.")],
    executor: Annotated[
        str | None, typer.Option("--executor", help="local or ray (default: as the run).")
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", "-w", min=1, help="Steps run at once (local executor).")
    ] = 1,
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="A Ray cluster (default: local Ray).")
    ] = None,
) -> None:
    """Continue a failed pipeline run: completed steps are kept, the rest runs again.

    The same run goes on (its id does not change): the failed steps' records are replaced by
    the new attempt's, and the run ends finished or failed again.
    """
    from loopml.errors import UserInputError
    from loopml.pipelines.errors import StepFailedError
    from loopml.pipelines.resume import resume_run, session_workspace

    if executor not in (None, "local", "ray"):
        raise UserInputError(f"unknown executor {executor!r}; use local or ray")
    workspace = session_workspace()
    try:
        result = resume_run(
            run,
            workspace=workspace,
            executor=executor,
            workers=workers,
            ray_address=ray_address,
            on_step=_step_line,
        )
    except StepFailedError as exc:
        _report_failure(workspace, exc, " (resumed)")
        raise typer.Exit(1) from None
    _summary(workspace, result, " (resumed)")


def reproduce(
    run: Annotated[str, typer.Argument(help="A pipeline run: id or unique id prefix.")],
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Run even though the step code changed.")
    ] = False,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, help="Steps run at once.")] = 1,
) -> None:
    """Run a pipeline run again with the cache off, and compare every output with the original.

    Exits 1 when an output differs (the run did not reproduce) and says how it differs.
    """
    from loopml.pipelines.errors import StepFailedError
    from loopml.pipelines.reproduce import reproduce_run
    from loopml.pipelines.resume import session_workspace

    workspace = session_workspace()
    try:
        result = reproduce_run(
            run,
            workspace=workspace,
            force=force,
            workers=workers,
            on_step=_step_line,
            on_code_change=_warn_code_changes,
        )
    except StepFailedError as exc:
        _report_failure(workspace, exc)
        raise typer.Exit(1) from None
    _print_reproduction(workspace, result)
    if not result.identical:
        raise typer.Exit(1)


def _warn_code_changes(changes: list[CodeChange]) -> None:
    for change in changes:
        err.print(f"warning: {change.node}: {change.what} since the run (--force)")


def _print_reproduction(workspace: Workspace, result: Reproduction) -> None:
    metrics = {m.node: m for m in result.metrics}
    rows = []
    for index, compared in enumerate(result.outputs):
        verdict = "identical" if compared.identical else "differs"
        details = "; ".join(compared.details)
        rows.append(
            (compared.node, str(compared.position), verdict, compared.materializer, details)
        )
        following = result.outputs[index + 1].node if index + 1 < len(result.outputs) else None
        logged = metrics.pop(compared.node, None) if following != compared.node else None
        if logged is not None:
            verdict = "identical" if logged.identical else "differs"
            rows.append((logged.node, "metrics", verdict, "metrics", "; ".join(logged.details)))
    if out.is_terminal and rows:
        from rich.table import Table

        table = Table(header_style="bold")
        for column in ("step", "output", "result", "format", "how"):
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*row, style=None if row[2] == "identical" else "bold yellow")
        out.print(table)
    else:
        print_table(["step", "output", "result", "format", "how"], rows)
    for note in result.notes:
        out.print(f"note: {note}")
    same = sum(1 for o in result.outputs if o.identical)
    total = len(result.outputs)
    original = _prefix(workspace, result.original_id)
    fresh = _prefix(workspace, result.reproduced_id)
    differing_metrics = sum(1 for m in result.metrics if not m.identical)
    if result.identical:
        checked = " and their metrics" if result.metrics else ""
        out.print(
            f"run {original} reproduced as run {fresh}: all {total} outputs{checked} identical"
        )
    else:
        metrics_note = (
            f"; the metrics of {differing_metrics} step(s) differ" if differing_metrics else ""
        )
        out.print(
            f"run {original} did not reproduce (run {fresh}): {same} of {total} outputs "
            f"identical, {total - same} differ{metrics_note}"
        )


def lineage(
    artifact: Annotated[
        str,
        typer.Argument(
            help="An object digest (or unique prefix of a step output's), or RUN:STEP[:OUTPUT]."
        ),
    ],
    depth: Annotated[int, typer.Option("--depth", min=1, help="Stop this deep.")] = 50,
) -> None:
    """Show what an artifact was made from: step runs (code, params) down to dataset versions."""
    from loopml.pipelines.lineage import resolve_artifact, walk_lineage
    from loopml.store.workspace import Workspace

    with Workspace.open() as workspace:
        digest, step_run_id = resolve_artifact(workspace, artifact)
        tree = walk_lineage(workspace, digest, step_run_id=step_run_id, max_depth=depth)
        prefixes = _tree_prefixes(workspace, tree)
    for line in _tree_lines(tree, prefixes):
        out.print(line)


def _tree_prefixes(workspace: Workspace, tree: LineageNode) -> dict[str, str]:
    from loopml.tracking.compare import id_prefixes
    from loopml.tracking.sql_store import SqlTrackingStore

    ids: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        stack.extend(node.sources)
        if node.kind == "step_run":
            ids.add(node.ident)
            record = node.details.get("record")
            if record is not None:
                ids.add(record.pipeline_run_id)
    return id_prefixes(SqlTrackingStore(workspace=workspace), ids)


def _values(values: dict[str, Any]) -> str:
    import json

    return ", ".join(
        f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in sorted(values.items())
    )


def _describe(node: LineageNode, prefixes: dict[str, str]) -> tuple[str, list[str]]:
    """The headline of a vertex and its detail lines."""
    role = f"{node.role}: " if node.role and not node.role.startswith("output") else ""
    if node.kind == "object":
        what = ", ".join(
            v for v in (node.details.get("type"), node.details.get("materializer")) if v
        )
        head = f"{role}object {node.ident[:12]}" + (f" ({what})" if what else "")
        others = node.details.get("other_producers")
        extra = [f"also an output of {others} other step run(s)"] if others else []
        return head, extra
    if node.kind == "step_run":
        record = node.details.get("record")
        ident = prefixes.get(node.ident, node.ident[:12])
        where = f"{node.role} of " if node.role.startswith("output") else role
        if record is None:
            return f"{where}step run {ident} (no record)", []
        head = f"{where}step run {ident} {record.node} — {record.step}, {record.status}"
        lines = [
            f"code {record.code_hash[:12]} · pipeline run "
            f"{prefixes.get(record.pipeline_run_id, record.pipeline_run_id[:12])}"
        ]
        params = node.details.get("params") or {}
        lines.append(f"params {_values(params)}" if params else "params none")
        paths = node.details.get("paths") or {}
        for name, digest in sorted(paths.items()):
            lines.append(f"{name}: path (hash {str(digest)[:12]})")
        packages = node.details.get("packages") or {}
        if packages:
            lines.append(f"packages {_values(packages)}")
        return head, lines
    if node.kind == "dataset_version":
        digest = node.details.get("hash")
        suffix = f" (hash {digest[:12]})" if digest else " (no longer recorded)"
        return f"{role}dataset version {node.ident}{suffix}", []
    return f"{role}{node.kind.replace('_', ' ')} {node.ident}", []


def _tree_lines(root: LineageNode, prefixes: dict[str, str]) -> list[str]:
    lines: list[str] = []

    def visit(node: LineageNode, lead: str, tail: str) -> None:
        head, details = _describe(node, prefixes)
        lines.append(lead + head + (" (shown above)" if node.repeated else ""))
        for detail in details:
            lines.append(tail + ("│   " if node.sources else "    ") + detail)
        for index, child in enumerate(node.sources):
            last = index == len(node.sources) - 1
            visit(child, tail + ("└── " if last else "├── "), tail + ("    " if last else "│   "))

    visit(root, "", "")
    return lines


def dag(
    run: Annotated[str, typer.Argument(help="A pipeline run: id or unique id prefix.")],
) -> None:
    """Show a pipeline run's DAG: each step with its status, duration and upstream steps."""
    from loopml.pipelines.dag import pipeline_dag
    from loopml.store.workspace import Workspace

    with Workspace.open() as workspace:
        graph = pipeline_dag(workspace, run)
        prefix = _prefix(workspace, graph.run_id)
    rows = []
    for node in graph.nodes:
        duration = "" if node.duration_ms is None else _seconds(node.duration_ms / 1000)
        rows.append((node, duration, ", ".join(node.upstream)))
    if not out.is_terminal:
        sys.stdout.write(f"# run {prefix} {graph.pipeline} {graph.status}\n")
        print_table(
            ["step", "status", "duration", "upstream"],
            [(n.name, n.status, d, u) for n, d, u in rows],
        )
        return
    from rich.text import Text

    out.print(
        Text.assemble(
            ("run ", "bold"),
            (prefix, "bold"),
            f"  {graph.pipeline}  ",
            (graph.status, _STYLES.get(graph.status, "bold")),
        )
    )
    width = max((len(n.name) + 4 * n.depth + 4 for n, _, _ in rows), default=10)
    for node, duration, upstream in rows:
        name = ("    " * (node.depth - 1) + "└─▶ " if node.depth else "") + node.name
        out.print(
            Text.assemble(
                f"{name:<{width}} ",
                (f"{node.status:<8}", _STYLES.get(node.status, "")),
                f" {duration:>8}",
                (f"   ◀ {upstream}" if upstream else "", "dim"),
            )
        )
