"""The tables: one SQLModel ``*Record`` class per table, and the UTC datetime column type they share.

Times are aware UTC datetimes in Python and UTC in the database (``timestamptz`` on PostgreSQL, naive UTC text
on SQLite, where text order is time order). A naive datetime is refused when written: it is a bug upstream.
Ids are strings chosen by the caller (deterministic where idempotency needs it); only the audit trail, stage
visits and escalations use autoincrement integers. No table holds a name or a date of birth: ``person_ref`` is
the program's opaque id.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKeyConstraint, Index, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from engine.episode.domain.consent import Consent, Disclosure
from engine.episode.domain.reconcile import Discrepancy

__all__ = [
    "AuditRecord",
    "AuthorizationRecord",
    "ConsentRecord",
    "DeliveryRecord",
    "DisclosureRecord",
    "DiscrepancyRecord",
    "EpisodeRecord",
    "EscalationRecord",
    "HandoffRecord",
    "InboundEventRecord",
    "MedicationListRecord",
    "PathwayVersionRecord",
    "ProcessedEventRecord",
    "RungRecord",
    "SettingRecord",
    "StageVisitRecord",
    "UTCDateTime",
    "WorkItemRecord",
    "metadata",
]

metadata = SQLModel.metadata
# Named constraints, so later migrations can alter them (SQLite's batch mode needs the names).
metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime; refuses naive values so no local time slips in."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError(f"expected an aware datetime, got {value!r}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _fk(columns: list[str], refs: list[str]) -> ForeignKeyConstraint:
    """Checked at commit, so one transaction may add parents and children in any order (the ORM does not sort
    inserts by foreign keys when there are no relationships)."""
    return ForeignKeyConstraint(columns, refs, deferrable=True, initially="DEFERRED")


def _episode_fk() -> ForeignKeyConstraint:
    return _fk(["episode_id"], ["episode.id"])


class PathwayVersionRecord(SQLModel, table=True):
    """A pathway's YAML text as registered, so an episode runs on exactly what it enrolled on."""

    __tablename__ = "pathway_version"

    pathway_id: str = Field(primary_key=True)
    version: int = Field(primary_key=True)
    source_text: str
    source_sha256: str
    registered_at: datetime = Field(sa_type=UTCDateTime)


class EpisodeRecord(SQLModel, table=True):
    """One person (opaque ``person_ref``) on one pinned pathway version; ``revision`` grows on every change."""

    __tablename__ = "episode"
    __table_args__ = (
        _fk(["pathway_id", "pathway_version"], ["pathway_version.pathway_id", "pathway_version.version"]),
        Index("ix_episode_pathway_stage", "pathway_id", "stage"),
        Index("ix_episode_status", "status"),
    )

    id: str = Field(primary_key=True)
    person_ref: str
    pathway_id: str
    pathway_version: int
    params: dict[str, float] = Field(default_factory=dict, sa_type=JSON)
    stage: str
    status: str = "active"
    facts: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    visit: int = 1
    enrolled_at: datetime = Field(sa_type=UTCDateTime)
    stage_entered_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    revision: int = 0


class StageVisitRecord(SQLModel, table=True):
    """A stay in a stage: entered (by which event, if any) and left."""

    __tablename__ = "stage_visit"
    __table_args__ = (_episode_fk(), Index("ix_stage_visit_episode", "episode_id"))

    id: int | None = Field(default=None, primary_key=True)
    episode_id: str
    stage: str
    entered_at: datetime = Field(sa_type=UTCDateTime)
    left_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    entered_by_event: str | None = None
    #: The stage's expected minimum stay, in seconds, when this stay was shorter (a flagged visit); else null
    short_of_min_s: float | None = None


