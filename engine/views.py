"""Read models for people and for Prefect: an episode's status, the caseload, the operator's artifacts.

Everything here is built from the store and contains opaque ids, pathway and stage ids and the pathway's own
work titles only. ``person_ref`` appears in :func:`episode_status` (shown to a coordinator on the CLI) and
never in the ``*_markdown``/``*_rows`` functions, which are what reaches Prefect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from engine.clock import utc
from engine.errors import UnknownEpisode, quote
from engine.render import show_duration
from engine.store import (
    AuditRecord,
    DeliveryRecord,
    EpisodeRecord,
    EscalationRecord,
    HandoffRecord,
    RungRecord,
    StageVisitRecord,
    WorkItemRecord,
)

__all__ = [
    "EpisodeStatus",
    "caseload",
    "discrepancy_rows",
    "episode_markdown",
    "episode_status",
    "open_escalation_rows",
    "render_status",
    "render_table",
]


def _fmt(at: datetime | None) -> str:
    return utc(at).strftime("%Y-%m-%d %H:%M") if at else "-"


@dataclass
class EpisodeStatus:
    """Everything a coordinator needs about one episode."""

    episode: EpisodeRecord
    items: list[WorkItemRecord]
    rungs: dict[str, list[RungRecord]]
    handoffs: list[HandoffRecord]
    escalations: list[EscalationRecord]
    audit: list[AuditRecord]
    #: stays shorter than their stage's expected minimum (flagged on leaving), oldest first
    short_stays: list[StageVisitRecord] = field(default_factory=list)
    #: the work each escalation is about (open or closed), by work item id
    escalated_work: dict[str, WorkItemRecord] = field(default_factory=dict)
    #: every contact's delivery outcome, by rung id
    deliveries: dict[str, list[DeliveryRecord]] = field(default_factory=dict)

    def overdue(self, now: datetime) -> list[WorkItemRecord]:
        return [i for i in self.items if utc(i.due_at) <= now]


def episode_status(engine: Engine, episode_id: str, audit_tail: int = 10) -> EpisodeStatus:
    """Load one episode's open work, handoffs, escalations and the tail of its audit trail."""
    with Session(engine) as s:
        episode = s.get(EpisodeRecord, episode_id)
        if episode is None:
            raise UnknownEpisode(f"no episode {quote(episode_id)}")
        items = list(
            s.exec(
                select(WorkItemRecord)
                .where(WorkItemRecord.episode_id == episode_id, WorkItemRecord.status == "open")
                .order_by(col(WorkItemRecord.due_at))
            )
        )
        rungs: dict[str, list[RungRecord]] = {}
        for r in s.exec(select(RungRecord).where(RungRecord.episode_id == episode_id).order_by(col(RungRecord.index))):
            rungs.setdefault(r.work_item_id, []).append(r)
        handoffs = list(s.exec(select(HandoffRecord).where(HandoffRecord.episode_id == episode_id)))
        escalations = list(
            s.exec(
                select(EscalationRecord)
                .where(EscalationRecord.episode_id == episode_id)
                .order_by(col(EscalationRecord.raised_at))
            )
        )
        audit = list(
            s.exec(
                select(AuditRecord)
                .where(AuditRecord.episode_id == episode_id)
                .order_by(col(AuditRecord.id).desc())
                .limit(audit_tail)
            )
        )
        short_stays = list(
            s.exec(
                select(StageVisitRecord)
                .where(StageVisitRecord.episode_id == episode_id, col(StageVisitRecord.short_of_min_s).is_not(None))
                .order_by(col(StageVisitRecord.id))
            )
        )
        escalated = {e.work_item_id for e in escalations}
        work = {w.id: w for w in s.exec(select(WorkItemRecord).where(col(WorkItemRecord.id).in_(escalated)))}
        deliveries: dict[str, list[DeliveryRecord]] = {}
        for d in s.exec(select(DeliveryRecord).where(DeliveryRecord.episode_id == episode_id)):
            deliveries.setdefault(d.rung_id, []).append(d)
        return EpisodeStatus(
            episode,
            items,
            rungs,
            handoffs,
            escalations,
            list(reversed(audit)),
            short_stays=short_stays,
            escalated_work=work,
            deliveries=deliveries,
        )


