"""The safety core at transitions, applied to an episode: closed-loop handoffs, consent gating, medication lists.

Pure, like :mod:`engine.episode.rules`, which calls it. The rules themselves live in :mod:`engine.episode.domain` (the
standards' handoff states and who may move them, 42 CFR Part 2 consent, reconciliation); this module applies
their effects to the episode's work:

- a handoff is *sent* only under a consent that covers its receiver and purpose; otherwise it waits in
  ``consent needed`` with its own deadline, and its step deadlines start only when it is sent;
- a step is met by the receiver's move (``accept``, ``schedule``, ``keep``, ``return-outcome``); a decline
  starts the pathway's fallback and escalates, a no-show opens re-engagement and escalates; ``keep`` (the
  admission) waits for a needed insurance authorization (:mod:`engine.episode.authorizations`);
- revoking the consent a handoff travels under stops it (cancelled, recorded, escalated);
- once both medication lists of a transition are in, they are compared; a switch the move plans is documented
  and a medication it requires must be received (:mod:`.domain.planned`); an omitted MOUD escalates at once to the
  reconciliation's ``critical_to`` roles. A list sent again supersedes the comparison: marks carry over, what is
  no longer found is resolved, and each critical finding alerts once (again only if it recurs after resolution).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from engine.episode.authorizations import admission_hold, end_of_handoff
from engine.episode.domain import effects as fx
from engine.episode.domain import handoff as lifecycle
from engine.episode.domain.consent import Disclosure, covering_consent
from engine.episode.domain.planned import apply_pathway
from engine.episode.domain.reconcile import (
    RESOLVED,
    Discrepancy,
    Medication,
    compare,
    needs_escalation,
    newly_critical,
    supersede,
)
from engine.episode.medication_rules import visit_medication_rules
from engine.episode.state import (
    EpisodeState,
    Event,
    Handoff,
    Outcome,
    Rung,
    WorkItem,
    alert,
    close_item,
    counted_from,
    event_key,
    open_work,
)
from engine.errors import EventRejected, quote
from engine.language.builtins import STEPS_BY_KIND, STEPS_BY_MOVE
from engine.language.spans import add
from engine.plan.model import Plan, TransitionPlan, WorkPlan

__all__ = [
    "RECEIVER_CLASSES",
    "handle_consent",
    "handle_handoff_event",
    "handle_medication_list",
    "open_handoff",
]

#: Receivers of a pathway's handoffs are treatment programs: a consent naming this class covers them.
RECEIVER_CLASSES = ("treating-providers",)


def _transition(plan: Plan, handoff: Handoff) -> TransitionPlan:
    return plan.transitions[handoff.transition_index]


def _steps(plan: Plan, handoff: Handoff) -> list[WorkPlan]:
    return [w for w in _transition(plan, handoff).work if w.kind == "handoff-step"]


def _escalation_roles(plan: Plan, handoff: Handoff) -> list[str]:
    """Who hears at once about a handoff going wrong: its ``alert_to``, else the first rung of its first step, else
    the introducer."""
    chosen = _transition(plan, handoff).handoff
    if chosen is not None and chosen.alert_to:
        return list(chosen.alert_to)
    steps = _steps(plan, handoff)
    if steps and steps[0].ladder:
        return [steps[0].ladder[0].to]
    hp = _transition(plan, handoff).handoff
    return [hp.introduced_by] if hp and hp.introduced_by else []


def _disclose(state: EpisodeState, handoff: Handoff, consent_id: str, now: datetime, out: Outcome) -> None:
    out.disclosures.append(
        Disclosure(
            id=f"{handoff.id}/disclosure/{len(out.disclosures)}-{now:%Y%m%d%H%M%S}",
            patient=state.person,
            recipient=handoff.program,
            purpose=handoff.consent_purpose,
            information=f"referral for {handoff.role} ({handoff.mode} handoff)",
            consent_id=consent_id,
            at=now,
        )
    )


def _open_steps(plan: Plan, state: EpisodeState, handoff: Handoff, now: datetime, out: Outcome) -> None:
    for work in _steps(plan, handoff):
        # a step with ``from`` counts from its moment, so a consent recorded late does not push it back
        item = open_work(work, counted_from(work, state, now), state.id, handoff.visit, handoff.id)
        item.opened_at = now
        state.items.append(item)
        out.opened.append(item)


def open_handoff(
    plan: Plan, state: EpisodeState, transition: TransitionPlan, now: datetime, out: Outcome
) -> tuple[Handoff, bool]:
    """Open the transition's handoff; returns it and whether it was sent (else it waits for consent)."""
    hp = transition.handoff
    assert hp is not None
    consent = covering_consent(
        state.consents, hp.program, RECEIVER_CLASSES, hp.consent_purpose, now, state.status == "active"
    )
    handoff = Handoff(
        id=f"{state.id}/{state.visit}/handoff",
        transition_index=transition.index,
        program=hp.program,
        role=hp.role,
        mode=hp.mode,
        consent_purpose=hp.consent_purpose,
        visit=state.visit,
        re_engage_within=hp.re_engage_within,
        fallback=hp.fallback,
        opened_at=now,
    )
    opened, _effects = lifecycle.open_handoff(
        handoff.id,
        now,
        consent_id=consent.id if consent else None,
        purpose=hp.consent_purpose,
        re_engage_within=hp.re_engage_within,
        fallback=hp.fallback,
    )
    handoff.absorb(opened)
    state.handoffs.append(handoff)
    out.handoffs_opened.append(handoff)
    if consent is not None:
        _disclose(state, handoff, consent.id, now, out)
        return handoff, True
    if hp.consent is not None:
        item = open_work(hp.consent, now, state.id, state.visit, handoff.id)
        state.items.append(item)
        out.opened.append(item)
    out.audit.append(("handoff.consent-needed", {"handoff": handoff.id, "purpose": hp.consent_purpose}))
    return handoff, False


