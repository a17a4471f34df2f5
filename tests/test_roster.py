"""Roster files: roles to apprise contacts, fallbacks, and errors a program's admin can act on."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from engine.notify.apprise_io import redact_url, scrub
from engine.notify.roster import ROSTER_ENV, Contact, RosterError, load_roster, parse_roster, roster_path

DATA = Path(__file__).parent / "data"
PATHWAYS = Path(__file__).parent.parent / "pathways"
ENV = {"SMTP_PASSWORD": "pw-S3CRET-smtp", "SLACK_TOKEN": "xoxbS3CRETslacktoken42"}


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(RosterError) as caught:
        parse_roster(text, file="roster.yaml", env=env)
    assert str(caught.value) == "\n".join(str(d) for d in caught.value.diagnostics)
    return [str(d) for d in caught.value.diagnostics]


def test_the_example_roster_loads_and_reaches_every_role_of_both_seed_pathways() -> None:
    roster = load_roster(DATA / "roster.yaml", env=ENV)
    assert roster.roles()[:3] == ["care-coordinator", "supervisor", "prescriber"]
    coordinators = roster.contacts_for("care-coordinator")
    assert [(c.key, c.label) for c in coordinators] == [
        ("care-coordinator[0]", "Coordinators' shared inbox"),
        ("care-coordinator[1]", "Team dashboard webhook"),
    ]
    assert coordinators[0].url.startswith("mailto://carepath:pw-S3CRET-smtp@mail.example.org")
    assert roster.contacts_for("prescriber")[0].label is None  # written as a bare URL
    for pathway in sorted(PATHWAYS.glob("*.yaml")):
        roles = yaml.safe_load(pathway.read_text())["roles"]
        assert roster.missing(roles) == [], pathway.name


def test_a_role_without_contacts_reaches_its_fallback_through_a_chain() -> None:
    roster = parse_roster(
        "roles:\n"
        "  supervisor:\n"
        "    contacts: [json://127.0.0.1:9/supervisors]\n"
        "  prescriber:\n"
        "    fallback: supervisor\n"
        "  community-prescriber:\n"
        "    fallback: prescriber\n"
        "  care-coordinator:\n"
        "    contacts: [json://127.0.0.1:9/coordinators]\n"
        "    fallback: supervisor\n"
    )
    [via_chain] = roster.contacts_for("community-prescriber")
    assert (via_chain.role, via_chain.key) == ("supervisor", "supervisor[0]")
    assert [c.url for c in roster.contacts_for("care-coordinator")] == ["json://127.0.0.1:9/coordinators"]
    assert roster.contacts_for("peer-recovery-coach") == []
    assert roster.missing(["supervisor", "peer-recovery-coach", "peer-recovery-coach"]) == ["peer-recovery-coach"]


def test_secrets_never_show_in_a_contacts_text_or_repr() -> None:
    roster = load_roster(DATA / "roster.yaml", env=ENV)
    contacts = [c for role in roster.roles() for c in roster.contacts_for(role)]
    shown = " ".join(f"{c} {c!r} {c.redacted}" for c in contacts)
    assert "S3CRET" not in shown
    assert "Coordinators' shared inbox <mailto://carepath:****@mail.example.org" in shown
    webhook = Contact("supervisor", 0, "json://127.0.0.1:8080/hooks/T0KEN-S3CRET-42?-apikey=S3CRETKEY")
    assert webhook.redacted == "json://127.0.0.1:8080/h...s/T...2"
    assert scrub("POST /hooks/T0KEN-S3CRET-42 failed (S3CRETKEY)", webhook.url) == "POST /****/**** failed (****)"
    assert redact_url("smtp://admin:S3CRET@mail.example.org?x=1") == "smtp://admin:****@mail.example.org?..."


def test_a_bad_url_is_reported_at_its_line_and_column() -> None:
    assert problems("roles:\n  supervisor:\n    contacts:\n      - url: htp://x\n") == [
        "roster.yaml:4:14: error: $.roles.supervisor.contacts[0].url: 'htp://x' is not an apprise URL: "
        "unknown scheme 'htp'"
    ]


def test_url_problems_name_the_scheme_hide_passwords_and_are_all_reported() -> None:
    text = (
        "roles:\n"
        "  supervisor:\n"
        "    contacts:\n"
        "      - jsn://127.0.0.1/hook\n"
        "      - url: json://admin:S3CRET@\n"
        "      - url: slack://T000TEST0/B000TEST0/${SLACK_TOKEN}\n"
        "      - not a url\n"
    )
    found = problems(text)
    assert found == [
        "roster.yaml:4:9: error: $.roles.supervisor.contacts[0].url: 'jsn://127.0.0.1/hook' is not an apprise URL: "
        "unknown scheme 'jsn' (did you mean 'json'?)",
        "roster.yaml:5:14: error: $.roles.supervisor.contacts[1].url: 'json://admin:****@' is not an apprise URL: "
        "apprise cannot read it as a json:// URL",
        "roster.yaml:6:14: error: $.roles.supervisor.contacts[2].url: environment variable ${SLACK_TOKEN} is not set",
        "roster.yaml:7:9: error: $.roles.supervisor.contacts[3].url: 'not a url' is not an apprise URL "
        "(expected scheme://..., e.g. mailto://, json://, slack://)",
    ]


def test_unknown_fields_point_at_the_key_with_a_suggestion() -> None:
    text = "roles:\n  supervisor:\n    contacts:\n      - url: json://127.0.0.1/hook\n        lable: Pager\n"
    text += "    fallbak: x\n"
    assert problems(text) == [
        "roster.yaml:5:9: error: $.roles.supervisor.contacts[0].lable: unexpected field 'lable' "
        "(did you mean 'label'?)",
        "roster.yaml:6:5: error: $.roles.supervisor.fallbak: unexpected field 'fallbak' (did you mean 'fallback'?)",
    ]


def test_shape_problems_stop_before_urls_are_checked() -> None:
    text = "roles:\n  Supervisor: {}\n  coordinator:\n  prescriber:\n    contacts: [42, htp://x]\nowner: me\n"
    assert problems(text) == [
        "roster.yaml:2:3: error: $.roles.Supervisor: role id 'Supervisor' must be lowercase letters, digits and '-' "
        "(e.g. care-coordinator)",
        "roster.yaml:3:3: error: $.roles.coordinator: role 'coordinator' is empty; give it contacts or a fallback",
        "roster.yaml:5:16: error: $.roles.prescriber.contacts[0]: expected a URL or a mapping with 'url' "
        "(and 'label'), got the number 42",
        "roster.yaml:6:1: error: $.owner: unexpected field 'owner'",
    ]


def test_fallback_cycles_and_dead_ends_are_errors_with_line_numbers() -> None:
    text = (
        "roles:\n"
        "  supervisor:\n"
        "    fallback: care-coordinator\n"
        "  care-coordinator:\n"
        "    fallback: supervisor\n"
        "  prescriber:\n"
        "    fallback: prescriber\n"
        "  peer-recovery-coach:\n"
        "    fallback: supervisr\n"
        "  detox-intake:\n"
        "    contacts: []\n"
    )
    assert problems(text) == [
        "roster.yaml:3:15: error: $.roles.supervisor.fallback: fallback cycle supervisor -> care-coordinator -> "
        "supervisor (lines 3, 5)",
        "roster.yaml:7:15: error: $.roles.prescriber.fallback: fallback cycle prescriber -> prescriber (line 7)",
        "roster.yaml:9:15: error: $.roles.peer-recovery-coach.fallback: fallback 'supervisr' is not a role in this "
        "roster (did you mean 'supervisor'?)",
        "roster.yaml:10:3: error: $.roles.detox-intake: role 'detox-intake' has no contacts and no fallback; an "
        "escalation would reach nobody",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "roster.yaml:1:1: error: $: the file is empty (nothing but blank lines or comments)"),
        ("- a\n", "roster.yaml:1:1: error: $: expected a mapping with 'roles', got a list"),
        ("roles: {}\n", "roster.yaml:1:8: error: $.roles: must not be empty"),
        ("roles:\n  a: [\n", "roster.yaml:3:1: error: $: "),
        (b"\xff\xfe junk", "roster.yaml:1:1: error: $: file is not UTF-8 text (byte 0xff)"),
    ],
)
def test_broken_files_give_one_line_errors_not_tracebacks(text: str | bytes, expected: str) -> None:
    with pytest.raises(RosterError) as caught:
        parse_roster(text)
    assert str(caught.value).startswith(expected)


def test_a_missing_file_is_a_roster_error(tmp_path: Path) -> None:
    with pytest.raises(RosterError, match=r"nothing\.yaml:1:1: error: \$: cannot read the roster"):
        load_roster(tmp_path / "nothing.yaml")


def test_the_roster_option_wins_over_the_environment() -> None:
    assert roster_path("ops/roster.yaml", {ROSTER_ENV: "env.yaml"}) == Path("ops/roster.yaml")
    assert roster_path(None, {ROSTER_ENV: "env.yaml"}) == Path("env.yaml")
    assert roster_path(None, {}) is None
