"""The tables: one SQLModel ``*Record`` class per table, and what they share.

- :mod:`.columns`: the metadata (named constraints), the UTC datetime column type, deferred foreign keys;
- :mod:`.core`: the episode's own tables (episodes, stage visits, handoffs, work items, rungs, escalations,
  deliveries, events, audit, settings);
- :mod:`.safety`: the safety core's tables (consents, disclosures, medication lists, discrepancies,
  authorizations);
- :mod:`.access`: the HTTP API's bearer tokens and the idempotency keys of its requests.

Importing this package defines every table, so :data:`metadata` is complete (Alembic and the tests compare it with
the migrations); what it lists here is the store's table API.
"""

from engine.store.records.access import ApiRequestRecord, ApiTokenRecord
from engine.store.records.columns import UTCDateTime, metadata
from engine.store.records.core import (
    AuditRecord,
    DeliveryRecord,
    EpisodeRecord,
    EscalationRecord,
    HandoffRecord,
    InboundEventRecord,
    PathwayVersionRecord,
    ProcessedEventRecord,
    ReleasedRunRecord,
    RungRecord,
    SettingRecord,
    StageVisitRecord,
    WorkItemRecord,
)
from engine.store.records.safety import (
    AuthorizationRecord,
    ConsentRecord,
    DisclosureRecord,
    DiscrepancyRecord,
    MedicationListRecord,
)

__all__ = [
    "ApiRequestRecord",
    "ApiTokenRecord",
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
    "ReleasedRunRecord",
    "RungRecord",
    "SettingRecord",
    "StageVisitRecord",
    "UTCDateTime",
    "WorkItemRecord",
    "metadata",
]
