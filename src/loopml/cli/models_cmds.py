"""``loopml models …``: list, show, version, alias, archive and audit registered models."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from loopml.cli.card_cmds import card
from loopml.cli.output import human_bytes, out, print_table

if TYPE_CHECKING:
    from loopml.registry.model import ModelVersion
    from loopml.store.workspace import Workspace

__all__ = ["app"]

app = typer.Typer(
    help="Model registry: ls, show, versions, alias, promote, archive, history, card.",
    no_args_is_help=True,
)
app.command("card")(card)

_REF_HELP = "NAME@REF (churn@v3, churn@3, churn@champion, churn@latest) or NAME."
_VERSION_HELP = "A version (3, v3) or alias, when NAME is given alone."


@contextmanager
def _workspace() -> Iterator[Workspace]:
    from loopml.store.workspace import Workspace

    with Workspace.open() as workspace:
        yield workspace


def _when(epoch_ms: int | None) -> str:
    if epoch_ms is None:
        return ""
    return dt.datetime.fromtimestamp(epoch_ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def _v(number: int | None) -> str:
    return f"v{number}" if number is not None else "-"


def _short(text: str | None, width: int = 12) -> str:
    """A digest or id, shortened on a terminal only (piped output is never truncated)."""
    if not text:
        return ""
    return text[:width] if out.is_terminal else text


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
def ls() -> None:
    """List registered models: versions, latest, aliases."""
    from loopml.registry.api import list_models

    with _workspace() as workspace:
        models = list_models(workspace=workspace)
    if not models:
        if out.is_terminal:
            out.print("no models yet; `loopml.log_model(model, name=...)` inside a run adds one")
        return
    print_table(
        ["name", "versions", "latest", "aliases", "updated"],
        [
            (
                m.name,
                m.version_count,
                _v(m.latest),
                ",".join(f"{alias}=v{number}" for alias, number in m.aliases.items()),
                _when(m.updated_at),
            )
            for m in models
        ],
    )


@app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help=_REF_HELP)],
    version: Annotated[str | None, typer.Argument(help=_VERSION_HELP)] = None,
) -> None:
    """Show one version (the latest by default): framework, run, data, aliases, signature."""
    from loopml.registry.api import get_version
    from loopml.registry.repository import ModelRepository

    with _workspace() as workspace:
        found = get_version(ref, version, workspace=workspace)
        inputs = ModelRepository(workspace.metadata).inputs(found.id)
    _print_version(found)
    _section("datasets", ["dataset", "hash"], [(i.label, _short(i.hash)) for i in inputs])
    signature = found.signature
    if signature is None:
        if out.is_terminal:
            out.print("no signature: the model was logged without X_example")
        return
    _section(
        "signature",
        ["column", "dtype", "nullable", "levels", "min", "max"],
        [
            (
                c.name,
                c.dtype,
                "yes" if c.nullable else "no",
                ",".join(str(v) for v in c.categories) if c.categories is not None else "",
                "" if c.minimum is None else c.minimum,
                "" if c.maximum is None else c.maximum,
            )
            for c in signature.columns
        ],
    )


def _print_version(found: ModelVersion) -> None:
    rows: list[tuple[str, Any]] = [
        ("model", found.model),
        ("version", f"v{found.number}"),
        ("status", found.status),
        ("aliases", ", ".join(found.aliases)),
        ("framework", f"{found.framework} {found.framework_version}"),
        ("class", found.model_class),
        ("flavor", found.flavor),
        ("digest", found.digest),
        ("size", human_bytes(found.size) if out.is_terminal else found.size),
        ("run", found.run_id or ""),
        ("created", _when(found.created_at)),
        ("by", found.created_by),
        ("archived", _when(found.archived_at)),
        ("description", found.description or ""),
        ("id", found.id),
    ]
    if found.signature is not None and found.signature.output is not None:
        output = found.signature.output
        rows.append(("output", output.dtype))
        if output.classes is not None:
            rows.append(("classes", ", ".join(str(c) for c in output.classes)))
    _section("version", ["field", "value"], [(k, v) for k, v in rows if v != ""])


@app.command("versions")
def versions(name: Annotated[str, typer.Argument(help="Model name.")]) -> None:
    """List a model's versions, newest first."""
    from loopml.refs import parse_ref
    from loopml.registry.api import list_versions

    with _workspace() as workspace:
        found = list_versions(parse_ref(name).name, workspace=workspace)
    print_table(
        ["version", "status", "aliases", "framework", "run", "digest", "created", "by"],
        [
            (
                f"v{v.number}",
                v.status,
                ",".join(v.aliases),
                f"{v.framework} {v.framework_version}",
                _short(v.run_id),
                _short(v.digest),
                _when(v.created_at),
                v.created_by,
            )
            for v in reversed(found)
        ],
    )


