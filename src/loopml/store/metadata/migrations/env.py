"""Alembic environment for loopml's metadata database.

loopml configures Alembic in code (``loopml.store.metadata.migrate.alembic_config``) and passes the
connection to migrate in ``config.attributes["connection"]``, already inside the transaction the
migration must run in. There is no offline (SQL script) mode.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from loopml.store.metadata.schema import metadata


def run_migrations() -> None:
    """Run the pending migrations on the connection loopml handed over."""
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            "loopml migrations run through loopml.store.metadata.migrate.upgrade(), "
            "which passes the connection; offline mode is not supported"
        )
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite can alter little in place; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    # The caller's transaction is already open, so this neither begins nor commits one.
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
