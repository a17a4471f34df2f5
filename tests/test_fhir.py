"""The FHIR R4 mapping: every resource validates with ``fhir.resources`` (R4B models), every handoff state the
domain reaches maps to a valid Task and ServiceRequest, and the person's program id stays on the asked-for Patient."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from fhir_data import (
    DETAILS,
    EPISODE,
    HID,
    PERSON,
    PROGRAM,
    PSEUDONYM,
    T0,
    VISIT,
    consent_record,
    discrepancies,
    episode_status,
    handoff_record,
    medication_list,
    reachable_states,
    seed_plan,
    validate,
    visits,
    work_item,
)

from engine.episode.domain.handoff import move, open_handoff
from engine.episode.domain.handoff_terms import BSER_CODES
from engine.fhir import (
    EpisodeBundleInput,
    bundle_everything,
    capability_statement,
    care_plan,
    consent,
    detected_issues,
    fhir_id,
    medication_statements,
    operation_outcome,
    organization,
    patient,
    service_request,
    slug,
    source_id,
    task,
)
from engine.fhir.ids import BSER_SYSTEM, PROGRAM_ID_SYSTEM

STATES = reachable_states()
TASK_ID = "ep-1a2b3c4d.2.handoff"


def test_the_walk_reaches_every_state_of_the_table() -> None:
    pairs = {(s, b) for s, b, _held in STATES}
    assert {
        ("draft", "created"),
        ("cancelled", "cancellation-requested"),
        ("completed", "fulfillment-completed"),
    } <= pairs
    assert {s for s, _b, _h in STATES} >= {"draft", "on-hold", "failed", "rejected", "in-progress"}
    assert len(STATES) >= 20


# ------------------------------------------------------------------------------------------------------- ids


def test_ids_are_stable_valid_and_readable_where_they_can_be() -> None:
    assert slug("Residential program") == "residential-program"
    assert slug("  Intensive Outpatient (IOP) ") == "intensive-outpatient-iop"
    assert fhir_id(HID) == TASK_ID and source_id(TASK_ID) == HID
    odd = f"{EPISODE}/2/omission:buprenorphine"
    assert fhir_id(odd) == fhir_id(odd) and source_id(fhir_id(odd)) is None
    assert fhir_id("ep.1/2/handoff") != fhir_id("ep/1/2/handoff")
    long = "ep-" + "a" * 70 + "/2/handoff"
    assert len(fhir_id(long)) <= 64 and source_id(fhir_id(long)) is None


def test_a_patient_id_that_is_no_fhir_id_is_refused() -> None:
    with pytest.raises(ValueError, match="patient id 'P 1' is not a FHIR id"):
        patient("P 1")


# ------------------------------------------------------------------------------------------------ handoffs


@pytest.mark.parametrize("key", sorted(STATES, key=str), ids=lambda k: "/".join(str(p) for p in k))
def test_every_reachable_handoff_state_is_a_valid_task_and_service_request(key: tuple[str, str, str | None]) -> None:
    state = STATES[key]
    record = handoff_record(state)
    t = task(record, EPISODE, PSEUDONYM, episode_status().items, now=T0)
    validate(t)
    validate(service_request(record, PSEUDONYM))
    assert t["status"] == state.status
    code, display = BSER_CODES[state.business_status]
    assert t["businessStatus"]["coding"] == [{"system": BSER_SYSTEM, "code": code, "display": display}]
    assert t["focus"] == {"reference": f"ServiceRequest/{TASK_ID}"} and t["id"] == TASK_ID
    assert t["owner"] == {"reference": "Organization/residential-program", "display": PROGRAM}
    assert t["requester"]["display"] == "Carepath program" and t["for"] == {"reference": f"Patient/{PSEUDONYM}"}
    assert ("end" in t["executionPeriod"]) == state.closed
    assert t.get("statusReason", {}).get("text") == state.status_reason


def test_task_carries_the_earliest_open_deadline_of_its_own_handoff_only() -> None:
    record = handoff_record(STATES[("requested", "created", None)])
    deadlines = [
        work_item("a", T0 + timedelta(days=3)),
        work_item("b", T0 + timedelta(days=2)),
        work_item("c", T0 + timedelta(hours=1), status="done"),
        work_item("d", T0 + timedelta(hours=2), handoff_id="other/1/handoff"),
    ]
    t = task(record, EPISODE, PSEUDONYM, deadlines, now=T0)
    assert t["restriction"] == {"period": {"end": "2025-03-03T09:00:00Z"}}
    assert "restriction" not in task(record, EPISODE, PSEUDONYM, [], now=T0)


def test_a_completed_task_reports_appointment_and_outcome_and_its_request_is_completed() -> None:
    state = STATES[("requested", "created", None)]
    for n, action in enumerate(("accept", "schedule", "keep", "return-outcome"), start=1):
        state = move(state, action, "receiver", T0 + timedelta(hours=n), **DETAILS)[0]
    record = handoff_record(state)
    t = task(record, EPISODE, PSEUDONYM, [], requester_org="Detox unit", now=T0)
    assert t["output"] == [
        {"type": {"text": "appointment"}, "valueDateTime": VISIT.isoformat().replace("+00:00", "Z")},
        {"type": {"text": "outcome"}, "valueString": "engaged"},
    ]
    assert t["requester"] == {"reference": "Organization/detox-unit", "display": "Detox unit"}
    assert t["businessStatus"]["coding"][0]["code"] == "7.0"
    assert service_request(record, PSEUDONYM)["status"] == "completed"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("draft", "draft"),
        ("requested", "active"),
        ("on-hold", "active"),
        ("rejected", "revoked"),
        ("cancelled", "revoked"),
    ],
)
def test_service_request_status_follows_the_handoff(status: str, expected: str) -> None:
    state = next(s for (st, _b, _h), s in STATES.items() if st == status)
    request = service_request(handoff_record(state), PSEUDONYM)
    assert request["status"] == expected
    assert request["performer"] == [{"reference": "Organization/residential-program", "display": PROGRAM}]
    assert request["category"] == [{"text": "warm handoff"}] and request["code"] == {
        "text": "referral to residential-intake"
    }


def test_a_draft_task_says_consent_is_needed() -> None:
    draft, _ = open_handoff(HID, T0, consent_id=None)
    t = task(handoff_record(draft), EPISODE, PSEUDONYM, [], now=T0)
    assert (t["status"], t["statusReason"], t["businessStatus"]["coding"][0]["code"]) == (
        "draft",
        {"text": "consent-needed"},
        "2.0",
    )


# ------------------------------------------------------------------------------------------------- episode


def test_care_plan_lists_the_stages_in_order_with_their_progress() -> None:
    handoff = handoff_record(move(STATES[("requested", "created", None)], "accept", "receiver", T0)[0])
    plan = care_plan(episode_status(handoffs=[handoff]), seed_plan(), PSEUDONYM, visits())
    validate(plan)
    stages = [(a["detail"]["code"]["coding"][0]["code"], a["detail"]["status"]) for a in plan["activity"][:-1]]
    assert stages[:4] == [
        ("assessment", "completed"),
        ("withdrawal-management", "completed"),
        ("residential", "in-progress"),
        ("iop", "not-started"),
    ]
    assert [s for s, _ in stages] == list(seed_plan().stages)
    assert plan["activity"][-1] == {"reference": {"reference": f"ServiceRequest/{TASK_ID}"}}
    assert (plan["status"], plan["intent"], plan["title"]) == ("active", "plan", "detox-to-aftercare v5")
    assert "end" not in plan["period"] and plan["id"] == EPISODE


def test_a_completed_episode_is_a_completed_care_plan() -> None:
    plan = care_plan(episode_status(stage="completed", status="completed"), seed_plan(), PSEUDONYM)
    validate(plan)
    assert plan["status"] == "completed" and plan["period"]["end"] == "2025-03-04T09:00:00Z"
    assert {a["detail"]["status"] for a in plan["activity"]} == {"completed", "not-started"}


def test_patient_carries_the_program_id_only_when_asked() -> None:
    bare = patient(PSEUDONYM)
    validate(bare)
    assert bare == {"resourceType": "Patient", "id": PSEUDONYM}
    told = patient(PSEUDONYM, PERSON)
    validate(told)
    assert told["identifier"] == [{"system": PROGRAM_ID_SYSTEM, "value": PERSON}]
    assert set(told) == {"resourceType", "id", "identifier"}


def test_organization() -> None:
    org = organization(PROGRAM)
    validate(org)
    assert org == {"resourceType": "Organization", "id": "residential-program", "name": PROGRAM}


# -------------------------------------------------------------------------------------------------- safety


def test_an_active_part2_consent() -> None:
    c = consent(consent_record(), PSEUDONYM)
    validate(c)
    assert (c["status"], c["scope"]["coding"][0]["code"]) == ("active", "patient-privacy")
    assert c["policy"][0]["uri"] == "https://www.ecfr.gov/current/title-42/chapter-I/subchapter-A/part-2"
    assert c["category"][0]["coding"][0]["code"] == "59284-0"
    provision = c["provision"]
    assert provision["period"] == {"start": "2025-02-27", "end": "2026-03-01"}
    assert [p["code"] for p in provision["purpose"]] == ["TREAT", "HPAYMT", "HOPERAT", "family-involvement"]
    assert provision["purpose"][3]["system"] == "https://carepath.example/purpose"
    assert [a["role"]["coding"][0]["code"] for a in provision["actor"]] == ["IRCP", "IRCP"]
    assert [a["reference"]["display"] for a in provision["actor"]] == [PROGRAM, "treating-providers"]
    assert c["performer"] == [{"reference": f"Patient/{PSEUDONYM}"}] and c["patient"] == c["performer"][0]


def test_a_revoked_or_expired_consent_is_inactive() -> None:
    revoked = consent(consent_record(revoked_at=T0, revoked_in_writing=True), PSEUDONYM)
    validate(revoked)
    assert revoked["status"] == "inactive"
    expired = consent(consent_record(expires="2025-02-28"), PSEUDONYM, now=T0)
    assert expired["status"] == "inactive"
    open_ended = consent(consent_record(expires="end-of-treatment"), PSEUDONYM, now=T0)
    validate(open_ended)
    assert open_ended["status"] == "active" and "end" not in open_ended["provision"]["period"]


def test_medication_statements_one_per_line() -> None:
    statements = medication_statements(medication_list("receiving"), PSEUDONYM)
    for s in statements:
        validate(s)
    assert len(statements) == 3 and len({s["id"] for s in statements}) == 3
    first = statements[0]
    assert first["medicationCodeableConcept"]["coding"][0]["code"] == "1010600"
    assert first["dosage"] == [{"text": "8 mg sublingual", "route": {"text": "sublingual"}}]
    assert first["informationSource"] == {"display": "receiving setting (admission list)"}
    assert (
        statements[2]["reasonCode"] == [{"text": "nausea"}]
        and "coding" not in statements[2]["medicationCodeableConcept"]
    )


def test_detected_issues_one_per_finding() -> None:
    issues = detected_issues(discrepancies(), PSEUDONYM)
    for i in issues:
        validate(i)
    assert [(i["code"]["text"], i["severity"], i["status"]) for i in issues] == [
        ("omission", "high", "final"),
        ("dose-change", "moderate", "final"),
        ("duplication", "moderate", "final"),
    ]
    assert "mitigation" not in issues[0]
    assert issues[1]["mitigation"][0]["action"]["text"] == "documented as intentional: lipids above target"
    assert issues[2]["mitigation"][0]["action"]["text"].startswith("resolved")


# ------------------------------------------------------------------------------------- bundle and server


def _bundle(program_identifier: str | None = None, base_url: str | None = None) -> dict[str, Any]:
    handoffs = [handoff_record(s) for s in (STATES[("completed", "fulfillment-completed", None)],)]
    handoffs.append(
        handoff_record(
            STATES[("requested", "created", None)].model_copy(update={"id": "ep-1a2b3c4d/3/handoff"}),
            "Outpatient program",
        )
    )
    data = EpisodeBundleInput(
        status=episode_status(handoffs=handoffs),
        plan=seed_plan(),
        patient_id=PSEUDONYM,
        now=T0 + timedelta(days=4),
        program_identifier=program_identifier,
        consents=[consent_record(), consent_record(id="cn-old", revoked_at=T0)],
        medication_lists=[medication_list("sending"), medication_list("receiving")],
        discrepancies=discrepancies(),
        visits=visits(),
        base_url=base_url,
    )
    return bundle_everything(data)


def test_everything_is_a_valid_collection_bundle() -> None:
    bundle = _bundle()
    validate(bundle)
    for entry in bundle["entry"]:
        validate(entry["resource"])
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds.count("Task") == kinds.count("ServiceRequest") == 2
    assert (kinds.count("Consent"), kinds.count("MedicationStatement"), kinds.count("DetectedIssue")) == (2, 6, 3)
    assert kinds[:2] == ["CarePlan", "Patient"] and bundle["type"] == "collection"
    orgs = sorted(e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Organization")
    assert orgs == ["carepath-program", "outpatient-program", "residential-program"]
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(set(urls)) == len(urls) and all(u.startswith("urn:uuid:") for u in urls)
    assert urls == [e["fullUrl"] for e in _bundle()["entry"]]  # stable


def test_everything_with_a_base_url_resolves_its_references() -> None:
    bundle = _bundle(base_url="https://fhir.example/r4/")
    urls = {e["fullUrl"] for e in bundle["entry"]}
    assert f"https://fhir.example/r4/Task/{TASK_ID}" in urls
    for entry in bundle["entry"]:
        for ref in _references(entry["resource"]):
            assert f"https://fhir.example/r4/{ref}" in urls, ref


def _references(value: Any) -> list[str]:
    if isinstance(value, dict):
        own = [value["reference"]] if isinstance(value.get("reference"), str) else []
        return own + [r for v in value.values() for r in _references(v)]
    if isinstance(value, list):
        return [r for v in value for r in _references(v)]
    return []


def test_the_program_id_appears_only_on_the_asked_for_patient() -> None:
    assert PERSON not in json.dumps(_bundle())
    told = _bundle(program_identifier=PERSON)
    carriers = [e["resource"]["resourceType"] for e in told["entry"] if PERSON in json.dumps(e["resource"])]
    assert carriers == ["Patient"]


def test_capability_statement_and_operation_outcome() -> None:
    cs = capability_statement("https://fhir.example/r4")
    validate(cs)
    assert (cs["fhirVersion"], cs["kind"], cs["format"]) == ("4.0.1", "instance", ["json"])
    resources = {r["type"]: r for r in cs["rest"][0]["resource"]}
    assert {i["code"] for i in resources["Task"]["interaction"]} == {"read", "search-type", "patch", "update"}
    assert {p["name"] for p in resources["Task"]["searchParam"]} == {"owner", "status"}
    assert resources["CarePlan"]["operation"][0]["name"] == "everything"
    assert set(resources) >= {
        "ServiceRequest",
        "Consent",
        "MedicationStatement",
        "DetectedIssue",
        "Patient",
        "Organization",
    }
    outcome = operation_outcome("error", "invalid", "nothing changed")
    validate(outcome)
    assert outcome["issue"] == [{"severity": "error", "code": "invalid", "diagnostics": "nothing changed"}]
