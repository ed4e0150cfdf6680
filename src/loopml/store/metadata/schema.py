"""The metadata database's tables, as SQLAlchemy Core objects.

This module describes the newest schema; the migrations in ``migrations/versions`` build it step
by step and are frozen once released. A contract test compares the migrated database with these
objects, so the two cannot drift apart silently.

Conventions: ids are ``String(32)`` from :func:`loopml.ids.new_id`, times are ``BigInteger``
epoch milliseconds (``*_ns`` columns are nanoseconds), hashes are 64 hex characters.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "NAMING_CONVENTION",
    "alias_events",
    "dataset_tags",
    "dataset_versions",
    "datasets",
    "experiments",
    "gate_results",
    "latest_metrics",
    "lineage_edges",
    "metadata",
    "model_aliases",
    "model_version_inputs",
    "model_versions",
    "pins",
    "registered_models",
    "remotes",
    "run_artifacts",
    "run_inputs",
    "run_metrics",
    "run_params",
    "run_tags",
    "runs",
    "stat_cache",
    "step_cache",
    "step_outputs",
    "step_runs",
]

# Without a convention each database invents its own constraint names, and a later migration
# that drops or alters a constraint would need to know which backend it runs on.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

ID = String(32)
HASH = String(64)
NAME = String(128)

datasets = Table(
    "datasets",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", NAME, nullable=False, unique=True),
    # Relative to the workspace root, with forward slashes, so a workspace moves between machines.
    Column("path", Text, nullable=False),
    Column("kind", String(8), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    CheckConstraint("kind IN ('file', 'dir')", name="kind"),
)

dataset_versions = Table(
    "dataset_versions",
    metadata,
    Column("id", ID, primary_key=True),
    Column("dataset_id", ID, ForeignKey("datasets.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("hash", HASH, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("file_count", Integer, nullable=False),
    Column("message", Text, nullable=True),
    Column("author", NAME, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    # Concurrent writers both computing max(number) + 1 are caught here, not by a lock.
    UniqueConstraint("dataset_id", "number"),
    Index(None, "hash"),
)

dataset_tags = Table(
    "dataset_tags",
    metadata,
    Column("dataset_id", ID, ForeignKey("datasets.id"), nullable=False),
    Column("tag", NAME, nullable=False),
    Column("version_id", ID, ForeignKey("dataset_versions.id"), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("dataset_id", "tag"),
    # PostgreSQL does not index foreign keys by itself; deleting a version would scan every tag.
    Index(None, "version_id"),
)

stat_cache = Table(
    "stat_cache",
    metadata,
    Column("host", String(255), nullable=False),
    Column("path", Text, nullable=False),
    Column("inode", BigInteger, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),
    Column("hash", HASH, nullable=False),
    # A file modified within the same timestamp tick as it was hashed may have changed unseen
    # ("racy" entry); comparing mtime_ns with this wall-clock time detects that case.
    Column("hashed_at_ns", BigInteger, nullable=False),
    PrimaryKeyConstraint("host", "path"),
    # Lookups are always by (host, path); storing rows in that key's b-tree halves the I/O.
    sqlite_with_rowid=False,
)

remotes = Table(
    "remotes",
    metadata,
    Column("name", NAME, primary_key=True),
    Column("url", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("last_push_at", BigInteger, nullable=True),
    Column("last_pull_at", BigInteger, nullable=True),
)

# Explicit garbage-collection roots: objects no record points to, kept on purpose.
pins = Table(
    "pins",
    metadata,
    Column("hash", HASH, primary_key=True),
    Column("reason", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)


# -- experiment tracking (revision 0002) ------------------------------------------------------

KEY = String(250)

experiments = Table(
    "experiments",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", NAME, nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", ID, primary_key=True),
    Column("experiment_id", ID, ForeignKey("experiments.id"), nullable=False),
    Column("name", String(256), nullable=False),
    Column("status", String(16), nullable=False),
    Column("start_time", BigInteger, nullable=False),
    Column("end_time", BigInteger, nullable=True),
    Column("parent_run_id", ID, nullable=True),
    Column("user", NAME, nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    # Written by the run's background writer; a running run whose heartbeat stops is crashed.
    Column("heartbeat_at", BigInteger, nullable=False),
    Column("manifest_hash", HASH, nullable=True),
    Column("environment_hash", HASH, nullable=True),
    Column("error_type", String(256), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("deleted_at", BigInteger, nullable=True),
    CheckConstraint(
        "status IN ('running', 'finished', 'failed', 'crashed', 'killed')", name="status"
    ),
    Index(None, "experiment_id", "start_time"),
    Index(None, "parent_run_id"),
    Index(None, "status"),
)

run_params = Table(
    "run_params",
    metadata,
    Column("run_id", ID, ForeignKey("runs.id"), nullable=False),
    Column("key", KEY, nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("run_id", "key"),
)

# Every logged point. NaN is stored as NULL on both databases (SQLite cannot store NaN);
# infinities are stored as themselves.
run_metrics = Table(
    "run_metrics",
    metadata,
    Column("run_id", ID, ForeignKey("runs.id"), nullable=False),
    Column("key", KEY, nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("value", Float, nullable=True),
    Index(None, "run_id", "key", "step"),
)

# The newest point of each metric of each run, kept up to date on every batch, so that
# filtering and sorting runs by a metric is one indexed join instead of a scan of the history.
latest_metrics = Table(
    "latest_metrics",
    metadata,
    Column("run_id", ID, ForeignKey("runs.id"), nullable=False),
    Column("key", KEY, nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("value", Float, nullable=True),
    PrimaryKeyConstraint("run_id", "key"),
    Index(None, "key", "value"),
)

run_tags = Table(
    "run_tags",
    metadata,
    Column("run_id", ID, ForeignKey("runs.id"), nullable=False),
    Column("key", KEY, nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("run_id", "key"),
)

# Artifacts are objects in the object store (a file's blob or a folder's tree): gc roots.
run_artifacts = Table(
    "run_artifacts",
    metadata,
    Column("run_id", ID, ForeignKey("runs.id"), nullable=False),
    Column("path", Text, nullable=False),
    Column("digest", HASH, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("kind", String(8), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("run_id", "path"),
    Index(None, "digest"),
    CheckConstraint("kind IN ('file', 'tree')", name="kind"),
)

# Dataset versions a run read, for its manifest and for lineage.
run_inputs = Table(
    "run_inputs",
    metadata,
    Column("run_id", ID, ForeignKey("runs.id"), nullable=False),
    Column("dataset", NAME, nullable=False),
    Column("version", Integer, nullable=False),
    Column("hash", HASH, nullable=False),
    PrimaryKeyConstraint("run_id", "dataset", "version"),
)


# -- pipelines (revision 0003) ----------------------------------------------------------------

# One row per step of a pipeline run; ``id`` is the step's (light) child tracking run.
step_runs = Table(
    "step_runs",
    metadata,
    Column("id", ID, ForeignKey("runs.id"), primary_key=True),
    Column("pipeline_run_id", ID, ForeignKey("runs.id"), nullable=False),
    Column("node", String(256), nullable=False),
    Column("step", String(512), nullable=False),
    Column("cache_key", HASH, nullable=False),
    Column("code_hash", HASH, nullable=False),
    # The parts of the cache key (inputs, params, packages) as JSON, to explain a cache miss.
    Column("key_parts", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("started_at", BigInteger, nullable=False),
    Column("duration_ms", BigInteger, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("error", Text, nullable=True),
    UniqueConstraint("pipeline_run_id", "node"),
    Index(None, "cache_key"),
    Index(None, "step"),
    CheckConstraint("status IN ('ran', 'cached', 'failed', 'running')", name="status"),
)

# Each output of a step run: an object in the store and how to load it (gc roots).
step_outputs = Table(
    "step_outputs",
    metadata,
    Column("step_run_id", ID, ForeignKey("step_runs.id"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("digest", HASH, nullable=False),
    Column("materializer", String(256), nullable=False),
    Column("type_name", String(512), nullable=False),
    PrimaryKeyConstraint("step_run_id", "position"),
    Index(None, "digest"),
)

# Exact cache: the key of a step execution to the step run whose outputs answer it.
step_cache = Table(
    "step_cache",
    metadata,
    Column("cache_key", HASH, primary_key=True),
    Column("step", String(512), nullable=False),
    Column("step_run_id", ID, ForeignKey("step_runs.id"), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# Lineage as generic edges: ``dst`` was made from ``src`` (kinds: object, step_run, run,
# dataset_version, model_version …), with the role the source played.
lineage_edges = Table(
    "lineage_edges",
    metadata,
    Column("src_kind", String(32), nullable=False),
    Column("src_id", String(128), nullable=False),
    Column("dst_kind", String(32), nullable=False),
    Column("dst_id", String(128), nullable=False),
    Column("role", String(256), nullable=False),
    PrimaryKeyConstraint("src_kind", "src_id", "dst_kind", "dst_id", "role"),
    Index(None, "dst_kind", "dst_id"),
)


# -- model registry (revision 0004) -----------------------------------------------------------

registered_models = Table(
    "registered_models",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", NAME, nullable=False, unique=True),
    Column("description", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", NAME, nullable=False),
)

# One stored model: ``digest`` is its serialised object (a gc root); numbers count up per model.
model_versions = Table(
    "model_versions",
    metadata,
    Column("id", ID, primary_key=True),
    Column("model_id", ID, ForeignKey("registered_models.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("digest", HASH, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("flavor", String(64), nullable=False),
    # What the flavour needs to load it again (JSON), e.g. the types skops must trust.
    Column("flavor_options", Text, nullable=False),
    Column("framework", String(64), nullable=False),
    Column("framework_version", String(64), nullable=False),
    Column("model_class", String(512), nullable=False),
    # The input signature inferred from the example (JSON); NULL when none was given.
    Column("signature", Text, nullable=True),
    Column("run_id", ID, ForeignKey("runs.id"), nullable=True),
    Column("description", Text, nullable=True),
    Column("status", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", NAME, nullable=False),
    Column("archived_at", BigInteger, nullable=True),
    # Concurrent writers both computing max(number) + 1 are caught here, not by a lock.
    UniqueConstraint("model_id", "number"),
    Index(None, "digest"),
    Index(None, "run_id"),
    CheckConstraint("status IN ('ready', 'archived')", name="status"),
)

# Dataset versions the training run had read when the model version was logged.
model_version_inputs = Table(
    "model_version_inputs",
    metadata,
    Column("model_version_id", ID, ForeignKey("model_versions.id"), nullable=False),
    Column("dataset", NAME, nullable=False),
    Column("version", Integer, nullable=False),
    Column("hash", HASH, nullable=False),
    PrimaryKeyConstraint("model_version_id", "dataset", "version"),
)

# Where each alias points now; every change is also an ``alias_events`` row.
model_aliases = Table(
    "model_aliases",
    metadata,
    Column("model_id", ID, ForeignKey("registered_models.id"), nullable=False),
    Column("alias", NAME, nullable=False),
    Column("version_id", ID, ForeignKey("model_versions.id"), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("updated_by", NAME, nullable=False),
    PrimaryKeyConstraint("model_id", "alias"),
    Index(None, "version_id"),
)

# The outcome of a promotion gate for a candidate version (written by the gate runner).
gate_results = Table(
    "gate_results",
    metadata,
    Column("id", ID, primary_key=True),
    Column("model_version_id", ID, ForeignKey("model_versions.id"), nullable=False),
    Column("gate_file_hash", HASH, nullable=False),
    Column("data_hash", HASH, nullable=False),
    Column("champion_version_id", ID, ForeignKey("model_versions.id"), nullable=True),
    Column("passed", Boolean, nullable=False),
    Column("report", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("user", NAME, nullable=False),
    Index(None, "model_version_id"),
)

# Every alias move: who, when, from which version to which (NULL: unset), why, on what grounds.
alias_events = Table(
    "alias_events",
    metadata,
    Column("id", ID, primary_key=True),
    Column("model_id", ID, ForeignKey("registered_models.id"), nullable=False),
    Column("alias", NAME, nullable=False),
    Column("from_version_id", ID, ForeignKey("model_versions.id"), nullable=True),
    Column("to_version_id", ID, ForeignKey("model_versions.id"), nullable=True),
    Column("user", NAME, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
    Column("gate_result_id", ID, ForeignKey("gate_results.id"), nullable=True),
    Column("forced", Boolean, nullable=False),
    Index(None, "model_id", "alias"),
)
