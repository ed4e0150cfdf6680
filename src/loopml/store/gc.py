"""``gc``: remove objects no root reaches, and leftovers of interrupted writes."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from loopml.store.objects.fsspec_backend import FsspecObjectBackend
from loopml.store.objects.local import LocalObjectBackend
from loopml.store.roots import reachable_objects
from loopml.store.workspace import Workspace

__all__ = ["GcReport", "collect_garbage"]


@dataclass
class GcReport:
    """What gc found (and, unless a dry run, removed)."""

    reachable: int = 0
    unreachable: list[str] = field(default_factory=list)
    unreachable_bytes: int = 0
    kept_recent: int = 0
    leftovers: list[Path] = field(default_factory=list)
    dry_run: bool = True


def collect_garbage(
    workspace: Workspace, *, dry_run: bool = True, grace_seconds: float = 900.0
) -> GcReport:
    """Find (and unless ``dry_run``, delete) unreachable objects.

    Objects younger than ``grace_seconds`` are kept: a ``data add`` running at the same time
    writes its objects before the record that makes them reachable.
    """
    objects = workspace.objects
    reachable, _missing = reachable_objects(workspace.metadata, objects, strict=True)
    report = GcReport(reachable=len(reachable), dry_run=dry_run)
    backend = objects.backend
    cutoff = time.time() - grace_seconds
    if isinstance(backend, LocalObjectBackend):
        for digest, path in backend.iter_loose():
            if digest in reachable:
                continue
            st = path.stat()
            if st.st_mtime > cutoff:
                report.kept_recent += 1
                continue
            report.unreachable.append(digest)
            report.unreachable_bytes += st.st_size
            if not dry_run:
                path.unlink(missing_ok=True)
        for index in backend.pack_indexes():
            dead = [d for d in index.entries if d not in reachable]
            if not dead:
                continue
            if index.index_path.stat().st_mtime > cutoff:
                report.kept_recent += len(dead)
                continue
            report.unreachable.extend(dead)
            report.unreachable_bytes += sum(index.entries[d][1] for d in dead)
            if not dry_run:
                backend.repack_one(index, keep=set(index.entries) - set(dead))
        report.leftovers = backend.leftovers(older_than=grace_seconds)
        if not dry_run:
            for leftover in report.leftovers:
                if leftover.is_dir() and not leftover.is_symlink():
                    shutil.rmtree(leftover, ignore_errors=True)  # an interrupted copy's folder
                else:
                    leftover.unlink(missing_ok=True)
        return report
    if isinstance(backend, FsspecObjectBackend):
        stats = list(backend.iter_stats())
    else:
        stats = [(digest, backend.size(digest), None) for digest in backend.iter_digests()]
    for digest, size, modified in stats:
        if digest in reachable:
            continue
        # An object of unknown age is kept unless gc was told to keep nothing (``--grace 0``).
        if grace_seconds > 0 and (modified is None or modified > cutoff):
            report.kept_recent += 1
            continue
        report.unreachable.append(digest)
        report.unreachable_bytes += size
        if not dry_run:
            backend.delete(digest)
    return report
