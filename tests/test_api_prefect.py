"""The HTTP API on the production App (requests run as in-process Prefect flow runs on a real server, deadlines are
scheduled deployment runs), as `carepath up` serves it: a coordinator enrolls and releases a person over /api/v1,
the receiving program closes the loop over FHIR, and Prefect saw every request as a run, with opaque ids only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from carepath_harness import ROOT, Harness, running_carepath
from prefect_harness import ServeProcessFactory

from engine.api.serving import ApiServer
from engine.app.tokens import create_token
from engine.store import HandoffRecord, WorkItemRecord

pytestmark = pytest.mark.prefect
PERSON = "P-APIPF-3390"
BSER = "http://hl7.org/fhir/us/bser/CodeSystem/TaskBusinessStatusCS"


@pytest.fixture(scope="module")
def carepath(
    prefect_server: str, serve_process: ServeProcessFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Harness]:
    with running_carepath("sqlite", prefect_server, serve_process, tmp_path_factory.mktemp("carepath-api")) as h:
        yield h


def _code(code: str) -> dict[str, object]:
    return {"coding": [{"system": BSER, "code": code}]}


def test_a_loop_opened_over_the_api_and_closed_over_fhir_runs_on_prefect(carepath: Harness) -> None:
    app = carepath.app
    coordinator = {"Authorization": f"Bearer {create_token(app, 'coordinator', label='desk-pf')[1]}"}
    receiver_token = create_token(app, "receiver", program="Community MOUD prescriber", label="moud-pf")[1]
    receiver = {"Authorization": f"Bearer {receiver_token}", "Content-Type": "application/json-patch+json"}
    server = ApiServer(app, "127.0.0.1", 0)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=120) as http:
            enrolled = http.post("/api/v1/episodes", headers=coordinator, json={"pathway": "reentry", "person": PERSON})
            assert enrolled.status_code == 201, enrolled.text
            episode = enrolled.json()["episode_id"]
            consent = {
                "id": f"cn-{episode}",
                "purposes": ["treatment"],
                "recipient_classes": ["treating-providers"],
                "information": "referral and medication list",
                "discloser": "County jail health",
                "signed_on": str(app.clock.now().date()),
                "signed_by": PERSON,
            }
            assert (
                http.post(f"/api/v1/episodes/{episode}/consents", headers=coordinator, json=consent).status_code == 201
            )
            released = http.post(
                f"/api/v1/episodes/{episode}/events", headers=coordinator, json={"name": "custody.released"}
            )
            assert released.status_code == 200 and released.json()["stage"] == "community-care", released.text

            tasks = http.get(
                "/fhir/R4/Task", headers=receiver, params={"owner": "Organization/community-moud-prescriber"}
            )
            assert tasks.json()["total"] == 1 and PERSON not in tasks.text
            url = f"/fhir/R4/Task/{tasks.json()['entry'][0]['resource']['id']}"
            moves = [
                [
                    {"op": "replace", "path": "/status", "value": "accepted"},
                    {"op": "replace", "path": "/businessStatus", "value": _code("3.0")},
                ],
                [
                    {"op": "replace", "path": "/status", "value": "in-progress"},
                    {"op": "replace", "path": "/businessStatus", "value": _code("5.1.4")},
                ],
                [
                    {"op": "replace", "path": "/status", "value": "completed"},
                    {"op": "replace", "path": "/businessStatus", "value": _code("7.0")},
                    {
                        "op": "add",
                        "path": "/output",
                        "value": [{"type": {"text": "outcome"}, "valueString": "engaged"}],
                    },
                ],
            ]
            for ops in moves:
                moved = http.patch(url, headers=receiver, json=ops)
                assert moved.status_code == 200, moved.text
    finally:
        server.stop()
    [handoff] = carepath.rows(HandoffRecord, episode_id=episode)
    assert (handoff.status, handoff.business_status) == ("completed", "fulfillment-completed")
    open_steps = [
        w
        for w in carepath.rows(WorkItemRecord, episode_id=episode)
        if w.handoff_id == handoff.id and w.status == "open"
    ]
    assert open_steps == []
    runs = _runs_of(carepath, episode)
    events = [r for r in runs if "inbound_id" in r.parameters]
    assert len(events) >= 5 and all(r.state_type.value == "COMPLETED" for r in events)  # consent, release, 3 moves
    assert all(PERSON not in r.name and PERSON not in str(r.parameters) for r in runs)


def _runs_of(carepath: Harness, episode: str) -> list[Any]:
    """Every flow run of ``episode`` on the Prefect server (found by its parameters)."""
    return [r for r in _all_runs(carepath) if (r.parameters or {}).get("episode_id") == episode]


def _all_runs(carepath: Harness) -> list[Any]:
    """Every flow run on the Prefect server."""
    from prefect.client.orchestration import get_client

    from engine.orchestration.adapters import prefect_api
    from engine.orchestration.prefect_api import run_sync

    async def read() -> list[Any]:
        out: list[Any] = []
        async with get_client() as client:
            while True:
                page = await client.read_flow_runs(limit=200, offset=len(out))
                out += page
                if len(page) < 200:
                    return out

    with prefect_api(carepath.app.settings):
        return list(run_sync(read()))


def test_the_api_answers_from_the_store_and_follows_requests_up_after_in_batches(carepath: Harness) -> None:
    """As `carepath up --api` serves it: each answer comes from the store, the follow-ups run after it on the API's
    own thread, several requests in one ``carepath-requests`` run when they come faster than a run takes; every
    episode is followed up exactly once and every timer is scheduled on the server."""
    from concurrent.futures import ThreadPoolExecutor

    from sqlmodel import Session

    from engine import store
    from engine.orchestration.flows import dispatching_app

    app = dispatching_app(carepath.app.settings, deferred=True)
    app.set_clock(carepath.app.clock)
    coordinator = {"Authorization": f"Bearer {create_token(app, 'coordinator', label='desk-batch')[1]}"}
    server = ApiServer(app, "127.0.0.1", 0)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=120) as http, ThreadPoolExecutor(4) as pool:
            people = [f"P-APIPF-5{n:02d}" for n in range(12)]
            body = [{"pathway": "reentry", "person": p} for p in people]
            answers = list(pool.map(lambda b: http.post("/api/v1/episodes", headers=coordinator, json=b), body))
    finally:
        server.stop()  # waits for the follow-ups handed over
    assert [a.status_code for a in answers] == [201] * 12, [a.text for a in answers]
    episodes = [a.json()["episode_id"] for a in answers]
    assert app.dispatcher.flush(0)
    with Session(app.engine) as session:
        assert store.unscheduled_timers(session, episodes, 100) == []
    runs = _all_runs(carepath)
    batches = [r for r in runs if any(q["episode_id"] in episodes for q in (r.parameters or {}).get("requests", []))]
    singles = [r for r in runs if (r.parameters or {}).get("episode_id") in episodes]
    followed = [q["episode_id"] for r in batches for q in r.parameters["requests"]]
    followed += [r.parameters["episode_id"] for r in singles]
    assert sorted(followed) == sorted(episodes)  # each exactly once
    assert batches and len(batches) + len(singles) < len(episodes)
    assert all(r.state_type.value == "COMPLETED" for r in batches + singles)
    assert all(r.name.startswith(f"requests · {len(r.parameters['requests'])} followed up · ") for r in batches)
    assert all(p not in r.name and p not in str(r.parameters) for r in batches + singles for p in people)


def test_new_timers_get_their_runs_while_the_follow_ups_are_behind(carepath: Harness, tmp_path: Path) -> None:
    """Under load the follow-ups fall behind the answers (a minute at 1,000 episodes): a rung due soon after the
    request that opened it must still get its deadline run right away, not when its follow-up's turn comes. Here
    every follow-up waits until the runs are there; then each still runs once and schedules nothing twice. The
    App has a store of its own, so no serving process's sweep schedules the rungs in its place."""
    import threading

    from outage_harness import wait_until
    from sqlmodel import Session, col, select

    from engine import store
    from engine.app import enroll
    from engine.app.pathways import register_pathways
    from engine.orchestration.flows import dispatching_app
    from engine.store import RungRecord

    own = carepath.app.settings.with_changes(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'own.db'}")
    app = dispatching_app(own, deferred=True)
    app.set_clock(carepath.app.clock)
    register_pathways(app, ROOT / "pathways")
    drain = app.dispatcher._follow_ups
    behind, follow_up, followed = threading.Event(), drain.work, []

    def late(batch: list[Any]) -> None:
        assert behind.wait(120), "the follow-ups were never let go"
        follow_up(batch)
        followed.extend(parameters["episode_id"] for *_rest, parameters in batch)

    drain.work = late
    try:
        episodes = [enroll(app, "reentry", f"P-APIPF-6{n:02d}") for n in range(5)]

        def linked() -> dict[str, str]:
            """Each rung of the episodes that has a run: its run."""
            with Session(app.engine) as session:
                rungs = session.exec(select(RungRecord).where(col(RungRecord.episode_id).in_(episodes))).all()
                return {r.id: str(r.flow_run_id) for r in rungs if r.flow_run_id}

        def scheduled() -> dict[str, str]:
            with Session(app.engine) as session:
                waiting = store.unscheduled_timers(session, episodes, 100)
            return {} if waiting else linked()

        runs = wait_until("the new rungs' runs, ahead of their follow-ups", scheduled, timeout=120)
        assert drain.unfinished == len(episodes)  # not one follow-up has run yet
    finally:
        behind.set()
    assert app.dispatcher.flush(180)
    assert sorted(followed) == sorted(episodes)
    assert {rung: run for rung, run in linked().items() if rung in runs} == runs  # the follow-ups left them be
    on_server = {str(r.id): r for r in _all_runs(carepath)}
    assert all(run in on_server and on_server[run].name.startswith("reentry · deadlines") for run in runs.values())
