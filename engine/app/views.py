"""Read models for people and for Prefect: an episode's artifact, the caseload, the operators' tables.

Built from :mod:`engine.store.readmodels`; what goes to Prefect (``episode_markdown``, ``open_escalation_rows``
and the medication table's columns chosen in :mod:`engine.app.publish`) holds opaque ids, the pathway's own words
and codes only. The person's program id appears only in what a coordinator sees (the caseload, ``status``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.clock import Clock, CompressedClock, utc
from engine.store import readmodels
from engine.store.readmodels import EpisodeStatus, ProgramCounts, episode_status
from engine.store.records import DeliveryRecord, EscalationRecord

__all__ = [
    "EpisodeStatus",
    "caseload",
    "delivery_summary",
    "discrepancy_rows",
    "episode_markdown",
    "episode_status",
    "escalation_title",
    "fmt",
    "open_escalation_rows",
    "program_overview_markdown",
    "when",
]


def fmt(at: datetime | None) -> str:
    """A stored time for people: ``2026-12-01 09:00`` (UTC), ``-`` for none."""
    return utc(at).strftime("%Y-%m-%d %H:%M") if at else "-"


def when(clock: Clock, at: datetime) -> str:
    """A pathway time for the Prefect UI: ``2026-12-02 09:00 UTC``; on a compressed clock (a demo, a rehearsal)
    also the wall time, which is what the UI's own timestamps use: ``2026-12-02 09:00 (wall 14:03:07 UTC)``."""
    if isinstance(clock, CompressedClock):
        return f"{fmt(at)} (wall {clock.wall_time(utc(at)):%H:%M:%S} UTC)"
    return f"{fmt(at)} UTC"


