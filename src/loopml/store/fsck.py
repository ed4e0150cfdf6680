"""``fsck``: verify every stored object and that every root's objects are present."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from loopml.store.errors import StoreError
from loopml.store.hashing import hash_bytes, hash_file
from loopml.store.objects.local import LocalObjectBackend
from loopml.store.objects.packs import PACK_MAGIC, read_index
from loopml.store.roots import reachable_objects
from loopml.store.workspace import Workspace

__all__ = ["FsckProblem", "FsckReport", "check_store"]


@dataclass(frozen=True, slots=True)
class FsckProblem:
    """One corrupt or missing object, or a damaged pack."""

    kind: str  # "corrupt", "missing" or "damaged"
    digest: str
    location: str


@dataclass
class FsckReport:
    """The outcome of a full check."""

    checked: int = 0
    problems: list[FsckProblem] = field(default_factory=list)
    leftovers: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether nothing is corrupt or missing."""
        return not self.problems


def _check_loose(item: tuple[str, Path]) -> FsckProblem | None:
    digest, path = item
    try:
        actual = hash_file(path)
    except OSError as exc:
        return FsckProblem("corrupt", digest, f"{path} ({exc.strerror})")
    if actual != digest:
        return FsckProblem("corrupt", digest, str(path))
    return None


def _check_packs(backend: LocalObjectBackend, report: FsckReport) -> None:
    if not backend.packs_dir.is_dir():
        return
    for index_path in sorted(backend.packs_dir.glob("pack-*.idx")):
        try:
            index = read_index(index_path)
        except (StoreError, OSError) as exc:
            report.problems.append(FsckProblem("damaged", "-", f"{index_path} ({exc})"))
            continue
        try:
            with open(index.pack_path, "rb") as handle:
                if handle.read(len(PACK_MAGIC)) != PACK_MAGIC:
                    report.problems.append(
                        FsckProblem("damaged", "-", f"{index.pack_path} (bad header)")
                    )
                    continue
                for digest, (offset, length) in sorted(index.entries.items(), key=lambda e: e[1]):
                    handle.seek(offset)
                    data = handle.read(length)
                    report.checked += 1
                    if len(data) != length or hash_bytes(data) != digest:
                        report.problems.append(
                            FsckProblem("corrupt", digest, f"{index.pack_path}@{offset}")
                        )
        except OSError as exc:
            report.problems.append(FsckProblem("damaged", "-", f"{index.pack_path} ({exc})"))


def check_store(workspace: Workspace) -> FsckReport:
    """Hash every object (loose and packed), then check every root reaches only present objects."""
    report = FsckReport()
    objects = workspace.objects
    backend = objects.backend
    if isinstance(backend, LocalObjectBackend):
        loose = list(backend.iter_loose())
        with ThreadPoolExecutor(max_workers=workspace.settings.effective_jobs) as pool:
            for problem in pool.map(_check_loose, loose):
                report.checked += 1
                if problem is not None:
                    report.problems.append(problem)
        _check_packs(backend, report)
        report.leftovers = backend.leftovers(older_than=0)
    else:
        for digest in backend.iter_digests():
            report.checked += 1
            if not objects.verify(digest):
                report.problems.append(FsckProblem("corrupt", digest, objects.url))
    try:
        _, missing = reachable_objects(workspace.metadata, objects)
    except StoreError as exc:  # a damaged pack index: reported, not a crash of fsck itself
        report.problems.append(FsckProblem("damaged", "-", str(exc)))
        missing = []
    for digest, what in missing:
        report.problems.append(FsckProblem("missing", digest, what))
    return report
