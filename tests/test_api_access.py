"""Who may do what over HTTP: every endpoint, for every role, on its own objects and on others'.

No token is 401; a role that may not is 403 whatever the object; an object outside the token's scope is 404, the
same answer, word for word, as an object that does not exist. A receiver never learns a person id, another
program's handoff or a disclosure.
"""

from __future__ import annotations

from typing import Any

import pytest
from api_fixtures import PERSON, Net

ROLES = ("coordinator", "harbor", "cedar", "operator", "auditor")


def _endpoints(episode: str, handoff: str) -> list[tuple[str, str, dict[str, Any], set[str], set[str]]]:
    """(method, path, request kwargs, roles allowed, roles whose role may but for whom the object is out of scope)."""
    receivers_out = {"cedar"}  # the handoff is addressed to Harbor clinic
    task = handoff.replace("/", ".")
    consent_body = {
        "id": "cn-api-2",
        "purposes": ["treatment"],
        "recipient_classes": ["treating-providers"],
        "information": "referral",
        "discloser": "County jail health",
        "signed_on": "2026-01-02",
        "signed_by": "SIG-9",
    }
    return [
        (
            "POST",
            "/api/v1/episodes",
            {"json": {"pathway": "release-net", "person": "P-NET-0002"}},
            {"coordinator"},
            set(),
        ),
        ("GET", "/api/v1/episodes", {}, {"coordinator", "operator"}, set()),
        ("GET", f"/api/v1/episodes/{episode}", {}, {"coordinator", "operator"}, set()),
        ("POST", f"/api/v1/episodes/{episode}/events", {"json": {"name": "housing.completed"}}, {"coordinator"}, set()),
        ("POST", f"/api/v1/episodes/{episode}/authorizations", {"json": {"action": "request"}}, {"coordinator"}, set()),
        ("GET", "/api/v1/handoffs", {}, {"coordinator", "operator", "harbor", "cedar"}, set()),
        ("GET", f"/api/v1/handoffs/{handoff}", {}, {"coordinator", "operator", "harbor"}, receivers_out),
        (
            "POST",
            f"/api/v1/handoffs/{handoff}/moves",
            {"json": {"action": "hold"}},
            {"coordinator", "harbor"},
            receivers_out,
        ),
        ("POST", f"/api/v1/episodes/{episode}/consents", {"json": consent_body}, {"coordinator"}, set()),
        ("POST", "/api/v1/consents/cn-none/revocation", {"json": {"written": True}}, {"coordinator"}, set()),
        ("GET", f"/api/v1/episodes/{episode}/disclosures", {}, {"coordinator", "auditor"}, set()),
        (
            "POST",
            f"/api/v1/episodes/{episode}/medications",
            {"json": {"side": "sending", "medications": []}},
            {"coordinator"},
            set(),
        ),
        ("GET", f"/api/v1/episodes/{episode}/discrepancies", {}, {"coordinator", "operator"}, set()),
        (
            "POST",
            "/api/v1/discrepancies/none/intentional",
            {"json": {"reason": "r", "by": "MD-1"}},
            {"coordinator"},
            set(),
        ),
        ("POST", "/api/v1/escalations/999/acknowledgement", {"json": {"by": "STAFF-1"}}, {"coordinator"}, set()),
        ("GET", "/fhir/R4/Task", {}, {"coordinator", "operator", "harbor", "cedar"}, set()),
        ("GET", f"/fhir/R4/Task/{task}", {}, {"coordinator", "operator", "harbor"}, receivers_out),
        ("PATCH", f"/fhir/R4/Task/{task}", {"json": []}, {"coordinator", "harbor"}, receivers_out),
        ("GET", f"/fhir/R4/ServiceRequest/{task}", {}, {"coordinator", "operator", "harbor"}, receivers_out),
        ("GET", f"/fhir/R4/CarePlan/{episode}", {}, {"coordinator", "operator"}, set()),
        ("GET", f"/fhir/R4/CarePlan/{episode}/$everything", {}, {"coordinator", "operator"}, set()),
        ("GET", f"/fhir/R4/Consent/cn-{episode}", {}, {"coordinator", "auditor"}, set()),
        ("GET", "/fhir/R4/Organization/harbor-clinic", {}, {"coordinator", "operator", "harbor"}, {"cedar"}),
    ]


def test_every_endpoint_for_every_role_on_own_and_other_objects(net: Net) -> None:
    episode, handoff = net.released()
    checked = 0
    for method, path, kwargs, allowed, out_of_scope in _endpoints(episode, handoff):
        anonymous = net.call(None, method, path, **kwargs)
        assert anonymous.status_code == 401, (method, path)
        assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
        for role in ROLES:
            response = net.call(role, method, path, **kwargs)
            where = (role, method, path, response.status_code, response.text[:200])
            if role in out_of_scope:
                assert response.status_code == 404, where
            elif role not in allowed:
                assert response.status_code == 403, where
            else:
                assert response.status_code not in (401, 403), where
                assert response.status_code < 500, where
            checked += 1
    assert checked == len(ROLES) * 23