def episode_markdown(status: EpisodeStatus, now: datetime) -> str:
    """The per-episode Prefect artifact: stage, open handoffs, next deadlines, escalations. No PHI."""
    ep = status.episode
    lines = [
        f"# {ep.id} · {ep.pathway_id} v{ep.pathway_version}",
        "",
        f"**Stage:** `{ep.stage}` since {_fmt(ep.stage_entered_at)} · **status:** {ep.status} · as of {_fmt(now)}",
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
        lines.append(f"| {_fmt(item.due_at)} | {item.title} | {item.owner or '-'} | {state} |")
    lines += [
        "",
        "## Escalations",
        "",
        "| raised | severity | work | to | delivery | state |",
        "|---|---|---|---|---|---|",
    ]
    for e in status.escalations[-15:]:
        title = _title(status, e)
        state = "acknowledged" if e.acknowledged_at else "**open**"
        lines.append(
            f"| {_fmt(e.raised_at)} | {_severity(e.severity)} | {title} | {e.role} | "
            f"{delivery_summary(status.deliveries.get(e.rung_id, []))} | {state} |"
        )
    if not status.escalations:
        lines.append("| - | - | none | - | - | - |")
    return "\n".join(lines) + "\n"


_SEVERITY_ORDER = {"critical": 0, "high": 1, "normal": 2}


def _severity(level: str) -> str:
    return {"critical": "**CRITICAL**", "high": "high"}.get(level, "normal")


def _title(status: EpisodeStatus, escalation: EscalationRecord) -> str:
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


def open_escalation_rows(engine: Engine, limit: int = 200) -> list[dict[str, Any]]:
    """The operators' table artifact: unacknowledged escalations, most severe first, then newest. Opaque ids,
    the pathway's work titles, roles and delivery counts only: no PHI, no free text."""
    with Session(engine) as s:
        rows = s.exec(
            select(EscalationRecord, WorkItemRecord)
            .join(WorkItemRecord, col(WorkItemRecord.id) == col(EscalationRecord.work_item_id))
            .where(col(EscalationRecord.acknowledged_at).is_(None))
            .order_by(col(EscalationRecord.raised_at).desc())
            .limit(limit)
        ).all()
        rung_ids = [e.rung_id for e, _w in rows]
        deliveries: dict[str, list[DeliveryRecord]] = {}
        for d in s.exec(select(DeliveryRecord).where(col(DeliveryRecord.rung_id).in_(rung_ids))):
            deliveries.setdefault(d.rung_id, []).append(d)
        ordered = sorted(rows, key=lambda row: _SEVERITY_ORDER.get(row[0].severity, 3))
        return [
            {
                "severity": e.severity,
                "episode": e.episode_id,
                "work": w.title,
                "role": e.role,
                "due": _fmt(w.due_at),
                "raised": _fmt(e.raised_at),
                "delivery": delivery_summary(deliveries.get(e.rung_id, [])),
                "state": "open (not acknowledged)",
            }
            for e, w in ordered
        ]


def caseload(
    engine: Engine, now: datetime, pathway: str | None = None, stage: str | None = None, overdue: bool = False
) -> list[dict[str, Any]]:
    """One row per episode (active first) with its next deadline and counts; filterable."""
    with Session(engine) as s:
        query = select(EpisodeRecord)
        if pathway:
            query = query.where(EpisodeRecord.pathway_id == pathway)
        if stage:
            query = query.where(EpisodeRecord.stage == stage)
        episodes = list(s.exec(query.order_by(col(EpisodeRecord.enrolled_at))))
        out = []
        for ep in episodes:
            items = list(
                s.exec(
                    select(WorkItemRecord)
                    .where(WorkItemRecord.episode_id == ep.id, WorkItemRecord.status == "open")
                    .order_by(col(WorkItemRecord.due_at))
                )
            )
            late = [i for i in items if utc(i.due_at) <= now]
            if overdue and not late:
                continue
            escalations = s.exec(
                select(EscalationRecord).where(
                    EscalationRecord.episode_id == ep.id, col(EscalationRecord.acknowledged_at).is_(None)
                )
            ).all()
            out.append(
                {
                    "episode": ep.id,
                    "person": ep.person_ref,
                    "pathway": f"{ep.pathway_id} v{ep.pathway_version}",
                    "stage": ep.stage,
                    "status": ep.status,
                    "next_due": _fmt(items[0].due_at) if items else "-",
                    "next_work": items[0].title if items else "-",
                    "overdue": len(late),
                    "escalations": len(escalations),
                }
            )
        return out


def render_table(rows: list[dict[str, Any]]) -> str:
    """A fixed-width text table of dict rows (same keys), for the terminal."""
    keys = list(rows[0])
    widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in keys}
    lines = ["  ".join(k.upper().ljust(widths[k]) for k in keys)]
    lines += ["  ".join(str(r[k]).ljust(widths[k]) for k in keys) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def discrepancy_rows(engine: Engine, episode_id: str) -> list[dict[str, Any]]:
    """Medication discrepancies of the episode's current stage visit (a table artifact and the CLI show them):
    current findings first, then the resolved ones with when (the audit trail's ``discrepancy.resolved``)."""
    from engine import store

    with Session(engine) as s:
        episode = store.get_episode(s, episode_id)
        found = store.discrepancies_for(s, episode_id, episode.visit)
        resolved_at: dict[str, datetime] = {}
        if any(d.status == store.RESOLVED for d in found):
            query = select(AuditRecord).where(
                AuditRecord.episode_id == episode_id, AuditRecord.action == "discrepancy.resolved"
            )
            for a in s.exec(query.order_by(col(AuditRecord.id))):
                if (a.detail or {}).get("visit") == episode.visit:
                    resolved_at[str((a.detail or {}).get("key"))] = a.at
        return [
            {
                "id": d.id,
                "kind": d.kind,
                "medication": d.medication,
                "detail": d.detail,
                "critical": "CRITICAL" if d.critical else "",
                "status": d.status,
                "resolved": _fmt(resolved_at.get(d.key)) if d.status == store.RESOLVED else "",
                "reason": d.reason or "",
            }
            for d in sorted(found, key=lambda d: d.status == store.RESOLVED)
        ]


def render_status(status: EpisodeStatus, now: datetime) -> str:
    """``carepath status``: the coordinator's view of one episode (includes the person's program id)."""
    ep = status.episode
    out = [
        f"{ep.id}  person {ep.person_ref}  {ep.pathway_id} v{ep.pathway_version}  {ep.status}",
        f"stage {ep.stage} since {_fmt(ep.stage_entered_at)} (now {_fmt(now)})",
    ]
    for v in status.short_stays:
        stayed = show_duration(utc(v.left_at) - utc(v.entered_at)) if v.left_at else "-"
        expected = show_duration(timedelta(seconds=v.short_of_min_s or 0))
        out.append(f"short stay: {v.stage} {stayed} (expected at least {expected}), left {_fmt(v.left_at)}")
    out += ["", "handoffs:"]
    out += [
        f"  {h.id}  {h.program} [{h.role}, {h.mode}]  {h.status} / {h.business_status}"
        + (f"  closed {_fmt(h.closed_at)}" if h.closed_at else "")
        for h in status.handoffs
    ] or ["  none"]
    out += ["", "open work:"]
    for item in status.items:
        late = "  OVERDUE" if utc(item.due_at) <= now else ""
        out.append(f"  due {_fmt(item.due_at)}  {item.title}  ({item.owner or '-'}; done on {item.done_on}){late}")
        for r in status.rungs.get(item.id, []):
            out.append(f"      rung {r.index + 1}: {_fmt(r.due_at)} -> {r.role}  [{r.status}]")
    if not status.items:
        out.append("  none")
    out += ["", "escalations (acknowledge with `carepath ack N --by ID`):"]
    for e in status.escalations:
        level = "" if e.severity == "normal" else f" [{e.severity.upper()}]"
        acked = f"  (acknowledged by {e.acknowledged_by})" if e.acknowledged_at else ""
        work = status.escalated_work.get(e.work_item_id)
        note = f"  note: {work.note}" if work is not None and work.note else ""
        out.append(f"  #{e.id} {_fmt(e.raised_at)} -> {e.role}{level}: {_title(status, e)}{acked}{note}")
        mine = status.deliveries.get(e.rung_id, [])
        out.append(f"      delivery: {delivery_summary(mine)}")
        for d in mine:
            who = d.contact_label or d.redacted_url or d.role
            why = f" ({d.last_error})" if d.last_error and d.status != "delivered" else ""
            out.append(f"        {d.status:<10} {who}  attempts {d.attempts}{why}")
    if not status.escalations:
        out.append("  none")
    out += ["", "audit (latest last):"]
    out += [f"  {_fmt(a.at)}  {a.actor}  {a.action}  {a.detail or ''}" for a in status.audit] or ["  none"]
    return "\n".join(out)
