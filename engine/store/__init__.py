"""The persisted episode state, the source of truth (Prefect only schedules and shows the work), and the only
package that speaks SQL.

- :mod:`engine.store.records`: the tables (SQLModel ``*Record`` classes);
- :mod:`engine.store.db`: the database URL, engines (SQLite WAL / PostgreSQL), migrations, transactions;
- :mod:`engine.store.queries`: repository functions, including the exactly-once writes;
- :mod:`engine.store.mapper`: rows <-> the pure episode state;
- :mod:`engine.store.readmodels`: what status views and artifacts read;
- :mod:`engine.store.running`: what ``carepath validate`` asks a store (without loading SQLAlchemy for SQLite);
- :mod:`engine.store.recovery`: the sweep's lease and the rungs' side of reconciling Prefect's runs.

What :mod:`.db`, :mod:`.queries` and :mod:`.records` define is reachable here (``from engine import store;
store.lock_episode(session, "ep-7f3a2c91")``), loaded on first use so that importing the package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.store.db import *  # noqa: F403
    from engine.store.queries import *  # noqa: F403
    from engine.store.records import *  # noqa: F403
    from engine.store.recovery import *  # noqa: F403

_PARTS = ("engine.store.db", "engine.store.queries", "engine.store.records", "engine.store.recovery")


def __getattr__(name: str) -> Any:
    for part in _PARTS:
        module = importlib.import_module(part)
        if name in getattr(module, "__all__", ()):
            return getattr(module, name)
    raise AttributeError(f"module 'engine.store' has no attribute {name!r}")
