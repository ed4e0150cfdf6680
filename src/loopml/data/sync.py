"""``push`` and ``pull``: exchanging dataset objects and version records with a remote.

Objects go first and records last, so a record on either side never names an object that is
not there. Every object lands atomically, so an interrupted transfer resumes by sending only
what the other side still lacks.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from loopml.data.errors import DataError
from loopml.data.lockfile import read_lock
from loopml.data.model import Dataset, DatasetVersion
from loopml.data.progress import NullProgress, Progress
from loopml.data.repository import DatasetRepository
from loopml.errors import UserInputError
from loopml.refs import validate_name
from loopml.store.objects.store import ObjectStore
from loopml.store.remotes import Remote, open_remote, record_use
from loopml.store.workspace import Workspace

__all__ = ["SyncResult", "pull", "push"]

_RECORDS = "datasets"
_FORMAT = "loopml-dataset/1"


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What a push or pull moved."""

    remote: str
    datasets: int
    objects_sent: int
    objects_present: int
    bytes_sent: int
    versions_received: int = 0


def _record_name(name: str) -> str:
    return f"{_RECORDS}/{validate_name(name)}.json"


def _closure(store: ObjectStore, tree_digests: Iterable[str]) -> tuple[list[str], list[str]]:
    """Trees and the file objects they list (files first in transfer order)."""
    trees = sorted(set(tree_digests))
    files: set[str] = set()
    for digest in trees:
        files.update(entry.digest for entry in store.get_tree(digest))
    return trees, sorted(files - set(trees))


def _transfer(
    source: ObjectStore,
    target: ObjectStore,
    digests: list[str],
    jobs: int,
    progress: Progress,
    description: str,
) -> tuple[int, int, int]:
    missing = target.missing(digests)
    ordered = [d for d in digests if d in missing]
    progress.start(description, len(ordered), 0)
    moved_bytes = 0

    def on_object(_digest: str, size: int) -> None:
        nonlocal moved_bytes
        moved_bytes += size
        progress.advance(1, size)

    source.copy_to(target, ordered, jobs=jobs, on_object=on_object)
    progress.finish()
    return len(ordered), len(digests) - len(ordered), moved_bytes


def _record_document(dataset: Dataset, versions: list[DatasetVersion]) -> dict[str, Any]:
    return {
        "format": _FORMAT,
        "name": dataset.name,
        "path": dataset.path,
        "kind": dataset.kind,
        "versions": [
            {
                "number": v.number,
                "hash": v.hash,
                "size": v.size,
                "file_count": v.file_count,
                "message": v.message,
                "author": v.author,
                "created_at": v.created_at,
                "tags": list(v.tags),
            }
            for v in versions
        ],
    }


def _parse_document(raw: bytes, where: str) -> dict[str, Any]:
    try:
        document = json.loads(raw)
        if document.get("format") != _FORMAT or not isinstance(document.get("versions"), list):
            raise ValueError("unknown format")
        validate_name(str(document["name"]))
        path = PurePosixPath(str(document["path"]))
        if path.is_absolute() or ".." in path.parts or document.get("kind") not in ("file", "dir"):
            raise ValueError(f"unsafe path {document['path']!r}")
        return dict(document)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataError(f"remote record {where} is malformed ({exc}); push it again") from None


def _selected(repository: DatasetRepository, names: list[str] | None) -> list[Dataset]:
    if names:
        return [repository.get(name) for name in names]
    return repository.all()


def push(
    workspace: Workspace,
    names: list[str] | None = None,
    *,
    remote: str | None = None,
    progress: Progress | None = None,
) -> SyncResult:
    """Send every version of the named datasets (all by default) and their records."""
    progress = progress or NullProgress()
    target = open_remote(workspace, remote)
    repository = DatasetRepository(workspace.metadata)
    datasets = _selected(repository, names)
    plan = [(d, repository.versions(d)) for d in datasets]
    trees, files = _closure(workspace.objects, [v.hash for _, vs in plan for v in vs])
    jobs = workspace.settings.effective_jobs * 4
    sent, present, nbytes = _transfer(
        workspace.objects, target.objects, files + trees, jobs, progress, f"push → {target.name}"
    )
    for dataset, versions in plan:
        _merge_remote_record(target, dataset, versions)
    record_use(workspace, target.name, pushed=True)
    return SyncResult(target.name, len(plan), sent, present, nbytes)


