"""What every table shares: the metadata with named constraints, the UTC datetime column type, and deferred foreign
keys. Apart from the tables so both groups (:mod:`.core`, :mod:`.safety`) build on one definition.

Times are aware UTC datetimes in Python and UTC in the database (``timestamptz`` on PostgreSQL, naive UTC text
on SQLite, where text order is time order). A naive datetime is refused when written: it is a bug upstream.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, ForeignKeyConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import SQLModel

__all__ = ["UTCDateTime", "episode_fk", "fk", "metadata"]

metadata = SQLModel.metadata
# Named constraints, so later migrations can alter them (SQLite's batch mode needs the names).
metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime; refuses naive values so no local time slips in."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError(f"expected an aware datetime, got {value!r}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def fk(columns: list[str], refs: list[str]) -> ForeignKeyConstraint:
    """Checked at commit, so one transaction may add parents and children in any order (the ORM does not sort
    inserts by foreign keys when there are no relationships)."""
    return ForeignKeyConstraint(columns, refs, deferrable=True, initially="DEFERRED")


def episode_fk() -> ForeignKeyConstraint:
    return fk(["episode_id"], ["episode.id"])
