"""Import MLflow's experiments and runs by reading its stores directly (no ``mlflow`` package).

Two sources are understood:

- MLflow's SQL store (``sqlite:///mlflow.db``, its default; any SQLAlchemy URL whose driver is
  installed): the tables ``experiments``, ``runs``, ``params``, ``metrics`` and ``tags``,
  reflected and read with SQLAlchemy Core. A SQLite file is opened read-only.
- MLflow's file store (``./mlruns``): ``<experiment>/meta.yaml`` and
  ``<experiment>/<run>/{meta.yaml, params/, metrics/, tags/}``, read with ``yaml.safe_load``.

Each run keeps its name, status, times, params, every metric point (NaN included), tags and
parent (from the ``mlflow.parentRunId`` tag); files under its artifact location (a local path
or ``file:`` URI) are copied into the object store and recorded as the run's artifacts. The
imported run carries the tag ``mlflow.run_id``, and a run already imported is skipped, so
importing again adds only what is new. Nothing is ever unpickled: artifacts are copied as bytes.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlparse

from sqlalchemy import Connection, insert, select, update

from loopml.data.progress import NullProgress, Progress
from loopml.errors import LoopMLError, UserInputError
from loopml.ids import new_id
from loopml.store.metadata.schema import experiments as experiment_table
from loopml.store.metadata.schema import (
    latest_metrics,
    run_artifacts,
    run_metrics,
    run_params,
    run_tags,
    runs,
)
from loopml.store.workspace import Workspace
from loopml.tracking.errors import TrackingError
from loopml.tracking.model import ArtifactRecord, Metric, RunStatus
from loopml.tracking.sql_store import SqlTrackingStore, now_ms

__all__ = ["MLFLOW_RUN_ID_TAG", "MlflowImportError", "MlflowImportResult", "import_mlflow"]

MLFLOW_RUN_ID_TAG = "mlflow.run_id"
_PARENT_TAG = "mlflow.parentRunId"
_STATUS = {
    "RUNNING": RunStatus.RUNNING,
    "SCHEDULED": RunStatus.RUNNING,
    "FINISHED": RunStatus.FINISHED,
    "FAILED": RunStatus.FAILED,
    "KILLED": RunStatus.KILLED,
}
# The file store writes the status as MLflow's RunStatus enum number.
_STATUS_NUMBERS = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}
_NAME_OK = re.compile(r"[^A-Za-z0-9._-]+")
_SQL_TABLES = ("experiments", "runs", "params", "metrics", "tags")
_CHUNK = 5000


class MlflowImportError(TrackingError, UserInputError):
    """The MLflow store cannot be read (missing, not an MLflow store, malformed)."""


@dataclass
class MlflowImportResult:
    """What an import added (a second import of the same store adds nothing)."""

    source: str
    experiments: int = 0  # experiments created in loopml
    runs: int = 0
    skipped_runs: int = 0  # already imported before
    params: int = 0
    metric_points: int = 0
    tags: int = 0  # MLflow's tags (the added ``mlflow.run_id`` is not counted)
    artifacts: int = 0  # artifact records: a top-level file or folder of a run's artifacts
    artifact_files: int = 0
    artifact_bytes: int = 0
    renamed_experiments: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Experiment:
    id: str
    name: str
    deleted: bool


@dataclass(frozen=True, slots=True)
class _Run:
    id: str
    experiment_id: str
    name: str | None
    status: str
    start_time: int | None
    end_time: int | None
    user: str
    deleted: bool
    deleted_time: int | None
    artifact_uri: str | None
    folder: Path | None = None  # the run's folder in a file store


class _Source(Protocol):
    where: str

    def experiments(self) -> list[_Experiment]: ...

    def runs(self) -> list[_Run]: ...

    def params(self, run: _Run) -> list[tuple[str, str]]: ...

    def tags(self, run: _Run) -> list[tuple[str, str]]: ...

    def metrics(self, run: _Run) -> list[Metric]: ...

    def artifact_folder(self, run: _Run) -> Path | None: ...

    def close(self) -> None: ...


def _local_path(uri: str | None, bases: Sequence[Path]) -> Path | None:
    """The local folder an MLflow artifact location names, or ``None`` when it is remote."""
    if not uri:
        return None
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            return None
        raw = unquote(parsed.path)
    elif parsed.scheme and len(parsed.scheme) > 1:  # a one-letter scheme is a Windows drive
        return None
    else:
        raw = uri
    path = Path(raw).expanduser()
    if path.is_absolute():
        return path
    for base in bases:
        candidate = base / path
        if candidate.exists():
            return candidate
    return bases[0] / path if bases else path


def _int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# -- the SQL store -----------------------------------------------------------------------------


class _SqlSource:
    """MLflow's SQLAlchemy store."""

    def __init__(self, uri: str) -> None:
        from sqlalchemy import MetaData, create_engine, inspect
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

        self._bases = [Path.cwd()]
        try:
            url = make_url(uri)
        except ArgumentError:
            raise MlflowImportError(
                f"{uri!r} is not a database URL; use sqlite:///path/to/mlflow.db or --from ./mlruns"
            ) from None
        uri = self.where = url.render_as_string(hide_password=True)
        if url.get_backend_name() == "sqlite":
            if not url.database or url.database == ":memory:":
                raise MlflowImportError(f"{uri} names no database file")
            path = Path(url.database).expanduser()
            if not path.is_file():
                raise MlflowImportError(f"no MLflow database at {path}; check --tracking-uri")
            self._bases = [path.resolve().parent, Path.cwd()]
            # Read-only: opening must never create or change the user's MLflow database.
            url = url.set(
                database=f"file:{quote(str(path.resolve()))}", query={"mode": "ro", "uri": "true"}
            )
        try:
            self._engine = create_engine(url)
        except (NoSuchModuleError, ModuleNotFoundError) as exc:
            raise MlflowImportError(
                f"cannot open {uri}: its database driver is not installed ({exc})"
            ) from None
        self._meta = MetaData()
        try:
            with self._engine.connect() as conn:
                names = set(inspect(conn).get_table_names())
                missing = [t for t in _SQL_TABLES if t not in names]
                if missing:
                    raise MlflowImportError(
                        f"{uri} is not an MLflow tracking database (no table {', '.join(missing)})"
                    )
                self._meta.reflect(conn, only=[*_SQL_TABLES])
        except SQLAlchemyError as exc:
            self._engine.dispose()
            raise MlflowImportError(
                f"cannot read {uri} as an MLflow database: {_first_line(exc)}"
            ) from None
        except BaseException:
            self._engine.dispose()
            raise
        self._tables = self._meta.tables

    def close(self) -> None:
        self._engine.dispose()

    def _read(self, query: Any) -> list[Any]:
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with self._engine.connect() as conn:
                return list(conn.execute(query).all())
        except SQLAlchemyError as exc:
            raise MlflowImportError(f"cannot read {self.where}: {_first_line(exc)}") from None

    def experiments(self) -> list[_Experiment]:
        table = self._tables["experiments"]
        columns = [table.c.experiment_id, table.c.name]
        stage = table.c.get("lifecycle_stage")
        if stage is not None:
            columns.append(stage)
        return [
            _Experiment(
                str(r.experiment_id),
                str(r.name),
                stage is not None and r.lifecycle_stage == "deleted",
            )
            for r in self._read(select(*columns).order_by(table.c.experiment_id))
        ]

    def runs(self) -> list[_Run]:
        table = self._tables["runs"]
        c = table.c
        rows = self._read(select(table).order_by(c.start_time, c.run_uuid))
        return [
            _Run(
                id=str(r.run_uuid),
                experiment_id=str(r.experiment_id),
                name=getattr(r, "name", None),
                status=str(r.status),
                start_time=_int(r.start_time),
                end_time=_int(r.end_time),
                user=str(getattr(r, "user_id", None) or ""),
                deleted=getattr(r, "lifecycle_stage", None) == "deleted",
                deleted_time=_int(getattr(r, "deleted_time", None)),
                artifact_uri=getattr(r, "artifact_uri", None),
            )
            for r in rows
        ]

    def _pairs(self, name: str, run: _Run) -> list[tuple[str, str]]:
        table = self._tables[name]
        query = select(table.c.key, table.c.value).where(table.c.run_uuid == run.id)
        return [(str(k), "" if v is None else str(v)) for k, v in self._read(query)]

    def params(self, run: _Run) -> list[tuple[str, str]]:
        return self._pairs("params", run)

    def tags(self, run: _Run) -> list[tuple[str, str]]:
        return self._pairs("tags", run)

    def metrics(self, run: _Run) -> list[Metric]:
        table = self._tables["metrics"]
        c = table.c
        step = c.get("step")
        is_nan = c.get("is_nan")
        columns = [c.key, c.value, c.timestamp]
        columns += [col for col in (step, is_nan) if col is not None]
        order = [c.key] + ([step] if step is not None else []) + [c.timestamp]
        rows = self._read(select(*columns).where(c.run_uuid == run.id).order_by(*order))
        points = []
        for r in rows:
            nan = is_nan is not None and bool(r.is_nan)
            value = math.nan if nan or r.value is None else float(r.value)
            points.append(
                Metric(str(r.key), value, int(getattr(r, "step", 0) or 0), int(r.timestamp or 0))
            )
        return points

    def artifact_folder(self, run: _Run) -> Path | None:
        return _local_path(run.artifact_uri, self._bases)


