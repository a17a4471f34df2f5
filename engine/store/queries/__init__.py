"""Repository functions: the reads and idempotent writes the service, the flows and the CLI need.

Each takes the caller's :class:`~sqlmodel.Session` (one transaction, see :func:`engine.store.session_scope`) and
never reads a clock: the caller passes ``now``. "Exactly once" is the database's job, not the caller's:
:func:`record_escalation_once` and :func:`mark_event_processed` are ``INSERT ... ON CONFLICT DO NOTHING`` on a
unique key, so any number of concurrent runs, retries and sweeps produce one row. The safety core's writes are
upserts on their natural keys too (a medication list per visit and side, a discrepancy, a delivery per contact),
each with a rule for what a later write may not undo; disclosures are append-only.

Split by what the rows are for: :mod:`.episodes` (episodes, rungs, exactly-once writes, audit, settings),
:mod:`.safety` (consent, disclosures, medication lists, discrepancies, deliveries), :mod:`.timers` (what the
follow-up and the sweep read and claim), :mod:`.access` (the HTTP API's tokens and idempotency keys) and
:mod:`.handoffs` (what the network face reads). Callers import from this package.
"""

from __future__ import annotations

from engine.store.queries.access import *  # noqa: F403
from engine.store.queries.access import __all__ as _access
from engine.store.queries.episodes import *  # noqa: F403
from engine.store.queries.episodes import __all__ as _episodes
from engine.store.queries.handoffs import *  # noqa: F403
from engine.store.queries.handoffs import __all__ as _handoffs
from engine.store.queries.safety import *  # noqa: F403
from engine.store.queries.safety import __all__ as _safety
from engine.store.queries.timers import *  # noqa: F403
from engine.store.queries.timers import __all__ as _timers

__all__ = [*_access, *_episodes, *_handoffs, *_safety, *_timers]
