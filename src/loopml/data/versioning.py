"""Recording dataset versions: ``data add`` and the queries over recorded versions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from loopml.data.errors import DataError
from loopml.data.lockfile import LockEntry, update_lock
from loopml.data.model import Dataset, DatasetVersion
from loopml.data.progress import Progress
from loopml.data.repository import DatasetRepository
from loopml.data.scan import scan_path
from loopml.data.working import hash_working_files, stat_cache_for
from loopml.errors import UserInputError
from loopml.refs import parse_ref, validate_label, validate_name
from loopml.store.tree import Tree, TreeDiff
from loopml.store.workspace import Workspace

__all__ = ["AddResult", "add_dataset", "diff_versions", "list_files", "resolve", "tag_version"]


@dataclass(frozen=True, slots=True)
class AddResult:
    """What ``data add`` did."""

    version: DatasetVersion
    created: bool
    files_read: int
    bytes_read: int


def _default_name(target: Path, given: str | None) -> str:
    if given is not None:
        return validate_name(given, "dataset name")
    try:
        return validate_name(target.name, "dataset name")
    except UserInputError:
        raise UserInputError(
            f"{target.name!r} cannot be a dataset name; "
            "give one with --name (letters, digits, . _ -)"
        ) from None


def add_dataset(
    workspace: Workspace,
    path: Path | str,
    *,
    name: str | None = None,
    message: str | None = None,
    progress: Progress | None = None,
) -> AddResult:
    """Record the file or folder at ``path`` as a new version of dataset ``name``.

    Unchanged content makes no new version. Objects are written (and made durable) before the
    version record, so a crash at any point leaves the previous version intact.
    """
    target = workspace.resolve_inside(path)
    relative = workspace.relative(target) if target != workspace.root else "."
    dataset_name = _default_name(target, name)
    kind, files = scan_path(target, shown=str(path))
    repository = DatasetRepository(workspace.metadata)
    _check_conflicts(repository, dataset_name, relative, kind)

    cache = stat_cache_for(workspace)
    with workspace.objects.batch() as batch:
        hashed = hash_working_files(
            workspace, files, shown_root=str(path), batch=batch, cache=cache, progress=progress
        )
        tree_digest = batch.add_bytes(hashed.tree.to_bytes())
    hashed.remember(cache)
    dataset = repository.ensure(dataset_name, relative, kind)
    version, created = repository.add_version(
        dataset,
        digest=tree_digest,
        size=hashed.tree.size,
        file_count=len(hashed.tree),
        message=message,
        author=workspace.settings.user,
    )
    update_lock(workspace.root, LockEntry(dataset.name, dataset.path, version.number, version.hash))
    return AddResult(version, created, hashed.files_read, hashed.bytes_read)


def _check_conflicts(repository: DatasetRepository, name: str, path: str, kind: str) -> None:
    """Refuse before any object is written when the name or path belongs to another dataset."""
    existing = repository.find(name)
    if existing is not None and existing.path != path:
        raise DataError(
            f"dataset {name!r} already tracks {existing.path}; choose another --name for {path}"
        )
    if existing is not None and existing.kind != kind:
        raise DataError(
            f"dataset {name!r} was a {existing.kind} and {path} is now a {kind}; "
            "add it under a new --name"
        )
    if existing is None:
        other = repository.find_by_path(path)
        if other is not None:
            raise DataError(f"{path} is already tracked as {other.name!r}; use --name {other.name}")


def resolve(workspace: Workspace, reference: str) -> tuple[Dataset, DatasetVersion]:
    """The dataset and version a ``NAME@REF`` text names."""
    repository = DatasetRepository(workspace.metadata)
    ref = parse_ref(reference)
    version = repository.resolve(ref)
    return repository.get(ref.name), version


def list_files(workspace: Workspace, reference: str) -> tuple[DatasetVersion, Tree]:
    """The version and its tree."""
    _, version = resolve(workspace, reference)
    return version, workspace.objects.get_tree(version.hash)


def diff_versions(workspace: Workspace, left: str, right: str) -> tuple[Tree, Tree, TreeDiff]:
    """Both trees and what changed from ``left`` to ``right``."""
    _, old = resolve(workspace, left)
    _, new = resolve(workspace, right)
    old_tree = workspace.objects.get_tree(old.hash)
    new_tree = workspace.objects.get_tree(new.hash)
    return old_tree, new_tree, old_tree.diff(new_tree)


def tag_version(
    workspace: Workspace, reference: str, tag: str, *, force: bool = False
) -> tuple[DatasetVersion, str | None]:
    """Tag a version; returns it and the version the tag moved from, if it moved."""
    validate_label(tag, "tag")
    _, version = resolve(workspace, reference)
    moved_from = DatasetRepository(workspace.metadata).tag(version, tag, force=force)
    return version, moved_from
