"""What operators see of the program in Prefect: each episode's Markdown artifact, its medication table, the
open-escalations table and the program overview. Built from the store with opaque ids, the pathway's own words
and codes only (never a payload or a reason someone typed), and handed to the :class:`~engine.app.ports.Publisher`
port.

Why the descriptions carry content: the Prefect UI's page for an artifact *key* (``/artifacts/key/<key>``, where
the Artifacts list leads) renders only the key's description, above a timeline of versions that are collapsed
until clicked; with a one-line description the page looked empty. A Markdown artifact's description is therefore
the Markdown itself, and a table's is a summary of it (its rows are in the latest version, one click away).
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import timedelta

from engine.app.context import App
from engine.app.views import (
    discrepancy_rows,
    episode_markdown,
    episode_status,
    open_escalation_rows,
    program_overview_markdown,
    when,
)
from engine.errors import CarepathError
from engine.store.readmodels import program_counts

__all__ = [
    "ESCALATIONS_ARTIFACT",
    "OVERVIEW_ARTIFACT",
    "publish_episode",
    "publish_open_escalations",
    "publish_program_overview",
    "publishing_once",
]

logger = logging.getLogger("carepath.publish")

ESCALATIONS_ARTIFACT = "open-escalations"
OVERVIEW_ARTIFACT = "program-overview"
#: "Loops closed this week" counts handoffs completed within this much pathway time.
LOOPS_WINDOW = timedelta(days=7)
#: What operators see of a reconciliation: the kind of each finding and where it stands. Drug names, doses and a
#: clinician's reasons come from lists and people, so they stay behind ``carepath meds`` / ``carepath status``.
_MEDS_SHOWN = ("kind", "critical", "status", "resolved")
#: Inside :func:`publishing_once`: the program-wide artifacts asked for, published once when it ends.
_DEFERRED: ContextVar[set[str] | None] = ContextVar("carepath_deferred_publish", default=None)


@contextlib.contextmanager
def publishing_once(app: App) -> Iterator[None]:
    """Within, the program-wide artifacts (open escalations, program overview) are published once, at the end, however
    many changes asked for them: a deadline run firing 500 rungs, or a sweep pass, would otherwise rebuild and send
    the whole open-escalations table 500 times. Threads started inside (``asyncio.to_thread``) share it."""
    if _DEFERRED.get() is not None:  # already inside one: the outer one publishes
        yield
        return
    wanted: set[str] = set()
    token = _DEFERRED.set(wanted)
    try:
        yield
    finally:
        _DEFERRED.reset(token)
        try:
            if ESCALATIONS_ARTIFACT in wanted:
                publish_open_escalations(app)
            if OVERVIEW_ARTIFACT in wanted:
                publish_program_overview(app)
        except CarepathError as exc:  # what operators see lags; the next change publishes again
            logger.warning("program artifacts not published: %s", exc)


def _deferred(key: str) -> bool:
    wanted = _DEFERRED.get()
    if wanted is None:
        return False
    wanted.add(key)
    return True


def publish_episode(app: App, episode_id: str, *, escalations_changed: bool) -> None:
    """Refresh the episode's artifacts (and the operators' escalation table if escalations changed)."""
    status = episode_status(app.engine, episode_id)
    markdown = episode_markdown(status, app.clock.now())
    app.publisher.markdown(f"episode-{episode_id}".lower(), markdown, markdown)
    meds = discrepancy_rows(app.engine, episode_id)
    if meds:
        rows = [{k: v for k, v in row.items() if k in _MEDS_SHOWN} for row in meds]
        open_ = sum(1 for r in rows if not r["resolved"])
        critical = sum(1 for r in rows if r["critical"] and not r["resolved"])
        app.publisher.table(
            f"meds-{episode_id}".lower(),
            rows,
            f"**{episode_id}**: medication reconciliation of the current stage visit: {len(rows)} finding(s), "
            f"{open_} unresolved, {critical} critical (details: `carepath meds`).",
        )
    if escalations_changed:
        publish_open_escalations(app)


def publish_open_escalations(app: App) -> None:
    """The operators' table of unacknowledged escalations, most severe first, then the longest open first."""
    if _deferred(ESCALATIONS_ARTIFACT):
        return
    now = app.clock.now()
    rows = open_escalation_rows(app.engine, now, app.clock)
    levels = Counter(str(r["severity"]) for r in rows)
    summary = ", ".join(f"{levels[level]} {level}" for level in ("critical", "high", "normal") if levels[level])
    app.publisher.table(
        ESCALATIONS_ARTIFACT,
        rows,
        f"**{len(rows)} open (unacknowledged) escalation(s)**{': ' + summary if summary else ''} · as of "
        f"{when(app.clock, now)}. Most severe first, then the longest open; open the latest version below for "
        "the table.",
    )


def publish_program_overview(app: App) -> None:
    """The program at a glance (one query): active episodes, overdue work, open and critical escalations,
    handoff loops closed in the last 7 days."""
    if _deferred(OVERVIEW_ARTIFACT):
        return
    now = app.clock.now()
    markdown = program_overview_markdown(program_counts(app.engine, now, now - LOOPS_WINDOW), now, app.clock)
    app.publisher.markdown(OVERVIEW_ARTIFACT, markdown, markdown)
