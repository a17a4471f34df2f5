"""Alembic environment: run by :func:`engine.store.migrate` on a connection it already holds (no alembic.ini).

A new revision is drafted with ``alembic.command.revision(config, message, autogenerate=True)`` on a config built
like :func:`engine.store.migrate` builds it, then reviewed by hand (see the README's store section).
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from sqlmodel.sql.sqltypes import AutoString

from engine.store.records import UTCDateTime, metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - offline SQL generation is not supported
    raise RuntimeError("engine/migrations runs through engine.store.migrate(engine), which passes a connection")


def _render_item(type_: str, obj: Any, _context: Any) -> str | Literal[False]:
    """Draft migrations in plain SQLAlchemy types, so they never depend on this codebase's classes."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, AutoString):
        return "sa.String()"
    return False


context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    render_item=_render_item,
)
with context.begin_transaction():
    context.run_migrations()
