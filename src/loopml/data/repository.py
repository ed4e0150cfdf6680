"""Dataset and version records in the metadata store (SQLAlchemy Core)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from loopml.data.errors import (
    AmbiguousReferenceError,
    DataError,
    DatasetNotFoundError,
    VersionNotFoundError,
)
from loopml.data.model import Dataset, DatasetVersion
from loopml.ids import new_id
from loopml.refs import Ref, RefKind
from loopml.store.metadata import MetadataStore, RetryableConflict
from loopml.store.metadata.schema import dataset_tags, dataset_versions, datasets

__all__ = ["DatasetRepository"]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _dataset(row: Any) -> Dataset:
    return Dataset(row.id, row.name, row.path, row.kind, row.created_at)


class DatasetRepository:
    """Reads and writes dataset records; every write is one retried transaction."""

    def __init__(self, metadata: MetadataStore) -> None:
        self.metadata = metadata

    # -- datasets ------------------------------------------------------------------------------

    def find(self, name: str) -> Dataset | None:
        """The dataset named ``name``, or ``None``."""
        with self.metadata.read() as conn:
            row = conn.execute(select(datasets).where(datasets.c.name == name)).first()
        return _dataset(row) if row else None

    def get(self, name: str) -> Dataset:
        """The dataset named ``name``; raises ``DatasetNotFoundError``."""
        found = self.find(name)
        if found is None:
            raise DatasetNotFoundError(
                f"no dataset named {name!r}; `loopml data ls` lists them, "
                "`loopml data add` adds one"
            )
        return found

    def find_by_path(self, path: str) -> Dataset | None:
        """The dataset tracking ``path`` (workspace-relative), or ``None``."""
        with self.metadata.read() as conn:
            row = conn.execute(select(datasets).where(datasets.c.path == path)).first()
        return _dataset(row) if row else None

    def all(self) -> list[Dataset]:
        """Every dataset, by name."""
        with self.metadata.read() as conn:
            rows = conn.execute(select(datasets).order_by(datasets.c.name)).all()
        return [_dataset(r) for r in rows]

    def ensure(self, name: str, path: str, kind: str) -> Dataset:
        """The dataset ``name`` tracking ``path``, created if new; conflicts are errors."""

        def write(conn: Connection) -> Dataset:
            row = conn.execute(select(datasets).where(datasets.c.name == name)).first()
            if row is not None:
                existing = _dataset(row)
                if existing.path != path:
                    raise DataError(
                        f"dataset {name!r} already tracks {existing.path}; "
                        f"choose another --name for {path}"
                    )
                if existing.kind != kind:
                    raise DataError(
                        f"dataset {name!r} was a {existing.kind} and {path} is now a {kind}; "
                        "add it under a new --name"
                    )
                return existing
            other = conn.execute(select(datasets.c.name).where(datasets.c.path == path)).first()
            if other is not None:
                raise DataError(
                    f"{path} is already tracked as {other.name!r}; use --name {other.name}"
                )
            dataset = Dataset(new_id(), name, path, kind, _now_ms())
            try:
                conn.execute(
                    insert(datasets).values(
                        id=dataset.id,
                        name=name,
                        path=path,
                        kind=kind,
                        created_at=dataset.created_at,
                    )
                )
            except IntegrityError:
                raise RetryableConflict("dataset created concurrently") from None
            return dataset

        return self.metadata.run_write(write)

    # -- versions ------------------------------------------------------------------------------

    def _versions_query(self, dataset: Dataset) -> Any:
        return (
            select(dataset_versions)
            .where(dataset_versions.c.dataset_id == dataset.id)
            .order_by(dataset_versions.c.number)
        )

    def _tags_by_version(self, conn: Connection, dataset: Dataset) -> dict[str, list[str]]:
        tags: dict[str, list[str]] = {}
        rows = conn.execute(
            select(dataset_tags.c.version_id, dataset_tags.c.tag)
            .where(dataset_tags.c.dataset_id == dataset.id)
            .order_by(dataset_tags.c.tag)
        )
        for version_id, tag in rows:
            tags.setdefault(version_id, []).append(tag)
        return tags

    def _version(self, row: Any, dataset: Dataset, tags: Sequence[str] = ()) -> DatasetVersion:
        return DatasetVersion(
            row.id,
            dataset.name,
            row.number,
            row.hash,
            row.size,
            row.file_count,
            row.message,
            row.author,
            row.created_at,
            tuple(tags),
        )

    def versions(self, dataset: Dataset) -> list[DatasetVersion]:
        """All versions, oldest first, with their tags."""
        with self.metadata.read() as conn:
            rows = conn.execute(self._versions_query(dataset)).all()
            tags = self._tags_by_version(conn, dataset)
        return [self._version(r, dataset, tags.get(r.id, ())) for r in rows]

    def latest(self, dataset: Dataset) -> DatasetVersion | None:
        """The newest version, or ``None`` for a dataset with none."""
        with self.metadata.read() as conn:
            row = conn.execute(
                select(dataset_versions)
                .where(dataset_versions.c.dataset_id == dataset.id)
                .order_by(dataset_versions.c.number.desc())
                .limit(1)
            ).first()
            if row is None:
                return None
            tags = self._tags_by_version(conn, dataset)
        return self._version(row, dataset, tags.get(row.id, ()))

    def resolve(self, ref: Ref) -> DatasetVersion:
        """The version ``ref`` names: latest, vN, a tag, or a unique hash prefix."""
        dataset = self.get(ref.name)
        versions = self.versions(dataset)
        if not versions:
            raise VersionNotFoundError(f"dataset {ref.name!r} has no versions yet")
        if ref.kind is RefKind.LATEST:
            return versions[-1]
        if ref.kind is RefKind.VERSION:
            for version in versions:
                if version.number == ref.version:
                    return version
            by_hash = self._by_hash_prefix(ref, versions)
            if by_hash is not None:
                return by_hash
            raise VersionNotFoundError(
                f"{ref} does not exist; {ref.name} has v1 to v{versions[-1].number}"
            )
        assert ref.label is not None
        for version in versions:
            if ref.label in version.tags:
                return version
        by_hash = self._by_hash_prefix(ref, versions)
        if by_hash is not None:
            return by_hash
        raise VersionNotFoundError(
            f"{ref} names no tag or hash of {ref.name}; `loopml data log {ref.name}` lists them"
        )

    @staticmethod
    def _by_hash_prefix(ref: Ref, versions: list[DatasetVersion]) -> DatasetVersion | None:
        if not ref.could_be_hash or ref.label is None:
            return None
        matches = [v for v in versions if v.hash.startswith(ref.label)]
        if len(matches) > 1:
            numbers = ", ".join(f"v{v.number}" for v in matches)
            raise AmbiguousReferenceError(
                f"{ref.name}@{ref.label} matches several versions ({numbers}); "
                "give more hash characters"
            )
        return matches[0] if matches else None

    def add_version(
        self,
        dataset: Dataset,
        *,
        digest: str,
        size: int,
        file_count: int,
        message: str | None,
        author: str,
    ) -> tuple[DatasetVersion, bool]:
        """Record a new version unless the latest already has ``digest``.

        Returns the version and whether it is new. The number is assigned inside the
        transaction; two writers that race are separated by the unique constraint and retried.
        """

        def write(conn: Connection) -> tuple[DatasetVersion, bool]:
            latest = conn.execute(
                select(dataset_versions)
                .where(dataset_versions.c.dataset_id == dataset.id)
                .order_by(dataset_versions.c.number.desc())
                .limit(1)
            ).first()
            if latest is not None and latest.hash == digest:
                return self._version(latest, dataset), False
            number = (latest.number if latest is not None else 0) + 1
            version = DatasetVersion(
                new_id(), dataset.name, number, digest, size, file_count, message, author, _now_ms()
            )
            try:
                conn.execute(
                    insert(dataset_versions).values(
                        id=version.id,
                        dataset_id=dataset.id,
                        number=number,
                        hash=digest,
                        size=size,
                        file_count=file_count,
                        message=message,
                        author=author,
                        created_at=version.created_at,
                    )
                )
            except IntegrityError:
                raise RetryableConflict("version number taken concurrently") from None
            return version, True

        return self.metadata.run_write(write)

    def tag(self, version: DatasetVersion, tag: str, *, force: bool = False) -> str | None:
        """Point ``tag`` at ``version``; returns the label it was moved from, if any."""
        dataset = self.get(version.dataset)

        def write(conn: Connection) -> str | None:
            current = conn.execute(
                select(dataset_tags.c.version_id, dataset_versions.c.number)
                .join(dataset_versions, dataset_versions.c.id == dataset_tags.c.version_id)
                .where(and_(dataset_tags.c.dataset_id == dataset.id, dataset_tags.c.tag == tag))
            ).first()
            if current is not None:
                if current.version_id == version.id:
                    return None
                if not force:
                    raise DataError(
                        f"tag {tag!r} already names {dataset.name}@v{current.number}; "
                        "add --force to move it"
                    )
                conn.execute(
                    update(dataset_tags)
                    .where(and_(dataset_tags.c.dataset_id == dataset.id, dataset_tags.c.tag == tag))
                    .values(version_id=version.id, created_at=_now_ms())
                )
                return f"v{current.number}"
            conn.execute(
                insert(dataset_tags).values(
                    dataset_id=dataset.id, tag=tag, version_id=version.id, created_at=_now_ms()
                )
            )
            return None

        return self.metadata.run_write(write)

    def untag(self, dataset: Dataset, tag: str) -> bool:
        """Remove a tag; returns whether it existed."""

        def write(conn: Connection) -> bool:
            result = conn.execute(
                delete(dataset_tags).where(
                    and_(dataset_tags.c.dataset_id == dataset.id, dataset_tags.c.tag == tag)
                )
            )
            return bool(result.rowcount)

        return self.metadata.run_write(write)

    def import_versions(
        self, dataset_name: str, path: str, kind: str, versions: Iterable[dict[str, Any]]
    ) -> int:
        """Merge version records received from a remote; returns how many were new.

        A record whose number exists locally with a different hash is a conflict (two people
        recorded different data under the same number) and is reported, never overwritten.
        """
        dataset = self.ensure(dataset_name, path, kind)
        incoming = sorted(versions, key=lambda record: int(record["number"]))

        def write(conn: Connection) -> int:
            existing = {
                row.number: row.hash
                for row in conn.execute(
                    select(dataset_versions.c.number, dataset_versions.c.hash).where(
                        dataset_versions.c.dataset_id == dataset.id
                    )
                )
            }
            added = 0
            for record in incoming:
                number = int(record["number"])
                if number in existing:
                    if existing[number] != record["hash"]:
                        raise DataError(
                            f"{dataset_name}@v{number} differs between this workspace and the "
                            "remote; rename one of the datasets and add it again"
                        )
                    continue
                version_id = new_id()
                conn.execute(
                    insert(dataset_versions).values(
                        id=version_id,
                        dataset_id=dataset.id,
                        number=number,
                        hash=record["hash"],
                        size=int(record["size"]),
                        file_count=int(record["file_count"]),
                        message=record.get("message"),
                        author=str(record.get("author", "")),
                        created_at=int(record["created_at"]),
                    )
                )
                for tag in record.get("tags", []):
                    taken = conn.execute(
                        select(func.count())
                        .select_from(dataset_tags)
                        .where(
                            and_(dataset_tags.c.dataset_id == dataset.id, dataset_tags.c.tag == tag)
                        )
                    ).scalar_one()
                    if not taken:
                        conn.execute(
                            insert(dataset_tags).values(
                                dataset_id=dataset.id,
                                tag=tag,
                                version_id=version_id,
                                created_at=_now_ms(),
                            )
                        )
                added += 1
            return added

        return self.metadata.run_write(write)
