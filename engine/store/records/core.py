"""The episode's own tables: pathway versions, episodes, stage visits, handoffs, work items and their rungs,
escalations and their deliveries, events received and applied, the audit trail, shared settings.

Ids are strings chosen by the caller (deterministic where idempotency needs it); only the audit trail, stage
visits and escalations use autoincrement integers. No table holds a name or a date of birth: ``person_ref`` is
the program's opaque id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from engine.store.records.columns import UTCDateTime, episode_fk, fk

__all__ = [
    "UNPUBLISHED",
    "AuditRecord",
    "DeliveryRecord",
    "EpisodeRecord",
    "EscalationRecord",
    "HandoffRecord",
    "InboundEventRecord",
    "PathwayVersionRecord",
    "ProcessedEventRecord",
    "ReleasedRunRecord",
    "RungRecord",
    "SettingRecord",
    "StageVisitRecord",
    "WorkItemRecord",
]


class PathwayVersionRecord(SQLModel, table=True):
    """A pathway's YAML text as registered, so an episode runs on exactly what it enrolled on."""

    __tablename__ = "pathway_version"

    pathway_id: str = Field(primary_key=True)
    version: int = Field(primary_key=True)
    source_text: str
    source_sha256: str
    registered_at: datetime = Field(sa_type=UTCDateTime)


#: Episodes whose Prefect artifacts lag the store (a partial index: in a settled store it holds almost nothing).
UNPUBLISHED = "published_revision < revision"


class EpisodeRecord(SQLModel, table=True):
    """One person (opaque ``person_ref``) on one pinned pathway version; ``revision`` grows on every change, and
    ``published_revision`` is the revision its Prefect artifacts show: behind after a publishing that failed or never
    ran (a follow-up dropped in a Prefect outage or lost in a crash), until the sweep publishes them again."""

    __tablename__ = "episode"
    __table_args__ = (
        fk(["pathway_id", "pathway_version"], ["pathway_version.pathway_id", "pathway_version.version"]),
        Index("ix_episode_pathway_stage", "pathway_id", "stage"),
        Index("ix_episode_status", "status"),
        Index(
            "ix_episode_unpublished", "updated_at", sqlite_where=text(UNPUBLISHED), postgresql_where=text(UNPUBLISHED)
        ),
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
    published_revision: int = 0


class StageVisitRecord(SQLModel, table=True):
    """A stay in a stage: entered (by which event, if any) and left."""

    __tablename__ = "stage_visit"
    __table_args__ = (episode_fk(), Index("ix_stage_visit_episode", "episode_id"))

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
    __table_args__ = (episode_fk(), Index("ix_handoff_episode", "episode_id"))

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
        episode_fk(),
        fk(["handoff_id"], ["handoff.id"]),
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
        episode_fk(),
        fk(["work_item_id"], ["work_item.id"]),
        Index("ix_rung_status_due", "status", "due_at"),
        Index("ix_rung_unscheduled", "status", "flow_run_id", "due_at"),
        Index("ix_rung_flow_run", "flow_run_id"),
        Index("ix_rung_work_item_status", "work_item_id", "status", "index"),
        Index("ix_rung_episode_status", "episode_id", "status", "due_at"),
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
        episode_fk(),
        fk(["rung_id"], ["rung.id"]),
        fk(["work_item_id"], ["work_item.id"]),
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
    __table_args__ = (episode_fk(),)

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
    __table_args__ = (episode_fk(), Index("ix_inbound_event_episode", "episode_id", "received_at"))

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
    __table_args__ = (episode_fk(), Index("ix_audit_episode", "episode_id", "id"))

    id: int | None = Field(default=None, primary_key=True)
    episode_id: str | None = None
    at: datetime = Field(sa_type=UTCDateTime)
    actor: str
    action: str
    detail: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    reason: str | None = None


class ReleasedRunRecord(SQLModel, table=True):
    """A deadline run Carepath is cancelling because no pending rung needed it: no rung may join it from then on.

    Written before the cancel and checked by the join in one statement (:func:`engine.store.set_rung_run`), so a rung
    scheduled into that run's minute at the same moment is refused and scheduled again, rather than left linked to
    a cancelled run (where only the sweep would find it, late). Rows older than a day are pruned by the sweep."""

    __tablename__ = "released_run"
    __table_args__ = (Index("ix_released_run_at", "released_at"),)

    run_id: str = Field(primary_key=True)
    released_at: datetime = Field(sa_type=UTCDateTime)


class SettingRecord(SQLModel, table=True):
    """A JSON value shared by every process, e.g. the clock configuration."""

    __tablename__ = "setting"

    key: str = Field(primary_key=True)
    value: Any = Field(default=None, sa_type=JSON)


class DeliveryRecord(SQLModel, table=True):
    """The latest outcome of delivering an escalation to one contact (:class:`engine.notify.delivery.DeliveryOutcome`).

    ``key`` is :func:`engine.notify.delivery.delivery_key`; ``status`` is ``delivered``, ``failed``, ``skipped`` or
    ``no-contact``. Failed ones stay visible (``carepath status`` shows every contact's outcome). ``rung_id`` has
    no foreign key on purpose: recording a delivery must never fail.
    """

    __tablename__ = "delivery"
    __table_args__ = (
        episode_fk(),
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
