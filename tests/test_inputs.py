"""The input rules of :mod:`engine.app.inputs` (pure, milliseconds), reading files that are not regular files
(:mod:`engine.files`), and the one-line forms of what Carepath prints back."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from engine import files
from engine.app import inputs
from engine.app.inputs import (
    APPOINTMENT,
    ENROLLMENT,
    check_consent,
    check_escalation,
    check_facts,
    check_id,
    check_params,
    check_payload,
    check_text,
    check_time,
    consent_from_form,
)
from engine.episode.domain.consent import KNOWN_PURPOSES, Consent
from engine.errors import Diagnostic, InvalidInput
from engine.language.durations import parse_duration

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
FACTS = {
    "days_on_moud": {"type": "number"},
    "insurance": {"type": "enum", "values": ["medicaid", "self-pay"]},
    "needs_wm": {"type": "boolean"},
    "release_date": {"type": "date"},
    "note": {"type": "string"},
}
EVENTS = {
    "moud.started": {"payload": {"medication": {"type": "enum", "values": ["buprenorphine"], "required": True}}},
    "custody.released": {"payload": {"bridge_supply_days": {"type": "number", "required": False}}},
    "handoff.move": {
        "builtin": True,
        "payload": {f: {"type": "string", "required": False} for f in ("action", "party", "appointment_at", "reason")},
    },
    "medications.sending-list": {"builtin": True, "payload": {"medications": {"type": "list", "required": False}}},
}


def refused(field: str, call: object, *args: object, **kwargs: object) -> str:
    """The one-line refusal of ``call(*args)``, checked to start with ``field: ``."""
    assert callable(call)
    with pytest.raises(InvalidInput) as caught:
        call(*args, **kwargs)
    message = str(caught.value)
    assert message.startswith(f"{field}: "), message
    assert "\n" not in message and len(message) <= 300, message
    return message


# ------------------------------------------------------------------------------------------------------- ids


@pytest.mark.parametrize("good", ["P-000123", "P-DEMO-001", "p.1_2:3", "9", "P" * 64])
def test_a_person_id_is_letters_digits_and_a_little_punctuation(good: str) -> None:
    assert check_id("person id", good) == good


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("", "is empty"),
        ("P" * 65, "has 65 characters, at most 64"),
        ("P" * 100_000, "has 100,000 characters"),
        ("P-1\nX", "contains '\\n', which is not allowed"),
        ("P 1", "contains ' '"),
        ("-P1", "is not of the right form"),
        ("P-\udcff", "contains '\\udcff'"),
        ("\u202eP", "contains '\\u202e'"),
    ],
)
def test_a_bad_person_id_is_refused_naming_what_is_wrong(bad: str, says: str) -> None:
    message = refused("person id", check_id, "person id", bad)
    assert says in message and len(message) < 250


def test_each_kind_of_id_has_its_own_length_and_characters() -> None:
    assert check_id("event id", "e" * 128) and check_id("handoff id", "ep-1/2/handoff")
    assert check_id("discrepancy id", "ep-1/2/omission:atorvastatin calcium#2")
    refused("event id", check_id, "event id", "e" * 129)
    refused("consent id", check_id, "consent id", "ep-1/2")  # '/' belongs to handoff ids only
    refused("discrepancy id", check_id, "discrepancy id", "ep-1/2\n")
    refused("pathway id", check_id, "pathway id", "Reentry")
    refused("event", check_id, "event", "detox")  # an event name has a dot


def test_an_escalation_number_is_what_the_store_can_hold() -> None:
    assert check_escalation(1) == 1 and check_escalation(2**63 - 1) == 2**63 - 1
    for bad in (0, -5, 2**63, 99999999999999999999999, True):
        refused("escalation number", check_escalation, bad)


# ------------------------------------------------------------------------------------------------------ text


def test_text_has_a_length_limit_and_no_control_characters() -> None:
    assert check_text("reason", "no bed\nfor three weeks\t(ward closed)").startswith("no bed")
    assert "2,000" in refused("reason", check_text, "reason", "x" * 2_001)
    assert "'\\x1b'" in refused("reason", check_text, "reason", "no bed\x1b[2J")
    refused("reason", check_text, "reason", "   ")
    refused("reason", check_text, "reason", 42)
    assert "line break" in refused("recipient", check_text, "recipient", "Main\nSt", one_line=True)
    refused("recipient", check_text, "recipient", "M" * 201, limit=inputs.NAME_MAX, one_line=True)


# ------------------------------------------------------------------------------------------------ time, dates


def test_enrollment_time_is_a_year_back_to_a_day_ahead() -> None:
    assert check_time(ENROLLMENT, "2026-11-20T09:00", NOW) == datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    assert check_time(ENROLLMENT, "2026-11-20T09:00-05:00", NOW) == datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
    assert check_time(ENROLLMENT, NOW - timedelta(days=366), NOW) == NOW - timedelta(days=366)
    for bad in ("0001-01-01", "9999-12-31T23:59", "2024-11-20", "2026-11-22T09:00", "later", "x" * 100_000):
        refused("enrollment time", check_time, ENROLLMENT, bad, NOW)


def test_a_time_near_the_ends_of_the_calendar_is_a_refusal_never_an_overflow() -> None:
    for bad in ("0001-01-01T00:00+14:00", "9999-12-31T23:59-14:00"):
        refused("enrollment time", check_time, ENROLLMENT, bad, NOW)
    refused("appointment time", check_time, APPOINTMENT, datetime(1, 1, 1, tzinfo=UTC), NOW)


def test_an_appointment_is_thirty_days_back_to_a_year_ahead() -> None:
    assert check_time(APPOINTMENT, "2027-06-01T10:00", NOW)
    refused("appointment time", check_time, APPOINTMENT, "2028-01-01T10:00", NOW)
    refused("appointment time", check_time, APPOINTMENT, "2026-10-01T10:00", NOW)


# ------------------------------------------------------------------------------------------ facts, payloads


def test_facts_are_declared_and_read_as_their_declared_type() -> None:
    typed = {"days_on_moud": "14", "insurance": "medicaid", "needs_wm": "TRUE", "release_date": "2027-02-01"}
    assert check_facts("reentry", FACTS, typed, NOW) == {
        "days_on_moud": 14,
        "insurance": "medicaid",
        "needs_wm": True,
        "release_date": "2027-02-01",
    }
    assert check_facts("reentry", FACTS, {"days_on_moud": 2.5, "note": "16"}, NOW) == {
        "days_on_moud": 2.5,
        "note": "16",
    }


@pytest.mark.parametrize(
    ("facts", "field", "says"),
    [
        ({"bogus": "1"}, "fact", "'bogus' is not declared by pathway 'reentry'"),
        ({"day_on_moud": "1"}, "fact", "did you mean 'days_on_moud'?"),
        ({"days_on_moud": "lots"}, "fact days_on_moud", "is not a number"),
        ({"days_on_moud": "nan"}, "fact days_on_moud", "finite"),
        ({"days_on_moud": "1e999"}, "fact days_on_moud", "finite"),
        ({"days_on_moud": "9" * 100_000}, "fact days_on_moud", "is not a number"),
        ({"days_on_moud": True}, "fact days_on_moud", "is not a number"),
        ({"insurance": "medicaide"}, "fact insurance", "did you mean 'medicaid'?"),
        ({"needs_wm": "maybe"}, "fact needs_wm", "is not true or false"),
        ({"release_date": "3026-01-01"}, "fact release_date", "more than 100 years"),
        ({"release_date": "soon"}, "fact release_date", "is not a date"),
        ({"note": "n" * 100_000}, "fact note", "at most 2,000"),
    ],
)
def test_a_bad_fact_is_refused_naming_it(facts: dict[str, object], field: str, says: str) -> None:
    assert says in refused(field, check_facts, "reentry", FACTS, facts, NOW)


def test_payloads_are_checked_against_the_event_and_its_fields() -> None:
    assert check_payload("reentry", EVENTS, "custody.released", {"bridge_supply_days": "7"}, NOW) == {
        "bridge_supply_days": 7
    }
    assert "did you mean 'moud.started'" in refused("event", check_payload, "reentry", EVENTS, "moud.start", {}, NOW)
    refused("event", check_payload, "reentry", EVENTS, "moud.\nstarted", {}, NOW)
    assert "missing field 'medication'" in refused(
        "event 'moud.started'", check_payload, "reentry", EVENTS, "moud.started", {}, NOW
    )
    refused(
        "payload field",
        check_payload,
        "reentry",
        EVENTS,
        "moud.started",
        {"medication": "buprenorphine", "dose": "8"},
        NOW,
    )


def test_built_in_fields_hold_ids_words_and_times_not_free_text() -> None:
    moved = check_payload(
        "reentry", EVENTS, "handoff.move", {"action": "schedule", "appointment_at": "2026-12-01T10:00-05:00"}, NOW
    )
    assert moved == {"action": "schedule", "appointment_at": "2026-12-01T15:00:00+00:00"}
    assert "is not one of send" in refused(
        "handoff action", check_payload, "reentry", EVENTS, "handoff.move", {"action": "teleport"}, NOW
    )
    refused("handoff party", check_payload, "reentry", EVENTS, "handoff.move", {"party": "nobody"}, NOW)
    refused("appointment time", check_payload, "reentry", EVENTS, "handoff.move", {"appointment_at": "0001-01-01"}, NOW)


def test_a_medication_list_is_bounded_and_kept_as_given() -> None:
    meds = [{"name": "buprenorphine", "dose": "16 mg", "route": "SL"}, "sertraline"]
    assert check_payload("x", EVENTS, "medications.sending-list", {"medications": meds}, NOW) == {"medications": meds}
    many = {"medications": [f"drug-{n}" for n in range(101)]}
    assert "at most 100" in refused(
        "payload field medications", check_payload, "x", EVENTS, "medications.sending-list", many, NOW
    )
    refused("medication 1 name", check_payload, "x", EVENTS, "medications.sending-list", {"medications": ["a\nb"]}, NOW)
    refused(
        "medication 1", check_payload, "x", EVENTS, "medications.sending-list", {"medications": [{"nme": "x"}]}, NOW
    )


def test_parameters_are_durations_up_to_ten_years() -> None:
    assert check_params({"window": "60d", "other": timedelta(hours=3)}) == {
        "window": timedelta(days=60),
        "other": timedelta(hours=3),
    }
    assert "longer than ten years" in refused("parameter window", check_params, {"window": "99999999999d"})
    refused("parameter window", check_params, {"window": timedelta(days=999_999_999)})
    refused("parameter window", check_params, {"window": timedelta(days=-1)})
    refused("parameter", check_params, {"Window\n": "1d"})


def test_a_duration_with_more_digits_than_int_reads_is_too_long_not_a_crash() -> None:
    with pytest.raises(ValueError, match="longer than ten years"):
        parse_duration("9" * 5_000 + "d")
    assert parse_duration("0" * 5_000 + "3d") == timedelta(days=3)


# ---------------------------------------------------------------------------------------------------- consent

FORM = {
    "id": "cn-2026-0042",
    "purposes": ["treatment"],
    "recipient_classes": ["treating-providers"],
    "information": "SUD diagnosis, current medications",
    "discloser": "Main St Program",
    "expires": "end-of-treatment",
    "signed_on": "2026-11-20",
    "signed_by": "P-000123",
}
PURPOSES, CLASSES = set(KNOWN_PURPOSES), ("treating-providers",)


def good(**changes: object) -> Consent:
    return check_consent(consent_from_form({**FORM, **changes}, "P-000123"), NOW, PURPOSES, CLASSES)


def test_a_consent_as_typed_is_built_and_checked() -> None:
    consent = good(expires="2027-11-20")
    assert (consent.signed_on, consent.expires) == (date(2026, 11, 20), date(2027, 11, 20))
    assert good(signed_on="2026-11-21").signed_on == date(2026, 11, 21)  # already today east of UTC+9


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"signed_on": "2026-11-10", "expires": "2026-11-19"}, "expiry date", "has already passed"),
        ({"signed_on": "2026-11-23"}, "signed-on date", "is in the future"),
        ({"signed_on": "2016-01-01"}, "signed-on date", "more than ten years ago"),
        ({"signed_on": "20/11/2026"}, "signed-on date", "is not a date"),
        ({"expires": "9999-12-31"}, "expiry date", "more than 50 years ahead"),
        ({"expires": "2026-11-01", "signed_on": "2026-11-10"}, "expiry date", "before the signed-on date"),
        ({"purposes": [""]}, "purpose", "is empty"),
        ({"purposes": []}, "purpose", "none given"),
        ({"purposes": ["marketing"]}, "purpose", "is not declared by Carepath or this pathway"),
        ({"purposes": ["treatmnt"]}, "purpose", "did you mean 'treatment'"),
        ({"recipient_classes": ["friends"]}, "recipient class", "'friends' is not declared"),
        ({"recipient_classes": []}, "recipient", "none given"),
        ({"recipients": ["R" * 201]}, "recipient", "at most 200"),
        ({"information": ""}, "information", "is empty"),
        ({"information": "i" * 100_000}, "information", "at most 2,000"),
        ({"discloser": "Main\nSt"}, "discloser", "line break"),
        ({"id": "cn\n1"}, "consent id", "contains '\\n'"),
        ({"signed_by": ""}, "signed-by id", "is empty"),
    ],
)
def test_a_bad_consent_is_refused_naming_the_field(changes: dict[str, object], field: str, says: str) -> None:
    assert says in refused(field, good, **changes)


def test_a_pathway_may_name_purposes_of_its_own() -> None:
    consent = consent_from_form({**FORM, "purposes": ["peer-support"]}, "P-000123")
    assert check_consent(consent, NOW, PURPOSES | {"peer-support"}, CLASSES) == consent
    refused("purpose", check_consent, consent, NOW, PURPOSES, CLASSES)


# ---------------------------------------------------------------------------------------- files, one line


def test_a_fifo_nobody_writes_times_out(tmp_path: Path) -> None:
    fifo = tmp_path / "stuck.yaml"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        files.read_bounded(str(fifo), 100, timeout=0.2)
    assert time.monotonic() - started < 2


def test_a_fifo_someone_writes_is_read_to_its_end(tmp_path: Path) -> None:
    fifo = tmp_path / "piped.yaml"
    os.mkfifo(fifo)

    def write() -> None:
        with open(fifo, "wb") as handle:
            handle.write(b"id: piped\n")
            handle.flush()
            time.sleep(0.05)
            handle.write(b"version: 1\n")

    writer = threading.Thread(target=write)
    writer.start()
    assert files.read_bounded(str(fifo), 1_000, timeout=5) == b"id: piped\nversion: 1\n"
    writer.join()


def test_a_device_is_read_no_further_than_the_limit() -> None:
    assert files.read_bounded("/dev/zero", 10) == b"\0" * 11
    assert files.read_bounded("/dev/null", 10) == b""


def test_a_diagnostic_stays_on_one_line_whatever_it_quotes() -> None:
    shown = str(Diagnostic("a\nb.yaml", 1, 1, "$['x\\ny']", "unexpected field 'x\ny'"))
    assert "\n" not in shown and "unexpected field 'x\\ny'" in shown
    assert len(str(Diagnostic("d/" * 3_000, 1, 1, "$", "no such file"))) < 200
