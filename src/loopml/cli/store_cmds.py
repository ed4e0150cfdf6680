"""Workspace-level commands: remotes, push, pull, fsck and gc."""

from __future__ import annotations

from typing import Annotated

import typer

from loopml.cli.output import RichProgress, err, human_bytes, out, print_table
from loopml.errors import UserInputError

__all__ = ["register", "remote_app"]

remote_app = typer.Typer(
    help="Configure remotes that push and pull exchange data with.", no_args_is_help=True
)


@remote_app.command("add")
def remote_add(
    name: Annotated[str, typer.Argument(help="Remote name, e.g. origin.")],
    url: Annotated[str, typer.Argument(help="A folder path or s3://bucket/prefix.")],
    default: Annotated[bool, typer.Option("--default", "-d", help="Make it the default.")] = False,
) -> None:
    """Add or change a remote (written to loopml.toml, so commit it)."""
    from loopml.store.remotes import add_remote
    from loopml.store.workspace import Workspace

    with Workspace.open() as workspace:
        remote = add_remote(workspace, name, url, default=default)
    out.print(f"remote {remote.name} → {remote.url}")


@remote_app.command("ls")
def remote_ls() -> None:
    """List remotes."""
    from loopml.store.remotes import list_remotes
    from loopml.store.workspace import Workspace

    with Workspace.open() as workspace:
        default = workspace.settings.default_remote
        rows = [
            (r.name, r.url, "yes" if r.name == default else "") for r in list_remotes(workspace)
        ]
    print_table(["name", "url", "default"], rows)


@remote_app.command("remove")
def remote_remove(name: Annotated[str, typer.Argument(help="Remote to forget.")]) -> None:
    """Forget a remote (nothing stored on it is deleted)."""
    from loopml.store.remotes import remove_remote
    from loopml.store.workspace import Workspace

    with Workspace.open() as workspace:
        remove_remote(workspace, name)
    out.print(f"removed remote {name}")


def push(
    datasets: Annotated[list[str] | None, typer.Argument(help="Datasets (default: all).")] = None,
    remote: Annotated[str | None, typer.Option("--remote", "-r", help="Remote name.")] = None,
) -> None:
    """Send datasets (all versions) and their records to a remote; only missing objects move."""
    from loopml.data.sync import push as do_push
    from loopml.store.workspace import Workspace

    with Workspace.open() as workspace:
        result = do_push(workspace, datasets, remote=remote, progress=RichProgress())
    out.print(
        f"pushed {result.datasets} datasets to {result.remote}: {result.objects_sent} objects "
        f"sent ({human_bytes(result.bytes_sent)}), {result.objects_present} already there"
    )


def pull(
    datasets: Annotated[
        list[str] | None, typer.Argument(help="Datasets (default: loopml.lock's).")
    ] = None,
    remote: Annotated[str | None, typer.Option("--remote", "-r", help="Remote name.")] = None,
    all_versions: Annotated[
        bool, typer.Option("--all-versions", help="Fetch every version, not just the current one.")
    ] = False,
) -> None:
    """Fetch dataset records and objects from a remote; then `loopml data checkout` restores."""
    from loopml.data.sync import pull as do_pull
    from loopml.store.workspace import Workspace

    with Workspace.open() as workspace:
        result = do_pull(
            workspace, datasets, remote=remote, all_versions=all_versions, progress=RichProgress()
        )
    out.print(
        f"pulled {result.datasets} datasets from {result.remote}: {result.objects_sent} objects "
        f"received ({human_bytes(result.bytes_sent)}), {result.objects_present} already here, "
        f"{result.versions_received} new version records"
    )


def fsck() -> None:
    """Verify every object (packs included) and that every record's objects exist."""
    from loopml.store.fsck import check_store
    from loopml.store.workspace import Workspace

    with Workspace.open() as workspace:
        report = check_store(workspace)
    for problem in report.problems:
        out.print(f"{problem.kind}: {problem.digest} ({problem.location})")
    for leftover in report.leftovers:
        err.print(
            f"note: leftover of an interrupted write: {leftover} (`loopml gc --yes` removes it)"
        )
    if not report.ok:
        err.print(f"fsck: {len(report.problems)} problems in {report.checked} objects")
        raise typer.Exit(1)
    out.print(f"fsck: {report.checked} objects verified, no problems")


def gc(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete (default: dry run).")] = False,
    grace: Annotated[
        float,
        typer.Option(help="Keep unreachable objects younger than this many seconds."),
    ] = 900.0,
) -> None:
    """Remove objects no dataset version, run, model or pin reaches (dry run by default)."""
    from loopml.store.gc import collect_garbage
    from loopml.store.workspace import Workspace

    if grace < 0:
        raise UserInputError("--grace must be zero or more seconds")
    with Workspace.open() as workspace:
        report = collect_garbage(workspace, dry_run=not yes, grace_seconds=grace)
    verb = "would remove" if report.dry_run else "removed"
    out.print(
        f"gc: {report.reachable} objects reachable; {verb} {len(report.unreachable)} unreachable "
        f"({human_bytes(report.unreachable_bytes)}) and {len(report.leftovers)} leftovers"
    )
    if report.kept_recent:
        out.print(f"gc: kept {report.kept_recent} unreachable objects younger than {grace:g} s")
    if report.dry_run and (report.unreachable or report.leftovers):
        out.print("run `loopml gc --yes` to delete them")


def register(app: typer.Typer) -> None:
    """Attach the top-level commands of this module to ``app``."""
    app.command()(push)
    app.command()(pull)
    app.command()(fsck)
    app.command()(gc)
