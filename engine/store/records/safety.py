"""The safety core's tables: 42 CFR Part 2 consents and the disclosures made under them, medication lists and
reconciliation findings (migration 0002), and insurance authorizations (0004).

Each converts to and from its pure domain object (:mod:`engine.episode.domain`) where the rules need one. Consents
and disclosures are never deleted: a revocation is a column, the accounting of disclosures is append-only.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from engine.episode.domain.consent import Consent, Disclosure
from engine.episode.domain.reconcile import Discrepancy
from engine.store.records.columns import UTCDateTime, episode_fk, fk

__all__ = ["AuthorizationRecord", "ConsentRecord", "DisclosureRecord", "DiscrepancyRecord", "MedicationListRecord"]


class ConsentRecord(SQLModel, table=True):
    """A written 42 CFR Part 2 consent (the section 2.31 elements): :class:`~engine.episode.domain.consent.Consent`.

    ``expires`` is an ISO date, ``end-of-treatment`` or ``none``; ``signed_on`` an ISO date. A consent is never
    deleted: revoking sets ``revoked_at`` (only in writing, see :func:`engine.store.revoke_consent`).
    """

    __tablename__ = "consent"
    __table_args__ = (Index("ix_consent_person", "person_ref"),)

    id: str = Field(primary_key=True)
    person_ref: str
    discloser: str
    information: str
    recipients: list[str] = Field(default_factory=list, sa_type=JSON)
    recipient_classes: list[str] = Field(default_factory=list, sa_type=JSON)
    purposes: list[str] = Field(default_factory=list, sa_type=JSON)
    expires: str
    signed_on: str
    signed_by: str
    recorded_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_in_writing: bool = False

    @classmethod
    def from_domain(cls, consent: Consent, recorded_at: datetime) -> ConsentRecord:
        """The row for a domain consent (``patient`` becomes ``person_ref``)."""
        expires = consent.expires if isinstance(consent.expires, str) else consent.expires.isoformat()
        return cls(
            id=consent.id,
            person_ref=consent.patient,
            discloser=consent.discloser,
            information=consent.information,
            recipients=list(consent.recipients),
            recipient_classes=list(consent.recipient_classes),
            purposes=list(consent.purposes),
            expires=expires,
            signed_on=consent.signed_on.isoformat(),
            signed_by=consent.signed_by,
            recorded_at=recorded_at,
            revoked_at=consent.revoked_at,
            revoked_in_writing=consent.revoked_at is not None,
        )

    def to_domain(self) -> Consent:
        """The domain consent, for :func:`engine.episode.domain.consent.covering_consent` and friends."""
        return Consent(
            id=self.id,
            patient=self.person_ref,
            discloser=self.discloser,
            information=self.information,
            recipients=tuple(self.recipients),
            recipient_classes=tuple(self.recipient_classes),
            purposes=tuple(self.purposes),
            expires=self.expires,  # pydantic parses the ISO date
            signed_on=date.fromisoformat(self.signed_on),
            signed_by=self.signed_by,
            revoked_at=self.revoked_at,
        )


class DisclosureRecord(SQLModel, table=True):
    """A disclosure made, with the redisclosure notice that travelled with it. Append-only: kept for the
    accounting of disclosures (section 2.25, 3 years), never changed, never removed, not even on revocation."""

    __tablename__ = "disclosure"
    __table_args__ = (
        episode_fk(),
        fk(["consent_id"], ["consent.id"]),
        Index("ix_disclosure_episode", "episode_id", "at"),
        Index("ix_disclosure_person", "person_ref", "at"),
    )

    id: str = Field(primary_key=True)
    person_ref: str
    episode_id: str
    recipient: str
    purpose: str
    information: str
    consent_id: str
    at: datetime = Field(sa_type=UTCDateTime)
    notice: str
    what: str

    @classmethod
    def from_domain(cls, disclosure: Disclosure, episode_id: str, what: str) -> DisclosureRecord:
        """The row for a domain disclosure; ``what`` names the thing sent, e.g. ``handoff ep-7f3a2c91/2/handoff``."""
        return cls(
            id=disclosure.id,
            person_ref=disclosure.patient,
            episode_id=episode_id,
            recipient=disclosure.recipient,
            purpose=disclosure.purpose,
            information=disclosure.information,
            consent_id=disclosure.consent_id,
            at=disclosure.at,
            notice=disclosure.notice,
            what=what,
        )

    def to_domain(self) -> Disclosure:
        return Disclosure(
            id=self.id,
            patient=self.person_ref,
            recipient=self.recipient,
            purpose=self.purpose,
            information=self.information,
            consent_id=self.consent_id,
            at=self.at,
            notice=self.notice,
        )


class MedicationListRecord(SQLModel, table=True):
    """One setting's medication list for a stage visit: ``sending`` (discharge) or ``receiving`` (admission).

    One row per (episode, visit, side): a newer list replaces the older (:func:`engine.store.save_medication_list`).
    ``medications`` holds :class:`engine.episode.domain.reconcile.Medication` dicts (name, rxnorm, dose, route,
    frequency, reason).
    """

    __tablename__ = "medication_list"
    __table_args__ = (
        episode_fk(),
        UniqueConstraint("episode_id", "visit", "side", name="uq_medication_list_episode_visit_side"),
    )

    id: int | None = Field(default=None, primary_key=True)
    episode_id: str
    visit: int
    side: str
    medications: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    recorded_at: datetime = Field(sa_type=UTCDateTime)
    event_id: str | None = None


class DiscrepancyRecord(SQLModel, table=True):
    """A reconciliation finding (:class:`engine.episode.domain.reconcile.Discrepancy`); ``id`` is
    ``<episode>/<visit>/<key>``. ``status`` is ``unintentional`` until a clinician marks it
    ``intentional-documented`` with a reason (the domain's values)."""

    __tablename__ = "discrepancy"
    __table_args__ = (episode_fk(), Index("ix_discrepancy_episode", "episode_id", "visit"))

    id: str = Field(primary_key=True)
    episode_id: str
    visit: int
    key: str
    kind: str
    medication: str
    detail: str
    critical: bool = False
    medication_class: str | None = None
    status: str = "unintentional"
    reason: str | None = None
    marked_by: str | None = None
    marked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    def to_domain(self) -> Discrepancy:
        return Discrepancy(
            key=self.key,
            kind=self.kind,
            medication=self.medication,
            detail=self.detail,
            critical=self.critical,
            medication_class=self.medication_class,
            status=self.status,
            reason=self.reason,
            marked_by=self.marked_by,
        )


class AuthorizationRecord(SQLModel, table=True):
    """An insurance authorization a move's admission waits on (:class:`engine.episode.state.Authorization`).

    ``status`` is the decision (``requested``, ``approved``, ``denied``; the domain's values) and ``reason`` a
    denial's reason, which stays here. ``handoff_id`` is null while it was requested before the move;
    ``work_item_id`` is the latest request's deadline; ``closed_at`` is set when it is no longer followed.
    """

    __tablename__ = "authorization"
    __table_args__ = (
        episode_fk(),
        fk(["handoff_id"], ["handoff.id"]),
        Index("ix_authorization_episode", "episode_id", "closed_at"),
    )

    id: str = Field(primary_key=True)
    episode_id: str
    handoff_id: str | None = None
    transition_index: int
    target: str
    program: str
    visit: int
    status: str = "requested"
    requested_at: datetime = Field(sa_type=UTCDateTime)
    due_at: datetime = Field(sa_type=UTCDateTime)
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    reason: str | None = None
    requests: int = 1
    work_item_id: str | None = None
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    closed_by: str | None = None
