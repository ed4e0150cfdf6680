"""Experiment tracking: experiments, runs, params, metrics, tags, artifacts and inputs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

Frozen: this file describes revision 0002 and must not follow later changes to schema.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RUN_FK = "runs.id"


def _run_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["run_id"], [_RUN_FK], name=op.f(f"fk_{table}_run_id_runs"))


def upgrade() -> None:
    """Create the tracking tables."""
    op.create_table(
        "experiments",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiments")),
        sa.UniqueConstraint("name", name=op.f("uq_experiments_name")),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("experiment_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("start_time", sa.BigInteger(), nullable=False),
        sa.Column("end_time", sa.BigInteger(), nullable=True),
        sa.Column("parent_run_id", sa.String(32), nullable=True),
        sa.Column("user", sa.String(128), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("heartbeat_at", sa.BigInteger(), nullable=False),
        sa.Column("manifest_hash", sa.String(64), nullable=True),
        sa.Column("environment_hash", sa.String(64), nullable=True),
        sa.Column("error_type", sa.String(256), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("deleted_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
        sa.ForeignKeyConstraint(
            ["experiment_id"], ["experiments.id"], name=op.f("fk_runs_experiment_id_experiments")
        ),
        sa.CheckConstraint(
            "status IN ('running', 'finished', 'failed', 'crashed', 'killed')",
            name=op.f("ck_runs_status"),
        ),
    )
    op.create_index(
        op.f("ix_runs_experiment_id_start_time"), "runs", ["experiment_id", "start_time"]
    )
    op.create_index(op.f("ix_runs_parent_run_id"), "runs", ["parent_run_id"])
    op.create_index(op.f("ix_runs_status"), "runs", ["status"])
    op.create_table(
        "run_params",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "key", name=op.f("pk_run_params")),
        _run_fk("run_params"),
    )
    op.create_table(
        "run_metrics",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        _run_fk("run_metrics"),
    )
    op.create_index(
        op.f("ix_run_metrics_run_id_key_step"), "run_metrics", ["run_id", "key", "step"]
    )
    op.create_table(
        "latest_metrics",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("run_id", "key", name=op.f("pk_latest_metrics")),
        _run_fk("latest_metrics"),
    )
    op.create_index(op.f("ix_latest_metrics_key_value"), "latest_metrics", ["key", "value"])
    op.create_table(
        "run_tags",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "key", name=op.f("pk_run_tags")),
        _run_fk("run_tags"),
    )
    op.create_table(
        "run_artifacts",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "path", name=op.f("pk_run_artifacts")),
        _run_fk("run_artifacts"),
        sa.CheckConstraint("kind IN ('file', 'tree')", name=op.f("ck_run_artifacts_kind")),
    )
    op.create_index(op.f("ix_run_artifacts_digest"), "run_artifacts", ["digest"])
    op.create_table(
        "run_inputs",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("dataset", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "dataset", "version", name=op.f("pk_run_inputs")),
        _run_fk("run_inputs"),
    )


def downgrade() -> None:
    """Drop the tracking tables."""
    for table in (
        "run_inputs",
        "run_artifacts",
        "run_tags",
        "latest_metrics",
        "run_metrics",
        "run_params",
        "runs",
        "experiments",
    ):
        op.drop_table(table)