def _pick(state: EpisodeState, event: Event) -> Handoff:
    wanted = event.data.get("handoff")
    open_ones = [h for h in state.handoffs if h.closed_at is None]
    if wanted:
        found = next((h for h in open_ones if h.id == wanted), None)
        if found is None:
            raise EventRejected(f"no open handoff {quote(str(wanted))} on episode {state.id}")
        return found
    if not open_ones:
        raise EventRejected(f"event '{event.name}' matches no open handoff on episode {state.id}")
    waiting = [h for h in open_ones if any(i.handoff_id == h.id and i.done_on == event.name for i in state.items)]
    if len(open_ones) > 1 and len(waiting) == 1:
        return waiting[0]  # a step event only one open handoff waits for (handoffs that last the episode overlap)
    if len(open_ones) > 1:
        raise EventRejected(f"episode {state.id} has {len(open_ones)} open handoffs: name one with handoff=ID")
    return open_ones[0]


def _when(value: Any, now: datetime) -> datetime:
    if value in (None, ""):
        return now
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise EventRejected(f"appointment_at {value!r} is not an ISO 8601 time") from exc


def handle_handoff_event(plan: Plan, state: EpisodeState, event: Event, now: datetime, out: Outcome) -> str | None:
    """Apply a handoff move (``handoff.move`` or a step event); returns a fallback stage to move to, if any."""
    handoff = _pick(state, event)
    if event.name == "handoff.move":
        action, party = str(event.data.get("action", "")), str(event.data.get("party", "receiver"))
    else:
        # a step event (``handoff.accepted`` ...) is the receiver's move that meets the step, said the short way
        action, party = STEPS_BY_KIND[event.name.removeprefix("handoff.")].move, "receiver"
    appointment = _when(event.data.get("appointment_at"), now) if action == "schedule" else None
    new, effects = lifecycle.move(
        handoff.lifecycle(now),
        action,
        party,
        now,
        reason=event.data.get("reason"),
        appointment_at=appointment,
        outcome=event.data.get("outcome"),
    )
    held = admission_hold(state, handoff) if action == "keep" else None
    if held is not None:
        raise EventRejected(held)
    handoff.absorb(new)
    out.handoffs_changed.append(handoff)
    out.audit.append(("handoff.move", {"handoff": handoff.id, "action": action, "by": party, "now": new.status}))
    return _apply_effects(plan, state, handoff, effects, event, now, out)


