"""``data checkout``: put a recorded version back on disk, byte for byte."""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from loopml.data.errors import UnrecordedChangesError
from loopml.data.lockfile import LockEntry, read_lock, update_lock
from loopml.data.model import DatasetVersion
from loopml.data.progress import NullProgress, Progress
from loopml.data.repository import DatasetRepository
from loopml.data.scan import scan_path
from loopml.data.versioning import resolve
from loopml.data.working import hash_working_files, stat_cache_for
from loopml.errors import UserInputError
from loopml.refs import Ref, RefKind, parse_ref
from loopml.store.errors import StoreError
from loopml.store.statcache import StatEntry, now_ns
from loopml.store.tree import Tree, TreeEntry
from loopml.store.workspace import Workspace

__all__ = ["CheckoutResult", "checkout", "safe_relative"]


@dataclass(frozen=True, slots=True)
class CheckoutResult:
    """What a checkout wrote and removed."""

    version: DatasetVersion
    target: Path
    written: int
    removed: int
    unchanged: int


def safe_relative(path: str) -> PurePosixPath:
    """A tree entry's path, refusing anything that could land outside the target folder."""
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or any(part in ("..", "") for part in pure.parts):
        raise StoreError(f"tree entry {path!r} is not a safe relative path; refusing to write it")
    return pure


def _version_for(workspace: Workspace, reference: str) -> DatasetVersion:
    ref = parse_ref(reference)
    if not ref.explicit:
        pinned = read_lock(workspace.root).get(ref.name)
        if pinned is not None:
            ref = Ref(ref.name, RefKind.VERSION, version=pinned.version)
    return resolve(workspace, str(ref))[1]


def checkout(
    workspace: Workspace,
    reference: str,
    *,
    to: Path | str | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> CheckoutResult:
    """Restore ``NAME@REF`` (or the version ``loopml.lock`` names) to its path or ``to``.

    Files whose content no version recorded are never overwritten or deleted without ``force``.
    Files are written as independent copies, so editing them cannot alter the stored objects.
    """
    progress = progress or NullProgress()
    version = _version_for(workspace, reference)
    dataset = DatasetRepository(workspace.metadata).get(version.dataset)
    if not workspace.objects.has(version.hash):
        raise StoreError(
            f"{version.label} is recorded but its files are not in this workspace; "
            "run `loopml pull --all-versions` first"
        )
    tree = workspace.objects.get_tree(version.hash)
    entries = [(safe_relative(e.path), e) for e in tree]
    target = workspace.resolve_inside(to) if to is not None else workspace.root / dataset.path

    if dataset.kind == "file":
        if len(entries) != 1:
            raise StoreError(f"{version.label} should hold one file; run `loopml fsck`")
        destination_of = {entries[0][1].path: target}
    else:
        destination_of = {e.path: target.joinpath(*rel.parts) for rel, e in entries}

    existing_tree, existing_files = _current(
        workspace, target, dataset.kind, str(to or dataset.path)
    )
    _refuse_unrecorded(workspace, tree, existing_tree, dataset.kind, force)

    missing = workspace.objects.missing({e.digest for _, e in entries})
    if missing:
        raise StoreError(
            f"{len(missing)} objects of {version.label} are not in this workspace; "
            "run `loopml pull --all-versions` first"
        )

    written = unchanged = removed = 0
    to_write = []
    for _, entry in entries:
        current = _counterpart(existing_tree, entry.path, dataset.kind)
        if current is not None and current.digest == entry.digest and current.mode == entry.mode:
            unchanged += 1
        else:
            to_write.append(entry)
    progress.start("checking out", len(to_write), sum(e.size for e in to_write))
    if dataset.kind == "dir" and target.exists() and not target.is_dir():
        target.unlink()
    fresh: list[StatEntry] = []
    for entry in to_write:
        destination = destination_of[entry.path]
        if destination.is_dir() and not destination.is_symlink():
            shutil.rmtree(destination)
        started = now_ns()
        workspace.objects.export_file(entry.digest, destination, mode=entry.mode)
        fresh.append(StatEntry.of(str(destination), os.stat(destination), entry.digest, started))
        written += 1
        progress.advance(1, entry.size)
    progress.finish()
    if dataset.kind == "dir":
        wanted = {str(destination_of[e.path]) for _, e in entries}
        for path in existing_files:
            if path not in wanted:
                Path(path).unlink(missing_ok=True)
                removed += 1
        _prune_empty_dirs(target)
    stat_cache_for(workspace).record(fresh)
    if to is None:
        update_lock(
            workspace.root, LockEntry(dataset.name, dataset.path, version.number, version.hash)
        )
    return CheckoutResult(version, target, written, removed, unchanged)


def _current(workspace: Workspace, target: Path, kind: str, shown: str) -> tuple[Tree, list[str]]:
    """The tree currently at ``target`` and the absolute paths of its files."""
    if not target.exists() and not target.is_symlink():
        return Tree.build([]), []
    if kind == "dir" and not target.is_dir():
        raise UserInputError(f"{shown} is a file but the dataset is a folder; move it away first")
    _, files = scan_path(target, shown=shown)
    hashed = hash_working_files(workspace, files, shown_root=shown)
    hashed.remember(stat_cache_for(workspace))
    return hashed.tree, [f.absolute for f in files]


def _counterpart(tree: Tree, path: str, kind: str) -> TreeEntry | None:
    """The entry of ``tree`` at ``path``; a file dataset has one entry whatever its name."""
    if kind == "file":
        return next(iter(tree), None)
    return tree.get(path)


def _refuse_unrecorded(
    workspace: Workspace, wanted: Tree, current: Tree, kind: str, force: bool
) -> None:
    """Raise if checking out would destroy content the object store does not hold."""
    if force or len(current) == 0:
        return
    at_risk = []
    for entry in current:
        target_entry = _counterpart(wanted, entry.path, kind)
        if target_entry is not None and target_entry.digest == entry.digest:
            continue
        at_risk.append(entry)
    if not at_risk:
        return
    unrecorded = workspace.objects.missing({e.digest for e in at_risk})
    lost = [e.path for e in at_risk if e.digest in unrecorded]
    if lost:
        shown = ", ".join(lost[:3]) + (f" and {len(lost) - 3} more" if len(lost) > 3 else "")
        raise UnrecordedChangesError(
            f"checkout would overwrite changes no version recorded ({shown}); "
            "`loopml data add` them first, or pass --force to discard them"
        )


def _prune_empty_dirs(root: Path) -> None:
    for folder, _dirs, _files in os.walk(root, topdown=False):
        if Path(folder) != root:
            with contextlib.suppress(OSError):
                os.rmdir(folder)
