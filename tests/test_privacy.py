"""Only opaque ids and the pathway's own words reach Prefect: a scan of everything a real Prefect server holds.

A coordinator types a person-like marker into every free-text and payload field of every command (person id,
event ids, medication names and doses, reasons, outcomes, consent details, clinicians' and staff ids, enrollment
facts), the episodes run (handoffs, alerts, deadline runs, deliveries), and then every Prefect object is read back
through the API (flow runs with their parameters, task runs, logs, artifacts, events, deployments), along with the
Prefect server's whole database, its log and the serving process's log. No marker may appear in any of them.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from carepath_harness import Harness, running_carepath
from http_receiver import HttpReceiver

from engine.app import acknowledge, record_event
from engine.app.safety import mark_intentional, record_consent, record_medications
from engine.episode.domain.consent import Consent
from engine.store import DiscrepancyRecord, EscalationRecord

if TYPE_CHECKING:
    from prefect_harness import PrefectStorage, ServeProcessFactory

pytestmark = pytest.mark.prefect

#: Every marker shares this stem, so one search finds any of them, however a field was cut or cased.
STEM = "phimark"
ROLES = ("care-coordinator", "supervisor", "prescriber", "peer-recovery-coach", "detox-intake", "residential-intake")


def marker(field: str) -> str:
    return f"PHIMARK-{field}-77"


@pytest.fixture(scope="module")
def carepath(
    prefect_server: str, serve_process: ServeProcessFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Harness]:
    with HttpReceiver() as receiver:

        def roster(home: Path) -> None:
            lines = ["roles:"] + [f"  {r}:\n    contacts:\n      - {receiver.url('json', '/' + r)}" for r in ROLES]
            (home / "roster.yaml").write_text("\n".join(lines) + "\n")

        home = tmp_path_factory.mktemp("carepath-privacy")
        with running_carepath("sqlite", prefect_server, serve_process, home, setup=roster) as harness:
            yield harness


def _consent(h: Harness, episode_id: str) -> Consent:
    return Consent(
        id=f"cn-{episode_id}",
        patient=h.app.service.episode(episode_id).person_ref,
        discloser=marker("discloser"),
        information=f"{marker('information')} diagnosis and medications",
        recipients=(),
        recipient_classes=("treating-providers",),
        purposes=("treatment", "payment", "health-care-operations"),
        expires="end-of-treatment",
        signed_on=date(2026, 1, 1),
        signed_by=marker("signer"),
    )


def _drive(h: Harness) -> None:
    """Every command a coordinator has, each with markers in what people type."""
    app = h.app
    first = h.enroll("detox-to-aftercare", marker("person-1"), consent=False)
    record_consent(app, first, _consent(h, first))
    record_event(app, first, "medical-screening.completed", event_id=marker("event-id"))
    record_event(app, first, "assessment.completed", {"insurance": "commercial", "needs_withdrawal_management": True})
    record_event(app, first, "handoff.accepted", event_id=f"{marker('event-id-2')}:second")
    sending = [{"name": marker("drug"), "dose": marker("dose"), "route": "oral", "frequency": marker("freq")}]
    receiving = [{"name": f"{marker('other-drug')}", "dose": "1 mg", "reason": marker("start-reason")}]
    record_medications(app, first, "sending", [*sending, {"name": "buprenorphine", "dose": "16 mg"}])
    record_medications(app, first, "receiving", receiving)  # buprenorphine omitted: a critical alert
    with app.service.engine.connect():
        pass
    from sqlmodel import Session, select

    with Session(app.engine) as s:
        found = list(s.exec(select(DiscrepancyRecord).where(DiscrepancyRecord.episode_id == first)))
    mark_intentional(app, found[0].id, marker("mark-reason"), marker("clinician"))
    record_event(
        app,
        first,
        "handoff.move",
        {"action": "schedule", "party": "receiver", "appointment_at": "2027-01-04T10:00:00+00:00"},
    )
    record_event(app, first, "handoff.move", {"action": "keep", "party": "receiver"})
    record_event(app, first, "handoff.move", {"action": "return-outcome", "outcome": marker("outcome")})

    second = h.enroll("detox-to-aftercare", marker("person-2"))
    record_event(app, second, "medical-screening.completed")
    record_event(app, second, "assessment.completed", {"insurance": "self-pay", "needs_withdrawal_management": False})
    record_event(app, second, "handoff.move", {"action": "decline", "party": "receiver", "reason": marker("decline")})
    with Session(app.engine) as s:
        raised = list(s.exec(select(EscalationRecord).where(EscalationRecord.episode_id == second)))
    assert raised, "the decline escalated"
    acknowledge(app, raised[0].id or 0, marker("staff"))
    h.enrolled += [first, second]


def _prefect_objects(api: str) -> dict[str, str]:
    """Everything Prefect holds that an operator or the API can read, as text per kind."""
    out: dict[str, str] = {}
    with httpx.Client(base_url=api, timeout=30) as client:
        for kind, path in [
            ("flow runs", "/flow_runs/filter"),
            ("task runs", "/task_runs/filter"),
            ("logs", "/logs/filter"),
            ("artifacts", "/artifacts/filter"),
            ("deployments", "/deployments/filter"),
            ("flows", "/flows/filter"),
            ("automations", "/automations/filter"),
        ]:
            pages, offset = [], 0
            while True:
                response = client.post(path, json={"limit": 200, "offset": offset})
                response.raise_for_status()
                batch = response.json()
                pages += batch
                if len(batch) < 200:
                    break
                offset += 200
            out[kind] = json.dumps(pages)
        events: list[Any] = []
        response = client.post("/events/filter", json={"limit": 50})
        while True:
            response.raise_for_status()
            body = response.json()
            events += body.get("events", [])
            if not body.get("next_page"):
                break
            response = client.get(body["next_page"])
        out["events"] = json.dumps(events)
    return out


def _prefect_database(storage: PrefectStorage) -> str:
    if storage.database_url is None:
        return storage.sqlite_file.read_bytes().decode("utf-8", "replace")
    url = storage.database_url.replace("+asyncpg", "")
    dump = subprocess.run(["pg_dump", "--data-only", url], capture_output=True, check=True, timeout=300)
    return dump.stdout.decode("utf-8", "replace")


def test_nothing_a_person_typed_reaches_prefect(
    carepath: Harness, prefect_server: str, prefect_storage: PrefectStorage
) -> None:
    h = carepath
    _drive(h)
    places = _prefect_objects(prefect_server)
    assert "ep-" in places["flow runs"] and places["artifacts"] != "[]", "the scan reads real objects"
    places["Prefect database"] = _prefect_database(prefect_storage)
    places["Prefect server log"] = prefect_storage.log_path.read_text(errors="replace")
    places["serving process log"] = h.serving.log_path.read_text(errors="replace")
    leaks = {where: text.lower().count(STEM) for where, text in places.items() if STEM in text.lower()}
    assert leaks == {}, f"typed text reached Prefect: {leaks}"
    for value in ("commercial", "self-pay", "buprenorphine", "16 mg"):  # payload values, however ordinary
        assert all(value not in places[k] for k in ("flow runs", "task runs", "logs", "artifacts", "events"))