def _apply_effects(
    plan: Plan,
    state: EpisodeState,
    handoff: Handoff,
    effects: list[fx.Effect],
    event: Event,
    now: datetime,
    out: Outcome,
) -> str | None:
    fallback: str | None = None
    mine = [i for i in state.items if i.handoff_id == handoff.id and i.status == "open"]
    roles = _escalation_roles(plan, handoff)
    for effect in effects:
        if isinstance(effect, fx.StepMet):
            for item in mine:
                if (
                    item.kind == "handoff-step"
                    and item.key.endswith(f".handoff.{effect.step}")
                    and item.status == "open"
                ):
                    close_item(item, "done", event.id, state, out)
        elif isinstance(effect, fx.CancelSteps | fx.LoopClosed):
            for item in mine:
                if item.kind in ("handoff-step", "re-engagement", "consent"):
                    close_item(item, "cancelled", getattr(effect, "reason", "loop closed"), state, out)
            end_of_handoff(state, out, now, getattr(effect, "reason", "loop closed"), handoff.id)
        elif isinstance(effect, fx.Escalate):
            title = f"{handoff.program}: {fx.ESCALATION_TITLES.get(effect.code, effect.code)}"
            alert(state, out, f"handoff.{effect.code}.{event_key(event)}", title, roles, now, note=effect.reason)
        elif isinstance(effect, fx.StartReengagement) and effect.due_at is not None:
            _open_reengagement(plan, state, handoff, effect.due_at, now, out)
        elif isinstance(effect, fx.Reengaged):
            for item in mine:
                if item.kind == "re-engagement":
                    close_item(item, "done", event.id, state, out)
        elif isinstance(effect, fx.StartFallback):
            # a handoff that outlived its stage (lasts: episode) declined later: the person has moved on, so no
            # fallback move; the coordinator chooses the next program
            fallback = effect.stage if handoff.visit == state.visit else None
            if fallback is None:
                alert(
                    state,
                    out,
                    f"fallback.{event_key(event)}",
                    f"{handoff.program} declined: choose the next program",
                    roles,
                    now,
                )
        elif isinstance(effect, fx.Disclose):
            _disclose(state, handoff, effect.consent_id, now, out)
    if handoff.closed_at is not None and handoff in state.handoffs:
        state.handoffs.remove(handoff)
    return fallback


def _open_reengagement(
    plan: Plan, state: EpisodeState, handoff: Handoff, due: datetime, now: datetime, out: Outcome
) -> None:
    """Re-engage after a no-show by ``due``, with the owner and ladder the plan gives (by default the receiving role
    and the visit-kept step's ladder, counted from the new deadline)."""
    kept = STEPS_BY_MOVE["keep"]
    planned = _transition(plan, handoff).handoff
    template = planned.re_engagement if planned is not None else None
    visit_step = template or next((w for w in _steps(plan, handoff) if w.done_on == kept.event), None)
    n = sum(1 for i in out.opened if i.kind == "re-engagement")
    item_id = f"{handoff.id}/re-engage/{now:%Y%m%d%H%M%S}-{n}"
    rungs = []
    if visit_step is not None:
        rungs = [
            Rung(id=f"{item_id}#r{r.index}", index=r.index, due_at=add(due, r.at - visit_step.due), role=r.to)
            for r in visit_step.ladder
        ]
    item = WorkItem(
        id=item_id,
        kind="re-engagement",
        key=f"t{handoff.transition_index}.re-engage",
        title=f"{handoff.program}: re-engage after a missed first visit",
        owner=template.owner if template is not None and template.owner else handoff.role,
        opened_at=now,
        due_at=due,
        done_on="handoff.move",
        visit=handoff.visit,
        handoff_id=handoff.id,
        rungs=rungs,
    )
    state.items.append(item)
    out.opened.append(item)


