"""``data status``: what changed in each tracked path since its latest version."""

from __future__ import annotations

from dataclasses import dataclass

from loopml.data.catalog import tracked_datasets
from loopml.data.lockfile import read_lock
from loopml.data.progress import Progress
from loopml.data.scan import scan_path
from loopml.data.working import hash_working_files
from loopml.errors import UserInputError
from loopml.store.tree import TreeDiff
from loopml.store.workspace import Workspace

__all__ = ["DatasetStatus", "dataset_status"]


@dataclass(frozen=True, slots=True)
class DatasetStatus:
    """One tracked path compared with its latest version."""

    name: str
    path: str
    version: int | None  # the version compared against: loopml.lock's, else the latest
    diff: TreeDiff
    missing: bool = False
    files_read: int = 0
    latest: int | None = None

    @property
    def clean(self) -> bool:
        """Whether the working copy matches the latest version."""
        return not self.missing and not self.diff.changed


def dataset_status(
    workspace: Workspace, names: list[str] | None = None, progress: Progress | None = None
) -> list[DatasetStatus]:
    """Compare every tracked path (or the named ones) with its checked-out version.

    The checked-out version is the one ``loopml.lock`` names (it follows ``data add`` and
    ``data checkout``, and ``git checkout`` of an older commit); without a lock entry, the latest.

    Unchanged files cost one ``stat`` each; only files whose stat cache entry is stale are read,
    and what is read is remembered so the next status is cheap again.
    """
    datasets, cache = tracked_datasets(workspace)
    pinned = read_lock(workspace.root)
    if names:
        known = {d.name for d in datasets}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise UserInputError(
                f"no dataset named {unknown[0]!r}; `loopml data ls` lists the tracked datasets"
            )
        datasets = [d for d in datasets if d.name in names]
    results: list[DatasetStatus] = []
    for dataset in datasets:
        if dataset.latest_hash is None:
            continue
        number, digest = dataset.latest_number, dataset.latest_hash
        lock_entry = pinned.get(dataset.name)
        if lock_entry is not None and lock_entry.path == dataset.path:
            number, digest = lock_entry.version, lock_entry.hash
        recorded = workspace.objects.get_tree(digest)
        target = workspace.root / dataset.path
        if not target.exists() and not target.is_symlink():
            gone = TreeDiff(deleted=tuple(e.path for e in recorded))
            results.append(
                DatasetStatus(
                    dataset.name, dataset.path, number, gone, True, latest=dataset.latest_number
                )
            )
            continue
        _, files = scan_path(target, shown=dataset.path)
        hashed = hash_working_files(
            workspace, files, shown_root=dataset.path, cache=cache, progress=progress
        )
        hashed.remember(cache)
        results.append(
            DatasetStatus(
                dataset.name,
                dataset.path,
                number,
                recorded.diff(hashed.tree),
                files_read=hashed.files_read,
                latest=dataset.latest_number,
            )
        )
    return results