def _expected(text: str | None) -> tuple[bool, int | None]:
    """``--expect``: (given, version); ``none`` expects the alias to be unset."""
    if text is None:
        return False, None
    from loopml.errors import UserInputError

    cleaned = text.strip().lower()
    if cleaned in ("none", "-", ""):
        return True, None
    digits = cleaned[1:] if cleaned.startswith("v") else cleaned
    if not digits.isdigit() or int(digits) < 1:
        raise UserInputError(f"--expect takes a version (v3 or 3) or 'none', got {text!r}")
    return True, int(digits)


@app.command("alias")
def alias(
    ref: Annotated[str, typer.Argument(help="NAME@REF, or NAME followed by VERSION.")],
    second: Annotated[str, typer.Argument(help="ALIAS (after NAME@REF), or VERSION.")],
    third: Annotated[str | None, typer.Argument(help="ALIAS, after NAME VERSION.")] = None,
    reason: Annotated[
        str, typer.Option("--reason", "-r", help="Why (kept in `models history`).")
    ] = "",
    force: Annotated[
        bool, typer.Option("--force", help="Move a protected alias without a passed gate.")
    ] = False,
    gate: Annotated[
        str | None, typer.Option("--gate", help="Id of the passed gate result that allows it.")
    ] = None,
    expect: Annotated[
        str | None,
        typer.Option(
            "--expect",
            help="Move only if the alias still points to this version ('none': unset); "
            "default: the version it points to when the command starts.",
        ),
    ] = None,
) -> None:
    """Point an alias at a version: `models alias churn@v3 champion --reason "…"`."""
    from loopml.refs import validate_label
    from loopml.registry.api import get_model, model_ref, move_alias

    if third is None:
        target, label = model_ref(ref), second
    else:
        target, label = model_ref(ref, second), third
    if not target.explicit:
        from loopml.errors import UserInputError

        raise UserInputError(
            f"name the version to alias, e.g. {target.name}@v1 {label} or {target.name} 1 {label}"
        )
    validate_label(label, "alias")
    given, expected = _expected(expect)
    with _workspace() as workspace:
        if not given:
            expected = get_model(target.name, workspace=workspace).aliases.get(label)
        event = move_alias(
            target.name,
            str(target).partition("@")[2],
            label,
            reason=reason,
            expected_current=expected,
            gate_result_id=gate,
            force=force,
            workspace=workspace,
        )
        if event is None:
            now = get_model(target.name, workspace=workspace).aliases.get(label)
            out.print(f"{target.name}@{label} already points to v{now}; nothing changed")
            return
    how = " (forced)" if event.forced else (" (gate passed)" if event.gate_result_id else "")
    out.print(f"{target.name}@{label}: {_v(event.from_version)} -> {_v(event.to_version)}{how}")


@app.command("unalias")
def unalias(
    name: Annotated[str, typer.Argument(help="Model name.")],
    label: Annotated[str, typer.Argument(metavar="ALIAS", help="Alias to remove.")],
    reason: Annotated[
        str, typer.Option("--reason", "-r", help="Why (kept in `models history`).")
    ] = "",
    force: Annotated[bool, typer.Option("--force", help="Remove a protected alias.")] = False,
    expect: Annotated[
        str | None,
        typer.Option("--expect", help="Remove only if it still points to this version."),
    ] = None,
) -> None:
    """Remove an alias (recorded in the history like a move)."""
    from loopml.refs import parse_ref
    from loopml.registry.api import get_model, remove_alias

    model = parse_ref(name).name
    given, expected = _expected(expect)
    with _workspace() as workspace:
        if not given:
            expected = get_model(model, workspace=workspace).aliases.get(label)
        event = remove_alias(
            model,
            label,
            reason=reason,
            expected_current=expected,
            force=force,
            workspace=workspace,
        )
    if event is None:
        out.print(f"{model} has no alias {label!r}; nothing changed")
        return
    out.print(f"{model}@{label}: {_v(event.from_version)} -> removed")


