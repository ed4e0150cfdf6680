"""Registered models, versions, aliases, alias events and gate results (SQLAlchemy Core).

Every write is one transaction run by ``MetadataStore.run_write``. Version numbers are assigned
inside it and separated by a unique constraint when two writers race. Alias moves are
compare-and-swap: the caller says which version it believes the alias points to now, and the
update only applies while that is still true, so of two concurrent moves one wins and the other
gets :class:`AliasConflictError`, never a silent overwrite.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from loopml.ids import new_id
from loopml.refs import Ref, RefKind
from loopml.registry.errors import (
    AliasConflictError,
    AmbiguousReferenceError,
    ModelNotFoundError,
    ModelVersionNotFoundError,
    ProtectedAliasError,
    RegistryError,
)
from loopml.registry.model import (
    AliasEvent,
    DatasetInput,
    ModelVersion,
    RegisteredModel,
    VersionStatus,
)
from loopml.registry.signature import Signature
from loopml.store.metadata import MetadataStore, RetryableConflict
from loopml.store.metadata.schema import (
    alias_events,
    gate_results,
    lineage_edges,
    model_aliases,
    model_version_inputs,
    model_versions,
    registered_models,
)

__all__ = ["ModelRepository", "NewVersion"]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _when(epoch_ms: int) -> str:
    return dt.datetime.fromtimestamp(epoch_ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def _v(number: int | None) -> str:
    return f"v{number}" if number is not None else "nothing"


@dataclass(frozen=True, slots=True)
class NewVersion:
    """What ``add_version`` records."""

    digest: str
    size: int
    flavor: str
    flavor_options: Mapping[str, Any]
    framework: str
    framework_version: str
    model_class: str
    signature: Signature | None
    run_id: str | None
    description: str | None
    user: str
    inputs: Sequence[DatasetInput] = ()


class ModelRepository:
    """Reads and writes registry records; every write is one retried transaction."""

    def __init__(self, metadata: MetadataStore) -> None:
        self.metadata = metadata

    # -- models --------------------------------------------------------------------------------

    def _model_row(self, conn: Connection, name: str) -> Any:
        row = conn.execute(
            select(registered_models).where(registered_models.c.name == name)
        ).first()
        if row is None:
            raise ModelNotFoundError(
                f"no model named {name!r}; `loopml models ls` lists them, "
                "`loopml.log_model(model, name=...)` inside a run registers one"
            )
        return row

    def get_model(self, name: str) -> RegisteredModel:
        """The model ``name`` with a summary of its versions; raises ``ModelNotFoundError``."""
        with self.metadata.read() as conn:
            row = self._model_row(conn, name)
            return self._summaries(conn, [row])[0]

    def list_models(self) -> list[RegisteredModel]:
        """Every registered model, by name."""
        with self.metadata.read() as conn:
            rows = conn.execute(select(registered_models).order_by(registered_models.c.name))
            return self._summaries(conn, list(rows))

    def _summaries(self, conn: Connection, rows: Sequence[Any]) -> list[RegisteredModel]:
        ids = [r.id for r in rows]
        if not ids:
            return []
        mv = model_versions
        counts = {
            r.model_id: (int(r.n), r.updated)
            for r in conn.execute(
                select(
                    mv.c.model_id,
                    func.count().label("n"),
                    func.max(mv.c.created_at).label("updated"),
                )
                .where(mv.c.model_id.in_(ids))
                .group_by(mv.c.model_id)
            )
        }
        latest = {
            r.model_id: r.number
            for r in conn.execute(
                select(mv.c.model_id, func.max(mv.c.number).label("number"))
                .where(mv.c.model_id.in_(ids), mv.c.status == VersionStatus.READY)
                .group_by(mv.c.model_id)
            )
        }
        aliases: dict[str, dict[str, int]] = {}
        for r in conn.execute(
            select(model_aliases.c.model_id, model_aliases.c.alias, mv.c.number)
            .join(mv, mv.c.id == model_aliases.c.version_id)
            .where(model_aliases.c.model_id.in_(ids))
            .order_by(model_aliases.c.alias)
        ):
            aliases.setdefault(r.model_id, {})[r.alias] = int(r.number)
        return [
            RegisteredModel(
                id=r.id,
                name=r.name,
                description=r.description,
                created_at=r.created_at,
                created_by=r.created_by,
                version_count=counts.get(r.id, (0, None))[0],
                latest=latest.get(r.id),
                updated_at=counts.get(r.id, (0, None))[1],
                aliases=aliases.get(r.id, {}),
            )
            for r in rows
        ]

    # -- versions ------------------------------------------------------------------------------

    def _aliases_by_version(self, conn: Connection, model_id: str) -> dict[str, list[str]]:
        result: dict[str, list[str]] = {}
        for version_id, alias in conn.execute(
            select(model_aliases.c.version_id, model_aliases.c.alias)
            .where(model_aliases.c.model_id == model_id)
            .order_by(model_aliases.c.alias)
        ):
            result.setdefault(version_id, []).append(alias)
        return result

    @staticmethod
    def _version(row: Any, model: str, aliases: Iterable[str] = ()) -> ModelVersion:
        return ModelVersion(
            id=row.id,
            model=model,
            number=row.number,
            digest=row.digest,
            size=row.size,
            flavor=row.flavor,
            flavor_options=json.loads(row.flavor_options),
            framework=row.framework,
            framework_version=row.framework_version,
            model_class=row.model_class,
            signature=Signature.from_json(row.signature) if row.signature else None,
            run_id=row.run_id,
            description=row.description,
            status=row.status,
            created_at=row.created_at,
            created_by=row.created_by,
            archived_at=row.archived_at,
            aliases=tuple(aliases),
        )

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name``, oldest first, with its aliases."""
        with self.metadata.read() as conn:
            model = self._model_row(conn, name)
            rows = conn.execute(
                select(model_versions)
                .where(model_versions.c.model_id == model.id)
                .order_by(model_versions.c.number)
            ).all()
            aliases = self._aliases_by_version(conn, model.id)
        return [self._version(r, model.name, aliases.get(r.id, ())) for r in rows]

    def version_by_id(self, version_id: str) -> ModelVersion:
        """The version with this id."""
        with self.metadata.read() as conn:
            row = conn.execute(
                select(model_versions, registered_models.c.name.label("model_name"))
                .join(registered_models, registered_models.c.id == model_versions.c.model_id)
                .where(model_versions.c.id == version_id)
            ).first()
            if row is None:
                raise ModelVersionNotFoundError(f"no model version with id {version_id}")
            aliases = self._aliases_by_version(conn, row.model_id)
        return self._version(row, row.model_name, aliases.get(row.id, ()))

    def resolve(self, ref: Ref) -> ModelVersion:
        """The version ``ref`` names: ``latest``, ``vN``/``N``, an alias, or a digest prefix."""
        versions = self.versions(ref.name)
        if not versions:
            raise ModelVersionNotFoundError(f"model {ref.name!r} has no versions yet")
        if ref.kind is RefKind.LATEST:
            ready = [v for v in versions if not v.archived]
            if not ready:
                raise ModelVersionNotFoundError(
                    f"every version of {ref.name} is archived, so it has no latest; "
                    f"name one (e.g. {ref.name}@v{versions[-1].number})"
                )
            return ready[-1]
        if ref.kind is RefKind.VERSION:
            for version in versions:
                if version.number == ref.version:
                    return version
            by_hash = self._by_digest_prefix(ref, versions)
            if by_hash is not None:
                return by_hash
            raise ModelVersionNotFoundError(
                f"{ref} does not exist; {ref.name} has v1 to v{versions[-1].number}"
            )
        assert ref.label is not None
        for version in versions:
            if ref.label in version.aliases:
                return version
        by_hash = self._by_digest_prefix(ref, versions)
        if by_hash is not None:
            return by_hash
        known = sorted({a for v in versions for a in v.aliases})
        hint = f"its aliases are {', '.join(known)}" if known else "it has no aliases yet"
        raise ModelVersionNotFoundError(
            f"{ref} names no alias or version of {ref.name}; {hint} "
            f"(`loopml models versions {ref.name}` lists its versions)"
        )

    @staticmethod
    def _by_digest_prefix(ref: Ref, versions: list[ModelVersion]) -> ModelVersion | None:
        if not ref.could_be_hash or ref.label is None:
            return None
        matches = [v for v in versions if v.digest.startswith(ref.label)]
        if len({v.digest for v in matches}) > 1:
            numbers = ", ".join(f"v{v.number}" for v in matches)
            raise AmbiguousReferenceError(
                f"{ref.name}@{ref.label} matches several versions ({numbers}); "
                "give more hash characters"
            )
        # The same model logged twice has one digest: the newest version answers for it.
        return matches[-1] if matches else None

    def inputs(self, version_id: str) -> tuple[DatasetInput, ...]:
        """The dataset versions the training run had read."""
        with self.metadata.read() as conn:
            rows = conn.execute(
                select(model_version_inputs)
                .where(model_version_inputs.c.model_version_id == version_id)
                .order_by(model_version_inputs.c.dataset, model_version_inputs.c.version)
            )
            return tuple(DatasetInput(r.dataset, r.version, r.hash) for r in rows)

    def add_version(self, name: str, new: NewVersion) -> ModelVersion:
        """Record a new version of ``name`` (the model is created on its first version).

        Also records the lineage edges run → model version → object, and dataset version →
        run for each input, so that a walk from the model reaches the data.
        """

        def write(conn: Connection) -> ModelVersion:
            now = _now_ms()
            row = conn.execute(
                select(registered_models.c.id).where(registered_models.c.name == name)
            ).first()
            if row is None:
                model_id = new_id()
                try:
                    conn.execute(
                        insert(registered_models).values(
                            id=model_id, name=name, created_at=now, created_by=new.user
                        )
                    )
                except IntegrityError:
                    raise RetryableConflict("model created concurrently") from None
            else:
                model_id = row.id
            latest = conn.execute(
                select(func.max(model_versions.c.number)).where(
                    model_versions.c.model_id == model_id
                )
            ).scalar()
            number = int(latest or 0) + 1
            version_id = new_id()
            values = {
                "id": version_id,
                "model_id": model_id,
                "number": number,
                "digest": new.digest,
                "size": new.size,
                "flavor": new.flavor,
                "flavor_options": json.dumps(dict(new.flavor_options), sort_keys=True),
                "framework": new.framework,
                "framework_version": new.framework_version,
                "model_class": new.model_class,
                "signature": new.signature.to_json() if new.signature is not None else None,
                "run_id": new.run_id,
                "description": new.description,
                "status": VersionStatus.READY,
                "created_at": now,
                "created_by": new.user,
            }
            try:
                conn.execute(insert(model_versions).values(**values))
            except IntegrityError:
                raise RetryableConflict("model version numbered concurrently") from None
            inputs = {(i.dataset, i.version): i for i in new.inputs}
            if inputs:
                conn.execute(
                    insert(model_version_inputs),
                    [
                        {
                            "model_version_id": version_id,
                            "dataset": i.dataset,
                            "version": i.version,
                            "hash": i.hash,
                        }
                        for i in inputs.values()
                    ],
                )
            edges = [("model_version", version_id, "object", new.digest, "model")]
            if new.run_id is not None:
                edges.append(("run", new.run_id, "model_version", version_id, "trained"))
                edges += [
                    ("dataset_version", i.label, "run", new.run_id, i.dataset)
                    for i in inputs.values()
                ]
            _add_edges(conn, edges)
            return self._version(
                conn.execute(select(model_versions).where(model_versions.c.id == version_id)).one(),
                name,
            )

        return self.metadata.run_write(write)

    def set_archived(self, name: str, number: int, archived: bool) -> ModelVersion:
        """Archive (or restore) a version; a version an alias points to cannot be archived."""

        def write(conn: Connection) -> ModelVersion:
            model = self._model_row(conn, name)
            row = self._version_row(conn, model, number)
            if archived:
                aliases = [
                    a
                    for (a,) in conn.execute(
                        select(model_aliases.c.alias).where(model_aliases.c.version_id == row.id)
                    )
                ]
                if aliases:
                    raise RegistryError(
                        f"{name}@v{number} is {', '.join(sorted(aliases))}; move or remove "
                        "that alias first (`loopml models alias`)"
                    )
            conn.execute(
                update(model_versions)
                .where(model_versions.c.id == row.id)
                .values(
                    status=VersionStatus.ARCHIVED if archived else VersionStatus.READY,
                    archived_at=_now_ms() if archived else None,
                )
            )
            fresh = conn.execute(select(model_versions).where(model_versions.c.id == row.id))
            return self._version(fresh.one(), name)

        return self.metadata.run_write(write)

    def _version_row(self, conn: Connection, model: Any, number: int) -> Any:
        row = conn.execute(
            select(model_versions).where(
                model_versions.c.model_id == model.id, model_versions.c.number == number
            )
        ).first()
        if row is None:
            raise ModelVersionNotFoundError(f"{model.name}@v{number} does not exist")
        return row

    # -- aliases -------------------------------------------------------------------------------

    def move_alias(
        self,
        name: str,
        number: int | None,
        alias: str,
        *,
        reason: str,
        user: str,
        expected_current: int | None,
        protected: bool,
        gate_result_id: str | None = None,
        force: bool = False,
    ) -> AliasEvent | None:
        """Point ``alias`` at version ``number`` (``None``: remove it), compare-and-swap.

        Applies only while the alias still points at ``expected_current`` (``None``: unset);
        otherwise raises :class:`AliasConflictError` and changes nothing. A protected alias
        needs a passed gate result for the target, judged against the alias's current version,
        or ``force``. Returns the recorded event, or ``None`` when the alias is already there.
        """

        def write(conn: Connection) -> AliasEvent | None:
            model = self._model_row(conn, name)
            target = self._version_row(conn, model, number) if number is not None else None
            if target is not None and target.status == VersionStatus.ARCHIVED:
                raise RegistryError(
                    f"{name}@v{number} is archived; restore it first "
                    f"(`loopml models archive {name}@v{number} --restore`)"
                )
            current = conn.execute(
                select(model_aliases.c.version_id, model_versions.c.number)
                .join(model_versions, model_versions.c.id == model_aliases.c.version_id)
                .where(model_aliases.c.model_id == model.id, model_aliases.c.alias == alias)
            ).first()
            current_number = int(current.number) if current is not None else None
            if current_number != expected_current:
                raise AliasConflictError(
                    f"{name}@{alias} points to {_v(current_number)}, not "
                    f"{_v(expected_current)} as expected{self._last_move(conn, model, alias)}; "
                    f"nothing was changed: check `loopml models history {name}` and try again"
                )
            if current_number == number:
                return None
            gate = self._check_grounds(
                conn, name, alias, target, current, protected, gate_result_id, force
            )
            now = _now_ms()
            if current is None:
                assert target is not None
                try:
                    conn.execute(
                        insert(model_aliases).values(
                            model_id=model.id,
                            alias=alias,
                            version_id=target.id,
                            updated_at=now,
                            updated_by=user,
                        )
                    )
                except IntegrityError:
                    # Set concurrently: the retry sees it and reports the conflict.
                    raise RetryableConflict("alias set concurrently") from None
            else:
                where = (
                    model_aliases.c.model_id == model.id,
                    model_aliases.c.alias == alias,
                    model_aliases.c.version_id == current.version_id,
                )
                if target is None:
                    changed = conn.execute(model_aliases.delete().where(*where)).rowcount
                else:
                    changed = conn.execute(
                        update(model_aliases)
                        .where(*where)
                        .values(version_id=target.id, updated_at=now, updated_by=user)
                    ).rowcount
                if changed != 1:
                    raise RetryableConflict("alias moved concurrently")
            event = AliasEvent(
                id=new_id(),
                model=name,
                alias=alias,
                from_version=current_number,
                to_version=number,
                user=user,
                created_at=now,
                reason=reason,
                gate_result_id=gate,
                forced=bool(force) and gate is None,
            )
            conn.execute(
                insert(alias_events).values(
                    id=event.id,
                    model_id=model.id,
                    alias=alias,
                    from_version_id=current.version_id if current is not None else None,
                    to_version_id=target.id if target is not None else None,
                    user=user,
                    created_at=now,
                    reason=reason,
                    gate_result_id=gate,
                    forced=event.forced,
                )
            )
            return event

        return self.metadata.run_write(write)

    def _last_move(self, conn: Connection, model: Any, alias: str) -> str:
        row = conn.execute(
            select(alias_events.c.user, alias_events.c.created_at, alias_events.c.reason)
            .where(alias_events.c.model_id == model.id, alias_events.c.alias == alias)
            .order_by(alias_events.c.created_at.desc(), alias_events.c.id.desc())
            .limit(1)
        ).first()
        if row is None:
            return ""
        return f" (last moved by {row.user} at {_when(row.created_at)}: {row.reason!r})"

    def _check_grounds(
        self,
        conn: Connection,
        name: str,
        alias: str,
        target: Any,
        current: Any,
        protected: bool,
        gate_result_id: str | None,
        force: bool,
    ) -> str | None:
        """The gate result id that allows the move (validated), or None; refuses otherwise."""
        if gate_result_id is not None:
            if target is None:
                raise RegistryError("a gate result promotes a version; it cannot remove an alias")
            gate = conn.execute(
                select(gate_results).where(gate_results.c.id == gate_result_id)
            ).first()
            if gate is None:
                raise RegistryError(f"no gate result {gate_result_id}")
            if gate.model_version_id != target.id:
                raise ProtectedAliasError(
                    f"gate result {gate_result_id[:12]} judged another version, not "
                    f"{name}@v{target.number}"
                )
            if not gate.passed:
                raise ProtectedAliasError(
                    f"gate result {gate_result_id[:12]} failed, so it cannot move {name}@{alias}"
                )
            champion = current.version_id if current is not None else None
            if gate.champion_version_id != champion:
                raise ProtectedAliasError(
                    f"gate result {gate_result_id[:12]} compared {name}@v{target.number} with "
                    f"another version than the one {name}@{alias} points to now; run the gate "
                    "again"
                )
            return str(gate.id)
        if protected and not force:
            raise ProtectedAliasError(
                f"{alias!r} is a protected alias of {name}: moving it needs a passed gate, "
                'or --force with --reason "…"'
            )
        return None

    def alias_events(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        """Every alias move of ``name`` (of one alias when given), oldest first."""
        with self.metadata.read() as conn:
            model = self._model_row(conn, name)
            src = model_versions.alias("src")
            dst = model_versions.alias("dst")
            query = (
                select(
                    alias_events,
                    src.c.number.label("from_number"),
                    dst.c.number.label("to_number"),
                )
                .outerjoin(src, src.c.id == alias_events.c.from_version_id)
                .outerjoin(dst, dst.c.id == alias_events.c.to_version_id)
                .where(alias_events.c.model_id == model.id)
                .order_by(alias_events.c.created_at, alias_events.c.id)
            )
            if alias is not None:
                query = query.where(alias_events.c.alias == alias)
            rows = conn.execute(query).all()
        return [
            AliasEvent(
                id=r.id,
                model=name,
                alias=r.alias,
                from_version=r.from_number,
                to_version=r.to_number,
                user=r.user,
                created_at=r.created_at,
                reason=r.reason,
                gate_result_id=r.gate_result_id,
                forced=bool(r.forced),
            )
            for r in rows
        ]


def _add_edges(conn: Connection, edges: Iterable[tuple[str, str, str, str, str]]) -> None:
    """Insert lineage edges that are not recorded yet."""
    for src_kind, src_id, dst_kind, dst_id, role in dict.fromkeys(edges):
        edge = {
            "src_kind": src_kind,
            "src_id": src_id,
            "dst_kind": dst_kind,
            "dst_id": dst_id,
            "role": role,
        }
        exists = conn.execute(
            select(lineage_edges.c.role).where(*(lineage_edges.c[k] == v for k, v in edge.items()))
        ).first()
        if exists is None:
            conn.execute(insert(lineage_edges).values(**edge))
