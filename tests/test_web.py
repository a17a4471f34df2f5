"""The coordinators' pages over a real uvicorn (no browser): the session cookie and its flags, anti-forgery
refusals, who may log in, the worklist's order, acting from it, the episode page and the lookup by POST."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select
from web_fixtures import Browser, Site, build_site

from engine.app.tokens import revoke_token
from engine.store import AuditRecord, EscalationRecord


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    yield from build_site(tmp_path)


@pytest.fixture
def browser(site: Site) -> Iterator[Browser]:
    with httpx.Client(base_url=site.url, timeout=60) as client:
        yield Browser(client)


def rows(html: str) -> list[str]:
    return re.findall(r'id="row-([^"]+)"', html)


def test_without_a_session_every_page_sends_the_browser_to_log_in(browser: Browser, site: Site) -> None:
    for path in ("/", "/worklist", f"/episodes/{site.episodes['crit']}"):
        response = browser.get(path)
        assert response.status_code == 303
        assert response.headers["location"] in ("/login", "/worklist")
    browser.cookies["carepath_session"] = "cpt_00000000_not-a-real-token-at-all-000"
    response = browser.get("/worklist")
    assert (response.status_code, response.headers["location"]) == (303, "/login")
    assert "carepath_session" not in browser.cookies  # the bad cookie is cleared


def test_login_sets_a_strict_secure_httponly_cookie_and_logout_clears_it(browser: Browser, site: Site) -> None:
    response = browser.login(site.tokens["coordinator"])
    assert (response.status_code, response.headers["location"]) == (303, "/worklist")
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("carepath_session="))
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "secure", "samesite=strict", "path=/"} <= flags
    page = browser.get("/worklist")
    assert page.status_code == 200 and "desk-anna" in page.text
    assert page.headers["cache-control"] == "no-store" and "script-src" not in page.headers["content-security-policy"]
    assert browser.post("/logout", {"csrf": browser.csrf()}).headers["location"] == "/login"
    assert "carepath_session" not in browser.cookies
    assert browser.get("/worklist").headers["location"] == "/login"


def test_a_wrong_token_is_refused_and_a_revoked_one_ends_the_session(browser: Browser, site: Site) -> None:
    response = browser.login("cpt_12345678_" + "x" * 40)
    assert response.status_code == 401 and "not valid" in response.text and "carepath_session" not in browser.cookies
    browser.login(site.tokens["coordinator"])
    revoke_token(site.app, "desk-anna")
    assert browser.get("/worklist").headers["location"] == "/login"


@pytest.mark.parametrize("role", ["receiver", "operator"])
def test_only_coordinators_may_log_in(browser: Browser, site: Site, role: str) -> None:
    response = browser.login(site.tokens[role])
    assert response.status_code == 403
    assert "for coordinator tokens" in response.text and f"this is a {role} token" in response.text
    assert "carepath_session" not in browser.cookies


def test_forms_without_this_sessions_token_are_refused(browser: Browser, site: Site) -> None:
    assert browser.post("/login", {"csrf": "0" * 64, "token": site.tokens["coordinator"]}).status_code == 403
    browser.login(site.tokens["coordinator"])
    ep = site.episodes["crit"]
    for path, data in [
        (f"/episodes/{ep}/contact", {"note": "called"}),
        ("/escalations/1/acknowledge", {}),
        ("/lookup", {"person": "P-WEB-0001"}),
        ("/logout", {}),
    ]:
        for csrf in (None, "0" * 64):
            response = browser.post(path, data if csrf is None else {**data, "csrf": csrf})
            assert response.status_code == 403 and "Form refused" in response.text, path
    with Session(site.app.engine) as s:
        assert all(e.acknowledged_at is None for e in s.exec(select(EscalationRecord)))
        assert not list(s.exec(select(AuditRecord).where(AuditRecord.action == "contact.recorded")))


def test_the_worklist_ranks_critical_then_risk_window_then_overdue(browser: Browser, site: Site) -> None:
    browser.login(site.tokens["coordinator"])
    html = browser.get("/worklist").text
    assert rows(html) == [site.episodes["crit"], site.episodes["risk"], site.episodes["plain"]]
    assert "omission: buprenorphine" in html and "released from County jail" in html


def test_acting_from_the_worklist_acknowledges_records_a_contact_and_moves_a_handoff(
    browser: Browser, site: Site
) -> None:
    browser.login(site.tokens["coordinator"])
    ep = site.episodes["crit"]
    with Session(site.app.engine) as s:
        critical = next(e for e in s.exec(select(EscalationRecord)) if e.severity == "critical")
    csrf = browser.csrf()
    done = browser.post(f"/escalations/{critical.id}/acknowledge", {"csrf": csrf, "back": "/worklist"})
    assert (done.status_code, done.headers["location"]) == (303, "/worklist?done=ack")
    done = browser.post(f"/episodes/{ep}/contact", {"csrf": csrf, "back": f"/episodes/{ep}", "note": "Phoned, ok"})
    assert done.headers["location"] == f"/episodes/{ep}?done=contact"
    refused = browser.post(f"/episodes/{ep}/contact", {"csrf": csrf, "note": "two\nlines"})
    assert refused.status_code == 422 and "note" in refused.text
    handoff = f"{site.episodes['risk']}/2/handoff"
    moved = browser.post("/handoffs/move", {"csrf": csrf, "handoff": handoff, "move": "accept:receiver", "detail": ""})
    assert moved.headers["location"] == "/worklist?done=move"
    needs = browser.post("/handoffs/move", {"csrf": csrf, "handoff": handoff, "move": "cancel:sender", "detail": ""})
    assert needs.status_code == 422 and "reason" in needs.text
    with Session(site.app.engine) as s:
        acked = s.get(EscalationRecord, critical.id)
        contact = s.exec(select(AuditRecord).where(AuditRecord.action == "contact.recorded")).one()
    assert acked is not None and acked.acknowledged_by == "desk-anna"
    assert (contact.episode_id, contact.actor, contact.reason) == (ep, "desk-anna", "Phoned, ok")
    page = browser.get(f"/episodes/{ep}?done=contact").text
    assert "Contact recorded." in page and "Phoned, ok" in page and "acknowledged by desk-anna" in page


def test_the_episode_page_shows_handoffs_with_bser_codes_findings_and_consents(browser: Browser, site: Site) -> None:
    browser.login(site.tokens["coordinator"])
    html = browser.get(f"/episodes/{site.episodes['crit']}").text
    for shown in ("2.0 created", "Harbor clinic", "buprenorphine", "cn-" + site.episodes["crit"], "delivered 1/1"):
        assert shown in html
    assert browser.get("/episodes/ep-00000000").status_code == 404


def test_a_person_is_looked_up_by_post_and_never_by_address(browser: Browser, site: Site) -> None:
    browser.login(site.tokens["coordinator"])
    found = browser.post("/lookup", {"csrf": browser.csrf(), "person": "P-WEB-0002"})
    assert found.status_code == 200 and site.episodes["risk"] in found.text and site.episodes["crit"] not in found.text
    none = browser.post("/lookup", {"csrf": browser.csrf(), "person": "P-NOBODY"})
    assert none.status_code == 200 and "No episode" in none.text
    assert browser.get("/lookup").status_code == 405
    bad = browser.post("/lookup", {"csrf": browser.csrf(), "person": "P 1\n"})
    assert bad.status_code == 422


def test_record_contact_refuses_a_bad_note_or_episode_changing_nothing(site: Site) -> None:
    from engine.app.contacts import NOTE_MAX, record_contact
    from engine.errors import InvalidInput, UnknownEpisode

    ep = site.episodes["plain"]
    for note in ("", "   ", "two\nlines", "x" * (NOTE_MAX + 1), "bell\a"):
        with pytest.raises(InvalidInput):
            record_contact(site.app, ep, note, actor="desk-anna")
    with pytest.raises(UnknownEpisode):
        record_contact(site.app, "ep-00000000", "called", actor="desk-anna")
    with Session(site.app.engine) as s:
        assert not list(s.exec(select(AuditRecord).where(AuditRecord.action == "contact.recorded")))
