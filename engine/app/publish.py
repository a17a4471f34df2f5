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
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta

from sqlmodel import Session

from engine import store
from engine.app.context import App
from engine.app.ports import Artifact
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
    "Later",
    "publish_episode",
    "publish_episodes",
    "publish_open_escalations",
    "publish_program_overview",
    "publishing_once",
    "right_away",
]

logger = logging.getLogger("carepath.publish")

ESCALATIONS_ARTIFACT = "open-escalations"
OVERVIEW_ARTIFACT = "program-overview"
#: "Loops closed this week" counts handoffs completed within this much pathway time.
LOOPS_WINDOW = timedelta(days=7)
#: What operators see of a reconciliation: the kind of each finding and where it stands. Drug names, doses and a
#: clinician's reasons come from lists and people, so they stay behind ``carepath meds`` / ``carepath status``.
_MEDS_SHOWN = ("kind", "critical", "status", "resolved")
#: Inside :func:`publishing_once`: the episodes and program-wide artifacts asked for, published when it ends.
_DEFERRED: ContextVar[_Wanted | None] = ContextVar("carepath_deferred_publish", default=None)


@dataclass
class _Wanted:
    episodes: set[str] = field(default_factory=set)
    program: set[str] = field(default_factory=set)


#: Runs a piece of work after the block that asked for it, e.g. on a thread that keeps the caller going.
Later = Callable[[Callable[[], None]], None]


@contextlib.contextmanager
def publishing_once(app: App, *, later: Later | None = None) -> Iterator[None]:
    """Within, artifacts are published once, at the end, in one call to the publisher, however many changes asked
    for them: a deadline run firing 500 rungs, a sweep pass or a batch of requests would otherwise send the
    open-escalations table 500 times, and each episode's artifacts over a connection of their own. Each is built
    from the store as it stands when published. Threads started inside (``asyncio.to_thread``) share it. With
    ``later``, the publishing is handed to it instead of done at the end (a deadline run fires its next rungs
    meanwhile: publishing 60 episodes took 20-35 s on a loaded machine)."""
    if _DEFERRED.get() is not None:  # already inside one: the outer one publishes
        yield
        return
    wanted = _Wanted()
    token = _DEFERRED.set(wanted)
    try:
        yield
    finally:
        _DEFERRED.reset(token)
        (later or right_away)(lambda: _publish_wanted(app, wanted))


def right_away(work: Callable[[], None]) -> None:
    """The :data:`Later` that does not wait: the work is done now, in the caller's thread."""
    work()


def _publish_wanted(app: App, wanted: _Wanted) -> None:
    try:
        publish_episodes(app, wanted.episodes, [key for key in sorted(wanted.program) if _program_due(app, key)])
    except CarepathError as exc:  # what operators see lags; the sweep publishes those episodes again
        logger.warning("artifacts not all published: %s", exc)


def publish_episodes(app: App, episode_ids: set[str] | list[str], program: list[str] | None = None) -> None:
    """Publish these episodes' artifacts (and the program-wide ones named) in one call, then record which revision
    each episode's artifacts show; raises what the publisher raised, recording nothing (the sweep finds the episodes
    still behind, :func:`engine.store.unpublished_episodes`, and calls this again)."""
    with Session(app.engine) as session:
        revisions = store.episode_revisions(session, episode_ids) if episode_ids else {}
    artifacts = [a for episode_id in sorted(episode_ids) for a in _episode_artifacts(app, episode_id)]
    artifacts += [_PROGRAM[key](app) for key in program or []]
    if artifacts:
        app.publisher.publish(artifacts)
    if revisions:
        with store.session_scope(app.engine) as session:
            store.mark_published(session, revisions)


def _program_due(app: App, key: str) -> bool:
    """True if the program-wide artifact ``key`` is to be built now; else it is built when the process's throttle
    allows (:mod:`engine.app.throttle`): these show a state, and only the latest matters."""
    return app.throttle.due(key, lambda: _publish_program_now(app, key))


def _publish_program(app: App, key: str) -> None:
    """The program-wide artifact ``key``: at the end of the block publishing once, else now if the throttle allows."""
    if not _deferred(key) and _program_due(app, key):
        _publish_program_now(app, key)


def _publish_program_now(app: App, key: str) -> None:
    app.publisher.publish([_PROGRAM[key](app)])


def publish_episode(app: App, episode_id: str, *, escalations_changed: bool) -> None:
    """Refresh the episode's artifacts (and the operators' escalation table if escalations changed)."""
    wanted = _DEFERRED.get()
    if wanted is not None:
        wanted.episodes.add(episode_id)
    else:
        publish_episodes(app, [episode_id])
    if escalations_changed:
        publish_open_escalations(app)


def publish_open_escalations(app: App) -> None:
    """The operators' table of unacknowledged escalations, most severe first, then the longest open first."""
    _publish_program(app, ESCALATIONS_ARTIFACT)


def publish_program_overview(app: App) -> None:
    """The program at a glance (one query): active episodes, overdue work, open and critical escalations,
    handoff loops closed in the last 7 days."""
    _publish_program(app, OVERVIEW_ARTIFACT)


def _deferred(key: str) -> bool:
    wanted = _DEFERRED.get()
    if wanted is None:
        return False
    wanted.program.add(key)
    return True


def _episode_artifacts(app: App, episode_id: str) -> list[Artifact]:
    status = episode_status(app.engine, episode_id)
    markdown = episode_markdown(status, app.clock.now())
    artifacts = [Artifact(f"episode-{episode_id}".lower(), markdown, markdown)]
    meds = discrepancy_rows(app.engine, episode_id)
    if meds:
        rows = [{k: v for k, v in row.items() if k in _MEDS_SHOWN} for row in meds]
        open_ = sum(1 for r in rows if not r["resolved"])
        critical = sum(1 for r in rows if r["critical"] and not r["resolved"])
        artifacts.append(
            Artifact(
                f"meds-{episode_id}".lower(),
                rows,
                f"**{episode_id}**: medication reconciliation of the current stage visit: {len(rows)} finding(s), "
                f"{open_} unresolved, {critical} critical (details: `carepath meds`).",
            )
        )
    return artifacts


def _open_escalations(app: App) -> Artifact:
    now = app.clock.now()
    rows = open_escalation_rows(app.engine, now, app.clock)
    levels = Counter(str(r["severity"]) for r in rows)
    summary = ", ".join(f"{levels[level]} {level}" for level in ("critical", "high", "normal") if levels[level])
    return Artifact(
        ESCALATIONS_ARTIFACT,
        rows,
        f"**{len(rows)} open (unacknowledged) escalation(s)**{': ' + summary if summary else ''} · as of "
        f"{when(app.clock, now)}. Most severe first, then the longest open; open the latest version below for "
        "the table.",
    )


def _program_overview(app: App) -> Artifact:
    now = app.clock.now()
    markdown = program_overview_markdown(program_counts(app.engine, now, now - LOOPS_WINDOW), now, app.clock)
    return Artifact(OVERVIEW_ARTIFACT, markdown, markdown)


#: How each program-wide artifact is built (from the store as it stands).
_PROGRAM: dict[str, Callable[[App], Artifact]] = {
    ESCALATIONS_ARTIFACT: _open_escalations,
    OVERVIEW_ARTIFACT: _program_overview,
}
