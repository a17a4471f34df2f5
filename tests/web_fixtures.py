"""The coordinators' pages over a real uvicorn on loopback, a SQLite store, in-memory ports and a pathway written
for these tests, with three episodes that need someone, one per tier of the worklist:

- ``crit``: released, then an omitted buprenorphine at the clinic's medication reconciliation (critical);
- ``risk``: released 30 hours ago and the clinic has not accepted the referral (overdue, in the risk window);
- ``plain``: still in custody, the naloxone kit 26 hours overdue (overdue, no risk window).

Synthetic people only (``P-WEB-...``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import httpx
from store_fixtures import migrated_database_url

from engine.api.serving import ApiServer
from engine.app import App, Settings, enroll, record_event
from engine.app.inline import MemoryScheduler, RecordingNotifier, inline_app
from engine.app.tokens import create_token
from engine.clock import ManualClock
from engine.episode.domain.consent import single_tpo_consent
from engine.language.loader import load_pathway_text

PATHWAY = """
id: web-test
version: 1
title: Jail release to a community MOUD clinic
description: Written for the worklist tests.
asam_edition: 3
roles:
  coordinator: { title: Reentry coordinator }
  supervisor: { title: Supervisor }
  prescriber: { title: Prescriber }
  clinic-intake: { title: Clinic intake }
events:
  person.released: { description: The person left jail. }
  naloxone.given: { description: A naloxone kit was handed over. }
  clinic.completed: { description: The clinic discharged the person. }
stages:
  - id: custody
    name: County jail
    on_entry:
      - id: naloxone
        title: Naloxone kit given
        owner: coordinator
        within: 4h
        done_on: naloxone.given
        escalate: [{ after: 0h, to: coordinator }]
  - id: clinic
    name: Community MOUD clinic
    level: "1"
  - { id: done, name: Done, terminal: true }
transitions:
  - from: custody
    to: clinic
    event: person.released
    handoff:
      receiver: { program: Harbor clinic, role: clinic-intake }
      mode: standard
      consent_purpose: treatment
      steps:
        - kind: accepted
          within: 24h
          escalate: [{ after: 0h, to: coordinator }]
    reconcile: { within: 24h, critical_to: [prescriber] }
  - { from: clinic, to: done, event: clinic.completed }
medications:
  critical:
    - { name: buprenorphine, class: MOUD, rxnorm: ["1819"], aliases: [Suboxone] }
"""
CONTACTS = {"coordinator": ["coord-desk"], "supervisor": ["sup-1"], "prescriber": ["rx-on-call"]}
_CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


@dataclass
class Site:
    """The server under test, its App, its store's environment, tokens per role and the three episodes."""

    app: App
    url: str
    env: dict[str, str]
    tokens: dict[str, str]
    episodes: dict[str, str]


def released(app: App, person: str) -> str:
    episode_id = enroll(app, "web-test", person)
    consent = single_tpo_consent(
        f"cn-{episode_id}", person, discloser="County jail health", information="referral", signed_on=date(2026, 1, 2)
    )
    app.service.add_consent(episode_id, consent)
    record_event(app, episode_id, "person.released")
    return episode_id


def build_site(folder: Path) -> Iterator[Site]:
    with migrated_database_url("sqlite", folder) as url:
        env = {"CAREPATH_HOME": str(folder), "CAREPATH_DATABASE_URL": url}
        app = inline_app(Settings.from_env(env), ManualClock(), notifier=RecordingNotifier(CONTACTS))
        result = load_pathway_text(PATHWAY, "web-test.yaml")
        assert result.ok and result.spec is not None, result.diagnostics
        app.service.register_pathway(result.spec, PATHWAY)
        plain = enroll(app, "web-test", "P-WEB-0003")
        risk = released(app, "P-WEB-0002")
        crit = released(app, "P-WEB-0001")
        record_event(
            app, crit, "medications.sending-list", {"medications": [{"name": "buprenorphine", "dose": "8 mg"}]}
        )
        record_event(app, crit, "medications.receiving-list", {"medications": [{"name": "ondansetron"}]})
        clock = app.clock
        assert isinstance(clock, ManualClock) and isinstance(app.scheduler, MemoryScheduler)
        clock.advance(timedelta(hours=30))
        app.scheduler.run_due(app, clock.now())
        tokens = {
            "coordinator": create_token(app, "coordinator", label="desk-anna")[1],
            "receiver": create_token(app, "receiver", program="Harbor clinic", label="harbor-intake")[1],
            "operator": create_token(app, "operator", label="ops-1")[1],
        }
        server = ApiServer(app, "127.0.0.1", 0)
        server.start()
        try:
            yield Site(app, server.url, env, tokens, {"crit": crit, "risk": risk, "plain": plain})
        finally:
            server.stop()
            app.close()


class Browser:
    """An httpx client that keeps cookies by hand: ``Secure`` cookies are not sent back over plain HTTP by
    httpx's jar, which is right for a browser off loopback; here the tests play the browser on loopback."""

    def __init__(self, client: httpx.Client) -> None:
        self.client, self.cookies = client, dict[str, str]()

    def request(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}
        response = self.client.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]
        for cookie in response.headers.get_list("set-cookie"):
            name, _, rest = cookie.partition("=")
            value = rest.split(";", 1)[0]
            if "max-age=0" in cookie.lower() or not value.strip('"'):
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return response

    def get(self, path: str) -> httpx.Response:
        return self.request("GET", path)

    def post(self, path: str, data: dict[str, str]) -> httpx.Response:
        return self.request("POST", path, data=data)

    def csrf(self, path: str = "/worklist") -> str:
        found = _CSRF.search(self.get(path).text)
        assert found is not None, f"no form on {path}"
        return found.group(1)

    def login(self, token: str) -> httpx.Response:
        return self.post("/login", {"csrf": self.csrf("/login"), "token": token})
