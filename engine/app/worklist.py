"""The coordinators' worklist: who is falling through now, most urgent first, with what each row can do.

The facts come from one read (:func:`engine.store.worklist.worklist_facts`), the order from the pure rules of
:mod:`engine.app.triage`; this module joins them with each episode's plan (stage names and ASAM levels) and the
handoff moves possible now (:func:`engine.episode.domain.handoff.legal_moves`). Coordinators only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session

from engine.app.access import Principal, require
from engine.app.context import App
from engine.app.episodes import EventResult, acknowledge
from engine.app.network import move_handoff
from engine.app.triage import Risk, Stay, Urgency, rank_key, risk_window
from engine.app.views import delivery_summary
from engine.clock import utc
from engine.episode.domain.handoff import legal_moves
from engine.episode.domain.handoff_terms import BSER_CODES
from engine.errors import InvalidInput
from engine.plan.model import Plan
from engine.store.mapper import handoff_state
from engine.store.records import HandoffRecord
from engine.store.worklist import WorklistFacts, worklist_facts

__all__ = [
    "EscalationLine",
    "HandoffMoves",
    "OverdueLine",
    "WorklistRow",
    "acknowledge_as",
    "handoff_moves",
    "move_as",
    "stays",
    "worklist",
]

#: The detail each move takes from the worklist's one text box (the move table's ``needs``, and the outcome).
_NEEDS = {
    "decline": "reason",
    "hold": "reason",
    "fail": "reason",
    "cancel": "reason",
    "schedule": "appointment_at",
    "return-outcome": "outcome",
}


@dataclass(frozen=True)
class OverdueLine:
    title: str
    owner: str | None
    due_at: datetime
    overdue_for: timedelta


@dataclass(frozen=True)
class EscalationLine:
    id: int
    role: str
    severity: str
    title: str
    raised_at: datetime
    delivery: str


@dataclass(frozen=True)
class HandoffMoves:
    """An open handoff, its FHIR/BSeR state and the moves possible now: (action, party, the detail it needs)."""

    id: str
    program: str
    status: str
    business_status: str
    bser_code: str
    moves: tuple[tuple[str, str, str | None], ...]


@dataclass(frozen=True)
class WorklistRow:
    episode_id: str
    person_ref: str
    pathway: str
    stage: str
    stage_name: str
    overdue: tuple[OverdueLine, ...]
    escalations: tuple[EscalationLine, ...]
    critical_findings: tuple[str, ...]
    risk: Risk | None
    urgency: Urgency
    handoffs: tuple[HandoffMoves, ...]

    @property
    def waiting_for(self) -> timedelta | None:
        """How long the oldest overdue work has waited."""
        return self.overdue[0].overdue_for if self.overdue else None


def stays(plan: Plan, facts: WorklistFacts) -> list[Stay]:
    """The episode's stays as the risk rules see them (stage names and levels from its plan)."""
    out = []
    for v in facts.visits:
        stage = plan.stages.get(v.stage)
        out.append(Stay(v.stage, stage.name if stage else v.stage, stage.level if stage else None, _opt(v.left_at)))
    return out


def handoff_moves(h: HandoffRecord) -> HandoffMoves:
    """An open handoff with the moves legal now (a coordinator may move as either party, as ``carepath handoff``);
    ``send`` is left out: it needs a consent, which the pathway's consent work sends by itself."""
    moves = tuple(
        (action, party, _NEEDS.get(action))
        for action, parties in legal_moves(handoff_state(h))
        if action != "send"
        for party in parties
    )
    code = BSER_CODES.get(h.business_status, ("", ""))[0]
    return HandoffMoves(h.id, h.program, h.status, h.business_status, code, moves)


def _opt(at: datetime | None) -> datetime | None:
    return utc(at) if at is not None else None


def _row(plan: Plan, facts: WorklistFacts, now: datetime) -> WorklistRow | None:
    ep = facts.episode
    overdue = tuple(
        OverdueLine(w.title, w.owner, utc(w.due_at), now - utc(w.due_at))
        for w in facts.open_work
        if utc(w.due_at) <= now
    )
    escalations = tuple(
        EscalationLine(
            int(e.id or 0),
            e.role,
            e.severity,
            w.title if (w := facts.escalated_work.get(e.work_item_id)) else e.work_item_id.split("/", 2)[-1],
            utc(e.raised_at),
            delivery_summary(facts.deliveries.get(e.rung_id, [])),
        )
        for e in facts.escalations
    )
    findings = tuple(f"{d.kind}: {d.medication}" for d in facts.critical_findings)
    if not (overdue or escalations or findings):
        return None
    critical = bool(findings) or any(e.severity == "critical" for e in escalations)
    risk = risk_window(stays(plan, facts), [(n, utc(at)) for n, at in facts.events], now)
    urgency = Urgency(
        critical=critical,
        risk=risk,
        oldest_overdue=overdue[0].due_at if overdue else None,
        oldest_escalation=min((e.raised_at for e in escalations), default=None),
    )
    stage = plan.stages.get(ep.stage)
    return WorklistRow(
        episode_id=ep.id,
        person_ref=ep.person_ref,
        pathway=f"{ep.pathway_id} v{ep.pathway_version}",
        stage=ep.stage,
        stage_name=stage.name if stage else ep.stage,
        overdue=overdue,
        escalations=escalations,
        critical_findings=findings,
        risk=risk,
        urgency=urgency,
        handoffs=tuple(handoff_moves(h) for h in facts.handoffs),
    )


def worklist(app: App, principal: Principal) -> list[WorklistRow]:
    """Every active episode needing someone now, most urgent first (:func:`engine.app.triage.rank_key`)."""
    require(principal, "worklist")
    now = app.clock.now()
    rows = []
    with Session(app.engine) as session:
        for facts in worklist_facts(app.engine, now):
            row = _row(app.service.plan_of(session, facts.episode), facts, now)
            if row is not None:
                rows.append(row)
    return sorted(rows, key=lambda r: rank_key(r.urgency, r.episode_id))


_STAFF_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


def acknowledge_as(app: App, principal: Principal, escalation_id: int) -> int:
    """:func:`engine.app.acknowledge` by a coordinator's token: its label says who took the escalation on (its id
    when the label is not a staff id, e.g. it has spaces), and is the actor."""
    require(principal, "acknowledge")
    by = principal.label if _STAFF_ID.fullmatch(principal.label) else principal.token_id
    return acknowledge(app, escalation_id, by, actor=principal.label)


def move_as(app: App, principal: Principal, handoff_id: str, action: str, party: str, detail: str) -> EventResult:
    """A handoff move from the worklist: ``detail`` is the one thing the move needs (a reason, the appointment's
    time for ``schedule``, the outcome for ``return-outcome``)."""
    need = _NEEDS.get(action)
    if need is not None and not detail.strip():
        raise InvalidInput(need.replace("_", " "), f"is needed to {action} a handoff")
    extra = {need: detail.strip()} if need is not None else {}
    return move_handoff(app, principal, handoff_id, action, party=party, **extra)
