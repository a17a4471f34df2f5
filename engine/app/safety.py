"""The safety core's use cases: Part 2 consents and their revocation, medication lists, a clinician's marks.

Each checks what was typed first (:mod:`engine.app.inputs`), before Prefect is asked or anything is stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.app import inputs
from engine.app.context import App
from engine.app.episodes import EventResult, record_event
from engine.episode.domain.consent import KNOWN_PURPOSES, Consent
from engine.episode.referrals import RECEIVER_CLASSES
from engine.errors import EventRejected, InvalidInput, NotFound, quote
from engine.plan.model import Plan
from engine.store import DisclosureRecord

__all__ = [
    "consent_from_form",
    "consent_purposes",
    "disclosures",
    "mark_intentional",
    "record_consent",
    "record_medications",
    "revoke_consent",
]


def consent_purposes(plan: Plan) -> set[str]:
    """Purposes a consent may list: Carepath's known ones and every ``consent_purpose`` the pathway names."""
    work = [w for t in plan.transitions for w in t.work] + [w for s in plan.stages.values() for w in s.entry_work]
    named = {t.handoff.consent_purpose for t in plan.transitions if t.handoff is not None}
    return set(KNOWN_PURPOSES) | named | {w.consent_purpose for w in work if w.consent_purpose}


def consent_from_form(app: App, episode_id: str, form: Mapping[str, Any]) -> Consent:
    """The consent a coordinator typed for the episode's person (dates as ``YYYY-MM-DD`` text); a refusal names
    the field. See :func:`engine.app.inputs.consent_from_form`."""
    inputs.check_id("episode id", episode_id)
    return inputs.consent_from_form(form, app.service.episode(episode_id).person_ref)


def record_consent(app: App, episode_id: str, consent: Consent, *, actor: str = "coordinator") -> EventResult:
    """Record a signed consent for the episode's person; handoffs waiting for it are sent.

    Refused first, changing nothing: a consent already expired, signed in the future, or listing a purpose or
    recipient class neither Carepath nor the pathway knows (:func:`engine.app.inputs.check_consent`).
    """
    inputs.check_id("episode id", episode_id)
    plan = app.service.plan_for(episode_id)
    inputs.check_consent(consent, app.clock.now(), consent_purposes(plan), RECEIVER_CLASSES)
    if app.service.consent_known(consent.id):
        raise EventRejected(f"consent {quote(consent.id)} is already recorded; a changed consent needs a new id")
    app.dispatcher.ready()
    app.service.add_consent(episode_id, consent, actor=actor)
    return record_event(app, episode_id, "consent.recorded", {"consent": consent.id}, actor=actor)


def revoke_consent(app: App, consent_id: str, *, written: bool, actor: str = "coordinator") -> list[EventResult]:
    """Revoke a consent in writing; what travels under it stops on each of the person's active episodes."""
    inputs.check_id("consent id", consent_id)
    if not written:
        raise InvalidInput(
            "written", "a revocation must be in writing (42 CFR Part 2); record the written revocation (--written)"
        )
    if not app.service.consent_known(consent_id):
        raise NotFound(f"no consent {quote(consent_id)}")
    app.dispatcher.ready()
    episodes = app.service.revoke_consent(consent_id, written=written, actor=actor)
    return [record_event(app, ep, "consent.revoked", {"consent": consent_id}, actor=actor) for ep in episodes]


def record_medications(
    app: App,
    episode_id: str,
    side: str,
    medications: list[dict[str, Any]],
    *,
    actor: str = "coordinator",
    event_id: str | None = None,
) -> EventResult:
    """A setting's medication list (``sending`` or ``receiving``); with both in, they are reconciled."""
    if side not in ("sending", "receiving"):
        raise InvalidInput("side", "is not sending or receiving", side)
    data = {"medications": medications}
    return record_event(app, episode_id, f"medications.{side}-list", data, actor=actor, event_id=event_id)


def mark_intentional(app: App, discrepancy_id: str, reason: str, by: str, *, actor: str | None = None) -> None:
    """A clinician (``by``) documents a medication discrepancy as intentional (it stops counting as an error)."""
    inputs.check_id("discrepancy id", discrepancy_id)
    inputs.check_text("reason", reason)
    inputs.check_id("clinician id", by)
    app.service.mark_intentional(discrepancy_id, reason, by, actor)


def disclosures(app: App, episode_id: str, years: int = 3) -> list[DisclosureRecord]:
    """The accounting of disclosures of the episode's person (section 2.25)."""
    inputs.check_id("episode id", episode_id)
    return app.service.disclosures(episode_id, years)
