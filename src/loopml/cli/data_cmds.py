"""``loopml data …``: version files and folders."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from loopml.cli.output import RichProgress, human_bytes, out, print_table

__all__ = ["app"]

app = typer.Typer(
    help="Version datasets: add, status, ls, log, diff, tag, checkout.", no_args_is_help=True
)


def _when(epoch_ms: int) -> str:
    return dt.datetime.fromtimestamp(epoch_ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


@app.command("add")
def add(
    path: Annotated[Path, typer.Argument(help="File or folder inside the workspace.")],
    name: Annotated[
        str | None,
        typer.Option("--name", "-n", help="Dataset name (default: the file or folder name)."),
    ] = None,
    message: Annotated[str | None, typer.Option("--message", "-m", help="What changed.")] = None,
) -> None:
    """Record PATH as a new dataset version (nothing new if its content is unchanged)."""
    from loopml.data.versioning import add_dataset
    from loopml.store.workspace import Workspace

    with Workspace.open() as workspace:
        result = add_dataset(workspace, path, name=name, message=message, progress=RichProgress())
    version = result.version
    if result.created:
        out.print(
            f"added {version.label} ({version.file_count} files, {human_bytes(version.size)}, "
            f"{result.files_read} read) {version.hash[:12]}"
        )
    else:
        out.print(f"unchanged: {version.label} already has this content ({version.hash[:12]})")


@app.command("status")
def status(
    names: Annotated[list[str] | None, typer.Argument(help="Datasets (default: all).")] = None,
) -> None:
    """Show files added, modified or deleted since each dataset's latest version."""
    from loopml.data.status import dataset_status
    from loopml.store.workspace import Workspace

    with Workspace.open() as workspace:
        results = dataset_status(workspace, names, progress=RichProgress())
    if not results:
        out.print("no datasets tracked yet; `loopml data add PATH` adds one")
        return
    for item in results:
        label = f"{item.name}@v{item.version} ({item.path})"
        if item.latest is not None and item.latest != item.version:
            label += f" [latest is v{item.latest}]"
        if item.clean:
            out.print(f"{label}: up to date")
            continue
        if item.missing:
            out.print(
                f"{label}: missing from the workspace; "
                f"`loopml data checkout {item.name}` restores it"
            )
            continue
        out.print(f"{label}: changed")
        for kind, paths in (
            ("added", item.diff.added),
            ("modified", item.diff.modified),
            ("deleted", item.diff.deleted),
        ):
            for path in paths:
                out.print(f"  {kind}: {path}")


@app.command("ls")
def ls(
    reference: Annotated[
        str | None, typer.Argument(help="NAME[@REF] to list its files; omit to list datasets.")
    ] = None,
) -> None:
    """List datasets, or the files of one version."""
    from loopml.store.workspace import Workspace

    with Workspace.open() as workspace:
        if reference is None:
            from loopml.data.repository import DatasetRepository

            repository = DatasetRepository(workspace.metadata)
            rows = []
            for dataset in repository.all():
                latest = repository.latest(dataset)
                if latest is None:
                    continue
                rows.append(
                    (
                        dataset.name,
                        dataset.path,
                        f"v{latest.number}",
                        latest.file_count,
                        human_bytes(latest.size),
                        _when(latest.created_at),
                    )
                )
            print_table(["name", "path", "latest", "files", "size", "updated"], rows)
            return
        from loopml.data.versioning import list_files

        version, tree = list_files(workspace, reference)
    print_table(
        ["path", "size", "hash"],
        [(e.path, human_bytes(e.size), e.digest[:12]) for e in tree],
        title=f"{version.label} · {len(tree)} files · {human_bytes(tree.size)}",
    )


@app.command("log")
def log(name: Annotated[str, typer.Argument(help="Dataset name.")]) -> None:
    """List a dataset's versions, newest first."""
    from loopml.data.repository import DatasetRepository
    from loopml.refs import parse_ref
    from loopml.store.workspace import Workspace

    with Workspace.open() as workspace:
        repository = DatasetRepository(workspace.metadata)
        versions = repository.versions(repository.get(parse_ref(name).name))
    print_table(
        ["version", "hash", "files", "size", "author", "created", "tags", "message"],
        [
            (
                f"v{v.number}",
                v.hash[:12],
                v.file_count,
                human_bytes(v.size),
                v.author,
                _when(v.created_at),
                ",".join(v.tags),
                v.message or "",
            )
            for v in reversed(versions)
        ],
    )


@app.command("diff")
def diff(
    left: Annotated[str, typer.Argument(help="NAME@REF (older).")],
    right: Annotated[str, typer.Argument(help="NAME@REF (newer).")],
) -> None:
    """Show files added, modified and deleted between two versions."""
    from loopml.data.versioning import diff_versions
    from loopml.store.workspace import Workspace

    with Workspace.open() as workspace:
        old, new, changes = diff_versions(workspace, left, right)
    if not changes.changed:
        out.print(f"no differences between {left} and {right}")
        return
    rows = []
    for path in changes.added:
        rows.append(("added", path, "", human_bytes(_size(new, path))))
    for path in changes.modified:
        rows.append(
            ("modified", path, human_bytes(_size(old, path)), human_bytes(_size(new, path)))
        )
    for path in changes.deleted:
        rows.append(("deleted", path, human_bytes(_size(old, path)), ""))
    print_table(["change", "path", "before", "after"], rows)


def _size(tree: object, path: str) -> int:
    entry = tree.get(path)  # type: ignore[attr-defined]
    return int(entry.size) if entry is not None else 0


@app.command("tag")
def tag(
    reference: Annotated[str, typer.Argument(help="NAME@REF to tag.")],
    label: Annotated[str, typer.Argument(help="Tag name (not a version-like word).")],
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Move the tag if it exists.")
    ] = False,
) -> None:
    """Give a version a tag, usable as NAME@TAG."""
    from loopml.data.versioning import tag_version
    from loopml.store.workspace import Workspace

    with Workspace.open() as workspace:
        version, moved_from = tag_version(workspace, reference, label, force=force)
    suffix = f" (moved from {moved_from})" if moved_from else ""
    out.print(f"tagged {version.label} as {version.dataset}@{label}{suffix}")


@app.command("checkout")
def checkout(
    reference: Annotated[
        str, typer.Argument(help="NAME[@REF]; without @REF, the version loopml.lock names.")
    ],
    to: Annotated[Path | None, typer.Option("--to", help="Restore into this path instead.")] = None,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Overwrite changes no version recorded.")
    ] = False,
) -> None:
    """Restore a version's exact files."""
    from loopml.data.checkout import checkout as do_checkout
    from loopml.store.workspace import Workspace

    with Workspace.open() as workspace:
        result = do_checkout(workspace, reference, to=to, force=force, progress=RichProgress())
        shown = (
            result.target.relative_to(workspace.root) if result.target != workspace.root else "."
        )
    out.print(
        f"checked out {result.version.label} into {shown}: {result.written} written, "
        f"{result.unchanged} unchanged, {result.removed} removed"
    )
