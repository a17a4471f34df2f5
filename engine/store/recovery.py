"""What recovering from crashes needs from the store: a lease, so one serving process sweeps at a time (the rungs'
side of reconciling Prefect's runs with the store is :func:`engine.store.queries.timers.run_needs`).

A lease is a row of the ``setting`` table (``lease:<name>``: holder and expiry, wall time), taken in one write
transaction: SQLite serialises writers (``BEGIN IMMEDIATE``), PostgreSQL locks the row (``FOR UPDATE``). A holder
that dies frees it when it expires. No new table, so no migration.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import Session, select

from engine.clock import utc
from engine.store.db import dialect_insert, session_scope
from engine.store.records import SettingRecord

__all__ = ["acquire_lease", "lease_holder", "release_lease"]


def _key(name: str) -> str:
    return f"lease:{name}"


def acquire_lease(engine: Engine, name: str, holder: str, wall_now: datetime, ttl: timedelta) -> bool:
    """Take (or renew) lease ``name`` for ``holder`` until ``wall_now + ttl``; False while another holder's runs."""
    with session_scope(engine) as session:
        session.execute(
            dialect_insert(session, SettingRecord).values(key=_key(name), value=None).on_conflict_do_nothing()
        )
        row = session.exec(select(SettingRecord).where(SettingRecord.key == _key(name)).with_for_update()).one()
        held = row.value or {}
        other = held.get("holder") not in (None, holder)
        if other and utc(datetime.fromisoformat(held["until"])) > utc(wall_now):
            return False
        row.value = {"holder": holder, "until": utc(wall_now + ttl).isoformat()}
        session.add(row)
        return True


def release_lease(engine: Engine, name: str, holder: str) -> None:
    """Give lease ``name`` back at once (only if ``holder`` still holds it)."""
    with session_scope(engine) as session:
        row = session.exec(select(SettingRecord).where(SettingRecord.key == _key(name)).with_for_update()).first()
        if row is not None and (row.value or {}).get("holder") == holder:
            row.value = None
            session.add(row)


def lease_holder(engine: Engine, name: str, wall_now: datetime) -> str | None:
    """Who holds lease ``name`` now (None when free or expired)."""
    with Session(engine) as session:
        row = session.get(SettingRecord, _key(name), populate_existing=True)
    held = (row.value if row is not None else None) or {}
    if not held or utc(datetime.fromisoformat(held["until"])) <= utc(wall_now):
        return None
    return str(held["holder"])