@app.command("archive")
def archive(
    ref: Annotated[str, typer.Argument(help="NAME@REF, or NAME followed by VERSION.")],
    version: Annotated[str | None, typer.Argument(help=_VERSION_HELP)] = None,
    restore: Annotated[bool, typer.Option("--restore", help="Undo an archive.")] = False,
) -> None:
    """Archive a version: kept (gc keeps it too), but no longer latest nor aliasable."""
    from loopml.registry.api import archive_version, restore_version

    with _workspace() as workspace:
        if restore:
            found = restore_version(ref, version, workspace=workspace)
        else:
            found = archive_version(ref, version, workspace=workspace)
    out.print(f"{'restored' if restore else 'archived'} {found.label}")


@app.command("history")
def history(
    name: Annotated[str, typer.Argument(help="Model name.")],
    label: Annotated[str | None, typer.Option("--alias", "-a", help="Only this alias.")] = None,
) -> None:
    """Every alias move of a model, oldest first: when, who, from, to, why."""
    from loopml.refs import parse_ref
    from loopml.registry.api import alias_history

    with _workspace() as workspace:
        events = alias_history(parse_ref(name).name, label, workspace=workspace)
    if not events:
        if out.is_terminal:
            out.print("no alias moves yet; `loopml models alias NAME@REF ALIAS` makes one")
        return
    print_table(
        ["when", "alias", "from", "to", "user", "grounds", "reason"],
        [
            (
                _when(e.created_at),
                e.alias,
                _v(e.from_version),
                _v(e.to_version) if e.to_version is not None else "removed",
                e.user,
                "forced"
                if e.forced
                else (f"gate {_short(e.gate_result_id)}" if e.gate_result_id else ""),
                e.reason,
            )
            for e in events
        ],
    )


@app.command("promote")
def promote(
    ref: Annotated[str, typer.Argument(help="NAME@REF (churn@7), or NAME followed by VERSION.")],
    version: Annotated[str | None, typer.Argument(help=_VERSION_HELP)] = None,
    to: Annotated[str, typer.Option("--to", help="The alias to move.")] = "champion",
    gate: Annotated[
        Path | None,
        typer.Option("--gate", "-g", help="Gate file (default: [registry.models.NAME] gate)."),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option("--data", "-d", help="Holdout (default: [registry.models.NAME] holdout)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Move without a gate (needs --reason; recorded).")
    ] = False,
    reason: Annotated[
        str, typer.Option("--reason", "-r", help="Why (kept in `models history`).")
    ] = "",
    rerun: Annotated[
        bool, typer.Option("--rerun", help="Run the gate even if a recorded result applies.")
    ] = False,
) -> None:
    """Run the gate, then point the alias at the version only if it passed (exit 1 if not)."""
    from loopml.cli.gate_cmds import print_gate_run, progress_line
    from loopml.registry.errors import GateFailedError
    from loopml.registry.gating.api import promote as do_promote

    with _workspace() as workspace, progress_line("running the gate") as progress:
        try:
            result = do_promote(
                ref,
                version,
                to=to,
                gate=gate,
                data=data,
                force=force,
                reason=reason,
                rerun=rerun,
                workspace=workspace,
                progress=progress,
            )
        except GateFailedError as exc:
            if exc.gate_run is not None:
                print_gate_run(exc.gate_run)
            raise
    if result.gate is not None:
        print_gate_run(result.gate)
    name = result.version.model
    if result.event is None:
        out.print(f"{name}@{result.alias} already points to v{result.version.number}")
        return
    how = " (forced)" if result.event.forced else " (gate passed)"
    out.print(
        f"{name}@{result.alias}: {_v(result.event.from_version)} -> "
        f"{_v(result.event.to_version)}{how}"
    )
