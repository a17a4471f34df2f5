"""Names, states and tags operators read in the Prefect UI: each run says what it did, with opaque ids, pathway
words and codes only (never free text someone typed). The choices are pure functions, tested without Prefect."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from engine.app.context import App
from engine.app.ports import SweepReport
from engine.app.views import episode_status, when
from engine.orchestration.prefect_api.operators import ESCALATED, ESCALATED_CRITICAL

__all__ = [
    "ESCALATED_TAG",
    "REJECTED_TAG",
    "SWEEP_TAG",
    "deadline_batch_name",
    "deadline_batch_title",
    "describe_event",
    "episode_run_name",
    "escalation_outcome",
    "refused_run_name",
    "requests_run_name",
    "sweep_run_name",
]

#: Tags operators filter the runs list by: runs that raised an escalation, refused events, sweep passes.
ESCALATED_TAG = "escalated"
REJECTED_TAG = "rejected"
SWEEP_TAG = "sweep"
_SEVERITY_ORDER = ("critical", "high", "normal")


def deadline_batch_title(pathway_id: str, slot: datetime) -> str:
    """``reentry · deadlines 14:05 UTC``: a deadline run waiting for its minute (wall time, as the UI shows)."""
    return f"{pathway_id} · deadlines {slot:%H:%M} UTC"


def deadline_batch_name(pathway_id: str, minute: str, listing: Sequence[Mapping[str, str]]) -> str:
    """``reentry · deadlines 14:05 UTC · 3 escalated · 5 closed before due``: what the run found, most first.

    ``minute`` is the run's parameter (``2026-12-02 14:05 UTC``); the day is left out of the name."""
    counts: dict[str, int] = {}
    for row in listing:
        word = row["outcome"].split(" (")[0]
        counts[word] = counts.get(word, 0) + 1
    what = "".join(f" · {n} {word}" for word, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    label = minute.partition(" ")[2] or minute
    return f"{pathway_id} · deadlines{f' {label}' if label else ''}{what or ' · no rungs'}"


def describe_event(event: str, moved: tuple[str, str] | None, duplicate: bool, stage: str) -> str:
    """``custody.released: pre-release → community-care``, ``contact.made in iop``, ``x (duplicate)``."""
    if duplicate:
        return f"{event} (duplicate)"
    if moved:
        return f"{event}: {moved[0]} → {moved[1]}"
    return f"{event} in {stage}"


def requests_run_name(rows: Sequence[Mapping[str, str]]) -> str:
    """``requests · 12 followed up · 2 enrolled · 1 acknowledged · 1 refused``: a run that followed up requests."""
    words = ("enrolled", "acknowledged", "refused")
    counts = {word: sum(row["request"].split(" ")[0] == word for row in rows) for word in words}
    extra = "".join(f" · {counts[word]} {word}" for word in words if counts[word])
    return f"requests · {len(rows)} followed up{extra}"


def refused_run_name(episode_id: str, event: str, code: str | None) -> str:
    """``ep-2dcbf08f · refused custody.released (not-expected)``: the refusal's code, never its text (a reason
    may echo what someone typed; the text stays in the store and in ``carepath status``)."""
    return f"{episode_id} · refused {event} ({code or 'refused'})"


def escalation_outcome(raised: Sequence[tuple[str, str]]) -> tuple[str | None, list[str]]:
    """The state name and the tags of a run that raised escalations, from each one's (severity, role).

    ``Escalated: critical`` when any is critical (what the critical-escalation automation watches), else
    ``Escalated``; tags ``escalated``, ``severity:<most severe>`` and ``role:<role>`` per role alerted. No
    escalation: ``(None, [])`` (the run ends a plain Completed).
    """
    if not raised:
        return None, []
    levels = {severity for severity, _role in raised}
    worst = next((level for level in _SEVERITY_ORDER if level in levels), "normal")
    roles = sorted({role for _severity, role in raised})
    name = ESCALATED_CRITICAL if worst == "critical" else ESCALATED
    return name, [ESCALATED_TAG, f"severity:{worst}", *(f"role:{role}" for role in roles)]


def episode_run_name(app: App, episode_id: str, what: str) -> str:
    """``ep-7f3a2c · detox.completed: detox → residential · next: ... by 2026-12-02 09:00 UTC`` (with the wall
    time too on a compressed clock: ``by 2026-12-02 09:00 (wall 14:03:07 UTC)``)."""
    status = episode_status(app.engine, episode_id, audit_tail=0)
    nxt = ""
    if status.items:
        first = status.items[0]
        nxt = f" · next: {first.title} by {when(app.clock, first.due_at)}"
    return f"{episode_id} · {what}{nxt}"


def sweep_run_name(report: SweepReport) -> str:
    """``sweep · fired 5 · scheduled 2``, plus what else it did (``· applied 1 · runs cancelled 2``).

    A fired rung's alerts go out with it; ``late alerts sent`` counts alerts raised earlier whose delivery never
    finished (its process died), so an operator does not read "delivered 0" after a catch-up that sent five."""
    name = f"sweep · fired {report.fired} · scheduled {report.scheduled}"
    extra = [
        ("late alerts sent", report.delivered),
        ("applied", report.applied),
        ("runs cancelled", report.cancelled),
        ("requeued", report.requeued),
    ]
    extra += [("ended", report.ended), ("artifacts republished", report.republished)]
    extra += [("problems", len(report.problems))]
    return name + "".join(f" · {what} {count}" for what, count in extra if count)