def age(since: datetime, now: datetime) -> str:
    """How long something has been open, in pathway time: ``45m``, ``6h 10m``, ``3d 4h``."""
    minutes = max(0, int((utc(now) - utc(since)).total_seconds() // 60))
    days, hours, mins = minutes // 1440, minutes % 1440 // 60, minutes % 60
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {mins}m" if hours else f"{mins}m"


def episode_markdown(status: EpisodeStatus, now: datetime) -> str:
    """The per-episode Prefect artifact: stage, open handoffs, next deadlines, escalations. No PHI."""
    ep = status.episode
    lines = [
        f"# {ep.id} · {ep.pathway_id} v{ep.pathway_version}",
        "",
        f"**Stage:** `{ep.stage}` since {fmt(ep.stage_entered_at)} · **status:** {ep.status} · as of {fmt(now)}",
        "",
        "## Open handoffs",
    ]
    open_handoffs = [h for h in status.handoffs if h.closed_at is None]
    lines += [f"- {h.program} ({h.role}, {h.mode}): {h.status} / {h.business_status}" for h in open_handoffs] or [
        "- none"
    ]
    lines += ["", "## Next deadlines", "", "| due | work | owner | state |", "|---|---|---|---|"]
    for item in status.items[:15]:
        state = "**overdue**" if utc(item.due_at) <= now else "open"
        lines.append(f"| {fmt(item.due_at)} | {item.title} | {item.owner or '-'} | {state} |")
    lines += [
        "",
        "## Escalations",
        "",
        "| raised | severity | work | to | delivery | state |",
        "|---|---|---|---|---|---|",
    ]
    for e in status.escalations[-15:]:
        title = escalation_title(status, e)
        state = "acknowledged" if e.acknowledged_at else "**open**"
        lines.append(
            f"| {fmt(e.raised_at)} | {_severity(e.severity)} | {title} | {e.role} | "
            f"{delivery_summary(status.deliveries.get(e.rung_id, []))} | {state} |"
        )
    if not status.escalations:
        lines.append("| - | - | none | - | - | - |")
    return "\n".join(lines) + "\n"


_SEVERITY_ORDER = {"critical": 0, "high": 1, "normal": 2}


def _severity(level: str) -> str:
    return {"critical": "**CRITICAL**", "high": "high"}.get(level, "normal")


def escalation_title(status: EpisodeStatus, escalation: EscalationRecord) -> str:
    work = status.escalated_work.get(escalation.work_item_id)
    return work.title if work is not None else escalation.work_item_id.split("/", 2)[-1]


def delivery_summary(deliveries: list[DeliveryRecord]) -> str:
    """``delivered 2/2``, ``failed 1/2``, ``no contact``, or ``pending`` while nobody has an outcome yet."""
    if not deliveries:
        return "pending"
    if all(d.status == "no-contact" for d in deliveries):
        return "no contact"
    sent = sum(d.status in ("delivered", "skipped") for d in deliveries)
    failed = sum(d.status == "failed" for d in deliveries)
    return f"delivered {sent}/{len(deliveries)}" + (f", failed {failed}" if failed else "")


def open_escalation_rows(engine: Any, now: datetime, clock: Clock, limit: int = 200) -> list[dict[str, Any]]:
    """The operators' table artifact: unacknowledged escalations, most severe first, then the longest open first.

    Opaque ids, the pathway's work titles, roles, times and delivery counts only: no PHI, no free text. The
    escalation's number is what ``carepath ack`` takes."""
    rows = sorted(
        readmodels.open_escalations(engine, limit),
        key=lambda r: (_SEVERITY_ORDER.get(r[0].severity, 3), utc(r[0].raised_at)),
    )
    return [
        {
            "severity": e.severity,
            "episode": e.episode_id,
            "work": w.title,
            "role": e.role,
            "raised": when(clock, e.raised_at),
            "open for": age(e.raised_at, now),
            "delivery": delivery_summary(deliveries),
            "acknowledged": f"no: carepath ack {e.id}",
        }
        for e, w, deliveries in rows
    ]


def program_overview_markdown(counts: ProgramCounts, now: datetime, clock: Clock) -> str:
    """The program-level artifact: is anything wrong right now, in five numbers (counts only, no ids)."""
    critical = f"**{counts.critical}**" if counts.critical else "0"
    return "\n".join(
        [
            f"# Carepath program overview · as of {when(clock, now)}",
            "",
            "| active episodes | overdue work | open escalations | critical | loops closed in 7 days |",
            "|---|---|---|---|---|",
            f"| {counts.active} | {counts.overdue} | {counts.escalated} | {critical} | {counts.loops_closed} |",
            "",
            "Open escalations, most severe first: artifact `open-escalations`. Runs that raised one: tag `escalated`"
            " (critical: `severity:critical`, state `Escalated: critical`).",
            "",
        ]
    )


def caseload(
    engine: Any, now: datetime, pathway: str | None = None, stage: str | None = None, overdue: bool = False
) -> list[dict[str, Any]]:
    """One row per episode with its next deadline and counts (a coordinator's view: includes the person id)."""
    return [
        {
            "episode": c.episode.id,
            "person": c.episode.person_ref,
            "pathway": f"{c.episode.pathway_id} v{c.episode.pathway_version}",
            "stage": c.episode.stage,
            "status": c.episode.status,
            "next_due": fmt(c.next_work.due_at) if c.next_work else "-",
            "next_work": c.next_work.title if c.next_work else "-",
            "overdue": c.overdue,
            "escalations": c.open_escalations,
        }
        for c in readmodels.caseload_entries(engine, now, pathway=pathway, stage=stage, overdue=overdue)
    ]


def discrepancy_rows(engine: Any, episode_id: str) -> list[dict[str, Any]]:
    """Medication findings of the episode's current stage visit, current ones first, resolved ones with when."""
    return [
        {
            "id": d.id,
            "kind": d.kind,
            "medication": d.medication,
            "detail": d.detail,
            "critical": "CRITICAL" if d.critical else "",
            "status": d.status,
            "resolved": fmt(resolved) if resolved else "",
            "reason": d.reason or "",
        }
        for d, resolved in readmodels.findings_with_resolution(engine, episode_id)
    ]
