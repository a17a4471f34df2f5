"""Issue #9 part B's forms through the service and a real store (SQLite and PostgreSQL), across restarts.

The pure rules are tested in ``tests/test_language_b.py``; here what they depend on must survive the store: an
event's ``occurred_at`` (deadlines ``from:`` it and time guards read it after ``load_state``), and a ``timeout``
work item (``after: 14d``) that moves the episode when its rung is fired by the sweep of a restarted App whose
in-memory schedule was lost. Pathway: ``tests/data/valid/bridge.yaml``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session
from store_fixtures import BACKENDS, migrated_database_url

from engine import store
from engine.app import App, Settings, enroll, record_event, sweep
from engine.app.inline import RecordingNotifier, inline_app
from engine.clock import ManualClock
from engine.errors import EventRejected, InvalidInput
from engine.language.loader import load_pathway
from engine.store import WorkItemRecord

BRIDGE = Path(__file__).parent / "data" / "valid" / "bridge.yaml"


class Service:
    """One store and one manual clock; :meth:`restart` drops the App (and its in-memory schedule) for a new one."""

    def __init__(self, url: str, home: Path) -> None:
        self.settings = Settings.from_env({"CAREPATH_HOME": str(home), "CAREPATH_DATABASE_URL": url})
        self.clock = ManualClock()
        self.app = self._new()
        result = load_pathway(BRIDGE)
        assert result.spec is not None and result.source_text is not None
        self.app.service.register_pathway(result.spec, result.source_text)

    def _new(self) -> App:
        return inline_app(self.settings, self.clock, notifier=RecordingNotifier({}))

    def restart(self) -> App:
        self.app.close()
        self.app = self._new()
        return self.app

    def items(self, episode_id: str, kind: str) -> list[WorkItemRecord]:
        with Session(self.app.engine) as s:
            return [i for i in store.open_work_items(s, episode_id) if i.kind == kind]


@pytest.fixture(params=BACKENDS)
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Service]:
    with migrated_database_url(request.param, tmp_path) as url:
        svc = Service(url, tmp_path)
        yield svc
        svc.app.close()


def utc(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def test_occurred_at_survives_restarts_and_a_later_deadline_counts_from_it(service: Service) -> None:
    ep = enroll(service.app, "ed-bridge", "P-STORE-B1")
    discharged = service.clock.now() - timedelta(hours=48)
    result = record_event(service.app, ep, "ed.discharged", {"occurred_at": discharged.isoformat()})
    assert result.stage == "bridge"
    service.restart()
    (visit,) = service.items(ep, "task")
    assert visit.key.endswith("bridge-visit") and utc(visit.due_at) == discharged + timedelta(hours=72)

    # 14 days in the bridge stage with no progress: the timeout's rung, fired by a restarted App's sweep
    service.restart()
    (timer,) = service.items(ep, "timeout")
    service.clock.advance(timedelta(days=14, minutes=5))
    assert service.app.service.episode(ep).stage == "bridge"  # the lost in-memory run never fired it
    report = sweep(service.app)
    assert report.problems == [], report
    assert service.app.service.episode(ep).stage == "re-engagement"
    assert all(i.id != timer.id for i in service.items(ep, "timeout"))

    # back to the bridge after one more restart: the entry task counts from the stored discharge moment again
    service.restart()
    assert record_event(service.app, ep, "person.re-engaged").stage == "bridge"
    (again,) = service.items(ep, "task")
    assert utc(again.due_at) == discharged + timedelta(hours=72)


def test_a_time_guard_reads_the_stored_moment_after_a_restart(service: Service) -> None:
    ep = enroll(service.app, "ed-bridge", "P-STORE-B2")
    record_event(service.app, ep, "ed.discharged")
    dose = service.clock.now() - timedelta(hours=2)
    with pytest.raises(InvalidInput, match="occurred_at"):  # any event may say when it happened, never ahead
        record_event(service.app, ep, "methadone.last-dose", {"occurred_at": (dose + timedelta(hours=3)).isoformat()})
    record_event(service.app, ep, "methadone.last-dose", {"occurred_at": dose.isoformat()})
    service.restart()
    with pytest.raises(EventRejected, match="possible from"):
        record_event(service.app, ep, "bridge.completed")
    service.restart()
    service.clock.advance(timedelta(hours=22, minutes=1))
    assert record_event(service.app, ep, "bridge.completed").stage == "otp"
