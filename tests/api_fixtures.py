"""The HTTP API, served by uvicorn on loopback, over a real store (SQLite or PostgreSQL) with in-memory ports, a
pathway written for these tests, and one token per role: a coordinator, two receiving programs, an operator and
an auditor."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from store_fixtures import migrated_database_url

from engine.api.serving import ApiServer
from engine.app import App, Settings, enroll
from engine.app.inline import RecordingNotifier, inline_app
from engine.app.tokens import create_token
from engine.clock import ManualClock
from engine.episode.domain.consent import single_tpo_consent
from engine.language.loader import load_pathway_text

#: Written for these tests: release from jail to a community clinic, then a recovery residence.
PATHWAY = """
id: release-net
version: 1
title: Jail release to a community clinic
description: Written for the API tests.
asam_edition: 3
roles:
  coordinator: { title: Reentry coordinator }
  supervisor: { title: Supervisor }
  clinic-intake: { title: Clinic intake }
  housing-intake: { title: Recovery housing intake }
events:
  person.released: { description: The person left jail. }
  clinic.discharged: { description: The clinic discharged the person to housing. }
  housing.completed: { description: The stay ended. }
stages:
  - id: custody
    name: In custody
  - id: clinic
    name: Community clinic
  - id: bridge
    name: Bridge prescribing while another clinic is sought
  - id: housing
    name: Recovery residence
  - { id: done, name: Done, terminal: true }
transitions:
  - from: custody
    to: clinic
    event: person.released
    handoff:
      receiver: { program: Harbor clinic, role: clinic-intake }
      mode: warm
      introduced_by: coordinator
      consent_purpose: treatment
      re_engage_within: 24h
      fallback: bridge
      steps:
        - kind: accepted
          within: 24h
          escalate: [{ after: 0h, to: coordinator }, { after: 12h, to: supervisor }]
        - kind: visit-kept
          within: 72h
          escalate: [{ after: 0h, to: coordinator }]
        - kind: outcome-returned
          within: 30d
          escalate: [{ after: 0h, to: coordinator }]
  - from: clinic
    to: housing
    event: clinic.discharged
    handoff:
      receiver: { program: Cedar house, role: housing-intake }
      mode: standard
      consent_purpose: treatment
      steps:
        - kind: accepted
          within: 48h
          escalate: [{ after: 0h, to: coordinator }]
  - { from: [bridge, housing], to: done, event: housing.completed }
"""
CONTACTS = {"coordinator": ["coord-desk"], "supervisor": ["sup-1"]}
#: The person's program id: it must never reach a receiver, an operator or the auditor's other answers.
PERSON = "P-NET-4471"


@dataclass
class Net:
    """The API under test, its App and one bearer token per party."""

    app: App
    client: httpx.Client
    tokens: dict[str, str]

    def call(self, who: str | None, method: str, path: str, **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", {}))
        if who is not None:
            headers["Authorization"] = f"Bearer {self.tokens[who]}"
        return self.client.request(method, path, headers=headers, **kwargs)

    def released(self, person: str = PERSON) -> tuple[str, str]:
        """An episode whose person left custody with consent: (episode id, the clinic's handoff id)."""
        episode_id = enroll(self.app, "release-net", person)
        consent = single_tpo_consent(
            f"cn-{episode_id}",
            person,
            discloser="County jail health",
            information="referral",
            signed_on=date(2026, 1, 2),
        )
        self.app.service.add_consent(episode_id, consent)
        response = self.call(
            "coordinator", "POST", f"/api/v1/episodes/{episode_id}/events", json={"name": "person.released"}
        )
        assert response.status_code == 200, response.text
        handoffs = self.call("coordinator", "GET", "/api/v1/handoffs", params={"episode": episode_id}).json()
        return episode_id, handoffs[0]["id"]


def build_net(backend: str, folder: Path) -> Iterator[Net]:
    with migrated_database_url(backend, folder) as url:
        settings = Settings.from_env({"CAREPATH_HOME": str(folder), "CAREPATH_DATABASE_URL": url})
        app = inline_app(settings, ManualClock(), notifier=RecordingNotifier(CONTACTS))
        result = load_pathway_text(PATHWAY, "release-net.yaml")
        assert result.ok and result.spec is not None, result.diagnostics
        app.service.register_pathway(result.spec, PATHWAY)
        tokens = {
            "coordinator": create_token(app, "coordinator", label="desk-anna")[1],
            "harbor": create_token(app, "receiver", program="Harbor clinic", label="harbor-intake")[1],
            "cedar": create_token(app, "receiver", program="Cedar house", label="cedar-intake")[1],
            "operator": create_token(app, "operator", label="ops-1")[1],
            "auditor": create_token(app, "auditor", label="audit-1")[1],
        }
        server = ApiServer(app, "127.0.0.1", 0)
        server.start()
        try:
            with httpx.Client(base_url=server.url, timeout=60) as client:
                yield Net(app, client, tokens)
        finally:
            server.stop()
            app.close()


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Net]:
    """The API on SQLite (the embedded default)."""
    yield from build_net("sqlite", tmp_path)