def _merge_remote_record(target: Remote, dataset: Dataset, versions: list[DatasetVersion]) -> None:
    where = _record_name(dataset.name)
    raw = target.documents.read(where)
    local = _record_document(dataset, versions)
    if raw is not None:
        remote_doc = _parse_document(raw, where)
        if remote_doc.get("path") != dataset.path:
            raise DataError(
                f"the remote's dataset {dataset.name!r} tracks {remote_doc.get('path')}, "
                f"not {dataset.path}; rename one of them"
            )
        by_number = {int(v["number"]): v for v in remote_doc["versions"]}
        for version in local["versions"]:
            theirs = by_number.get(version["number"])
            if theirs is not None and theirs["hash"] != version["hash"]:
                raise DataError(
                    f"{dataset.name}@v{version['number']} on the remote differs from yours; "
                    "`loopml pull` first, then add your data as a new version"
                )
            by_number[version["number"]] = version
        local["versions"] = [by_number[n] for n in sorted(by_number)]
    target.documents.write(where, json.dumps(local, indent=1, sort_keys=True).encode())


def pull(
    workspace: Workspace,
    names: list[str] | None = None,
    *,
    remote: str | None = None,
    all_versions: bool = False,
    progress: Progress | None = None,
) -> SyncResult:
    """Receive every version record, and the objects of the versions a user needs.

    Without names: the versions ``loopml.lock`` names (the data this commit uses), or the latest
    of each remote dataset when there is no lock. Named datasets also get their latest version.
    With ``all_versions`` every recorded version's objects come across.
    """
    progress = progress or NullProgress()
    source = open_remote(workspace, remote)
    repository = DatasetRepository(workspace.metadata)
    lock = read_lock(workspace.root)
    if names:
        wanted = names
    elif lock:
        wanted = sorted(lock)
    else:
        wanted = [n.removesuffix(".json") for n in source.documents.list(_RECORDS)]
    received = 0
    tree_digests: list[str] = []
    documents: list[dict[str, Any]] = []
    for name in wanted:
        where = _record_name(name)
        raw = source.documents.read(where)
        if raw is None:
            raise UserInputError(
                f"remote {source.name} has no dataset {name!r}; push it from where it was added"
            )
        document = _parse_document(raw, where)
        documents.append(document)
        versions = document["versions"]
        if all_versions:
            chosen = versions
        else:
            numbers = set()
            pinned = lock.get(name)
            if pinned is not None:
                numbers.add(pinned.version)
            if pinned is None or names:
                numbers.add(max(int(v["number"]) for v in versions))
            chosen = [v for v in versions if int(v["number"]) in numbers]
            if pinned is not None and not any(int(v["number"]) == pinned.version for v in chosen):
                raise DataError(
                    f"loopml.lock names {name}@v{pinned.version}, which remote {source.name} "
                    "does not have; push it from the workspace that added it"
                )
        tree_digests.extend(str(v["hash"]) for v in chosen)
    jobs = workspace.settings.effective_jobs * 4
    tree_list = sorted(set(tree_digests))
    sent_trees, present_trees, tree_bytes = _transfer(
        source.objects, workspace.objects, tree_list, jobs, NullProgress(), "trees"
    )
    _, files = _closure(workspace.objects, tree_list)
    sent, present, nbytes = _transfer(
        source.objects, workspace.objects, files, jobs, progress, f"pull ← {source.name}"
    )
    for document in documents:
        received += repository.import_versions(
            str(document["name"]),
            str(document["path"]),
            str(document["kind"]),
            document["versions"],
        )
    record_use(workspace, source.name, pushed=False)
    return SyncResult(
        source.name,
        len(wanted),
        sent + sent_trees,
        present + present_trees,
        nbytes + tree_bytes,
        received,
    )
