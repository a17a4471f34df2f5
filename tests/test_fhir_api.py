"""A receiving program works its referrals over FHIR R4 only, with its own token: it searches its Tasks, accepts,
schedules, records the kept visit and returns the outcome; the loop closes, the deadlines stop, and nothing more is
disclosed. A decline starts the pathway's fallback and escalates. Every resource the server answers validates as
FHIR (``fhir.resources``, R4B models). Writes are idempotent, and a receiver racing a coordinator gets one winner.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from api_fixtures import Net, build_net
from fhir_data import validate
from sqlmodel import Session, select
from store_fixtures import BACKENDS

from engine.store import DisclosureRecord, EscalationRecord, WorkItemRecord

BSER = "http://hl7.org/fhir/us/bser/CodeSystem/TaskBusinessStatusCS"
PATCH = {"Content-Type": "application/json-patch+json"}


def _business(code: str) -> dict[str, Any]:
    return {"coding": [{"system": BSER, "code": code}]}


def _patch(net: Net, task_id: str, ops: list[dict[str, Any]], **headers: str) -> Any:
    return net.call("harbor", "PATCH", f"/fhir/R4/Task/{task_id}", json=ops, headers={**PATCH, **headers})


def _open_work(net: Net, handoff: str) -> list[WorkItemRecord]:
    with Session(net.app.engine) as s:
        return list(
            s.exec(select(WorkItemRecord).where(WorkItemRecord.handoff_id == handoff, WorkItemRecord.status == "open"))
        )


def _disclosures(net: Net) -> int:
    with Session(net.app.engine) as s:
        return len(list(s.exec(select(DisclosureRecord))))


def test_a_receiving_program_closes_the_loop_over_fhir_alone(net: Net) -> None:
    episode, handoff = net.released()
    disclosed = _disclosures(net)
    assert disclosed == 1 and _open_work(net, handoff)

    search = net.call(
        "harbor", "GET", "/fhir/R4/Task", params={"owner": "Organization/harbor-clinic", "status": "requested"}
    )
    assert search.status_code == 200 and search.headers["content-type"] == "application/fhir+json"
    bundle = validate(search.json())
    assert bundle.total == 1
    task = search.json()["entry"][0]["resource"]
    task_id = task["id"]
    assert task["owner"]["reference"] == "Organization/harbor-clinic" and task["intent"] == "order"
    assert task["restriction"]["period"]["end"]  # the first step's deadline

    accepted = _patch(
        net,
        task_id,
        [
            {"op": "replace", "path": "/status", "value": "accepted"},
            {"op": "replace", "path": "/businessStatus", "value": _business("3.0")},
        ],
    )
    assert accepted.status_code == 200, accepted.text
    validate(accepted.json())

    scheduled = dict(accepted.json())
    scheduled["businessStatus"] = _business("5.1.1")
    scheduled["output"] = [{"type": {"text": "appointment"}, "valueDateTime": "2026-01-05T15:00:00+00:00"}]
    put = net.call(
        "harbor", "PUT", f"/fhir/R4/Task/{task_id}", json=scheduled, headers={"Content-Type": "application/fhir+json"}
    )
    assert put.status_code == 200, put.text

    kept = _patch(
        net,
        task_id,
        [
            {"op": "replace", "path": "/status", "value": "in-progress"},
            {"op": "replace", "path": "/businessStatus", "value": _business("5.1.4")},
        ],
    )
    assert kept.status_code == 200, kept.text
    outcome = [
        {"op": "replace", "path": "/status", "value": "completed"},
        {"op": "replace", "path": "/businessStatus", "value": _business("7.0")},
        {"op": "add", "path": "/output/-", "value": {"type": {"text": "outcome"}, "valueString": "engaged in care"}},
    ]
    closed = _patch(net, task_id, outcome)
    assert closed.status_code == 200, closed.text
    final = validate(closed.json())
    assert final.status == "completed" and final.businessStatus.coding[0].code == "7.0"

    assert _open_work(net, handoff) == []  # every deadline of the loop stopped
    assert _disclosures(net) == disclosed  # the receiver's answers disclosed nothing more
    status = net.call("coordinator", "GET", f"/api/v1/episodes/{episode}").json()
    assert [h["status"] for h in status["handoffs"]] == ["completed"]
    assert not [e for e in status["escalations"]]
    everything = net.call("coordinator", "GET", f"/fhir/R4/CarePlan/{episode}/$everything").json()
    for entry in validate(everything).entry:
        assert entry.resource is not None


def test_a_decline_over_fhir_starts_the_fallback_and_escalates(net: Net) -> None:
    episode, handoff = net.released()
    task_id = handoff.replace("/", ".")
    refused = _patch(
        net,
        task_id,
        [
            {"op": "replace", "path": "/status", "value": "rejected"},
            {"op": "replace", "path": "/businessStatus", "value": _business("4.0")},
        ],
    )
    assert refused.status_code == 409  # a decline needs a reason: the domain's own one-line refusal
    assert refused.json()["resourceType"] == "OperationOutcome"
    assert "reason" in refused.json()["issue"][0]["diagnostics"]
    declined = _patch(
        net,
        task_id,
        [
            {"op": "replace", "path": "/status", "value": "rejected"},
            {"op": "replace", "path": "/businessStatus", "value": _business("4.0")},
            {"op": "add", "path": "/statusReason", "value": {"text": "no capacity"}},
        ],
    )
    assert declined.status_code == 200, declined.text
    status = net.call("coordinator", "GET", f"/api/v1/episodes/{episode}").json()
    assert status["stage"] == "bridge"  # the pathway's fallback
    with Session(net.app.engine) as s:
        raised = list(s.exec(select(EscalationRecord).where(EscalationRecord.episode_id == episode)))
    assert raised and all(e.role == "coordinator" for e in raised)
    again = _patch(
        net,
        task_id,
        [
            {"op": "replace", "path": "/status", "value": "accepted"},
            {"op": "replace", "path": "/businessStatus", "value": _business("3.0")},
        ],
    )
    assert again.status_code == 409 and ("declined" in again.text or "rejected" in again.text)


def test_a_receiver_may_change_only_the_status_fields(net: Net) -> None:
    _, handoff = net.released()
    task_id = handoff.replace("/", ".")
    moved = _patch(net, task_id, [{"op": "replace", "path": "/owner/reference", "value": "Organization/cedar-house"}])
    assert moved.status_code == 409 and "owner" in moved.json()["issue"][0]["diagnostics"]
    broken = _patch(net, task_id, [{"op": "replace", "path": "/nothing/here", "value": 1}])
    assert broken.status_code == 409 and "\n" not in broken.text
    assert net.call("harbor", "GET", f"/fhir/R4/Task/{task_id}").json()["status"] == "requested"


def test_the_same_idempotency_key_applies_a_write_once(net: Net) -> None:
    body = {"pathway": "release-net", "person": "P-NET-0200"}
    key = {"Idempotency-Key": "enroll-0200-a"}
    first = net.call("coordinator", "POST", "/api/v1/episodes", json=body, headers=key)
    again = net.call("coordinator", "POST", "/api/v1/episodes", json=body, headers=key)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json() and again.headers["Idempotent-Replayed"] == "true"
    caseload = net.call("coordinator", "GET", "/api/v1/episodes").json()
    assert [row["person"] for row in caseload].count("P-NET-0200") == 1
    other = net.call("coordinator", "POST", "/api/v1/episodes", json={**body, "person": "P-NET-0201"}, headers=key)
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["detail"]
    # a refusal is remembered too: the retry learns the same answer
    bad = {"pathway": "release-net", "person": "P NET\n1"}
    refused = [
        net.call("coordinator", "POST", "/api/v1/episodes", json=bad, headers={"Idempotency-Key": "k-2"})
        for _ in range(2)
    ]
    assert [r.status_code for r in refused] == [422, 422] and refused[0].json() == refused[1].json()


def test_refusals_are_problem_details_with_the_clis_one_line_message(net: Net) -> None:
    from engine.app import enroll
    from engine.errors import CarepathError

    bad = net.call("coordinator", "POST", "/api/v1/episodes", json={"pathway": "release-net", "person": "P-1\nX"})
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    with pytest.raises(CarepathError) as cli:
        enroll(net.app, "release-net", "P-1\nX")
    assert bad.json()["detail"] == str(cli.value)
    assert bad.json()["type"] == "/problems/invalid-input" and bad.json()["title"]
    unknown_field = net.call("coordinator", "POST", "/api/v1/episodes", json={"pathway": "x", "persn": "P-1"})
    assert unknown_field.status_code == 422 and "persn" in unknown_field.json()["detail"]
    nowhere = net.call("coordinator", "GET", "/api/v1/nowhere")
    assert nowhere.status_code == 404 and nowhere.headers["content-type"] == "application/problem+json"
    unknown = net.call("coordinator", "GET", "/api/v1/episodes/ep-00000000")
    assert unknown.status_code == 404 and unknown.json()["detail"] == "no episode 'ep-00000000'"


def _race(net: Net, handoff: str) -> dict[str, int]:
    """The receiver returns the outcome while the coordinator cancels, both released at once: their statuses."""
    barrier = threading.Barrier(2)
    answers: dict[str, int] = {}
    ops = [
        {"op": "replace", "path": "/status", "value": "completed"},
        {"op": "replace", "path": "/businessStatus", "value": _business("7.0")},
        {"op": "add", "path": "/output/-", "value": {"type": {"text": "outcome"}, "valueString": "done"}},
    ]
    cancel = {"action": "cancel", "party": "sender", "reason": "moved away"}

    def receiver() -> None:
        barrier.wait()
        answers["receiver"] = _patch(net, handoff.replace("/", "."), ops).status_code

    def coordinator() -> None:
        barrier.wait()
        answers["coordinator"] = net.call(
            "coordinator", "POST", f"/api/v1/handoffs/{handoff}/moves", json=cancel
        ).status_code

    threads = [threading.Thread(target=receiver), threading.Thread(target=coordinator)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_receivers_patch_racing_a_coordinators_cancel_has_one_winner(backend: str, tmp_path: Path) -> None:
    for net in build_net(backend, tmp_path):
        for round_ in range(4):
            _, handoff = net.released(person=f"P-RACE-{round_}")
            for move in ("accept", "keep"):
                moved = net.call("harbor", "POST", f"/api/v1/handoffs/{handoff}/moves", json={"action": move})
                assert moved.status_code == 200
            answers = _race(net, handoff)
            assert sorted(answers.values()) == [200, 409], (round_, answers)
            final = net.call("coordinator", "GET", f"/api/v1/handoffs/{handoff}").json()
            assert final["status"] == ("completed" if answers["receiver"] == 200 else "cancelled"), (answers, final)


def test_fhir_export_prints_the_bundle_everything_returns(
    net: Net, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from engine.cli import main

    episode, _ = net.released()
    served = net.call("coordinator", "GET", f"/fhir/R4/CarePlan/{episode}/$everything").json()
    monkeypatch.setenv("CAREPATH_HOME", str(net.app.settings.home))
    monkeypatch.setenv("CAREPATH_DATABASE_URL", net.app.settings.database_url)
    assert main(["fhir", "export", episode]) == 0
    printed = validate(json.loads(capsys.readouterr().out))
    assert printed.type == "collection"
    ids = sorted((e.resource.get_resource_type(), e.resource.id) for e in printed.entry)
    assert ids == sorted((e["resource"]["resourceType"], e["resource"]["id"]) for e in served["entry"])
    assert {"CarePlan", "Patient", "Task", "ServiceRequest", "Consent", "Organization"} <= {kind for kind, _ in ids}


def test_the_capability_statement_needs_no_token_and_validates(net: Net) -> None:
    answer = net.call(None, "GET", "/fhir/R4/metadata")
    assert answer.status_code == 200
    statement = validate(answer.json())
    assert statement.fhirVersion == "4.0.1"
    kinds = {r.type for rest in statement.rest for r in rest.resource}
    assert {"Task", "CarePlan", "Consent", "MedicationStatement", "DetectedIssue", "Patient"} <= kinds
