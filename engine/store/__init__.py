"""The persisted episode state, the source of truth (Prefect only schedules and shows the work).

- :mod:`engine.store.records`: the tables (SQLModel ``*Record`` classes);
- :mod:`engine.store.db`: the database URL, engines (SQLite WAL / PostgreSQL), migrations, transactions;
- :mod:`engine.store.queries`: repository functions, including the exactly-once writes;
- :mod:`engine.store.recovery`: the sweep's lease and the rungs' side of reconciling Prefect's runs.

Everything public is re-exported here: ``from engine import store; store.lock_episode(session, "ep-7f3a2c91")``.
"""

from engine.store.db import *  # noqa: F403
from engine.store.db import __all__ as _db_all
from engine.store.queries import *  # noqa: F403
from engine.store.queries import __all__ as _queries_all
from engine.store.records import *  # noqa: F403
from engine.store.records import __all__ as _records_all
from engine.store.recovery import *  # noqa: F403
from engine.store.recovery import __all__ as _recovery_all

__all__ = [*_db_all, *_queries_all, *_recovery_all, *_records_all]
