"""Escalation messages carry no person data, and reach people over real HTTP (a loopback receiver, no mocks)."""

from __future__ import annotations

import inspect
import logging
import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest
from http_receiver import HttpReceiver

from engine.clock import ManualClock
from engine.notify.delivery import Notification, deliver, delivery_key, escalation_notification
from engine.notify.roster import Contact, load_roster

DATA = Path(__file__).parent / "data"
CLOCK = ManualClock(datetime(2026, 12, 1, 10, 30, tzinfo=UTC))

# What a program knows about the person; none of it may ever leave in an alert.
PERSON = {"person_ref": "P-000123", "name": "Alex Example", "birth_date": "1990-04-01", "phone": "555-0100"}


def make(**overrides: object) -> Notification:
    fields: dict[str, object] = {
        "episode_id": "ep-7f3a2c",
        "pathway_id": "reentry",
        "stage_id": "release",
        "work_title": "Community prescriber accepts the referral",
        "rung_id": "ep-7f3a2c/1/release.handoff.accepted#r1",
        "rung_index": 1,
        "role": "supervisor",
        "due_at": datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
    }
    fields.update(overrides)
    return escalation_notification(**fields)  # type: ignore[arg-type]


class Sleeps(list[float]):
    """An injected sleep that records the backoff asked for instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"json://127.0.0.1:{port}/down"


# -- the message ---------------------------------------------------------------------------------------------------


def test_a_message_is_made_of_the_allowed_fields_and_nothing_else() -> None:
    allowed = {
        "episode_id",
        "pathway_id",
        "stage_id",
        "work_title",
        "rung_id",
        "rung_index",
        "role",
        "due_at",
        "tags",
        "severity",
    }
    assert set(inspect.signature(escalation_notification).parameters) == allowed

    note = make(tags=["pathway:reentry"])
    skeleton = (note.title + "\n" + note.body).replace("ep-7f3a2c/1/release.handoff.accepted#r1", "<rung_id>")
    for value, name in [
        ("ep-7f3a2c", "<episode_id>"),
        ("Community prescriber accepts the referral", "<work_title>"),
        ("2026-12-01 09:00 UTC", "<due>"),
        ("pathway:reentry", "<tag>"),
        ("reentry", "<pathway_id>"),
        ("release", "<stage_id>"),
        ("supervisor", "<role>"),
    ]:
        skeleton = skeleton.replace(value, name)
    assert skeleton == (
        "Carepath escalation: <work_title> overdue (<episode_id>)\n"
        "<work_title>: due <due>, not done.\n"
        "Episode <episode_id> · pathway <pathway_id> · stage <stage_id>\n"
        "Escalation rung 2 to <role> (<rung_id>)\n"
        "See `carepath status <episode_id>`.\n"
        "Tags: <tag>"
    )
    text = note.title + note.body
    assert not [value for value in PERSON.values() if value in text]


@pytest.mark.parametrize(
    ("field", "value"),
    [("episode_id", "Alex Example"), ("role", "alex@example.org"), ("rung_id", ""), ("stage_id", "day 1")],
)
def test_ids_that_could_carry_a_name_or_address_are_refused(field: str, value: str) -> None:
    with pytest.raises(ValueError, match=field):
        make(**{field: value})


def test_a_naive_due_time_is_refused_and_others_are_shown_in_utc() -> None:
    with pytest.raises(ValueError, match="timezone"):
        make(due_at=datetime(2026, 12, 1, 9, 0))
    assert "due 2026-12-01 09:00 UTC" in make(due_at=datetime.fromisoformat("2026-12-01T04:00:00-05:00")).body


# -- delivery over real HTTP -------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["json", "form"])
def test_the_receiver_gets_the_title_and_a_body_with_the_episode_and_no_person_data(scheme: str) -> None:
    note = make()
    with HttpReceiver() as rx:
        report = deliver(note, [Contact("supervisor", 0, rx.url(scheme, "/hook"), "Dashboard")], now=CLOCK.now)
        [request] = rx.requests
    payload = request.json if scheme == "json" else request.form
    assert request.method == "POST" and request.path == "/hook"
    assert payload["title"] == note.title
    assert payload["message"] == note.body
    assert "ep-7f3a2c" in payload["message"] and "carepath status ep-7f3a2c" in payload["message"]
    assert not [value for value in PERSON.values() if value in request.text]
    [outcome] = report.outcomes
    assert (outcome.status, outcome.attempts, outcome.delivered_at) == ("delivered", 1, CLOCK.now())
    assert outcome.key == "ep-7f3a2c/1/release.handoff.accepted#r1@supervisor[0]"
    assert report.reached and report.failed == []


def test_a_receiver_failing_twice_gets_the_message_on_the_third_attempt_after_backoff() -> None:
    sleeps = Sleeps()
    with HttpReceiver(statuses=[500, 500]) as rx:
        report = deliver(make(), [Contact("supervisor", 0, rx.url())], now=CLOCK.now, sleep=sleeps)
        statuses = [r.status for r in rx.requests]
    assert statuses == [500, 500, 200]
    assert sleeps == [1.0, 5.0]
    [outcome] = report.outcomes
    assert (outcome.status, outcome.attempts, outcome.last_error) == ("delivered", 3, None)


def test_a_receiver_always_failing_is_reported_failed_after_three_attempts_without_raising(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    sleeps = Sleeps()
    with HttpReceiver(default_status=503) as rx:
        url = rx.url("json", "/hooks/T0KEN-S3CRET-42").replace("://", "://carepath:pa55-S3CRET@")
        report = deliver(make(), [Contact("supervisor", 0, url, "Dashboard")], now=CLOCK.now, sleep=sleeps)
        assert len(rx.requests) == 3
    [outcome] = report.outcomes
    assert (outcome.status, outcome.attempts, outcome.delivered_at) == ("failed", 3, None)
    assert outcome.last_error is not None and "503" in outcome.last_error
    assert sleeps == [1.0, 5.0]
    assert not report.reached and report.failed == [outcome]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "carepath.notify"]
    assert len(warnings) == 1 and outcome.redacted_url in warnings[0].getMessage()
    shown = caplog.text + repr(report) + report.summary()
    assert "S3CRET" not in shown  # neither Carepath's logs nor apprise's debug logs nor the report hold the secret


def test_one_contact_down_does_not_stop_the_other() -> None:
    sleeps = Sleeps()
    with HttpReceiver() as rx:
        contacts = [Contact("supervisor", 0, closed_port_url(), "Old pager"), Contact("supervisor", 1, rx.url())]
        report = deliver(make(), contacts, now=CLOCK.now, sleep=sleeps)
        assert len(rx.requests) == 1  # delivered once, not again while the other contact is retried
    down, up = report.outcomes
    assert (down.status, down.attempts, down.contact_label) == ("failed", 3, "Old pager")
    assert (up.status, up.attempts) == ("delivered", 1)
    assert report.reached and report.failed == [down]
    assert "delivered to 1 of 2 contacts" in report.summary()


def test_contacts_already_delivered_are_skipped_so_a_refired_rung_alerts_nobody_twice() -> None:
    note = make()
    with HttpReceiver() as rx:
        contacts = [Contact("supervisor", 0, rx.url("json", "/a")), Contact("supervisor", 1, rx.url("json", "/b"))]
        first = deliver(note, contacts, now=CLOCK.now)
        done = {o.key for o in first.outcomes if o.status == "delivered"}
        again = deliver(note, contacts, now=CLOCK.now, already_delivered=done)
        assert [r.path for r in rx.requests] == ["/a", "/b"]
    assert [o.status for o in again.outcomes] == ["skipped", "skipped"]
    assert done == {delivery_key(note.rung_id, c) for c in contacts}


def test_an_unusable_url_fails_at_once_and_a_role_with_no_contact_is_reported() -> None:
    sleeps = Sleeps()
    report = deliver(make(), [Contact("supervisor", 0, "htp://nowhere")], now=CLOCK.now, sleep=sleeps)
    assert [(o.status, o.attempts) for o in report.outcomes] == [("failed", 1)] and sleeps == []

    nobody = deliver(make(), [], now=CLOCK.now)
    [outcome] = nobody.outcomes
    assert outcome.status == "no-contact" and "supervisor" in (outcome.last_error or "")
    assert not nobody.reached and nobody.failed == [outcome]


def test_an_escalation_reaches_the_fallback_role_named_in_a_roster_file(tmp_path: Path) -> None:
    with HttpReceiver() as rx:
        roster_file = tmp_path / "roster.yaml"
        roster_file.write_text(
            "roles:\n"
            "  prescriber:\n"
            "    contacts:\n"
            "      - url: json://127.0.0.1:${RECEIVER_PORT}/escalations/${HOOK_TOKEN}\n"
            "        label: Prescribers\n"
            "  community-prescriber:\n"
            "    fallback: prescriber\n"
        )
        roster = load_roster(roster_file, env={"RECEIVER_PORT": str(rx.port), "HOOK_TOKEN": "tok-12345"})
        note = make(role="community-prescriber")
        report = deliver(note, roster.contacts_for("community-prescriber"), now=CLOCK.now)
        [request] = rx.requests
    assert request.path == "/escalations/tok-12345" and request.json["title"] == note.title
    [outcome] = report.outcomes
    assert (outcome.status, outcome.role, outcome.contact_label) == ("delivered", "prescriber", "Prescribers")
    assert "tok-12345" not in outcome.redacted_url
