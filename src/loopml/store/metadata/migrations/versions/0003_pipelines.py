"""Pipelines: step runs, their outputs, the exact step cache, and lineage edges.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27

Frozen: this file describes revision 0003 and must not follow later changes to schema.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the pipeline tables."""
    op.create_table(
        "step_runs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("pipeline_run_id", sa.String(32), nullable=False),
        sa.Column("node", sa.String(256), nullable=False),
        sa.Column("step", sa.String(512), nullable=False),
        sa.Column("cache_key", sa.String(64), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("key_parts", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.Column("duration_ms", sa.BigInteger(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_step_runs")),
        sa.ForeignKeyConstraint(["id"], ["runs.id"], name=op.f("fk_step_runs_id_runs")),
        sa.ForeignKeyConstraint(
            ["pipeline_run_id"], ["runs.id"], name=op.f("fk_step_runs_pipeline_run_id_runs")
        ),
        sa.UniqueConstraint(
            "pipeline_run_id", "node", name=op.f("uq_step_runs_pipeline_run_id_node")
        ),
        sa.CheckConstraint(
            "status IN ('ran', 'cached', 'failed', 'running')", name=op.f("ck_step_runs_status")
        ),
    )
    op.create_index(op.f("ix_step_runs_cache_key"), "step_runs", ["cache_key"])
    op.create_index(op.f("ix_step_runs_step"), "step_runs", ["step"])
    op.create_table(
        "step_outputs",
        sa.Column("step_run_id", sa.String(32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("materializer", sa.String(256), nullable=False),
        sa.Column("type_name", sa.String(512), nullable=False),
        sa.PrimaryKeyConstraint("step_run_id", "position", name=op.f("pk_step_outputs")),
        sa.ForeignKeyConstraint(
            ["step_run_id"], ["step_runs.id"], name=op.f("fk_step_outputs_step_run_id_step_runs")
        ),
    )
    op.create_index(op.f("ix_step_outputs_digest"), "step_outputs", ["digest"])
    op.create_table(
        "step_cache",
        sa.Column("cache_key", sa.String(64), nullable=False),
        sa.Column("step", sa.String(512), nullable=False),
        sa.Column("step_run_id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("cache_key", name=op.f("pk_step_cache")),
        sa.ForeignKeyConstraint(
            ["step_run_id"], ["step_runs.id"], name=op.f("fk_step_cache_step_run_id_step_runs")
        ),
    )
    op.create_table(
        "lineage_edges",
        sa.Column("src_kind", sa.String(32), nullable=False),
        sa.Column("src_id", sa.String(128), nullable=False),
        sa.Column("dst_kind", sa.String(32), nullable=False),
        sa.Column("dst_id", sa.String(128), nullable=False),
        sa.Column("role", sa.String(256), nullable=False),
        sa.PrimaryKeyConstraint(
            "src_kind", "src_id", "dst_kind", "dst_id", "role", name=op.f("pk_lineage_edges")
        ),
    )
    op.create_index(
        op.f("ix_lineage_edges_dst_kind_dst_id"), "lineage_edges", ["dst_kind", "dst_id"]
    )


def downgrade() -> None:
    """Drop the pipeline tables."""
    for table in ("lineage_edges", "step_cache", "step_outputs", "step_runs"):
        op.drop_table(table)
