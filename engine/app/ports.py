"""What the use cases need from the outside world, as interfaces: each has a real implementation (Prefect,
apprise) and an in-memory one (:mod:`engine.app.inline`) that runs the whole service in a test or a simulation.

- :class:`Scheduler`: durable timers, a scheduled run per rung (Prefect's carries every rung of a pathway due in the
  same minute), cancelled when no rung needs it any more; it also lists the runs not yet finished, so the sweep
  can reconcile them with the store after a crash;
- :class:`Notifier`: delivers an escalation to the contacts of a role, reporting an outcome per contact;
- :class:`Publisher`: what operators see (an artifact per episode, the open-escalations table);
- :class:`Dispatcher`: where a unit of work runs (an enrollment, an event, a sweep pass that found work): in a
  Prefect flow run that operators can watch, or inline.

Everything that crosses a port is an opaque id, a pathway's own word or a time: never a payload or free text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from engine.notify.delivery import DeliveryOutcome, DeliveryReport, Notification

__all__ = [
    "Artifact",
    "Dispatcher",
    "Notifier",
    "Publisher",
    "RunState",
    "RunView",
    "Scheduler",
    "SweepReport",
    "Timer",
]

#: Where a timer's run stands before it is final: waiting for its time, picked up by a serving process (which
#: starts a process for it), running, or being cancelled by the serving process that holds it.
RunState = Literal["scheduled", "pending", "running", "cancelling"]


@dataclass(frozen=True)
class Timer:
    """A rung to fire at ``at`` (wall time): ``name`` and ``tags`` are what operators see of it."""

    rung_id: str
    episode_id: str
    pathway_id: str
    at: datetime
    name: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Artifact:
    """A new version of the artifact ``key``: Markdown when ``content`` is text, else a table of rows."""

    key: str
    content: str | Sequence[Mapping[str, Any]]
    description: str


@dataclass(frozen=True)
class RunView:
    """A timer's run that is not final yet: ``since`` is the wall time it entered ``state``, ``at`` its time."""

    run_id: str
    state: RunState
    since: datetime
    at: datetime | None


@dataclass
class SweepReport:
    """What one pass did."""

    fired: int = 0
    scheduled: int = 0
    delivered: int = 0
    applied: int = 0
    cancelled: int = 0
    requeued: int = 0
    ended: int = 0
    #: Episodes whose artifacts were behind the store (their follow-up's publishing failed or never ran).
    republished: int = 0
    problems: list[str] = field(default_factory=list)
    #: Run in the serving process because the dispatcher could not run it (Prefect down): see ``sweep_tick``.
    in_process: bool = False

    @property
    def idle(self) -> bool:
        counts = (self.fired, self.scheduled, self.delivered, self.applied, self.cancelled, self.requeued, self.ended)
        return not (any(counts) or self.republished or self.problems)


class Scheduler(Protocol):
    def schedule(self, timers: Sequence[Timer]) -> dict[str, str]:
        """Give each timer a run that starts by its time (idempotent); returns {rung id: run id}. Several rungs may
        share one run: the run fires every rung linked to it as each comes due (:mod:`engine.app.deadlines`)."""
        ...

    def cancel(self, run_ids: Sequence[str], *, met: bool = False) -> int:
        """Cancel runs that have not started (callers pass only runs no pending rung needs: see
        :func:`engine.app.followup.unneeded_runs`); returns how many are cancelled (others are left alone). With
        ``met`` their deadline was met in time: a run still waiting for its time may end as such (``Met``)."""
        ...

    def unfinished(self, *, include_scheduled: bool, limit: int) -> list[RunView]:
        """Timer runs not final yet, soonest first: those picked up, running or cancelling, and with
        ``include_scheduled`` also those still waiting for their time (there may be many)."""
        ...

    def requeue(self, run_ids: Sequence[str]) -> int:
        """Put runs a dead serving process had picked up (stuck ``pending``) back to waiting for their time."""
        ...

    def end(self, run_ids: Sequence[str]) -> int:
        """Make runs whose process is gone final: ``cancelling`` and ``pending`` ones cancelled, ``running`` ones
        crashed. Returns how many were ended."""
        ...


class Notifier(Protocol):
    def deliver(
        self,
        notification: Notification,
        *,
        already_delivered: set[str],
        on_outcome: Callable[[DeliveryOutcome], None],
    ) -> DeliveryReport:
        """Send to every contact of ``notification.role`` (retrying failures), calling ``on_outcome`` as each
        contact's outcome is final. A role nobody fills yields one ``no-contact`` outcome: never silence."""
        ...


class Publisher(Protocol):
    def publish(self, artifacts: Sequence[Artifact]) -> None:
        """Publish a new version of each artifact, all of them whatever fails (one connection for a batch: a
        deadline run or a batch of requests publishes its episodes' artifacts in one call); raise
        :class:`~engine.errors.OrchestrationError` naming what was not published."""
        ...


class Dispatcher(Protocol):
    def ready(self) -> None:
        """Raise :class:`~engine.errors.OrchestrationError` if work cannot be dispatched now (checked before a
        request is stored, so a refused request changes nothing)."""
        ...

    def enroll(self, pathway_id: str, version: int, episode_id: str) -> None:
        """Follow up a new episode (schedule its timers, publish it)."""
        ...

    def event(self, pathway_id: str, version: int, episode_id: str, event: str, inbound_id: str) -> None:
        """Follow up the inbound event ``inbound_id`` (applying it first if the request has not)."""
        ...

    def acknowledged(self, episode_id: str, escalation_id: int, run_ids: list[str]) -> None:
        """Follow up an acknowledgement: release the stopped rungs' runs ``run_ids``, republish the tables."""
        ...

    def flush(self, timeout: float | None = None) -> bool:
        """Wait for follow-ups handed over but not run yet (a dispatcher that defers them); True when none is left."""
        ...

    def sweep(self) -> SweepReport:
        """Run one pass of the safety net where operators can see it (called only when a pass has work)."""
        ...