def test_out_of_scope_reads_the_same_as_nothing_at_all(net: Net) -> None:
    _, handoff = net.released()
    other = net.call("cedar", "GET", f"/api/v1/handoffs/{handoff}")
    nothing = net.call("cedar", "GET", "/api/v1/handoffs/ep-00000000/1/handoff")
    assert other.status_code == nothing.status_code == 404
    assert other.json()["detail"].replace(handoff, "X") == nothing.json()["detail"].replace(
        "ep-00000000/1/handoff", "X"
    )
    task = handoff.replace("/", ".")
    assert net.call("cedar", "GET", f"/fhir/R4/Task/{task}").status_code == 404
    assert net.call("cedar", "GET", "/fhir/R4/Task").json()["total"] == 0


def test_a_receiver_sees_only_its_sent_handoffs_and_never_a_person_id(net: Net) -> None:
    episode, handoff = net.released()
    drafted = net.app.service  # a second person whose referral waits for consent: nothing may reach the receiver
    from engine.app import enroll

    waiting = enroll(net.app, "release-net", "P-NET-0099")
    assert (
        net.call(
            "coordinator", "POST", f"/api/v1/episodes/{waiting}/events", json={"name": "person.released"}
        ).status_code
        == 200
    )
    assert drafted is not None
    answers = [
        net.call("harbor", "GET", "/api/v1/handoffs"),
        net.call("harbor", "GET", f"/api/v1/handoffs/{handoff}"),
        net.call("harbor", "GET", "/fhir/R4/Task", params={"owner": "Organization/harbor-clinic"}),
        net.call("harbor", "GET", f"/fhir/R4/Task/{handoff.replace('/', '.')}"),
        net.call("harbor", "GET", f"/fhir/R4/ServiceRequest/{handoff.replace('/', '.')}"),
        net.call("harbor", "POST", f"/api/v1/handoffs/{handoff}/moves", json={"action": "receive"}),
    ]
    assert [a.status_code for a in answers] == [200] * len(answers)
    listed = answers[0].json()
    assert [h["id"] for h in listed] == [handoff]  # the draft of P-NET-0099 is not there
    assert answers[2].json()["total"] == 1
    for answer in answers:
        assert PERSON not in answer.text and "P-NET-0099" not in answer.text
    assert "disclos" not in " ".join(a.text for a in answers).lower()
    for path in (f"/api/v1/episodes/{episode}/disclosures", f"/fhir/R4/Consent/cn-{episode}", "/api/v1/episodes"):
        assert net.call("harbor", "GET", path).status_code == 403


def test_operators_read_without_person_ids_and_write_nothing(net: Net) -> None:
    episode, handoff = net.released()
    for path in ("/api/v1/episodes", f"/api/v1/episodes/{episode}", f"/fhir/R4/CarePlan/{episode}/$everything"):
        answer = net.call("operator", "GET", path)
        assert answer.status_code == 200, answer.text
        assert PERSON not in answer.text
    coordinator = net.call("coordinator", "GET", f"/api/v1/episodes/{episode}").json()
    assert coordinator["person"] == PERSON
    everything = net.call("coordinator", "GET", f"/fhir/R4/CarePlan/{episode}/$everything").text
    assert PERSON in everything  # the coordinator's Patient carries the program id
    move = net.call("operator", "POST", f"/api/v1/handoffs/{handoff}/moves", json={"action": "accept"})
    assert move.status_code == 403


def test_every_write_records_the_tokens_label_as_the_actor(net: Net) -> None:
    episode, handoff = net.released()
    net.call("harbor", "POST", f"/api/v1/handoffs/{handoff}/moves", json={"action": "accept"})
    audit = net.call("coordinator", "GET", f"/api/v1/episodes/{episode}").json()["audit"]
    actors = {a["actor"] for a in audit}
    assert {"desk-anna", "harbor-intake"} <= actors, audit


@pytest.mark.parametrize(
    "token", ["cpt_", "cpt_deadbeef_" + "x" * 43, "Bearer", "not a token at all", "cpt_00000000_" + "A" * 43]
)
def test_a_bad_token_is_401_and_the_problem_says_so_in_one_line(net: Net, token: str) -> None:
    response = net.client.get("/api/v1/episodes", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 401 and "\n" not in problem["detail"]
    assert token not in problem["detail"]


def test_a_revoked_token_is_refused_from_then_on(net: Net) -> None:
    from engine.app.tokens import revoke_token

    assert net.call("operator", "GET", "/api/v1/episodes").status_code == 200
    revoke_token(net.app, "ops-1")
    assert net.call("operator", "GET", "/api/v1/episodes").status_code == 401