class HandoffRecord(SQLModel, table=True):
    """A referral to a receiving program: FHIR ``Task.status`` and BSeR ``business_status``.

    The columns after ``closed_at`` (migration 0002) hold the rest of
    :class:`engine.episode.domain.handoff.HandoffState`;
    ``re_engage_within_s`` is that state's ``re_engage_within`` in seconds.
    """

    __tablename__ = "handoff"
    __table_args__ = (_episode_fk(), Index("ix_handoff_episode", "episode_id"))

    id: str = Field(primary_key=True)
    episode_id: str
    transition_index: int
    program: str
    role: str
    mode: str
    consent_purpose: str
    visit: int = 1
    status: str = "requested"
    business_status: str = "created"
    opened_at: datetime = Field(sa_type=UTCDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    status_reason: str | None = None
    consent_id: str | None = None
    held_from: str | None = None
    appointment_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    outcome: str | None = None
    steps_met: list[str] = Field(default_factory=list, sa_type=JSON, sa_column_kwargs={"server_default": "[]"})
    re_engage_within_s: float | None = None
    fallback: str | None = None
    updated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class WorkItemRecord(SQLModel, table=True):
    """A deadline: work that must be done (``done_on`` an event matching ``match``) by ``due_at``."""

    __tablename__ = "work_item"
    __table_args__ = (
        _episode_fk(),
        _fk(["handoff_id"], ["handoff.id"]),
        Index("ix_work_item_episode_status", "episode_id", "status"),
    )

    id: str = Field(primary_key=True)
    episode_id: str
    handoff_id: str | None = None
    kind: str
    key: str
    title: str
    owner: str | None = None
    due_at: datetime = Field(sa_type=UTCDateTime)
    done_on: str
    match: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    consent_purpose: str | None = None
    visit: int = 1
    status: str = "open"
    opened_at: datetime = Field(sa_type=UTCDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    closed_by: str | None = None
    occurrence: int = 0
    #: ``normal``, ``high`` (an alert: a decline, a revocation, a denial) or ``critical`` (an omitted MOUD)
    severity: str = Field(default="normal", sa_column_kwargs={"server_default": "normal"})
    #: Free text that belongs with the work (a denial's reason); shown by ``carepath status``, never sent to Prefect
    note: str | None = None


class RungRecord(SQLModel, table=True):
    """One escalation rung of a work item: a durable timer, fired once by the scheduled run or the sweep."""

    __tablename__ = "rung"
    __table_args__ = (
        _episode_fk(),
        _fk(["work_item_id"], ["work_item.id"]),
        Index("ix_rung_status_due", "status", "due_at"),
        Index("ix_rung_unscheduled", "status", "flow_run_id", "due_at"),
        Index("ix_rung_work_item", "work_item_id"),
        Index("ix_rung_episode", "episode_id"),
    )

    id: str = Field(primary_key=True)
    work_item_id: str
    episode_id: str
    index: int
    due_at: datetime = Field(sa_type=UTCDateTime)
    role: str
    status: str = "pending"
    flow_run_id: str | None = None
    scheduled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class EscalationRecord(SQLModel, table=True):
    """An alert raised to ``role``; ``rung_id`` is unique, so a rung escalates once however often it is fired."""

    __tablename__ = "escalation"
    __table_args__ = (
        _episode_fk(),
        _fk(["rung_id"], ["rung.id"]),
        _fk(["work_item_id"], ["work_item.id"]),
        UniqueConstraint("rung_id"),
        Index("ix_escalation_episode", "episode_id"),
        Index("ix_escalation_delivery", "delivery_done_at", "delivery_claimed_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    rung_id: str
    episode_id: str
    work_item_id: str
    role: str
    raised_at: datetime = Field(sa_type=UTCDateTime)
    acknowledged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    acknowledged_by: str | None = None
    severity: str = Field(default="normal", sa_column_kwargs={"server_default": "normal"})
    #: Wall time a process took on delivering this escalation; the sweep re-delivers a claim gone stale
    delivery_claimed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    #: Wall time every contact's outcome was recorded (delivered, failed after retries, or no contact)
    delivery_done_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ProcessedEventRecord(SQLModel, table=True):
    """An event id already applied to an episode: the same event sent twice is applied once.

    Ids are unique per episode (a sending system's ids may repeat across people); ``digest`` identifies the event
    (name and payload), so an id reused for a different event is refused rather than taken for a duplicate.
    """

    __tablename__ = "processed_event"
    __table_args__ = (_episode_fk(),)

    episode_id: str = Field(primary_key=True)
    event_id: str = Field(primary_key=True)
    name: str
    received_at: datetime = Field(sa_type=UTCDateTime)
    outcome: str = "applied"
    detail: str | None = None
    digest: str | None = None


class InboundEventRecord(SQLModel, table=True):
    """An event as received, payload included, before it is applied: Prefect gets only this row's opaque ``id``.

    ``status`` is ``received`` until the event is applied (``applied``, ``duplicate``) or refused (``rejected``,
    with the one-line reason in ``detail``, which stays in the store).
    """

    __tablename__ = "inbound_event"
    __table_args__ = (_episode_fk(), Index("ix_inbound_event_episode", "episode_id", "received_at"))

    id: str = Field(primary_key=True)
    episode_id: str
    name: str
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    event_id: str | None = None
    actor: str = "coordinator"
    received_at: datetime = Field(sa_type=UTCDateTime)
    status: str = "received"
    detail: str | None = None
    processed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class AuditRecord(SQLModel, table=True):
    """Who did what, when and why. Append-only: the store offers no way to change or remove a row."""

    __tablename__ = "audit"
    __table_args__ = (_episode_fk(), Index("ix_audit_episode", "episode_id", "id"))

    id: int | None = Field(default=None, primary_key=True)
    episode_id: str | None = None
    at: datetime = Field(sa_type=UTCDateTime)
    actor: str
    action: str
    detail: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    reason: str | None = None


class SettingRecord(SQLModel, table=True):
    """A JSON value shared by every process, e.g. the clock configuration."""

    __tablename__ = "setting"

    key: str = Field(primary_key=True)
    value: Any = Field(default=None, sa_type=JSON)


# ------------------------------------------------------------------------------ the safety core (0002)


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
            expires=self.expires,  # type: ignore[arg-type]  # pydantic parses the ISO date
            signed_on=date.fromisoformat(self.signed_on),
            signed_by=self.signed_by,
            revoked_at=self.revoked_at,
        )


class DisclosureRecord(SQLModel, table=True):
    """A disclosure made, with the redisclosure notice that travelled with it. Append-only: kept for the
    accounting of disclosures (section 2.25, 3 years), never changed, never removed, not even on revocation."""

    __tablename__ = "disclosure"
    __table_args__ = (
        _episode_fk(),
        _fk(["consent_id"], ["consent.id"]),
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
        _episode_fk(),
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
    __table_args__ = (_episode_fk(), Index("ix_discrepancy_episode", "episode_id", "visit"))

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
            kind=self.kind,  # type: ignore[arg-type]
            medication=self.medication,
            detail=self.detail,
            critical=self.critical,
            medication_class=self.medication_class,
            status=self.status,  # type: ignore[arg-type]
            reason=self.reason,
            marked_by=self.marked_by,
        )


class DeliveryRecord(SQLModel, table=True):
    """The latest outcome of delivering an escalation to one contact (:class:`engine.notify.delivery.DeliveryOutcome`).

    ``key`` is :func:`engine.notify.delivery.delivery_key`; ``status`` is ``delivered``, ``failed``, ``skipped`` or
    ``no-contact``. Failed ones stay visible (:func:`engine.store.failed_deliveries`). ``rung_id`` has no foreign
    key on purpose: recording a delivery must never fail.
    """

    __tablename__ = "delivery"
    __table_args__ = (
        _episode_fk(),
        Index("ix_delivery_rung", "rung_id"),
        Index("ix_delivery_episode", "episode_id"),
        Index("ix_delivery_status", "status", "updated_at"),
    )

    key: str = Field(primary_key=True)
    rung_id: str
    episode_id: str
    role: str
    contact_label: str | None = None
    redacted_url: str
    status: str
    attempts: int = 0
    last_error: str | None = None
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


# ------------------------------------------------------------------- authorizations and stays (0004)


class AuthorizationRecord(SQLModel, table=True):
    """An insurance authorization a move's admission waits on (:class:`engine.episode.state.Authorization`).

    ``status`` is the decision (``requested``, ``approved``, ``denied``; the domain's values) and ``reason`` a
    denial's reason, which stays here. ``handoff_id`` is null while it was requested before the move;
    ``work_item_id`` is the latest request's deadline; ``closed_at`` is set when it is no longer followed.
    """

    __tablename__ = "authorization"
    __table_args__ = (
        _episode_fk(),
        _fk(["handoff_id"], ["handoff.id"]),
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
