"""The safety core's use cases: Part 2 consents and their revocation, medication lists, a clinician's marks."""

from __future__ import annotations

from typing import Any

from engine.app.context import App
from engine.app.episodes import EventResult, record_event
from engine.episode.domain.consent import Consent
from engine.store import DisclosureRecord

__all__ = ["disclosures", "mark_intentional", "record_consent", "record_medications", "revoke_consent"]


def record_consent(app: App, episode_id: str, consent: Consent, *, actor: str = "coordinator") -> EventResult:
    """Record a signed consent for the episode's person; handoffs waiting for it are sent."""
    app.dispatcher.ready()
    app.service.add_consent(episode_id, consent, actor=actor)
    return record_event(app, episode_id, "consent.recorded", {"consent": consent.id}, actor=actor)


def revoke_consent(app: App, consent_id: str, *, written: bool, actor: str = "coordinator") -> list[EventResult]:
    """Revoke a consent in writing; what travels under it stops on each of the person's active episodes."""
    app.dispatcher.ready()
    episodes = app.service.revoke_consent(consent_id, written=written, actor=actor)
    return [record_event(app, ep, "consent.revoked", {"consent": consent_id}, actor=actor) for ep in episodes]


def record_medications(
    app: App, episode_id: str, side: str, medications: list[dict[str, Any]], *, actor: str = "coordinator"
) -> EventResult:
    """A setting's medication list (``sending`` or ``receiving``); with both in, they are reconciled."""
    return record_event(app, episode_id, f"medications.{side}-list", {"medications": medications}, actor=actor)


def mark_intentional(app: App, discrepancy_id: str, reason: str, by: str) -> None:
    """A clinician documents a medication discrepancy as intentional (it stops counting as an error)."""
    app.service.mark_intentional(discrepancy_id, reason, by)


def disclosures(app: App, episode_id: str, years: int = 3) -> list[DisclosureRecord]:
    """The accounting of disclosures of the episode's person (section 2.25)."""
    return app.service.disclosures(episode_id, years)
