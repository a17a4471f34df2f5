"""Authorizations, social-need referrals and stays through the episode service over a real store (no Prefect),
on SQLite and PostgreSQL, and migration 0004 that holds them.

The whole path of issue 7's defects 3-5: an authorization requested before the move, adopted by it, denied (the
reason stays in the store), requested again and approved, with the admission held until then; a need that
outlives a move; a stay shorter than its minimum recorded on its ``stage_visit`` row and shown by ``status``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlmodel import Session, col, select
from store_fixtures import downgrade_to, upgrade_to
from test_authorization import PATHWAY as AUTH_PATHWAY
from test_episode import tpo_consent

from engine import store
from engine.app.service import EpisodeService
from engine.app.views import episode_status
from engine.cli.render import render_status
from engine.clock import ManualClock
from engine.errors import EventRejected
from engine.language.loader import load_pathway_text
from engine.store import AuthorizationRecord, StageVisitRecord, WorkItemRecord

H, D = timedelta(hours=1), timedelta(days=1)
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

# the authorization test pathway, with an expected stay in detox and a social-need rule
PATHWAY = AUTH_PATHWAY.replace(
    "  - { id: detox, name: Withdrawal management }\n",
    "  - id: detox\n    name: Withdrawal management\n    owner: care-coordinator\n"
    "    expected_duration: { min: 3d, max: 14d }\n",
) + ("social_needs:\n  housing: { refer_within: 2d, owner: care-coordinator }\n")


@pytest.fixture
def service(engine: Engine) -> EpisodeService:
    service = EpisodeService(engine, ManualClock(T0))
    result = load_pathway_text(PATHWAY, "auth-test.yaml")
    assert result.ok and result.spec is not None, [str(d) for d in result.diagnostics]
    service.register_pathway(result.spec, PATHWAY)
    return service


def _advance(service: EpisodeService, delta: timedelta) -> None:
    service.clock.advance(delta)  # type: ignore[attr-defined]


def _authorization(service: EpisodeService, episode_id: str) -> AuthorizationRecord:
    with Session(service.engine) as s:
        [row] = s.exec(select(AuthorizationRecord).where(AuthorizationRecord.episode_id == episode_id)).all()
        return row


def _items(service: EpisodeService, episode_id: str, kind: str) -> list[WorkItemRecord]:
    with Session(service.engine) as s:
        query = select(WorkItemRecord).where(WorkItemRecord.episode_id == episode_id, WorkItemRecord.kind == kind)
        return list(s.exec(query.order_by(col(WorkItemRecord.opened_at))))


def test_an_authorization_lives_in_the_store_from_early_request_to_admission(service: EpisodeService) -> None:
    ep = service.enroll("auth-test", "P-TEST-1").episode_id
    service.add_consent(ep, tpo_consent())
    service.record_event(ep, "authorization.requested", {"to": "residential"})
    early = _authorization(service, ep)
    assert (early.status, early.handoff_id, early.target, early.visit) == ("requested", None, "residential", 1)
    assert early.due_at == T0 + 72 * H

    _advance(service, 30 * H)
    service.record_event(ep, "detox.completed", {"insurance": "medicaid"})
    adopted = _authorization(service, ep)
    assert (adopted.handoff_id, adopted.visit, adopted.due_at) == (f"{ep}/2/handoff", 2, T0 + 72 * H)
    assert [i.status for i in _items(service, ep, "authorization")] == ["open"], "one authorization, not two"

    service.record_event(ep, "handoff.accepted")
    service.record_event(ep, "authorization.denied", {"reason": "not medically necessary"})
    denied = _authorization(service, ep)
    assert (denied.status, denied.reason) == ("denied", "not medically necessary")
    [alert] = _items(service, ep, "alert")
    assert (alert.title, alert.severity, alert.note) == (
        "Insurance authorization for Residential program denied",
        "high",
        "not medically necessary",
    )
    with pytest.raises(EventRejected, match="held"):
        service.record_event(ep, "handoff.visit-kept")

    _advance(service, 5 * H)
    service.record_event(ep, "authorization.requested")
    again = _authorization(service, ep)
    assert (again.status, again.requests, again.due_at) == ("requested", 2, T0 + 35 * H + 72 * H)
    assert [i.status for i in _items(service, ep, "authorization")] == ["cancelled", "open"]
    service.record_event(ep, "authorization.approved")
    service.record_event(ep, "handoff.visit-kept")
    assert _authorization(service, ep).status == "approved"
    assert service.episode(ep).stage == "residential"


def test_a_need_outlives_the_move_in_the_store(service: EpisodeService) -> None:
    ep = service.enroll("auth-test", "P-TEST-1").episode_id
    service.record_event(ep, "need.identified", {"need": "housing"})
    service.record_event(ep, "detox.completed", {"insurance": "self-pay"})
    service.record_event(ep, "need.identified", {"need": "housing"})
    [referral] = _items(service, ep, "referral")
    assert referral.status == "open"
    service.record_event(ep, "referral.made", {"need": "housing"})
    assert [i.status for i in _items(service, ep, "referral")] == ["done"]


def test_a_short_stay_is_kept_on_its_visit_and_shown_by_status(service: EpisodeService) -> None:
    ep = service.enroll("auth-test", "P-TEST-1").episode_id
    _advance(service, 30 * H)
    service.record_event(ep, "detox.completed", {"insurance": "self-pay"})
    with Session(service.engine) as s:
        visits = s.exec(
            select(StageVisitRecord).where(StageVisitRecord.episode_id == ep).order_by(col(StageVisitRecord.id))
        ).all()
        assert [(v.stage, v.short_of_min_s) for v in visits] == [
            ("detox", 3 * D.total_seconds()),
            ("residential", None),
        ]
    shown = render_status(episode_status(service.engine, ep), service.clock.now())
    assert "short stay: detox 30h (expected at least 3d), left 2026-03-02 15:00" in shown.splitlines()[2:]


def test_0004_upgrades_a_0003_database_in_place_and_downgrades_cleanly(empty_engine: Engine) -> None:
    upgrade_to(empty_engine, "0003")
    with empty_engine.begin() as conn:
        conn.execute(
            text("INSERT INTO pathway_version VALUES ('detox', 1, 'id: detox', :sha, :t)"), {"sha": "0" * 64, "t": T0}
        )
        conn.execute(
            text(
                "INSERT INTO episode (id, person_ref, pathway_id, pathway_version, params, stage, status, facts, visit,"
                " enrolled_at, stage_entered_at, updated_at, revision) VALUES ('ep-1', 'P-1', 'detox', 1, '{}',"
                " 'detox', 'active', '{}', 1, :t, :t, :t, 0)"
            ),
            {"t": T0},
        )
        conn.execute(
            text("INSERT INTO stage_visit (episode_id, stage, entered_at) VALUES ('ep-1', 'detox', :t)"), {"t": T0}
        )
    store.migrate(empty_engine)
    with empty_engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), store.metadata)
    assert diffs == []
    with Session(empty_engine) as s:
        [visit] = s.exec(select(StageVisitRecord)).all()
        assert (visit.stage, visit.short_of_min_s) == ("detox", None)

    downgrade_to(empty_engine, "0003")
    inspector = inspect(empty_engine)
    assert "authorization" not in inspector.get_table_names()
    assert "short_of_min_s" not in {c["name"] for c in inspector.get_columns("stage_visit")}
    store.migrate(empty_engine)