def handle_consent(plan: Plan, state: EpisodeState, event: Event, now: datetime, out: Outcome) -> None:
    """A consent was recorded (send what waits for it) or revoked (stop what travels under it)."""
    active = state.status == "active"
    if event.name == "consent.recorded":
        for handoff in [h for h in state.handoffs if h.status == "draft" and h.status_reason == "consent-needed"]:
            consent = covering_consent(
                state.consents, handoff.program, RECEIVER_CLASSES, handoff.consent_purpose, now, active
            )
            if consent is None:
                continue
            new, effects = lifecycle.move(handoff.lifecycle(now), "send", "sender", now, consent_id=consent.id)
            handoff.absorb(new)
            out.handoffs_changed.append(handoff)
            for item in [i for i in state.items if i.handoff_id == handoff.id and i.kind == "consent"]:
                close_item(item, "done", event.id, state, out)
            _apply_effects(plan, state, handoff, effects, event, now, out)
            _open_steps(plan, state, handoff, now, out)
            out.audit.append(("handoff.sent", {"handoff": handoff.id, "consent": consent.id}))
        return
    revoked = str(event.data.get("consent", ""))
    for handoff in [h for h in state.handoffs if h.consent_id == revoked and h.closed_at is None]:
        new, effects = lifecycle.move(handoff.lifecycle(now), "cancel", "sender", now, reason="consent revoked")
        handoff.absorb(new)
        out.handoffs_changed.append(handoff)
        _apply_effects(plan, state, handoff, effects, event, now, out)
        alert(
            state,
            out,
            f"revoked.{event_key(event)}",
            f"{handoff.program}: consent revoked, handoff stopped",
            _escalation_roles(plan, handoff),
            now,
        )
        out.audit.append(("handoff.stopped", {"handoff": handoff.id, "consent": revoked}))


def handle_medication_list(plan: Plan, state: EpisodeState, event: Event, now: datetime, out: Outcome) -> None:
    """Keep a side's list; with both sides in, compare them, close reconciliation, escalate critical omissions."""
    side = event.name.removeprefix("medications.").removesuffix("-list")
    raw = event.data.get("medications")
    if not isinstance(raw, list):
        raise EventRejected(f"event '{event.name}': 'medications' must be a list of medications")
    try:
        meds = [Medication.model_validate(m if isinstance(m, dict) else {"name": str(m)}) for m in raw]
    except ValueError as exc:
        raise EventRejected(f"event '{event.name}': {str(exc).splitlines()[0]}") from exc
    state.medication_lists[side] = meds
    out.medication_lists[side] = meds
    if set(state.medication_lists) < {"sending", "receiving"}:
        return
    found = compare(state.medication_lists["sending"], state.medication_lists["receiving"], plan.critical_medications)
    previous = state.discrepancies.get(state.visit, [])
    reconcile = [i for i in state.items if i.kind == "reconcile" and i.visit == state.visit]
    changes, required = visit_medication_rules(plan, state, reconcile)
    receiving = state.medication_lists["receiving"]
    current = apply_pathway(supersede(previous, found), receiving, plan.critical_medications, changes, required)
    state.discrepancies[state.visit] = current
    out.discrepancies, out.compared = current, True
    for item in reconcile:
        close_item(item, "done", event.id, state, out)
    was_resolved = {d.key for d in previous if d.status == RESOLVED}
    for d in current:
        if d.status == RESOLVED and d.key not in was_resolved:
            out.audit.append(("discrepancy.resolved", {"visit": state.visit, "key": d.key}))
    critical = newly_critical(previous, current)
    roles = _critical_roles(plan, state, reconcile)
    for d in critical:
        # the pathway's words only: the name on a list is whatever someone typed (it stays in `carepath meds`)
        title = f"critical: {d.medication_class or 'critical medication'} omitted at transition"
        note = f"{d.medication}: {d.detail}"
        alert(state, out, _critical_key(state, d), title, roles, now, severity="critical", note=note)
    counts = {"discrepancies": len(found), "critical": len(needs_escalation(current)), "alerted": len(critical)}
    out.audit.append(("medications.compared", counts))


def _critical_key(state: EpisodeState, finding: Discrepancy) -> str:
    """The alert key of a critical finding: one per finding, numbered when it recurs after being resolved."""
    base = f"critical-medication.{hashlib.sha256(finding.key.encode()).hexdigest()[:12]}"
    taken = state.raised_alerts | {i.id for i in state.items}
    key, n = base, 1
    while f"{state.id}/{state.visit}/alert.{key}" in taken:
        n += 1
        key = f"{base}@{n}"
    return key


def _critical_roles(plan: Plan, state: EpisodeState, reconcile: list[WorkItem]) -> list[str]:
    """Who hears of a critical finding: the open reconciliation's ``critical_to``; once it has closed (a list sent
    again), that of the moves into this stage; else everyone any reconciliation names, so it reaches someone."""
    works = [(t, w) for t in plan.transitions for w in t.work if w.kind == "reconcile"]
    keys = {i.key for i in reconcile}
    mine = [w for _, w in works if w.key in keys] or [w for t, w in works if t.target == state.stage]
    return list(dict.fromkeys(role for w in mine or [w for _, w in works] for role in w.critical_to))
