"""Model registry: models, versions, their inputs, aliases, alias events and gate results.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28

Frozen: this file describes revision 0004 and must not follow later changes to schema.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _fk(table: str, column: str, referred: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{referred}.id"], name=op.f(f"fk_{table}_{column}_{referred}")
    )


def upgrade() -> None:
    """Create the registry tables."""
    op.create_table(
        "registered_models",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registered_models")),
        sa.UniqueConstraint("name", name=op.f("uq_registered_models_name")),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("model_id", sa.String(32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("flavor", sa.String(64), nullable=False),
        sa.Column("flavor_options", sa.Text(), nullable=False),
        sa.Column("framework", sa.String(64), nullable=False),
        sa.Column("framework_version", sa.String(64), nullable=False),
        sa.Column("model_class", sa.String(512), nullable=False),
        sa.Column("signature", sa.Text(), nullable=True),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("archived_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        _fk("model_versions", "model_id", "registered_models"),
        _fk("model_versions", "run_id", "runs"),
        sa.UniqueConstraint("model_id", "number", name=op.f("uq_model_versions_model_id_number")),
        sa.CheckConstraint(
            "status IN ('ready', 'archived')", name=op.f("ck_model_versions_status")
        ),
    )
    op.create_index(op.f("ix_model_versions_digest"), "model_versions", ["digest"])
    op.create_index(op.f("ix_model_versions_run_id"), "model_versions", ["run_id"])
    op.create_table(
        "model_version_inputs",
        sa.Column("model_version_id", sa.String(32), nullable=False),
        sa.Column("dataset", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint(
            "model_version_id", "dataset", "version", name=op.f("pk_model_version_inputs")
        ),
        _fk("model_version_inputs", "model_version_id", "model_versions"),
    )
    op.create_table(
        "model_aliases",
        sa.Column("model_id", sa.String(32), nullable=False),
        sa.Column("alias", sa.String(128), nullable=False),
        sa.Column("version_id", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("model_id", "alias", name=op.f("pk_model_aliases")),
        _fk("model_aliases", "model_id", "registered_models"),
        _fk("model_aliases", "version_id", "model_versions"),
    )
    op.create_index(op.f("ix_model_aliases_version_id"), "model_aliases", ["version_id"])
    op.create_table(
        "gate_results",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("model_version_id", sa.String(32), nullable=False),
        sa.Column("gate_file_hash", sa.String(64), nullable=False),
        sa.Column("data_hash", sa.String(64), nullable=False),
        sa.Column("champion_version_id", sa.String(32), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("report", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("user", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gate_results")),
        _fk("gate_results", "model_version_id", "model_versions"),
        _fk("gate_results", "champion_version_id", "model_versions"),
    )
    op.create_index(op.f("ix_gate_results_model_version_id"), "gate_results", ["model_version_id"])
    op.create_table(
        "alias_events",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("model_id", sa.String(32), nullable=False),
        sa.Column("alias", sa.String(128), nullable=False),
        sa.Column("from_version_id", sa.String(32), nullable=True),
        sa.Column("to_version_id", sa.String(32), nullable=True),
        sa.Column("user", sa.String(128), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("gate_result_id", sa.String(32), nullable=True),
        sa.Column("forced", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alias_events")),
        _fk("alias_events", "model_id", "registered_models"),
        _fk("alias_events", "from_version_id", "model_versions"),
        _fk("alias_events", "to_version_id", "model_versions"),
        _fk("alias_events", "gate_result_id", "gate_results"),
    )
    op.create_index(op.f("ix_alias_events_model_id_alias"), "alias_events", ["model_id", "alias"])


def downgrade() -> None:
    """Drop the registry tables."""
    for table in (
        "alias_events",
        "gate_results",
        "model_aliases",
        "model_version_inputs",
        "model_versions",
        "registered_models",
    ):
        op.drop_table(table)
