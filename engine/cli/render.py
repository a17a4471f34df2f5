"""What the terminal shows: fixed-width tables and ``carepath status`` (the coordinator's whole view of an episode,
the person's program id and the notes people typed included; none of it goes to Prefect)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from engine.app.views import EpisodeStatus, delivery_summary, escalation_title, fmt
from engine.clock import utc
from engine.language.durations import show_duration

__all__ = ["render_status", "render_table"]


def render_table(rows: list[dict[str, Any]]) -> str:
    """A fixed-width text table of dict rows (same keys), for the terminal."""
    keys = list(rows[0])
    widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in keys}
    lines = ["  ".join(k.upper().ljust(widths[k]) for k in keys)]
    lines += ["  ".join(str(r[k]).ljust(widths[k]) for k in keys) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def render_status(status: EpisodeStatus, now: datetime) -> str:
    """``carepath status``: the coordinator's view of one episode (includes the person's program id)."""
    ep = status.episode
    out = [
        f"{ep.id}  person {ep.person_ref}  {ep.pathway_id} v{ep.pathway_version}  {ep.status}",
        f"stage {ep.stage} since {fmt(ep.stage_entered_at)} (now {fmt(now)})",
    ]
    for v in status.short_stays:
        stayed = show_duration(utc(v.left_at) - utc(v.entered_at)) if v.left_at else "-"
        expected = show_duration(timedelta(seconds=v.short_of_min_s or 0))
        out.append(f"short stay: {v.stage} {stayed} (expected at least {expected}), left {fmt(v.left_at)}")
    out += ["", "handoffs:"]
    out += [
        f"  {h.id}  {h.program} [{h.role}, {h.mode}]  {h.status} / {h.business_status}"
        + (f"  closed {fmt(h.closed_at)}" if h.closed_at else "")
        for h in status.handoffs
    ] or ["  none"]
    out += ["", "open work:"]
    for item in status.items:
        late = "  OVERDUE" if utc(item.due_at) <= now else ""
        out.append(f"  due {fmt(item.due_at)}  {item.title}  ({item.owner or '-'}; done on {item.done_on}){late}")
        for r in status.rungs.get(item.id, []):
            out.append(f"      rung {r.index + 1}: {fmt(r.due_at)} -> {r.role}  [{r.status}]")
    if not status.items:
        out.append("  none")
    out += ["", "escalations (acknowledge with `carepath ack N --by ID`):"]
    for e in status.escalations:
        level = "" if e.severity == "normal" else f" [{e.severity.upper()}]"
        acked = f"  (acknowledged by {e.acknowledged_by})" if e.acknowledged_at else ""
        work = status.escalated_work.get(e.work_item_id)
        note = f"  note: {work.note}" if work is not None and work.note else ""
        out.append(f"  #{e.id} {fmt(e.raised_at)} -> {e.role}{level}: {escalation_title(status, e)}{acked}{note}")
        mine = status.deliveries.get(e.rung_id, [])
        out.append(f"      delivery: {delivery_summary(mine)}")
        for d in mine:
            who = d.contact_label or d.redacted_url or d.role
            why = f" ({d.last_error})" if d.last_error and d.status != "delivered" else ""
            out.append(f"        {d.status:<10} {who}  attempts {d.attempts}{why}")
    if not status.escalations:
        out.append("  none")
    out += ["", "audit (latest last):"]
    out += [
        f"  {fmt(a.at)}  {a.actor}  {a.action}  {a.detail or ''}" + (f"  reason: {a.reason}" if a.reason else "")
        for a in status.audit
    ] or ["  none"]
    return "\n".join(out)