# -- the file store ----------------------------------------------------------------------------


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise MlflowImportError(f"cannot read {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise MlflowImportError(f"{path} is not valid YAML: {_first_line(exc)}") from None
    if not isinstance(document, dict):
        raise MlflowImportError(f"{path} is not an MLflow meta.yaml (not a mapping)")
    return document


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MlflowImportError(f"cannot read {path}: {exc}") from None


def _keyed_files(folder: Path) -> Iterator[tuple[str, Path]]:
    """(key, file) under ``folder``; a key with ``/`` is a nested file, as MLflow writes it."""
    if not folder.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            yield path.relative_to(folder).as_posix(), path


class _FileSource:
    """MLflow's ``mlruns`` folder."""

    def __init__(self, root: Path) -> None:
        self.where = str(root)
        if not root.exists():
            raise MlflowImportError(f"{root} does not exist; give the path of an mlruns folder")
        if not root.is_dir():
            raise MlflowImportError(f"{root} is not a folder; give the path of an mlruns folder")
        self._root = root
        self._bases = [root.resolve().parent, Path.cwd()]
        self._experiments: list[tuple[_Experiment, Path]] = []
        for folder in self._experiment_folders():
            meta = _yaml(folder / "meta.yaml")
            name = meta.get("name")
            ident = meta.get("experiment_id", folder.name)
            if name is None:
                raise MlflowImportError(f"{folder / 'meta.yaml'} names no experiment")
            deleted = meta.get("lifecycle_stage") == "deleted" or folder.parent.name == ".trash"
            self._experiments.append((_Experiment(str(ident), str(name), deleted), folder))
        if not self._experiments:
            raise MlflowImportError(
                f"{root} is not an MLflow file store (no <experiment>/meta.yaml inside)"
            )

    def _experiment_folders(self) -> list[Path]:
        found = []
        for parent in (self._root, self._root / ".trash"):
            if not parent.is_dir():
                continue
            for child in sorted(parent.iterdir()):
                if child.is_dir() and not child.is_symlink() and (child / "meta.yaml").is_file():
                    found.append(child)
        return found

    def close(self) -> None:
        pass

    def experiments(self) -> list[_Experiment]:
        return [e for e, _ in self._experiments]

    def runs(self) -> list[_Run]:
        found: list[_Run] = []
        for experiment, folder in self._experiments:
            for child in sorted(folder.iterdir()):
                meta_path = child / "meta.yaml"
                if not child.is_dir() or child.is_symlink() or not meta_path.is_file():
                    continue
                meta = _yaml(meta_path)
                ident = meta.get("run_id") or meta.get("run_uuid")
                if not ident:
                    continue  # not a run (logged models, traces and the like)
                status = meta.get("status")
                if isinstance(status, int):
                    status = _STATUS_NUMBERS.get(status, "FINISHED")
                found.append(
                    _Run(
                        id=str(ident),
                        experiment_id=experiment.id,
                        name=meta.get("run_name") or None,
                        status=str(status or "FINISHED"),
                        start_time=_int(meta.get("start_time")),
                        end_time=_int(meta.get("end_time")),
                        user=str(meta.get("user_id") or ""),
                        deleted=meta.get("lifecycle_stage") == "deleted" or experiment.deleted,
                        deleted_time=_int(meta.get("deleted_time")),
                        artifact_uri=meta.get("artifact_uri"),
                        folder=child,
                    )
                )
        found.sort(key=lambda r: (r.start_time or 0, r.id))
        return found

    def params(self, run: _Run) -> list[tuple[str, str]]:
        assert run.folder is not None
        return [(k, _read_text(p)) for k, p in _keyed_files(run.folder / "params")]

    def tags(self, run: _Run) -> list[tuple[str, str]]:
        assert run.folder is not None
        return [(k, _read_text(p)) for k, p in _keyed_files(run.folder / "tags")]

    def metrics(self, run: _Run) -> list[Metric]:
        assert run.folder is not None
        points: list[Metric] = []
        for key, path in _keyed_files(run.folder / "metrics"):
            series = []
            for number, line in enumerate(_read_text(path).splitlines(), 1):
                fields = line.split()
                if not fields:
                    continue
                try:
                    timestamp, value = int(fields[0]), float(fields[1])
                    step = int(fields[2]) if len(fields) > 2 else 0
                except (ValueError, IndexError):
                    raise MlflowImportError(
                        f"{path}:{number} is not 'timestamp value step': {line[:60]!r}"
                    ) from None
                series.append(Metric(key, value, step, timestamp))
            series.sort(key=lambda m: (m.step, m.timestamp))  # stable: keeps the file order
            points.extend(series)
        return points

    def artifact_folder(self, run: _Run) -> Path | None:
        path = _local_path(run.artifact_uri, self._bases)
        if (path is None or not path.exists()) and run.folder is not None:
            fallback = run.folder / "artifacts"  # the mlruns folder was moved since
            if fallback.is_dir():
                return fallback
        return path


def _open_source(tracking_uri: str | None, mlruns: Path | None) -> _Source:
    if (tracking_uri is None) == (mlruns is None):
        raise MlflowImportError(
            "give either --tracking-uri sqlite:///mlflow.db or --from ./mlruns (not both)"
        )
    if mlruns is not None:
        return _FileSource(mlruns)
    assert tracking_uri is not None
    uri = tracking_uri.strip()
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise MlflowImportError(f"{uri} is on another machine; copy the mlruns folder here")
        return _FileSource(Path(unquote(parsed.path)).expanduser())
    if "://" not in uri:
        path = Path(uri).expanduser()
        if path.is_dir():
            return _FileSource(path)
        if path.is_file():
            return _SqlSource(f"sqlite:///{path.resolve()}")
        raise MlflowImportError(
            f"{uri!r} is neither an existing file or folder nor a database URL; use "
            "sqlite:///path/to/mlflow.db or --from ./mlruns"
        )
    return _SqlSource(uri)


# -- writing into loopml -----------------------------------------------------------------------


def _experiment_name(name: str, ident: str) -> str:
    cleaned = _NAME_OK.sub("-", name).strip("-._")[:128].rstrip("-._")
    return cleaned or f"mlflow-{ident}"


def _imported(store: SqlTrackingStore) -> dict[str, str]:
    """MLflow run id → loopml run id, for every run imported before."""
    with store.metadata.read() as conn:
        return {
            str(value): str(run_id)
            for run_id, value in conn.execute(
                select(run_tags.c.run_id, run_tags.c.value).where(
                    run_tags.c.key == MLFLOW_RUN_ID_TAG
                )
            )
        }


def _metric_rows(run_id: str, points: Sequence[Metric]) -> list[dict[str, Any]]:
    # NaN is stored as NULL, as the tracking store does (SQLite cannot store NaN).
    return [
        {
            "run_id": run_id,
            "key": m.key,
            "step": m.step,
            "timestamp": m.timestamp,
            "value": None if math.isnan(m.value) else m.value,
        }
        for m in points
    ]


def _latest(points: Sequence[Metric]) -> list[Metric]:
    latest: dict[str, Metric] = {}
    for point in points:
        seen = latest.get(point.key)
        if seen is None or (point.step, point.timestamp) >= (seen.step, seen.timestamp):
            latest[point.key] = point
    return list(latest.values())


def _store_artifacts(
    workspace: Workspace, folder: Path | None, result: MlflowImportResult, run: _Run
) -> list[ArtifactRecord]:
    from loopml.tracking.artifacts import store_path

    if folder is None or not folder.is_dir():
        return []
    records = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        try:
            record = store_path(workspace, entry, entry.name)
        except LoopMLError as exc:
            result.warnings.append(f"run {run.id}: artifact {entry.name} not copied: {exc}")
            continue
        if record.kind == "tree":
            tree = workspace.objects.get_tree(record.digest)
            if not len(tree):
                continue  # an empty folder
            result.artifact_files += len(tree)
        else:
            result.artifact_files += 1
        result.artifact_bytes += record.size
        records.append(record)
    return records


def _write_run(
    store: SqlTrackingStore,
    experiment_id: str,
    run: _Run,
    params: list[tuple[str, str]],
    tags: list[tuple[str, str]],
    points: list[Metric],
    artifacts: list[ArtifactRecord],
) -> str:
    ident = new_id()
    start = run.start_time if run.start_time is not None else run.end_time or 0
    status = _STATUS.get(run.status.upper(), RunStatus.FINISHED)
    end = run.end_time if status is not RunStatus.RUNNING else None
    name = run.name or dict(tags).get("mlflow.runName") or run.id[:8]
    deleted_at = (run.deleted_time or run.end_time or now_ms()) if run.deleted else None
    created = now_ms()

    def write(conn: Connection) -> str:
        conn.execute(
            insert(runs).values(
                id=ident,
                experiment_id=experiment_id,
                name=name[:256],
                status=status.value,
                start_time=start,
                end_time=end,
                parent_run_id=None,
                user=(run.user or "unknown")[:128],
                host="",
                pid=0,
                heartbeat_at=end if end is not None else start,
                deleted_at=deleted_at,
            )
        )
        if params:
            conn.execute(
                insert(run_params),
                [{"run_id": ident, "key": k, "value": v} for k, v in dict(params).items()],
            )
        all_tags = {**dict(tags), MLFLOW_RUN_ID_TAG: run.id}
        conn.execute(
            insert(run_tags), [{"run_id": ident, "key": k, "value": v} for k, v in all_tags.items()]
        )
        for begin in range(0, len(points), _CHUNK):
            conn.execute(insert(run_metrics), _metric_rows(ident, points[begin : begin + _CHUNK]))
        latest = _latest(points)
        if latest:
            conn.execute(insert(latest_metrics), _metric_rows(ident, latest))
        if artifacts:
            conn.execute(
                insert(run_artifacts),
                [
                    {
                        "run_id": ident,
                        "path": a.path,
                        "digest": a.digest,
                        "size": a.size,
                        "kind": a.kind,
                        "created_at": created,
                    }
                    for a in artifacts
                ],
            )
        return ident

    return store.metadata.run_write(write)


def import_mlflow(
    workspace: Workspace,
    *,
    tracking_uri: str | None = None,
    mlruns: Path | None = None,
    progress: Progress | None = None,
) -> MlflowImportResult:
    """Import every experiment and run of an MLflow store into ``workspace``.

    Give ``tracking_uri`` (``sqlite:///mlflow.db``, a SQLAlchemy URL, or ``file:./mlruns``) or
    ``mlruns`` (the file store's folder). Runs imported before are skipped.
    """
    source = _open_source(tracking_uri, mlruns)
    try:
        return _import(workspace, source, progress or NullProgress())
    finally:
        source.close()


def _import(workspace: Workspace, source: _Source, progress: Progress) -> MlflowImportResult:
    store = SqlTrackingStore(workspace.metadata)
    result = MlflowImportResult(source.where)
    experiments = {e.id: e for e in source.experiments()}
    mlflow_runs = source.runs()
    known = _imported(store)
    with store.metadata.read() as conn:
        existing_experiments = {str(n) for (n,) in conn.execute(select(experiment_table.c.name))}
    loopml_experiments: dict[str, str] = {}
    parents: list[tuple[str, str]] = []
    remote: set[str] = set()
    progress.start("importing runs", len(mlflow_runs), 0)
    try:
        for run in mlflow_runs:
            progress.advance(1, 0)
            if run.id in known:
                result.skipped_runs += 1
                continue
            experiment = experiments.get(run.experiment_id) or _Experiment(
                run.experiment_id, f"mlflow-{run.experiment_id}", False
            )
            if experiment.id not in loopml_experiments:
                name = _experiment_name(experiment.name, experiment.id)
                if name != experiment.name:
                    result.renamed_experiments[experiment.name] = name
                if name not in existing_experiments:
                    result.experiments += 1
                    existing_experiments.add(name)
                loopml_experiments[experiment.id] = store.experiment_id(name)
            if experiment.deleted and not run.deleted:
                run = replace(run, deleted=True)
            params = source.params(run)
            tags = source.tags(run)
            points = source.metrics(run)
            folder = source.artifact_folder(run)
            if folder is None and run.artifact_uri:
                remote.add(urlparse(run.artifact_uri).scheme)
            artifacts = _store_artifacts(workspace, folder, result, run)
            ident = _write_run(
                store, loopml_experiments[experiment.id], run, params, tags, points, artifacts
            )
            known[run.id] = ident
            parent = dict(tags).get(_PARENT_TAG)
            if parent:
                parents.append((ident, parent))
            result.runs += 1
            result.params += len(params)
            result.tags += len(tags)
            result.metric_points += len(points)
            result.artifacts += len(artifacts)
    finally:
        progress.finish()
    links = [(child, known[parent]) for child, parent in parents if parent in known]
    if links:

        def link(conn: Connection) -> None:
            for child, parent in links:
                conn.execute(update(runs).where(runs.c.id == child).values(parent_run_id=parent))

        store.metadata.run_write(link)
    for scheme in sorted(remote):
        result.warnings.append(
            f"artifacts stored at {scheme}:// locations were not copied (only local folders are)"
        )
    for child, parent in parents:
        if parent not in known:
            result.warnings.append(f"run {child[:8]}: parent MLflow run {parent} was not found")
    return result
