"""A coordinator's request is answered from the store; its follow-up (Prefect timers, cancelled runs, alerts,
artifacts) comes after, and is never lost: run later by a dispatcher that defers it, several requests at once in
one batch, or by the sweep when the follow-up never comes (the process died, Prefect refused it).

In-memory ports and a manual clock, on SQLite and PostgreSQL, with the bridge pathway written for the app tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select
from store_fixtures import BACKENDS
from test_app import advance, bridge_app, escalations, scheduler

from engine import store
from engine.app import App, acknowledge, enroll, record_event, sweep
from engine.app.episodes import acknowledgement_request, follow_up_requests
from engine.app.inline import InlineDispatcher, MemoryPublisher, MemoryScheduler
from engine.app.ports import Timer
from engine.episode.domain.consent import Consent, single_tpo_consent
from engine.errors import EventRejected, OrchestrationError
from engine.store import InboundEventRecord


class Deferring(InlineDispatcher):
    """Hands follow-ups over without running them, as the API's dispatcher does while its thread is busy."""

    def __init__(self) -> None:
        super().__init__()
        self.queued: list[dict[str, str]] = []
        self.fail = False

    def enroll(self, pathway_id: str, version: int, episode_id: str) -> None:
        self._hand_over({"kind": "enroll", "episode_id": episode_id})

    def event(self, pathway_id: str, version: int, episode_id: str, event: str, inbound_id: str) -> None:
        self._hand_over({"kind": "event", "episode_id": episode_id, "event": event, "inbound_id": inbound_id})

    def acknowledged(self, episode_id: str, escalation_id: int, run_ids: list[str]) -> None:
        self._hand_over(acknowledgement_request(episode_id, escalation_id, run_ids))

    def _hand_over(self, request: dict[str, str]) -> None:
        if self.fail:
            raise OrchestrationError("the Prefect server at http://127.0.0.1:1 is not answering")
        self.queued.append(request)


class CountingScheduler(MemoryScheduler):
    """Counts the scheduling calls (each is one Prefect call per pathway and minute in production)."""

    def __init__(self) -> None:
        super().__init__(shared=True)
        self.calls = 0

    def schedule(self, timers: Sequence[Timer]) -> dict[str, str]:
        self.calls += 1
        return super().schedule(timers)


@pytest.fixture(params=BACKENDS)
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    with bridge_app(request.param, tmp_path, CountingScheduler()) as app:
        deferring = Deferring()
        deferring.app = app
        app.dispatcher = deferring
        yield app


def dispatcher(app: App) -> Deferring:
    assert isinstance(app.dispatcher, Deferring)
    return app.dispatcher


def publisher(app: App) -> MemoryPublisher:
    assert isinstance(app.publisher, MemoryPublisher)
    return app.publisher


def unscheduled(app: App, episodes: list[str]) -> list[str]:
    with Session(app.engine) as session:
        return [row.rung_id for row in store.unscheduled_timers(session, episodes, 100)]


def followed_up(app: App) -> Callable[[], None]:
    def run() -> None:
        queued, dispatcher(app).queued = dispatcher(app).queued, []
        follow_up_requests(app, queued)

    return run


def test_the_answer_comes_from_the_store_and_the_follow_up_uses_what_the_request_changed(app: App) -> None:
    ep = enroll(app, "bridge-test", "P-ANS-001")
    assert unscheduled(app, [ep]) != []  # answered: the episode exists, its timers wait for the follow-up
    followed_up(app)()
    [naloxone_run] = scheduler(app).waiting()
    app.service.add_consent(ep, _consent(ep))

    result = record_event(app, ep, "ed.discharged")

    assert (result.status, result.stage, result.moved) == ("applied", "clinic", ("ed", "clinic"))
    assert naloxone_run.state == "scheduled" and unscheduled(app, [ep]) != []  # nothing of Prefect's done yet
    followed_up(app)()
    assert naloxone_run.state == "cancelled"  # the request's changes reached its follow-up: the met run is released
    assert unscheduled(app, [ep]) == [] and {r.timer.rung_id for r in scheduler(app).waiting()} == {
        f"{ep}/2/t0.handoff.accepted#r0"
    }


def test_requests_answered_together_are_followed_up_in_one_batch_with_one_scheduling_call(app: App) -> None:
    episodes = [enroll(app, "bridge-test", f"P-ANS-1{n}") for n in range(5)]
    with pytest.raises(EventRejected):
        record_event(app, episodes[0], "clinic.completed")  # refused: listed in the batch, changes nothing
    calls, published = scheduler_calls(app), publisher(app).calls

    done = follow_up_requests(app, dispatcher(app).queued)

    assert [(d.kind, d.episode_id) for d in done] == [("enroll", ep) for ep in episodes] + [("event", episodes[0])]
    assert done[-1].refused == "not-expected" and done[-1].changes is None
    assert scheduler_calls(app) == calls + 1 and unscheduled(app, episodes) == []
    assert publisher(app).calls == published + 1, "every episode's artifact in one call, not one each"
    assert all(publisher(app).versions[f"episode-{ep}".lower()] == 1 for ep in episodes)


def test_a_follow_up_that_never_comes_is_finished_by_the_sweep_and_the_answer_stands(app: App) -> None:
    dispatcher(app).fail = True  # Prefect refuses every follow-up once the request is committed
    ep = enroll(app, "bridge-test", "P-ANS-002")  # answered, not raised: asked again, the coordinator enrolls twice
    app.service.add_consent(ep, _consent(ep))
    assert sweep(app).scheduled == 1
    [naloxone_run] = scheduler(app).waiting()

    result = record_event(app, ep, "ed.discharged")

    assert (result.status, result.stage) == ("applied", "clinic")
    with Session(app.engine) as session:
        [inbound] = [session.get(InboundEventRecord, inbound_id) for inbound_id in _inbound_ids(app, ep)]
    assert inbound is not None and inbound.status == "applied"
    report = sweep(app)
    assert report.scheduled == 1 and report.cancelled == 1 and naloxone_run.state == "cancelled"
    assert unscheduled(app, [ep]) == []


def test_an_acknowledgement_is_answered_from_the_store_and_releases_the_later_rungs_run_after(app: App) -> None:
    ep = enroll(app, "bridge-test", "P-ANS-003")
    followed_up(app)()
    advance(app, timedelta(hours=4, minutes=1))  # naloxone not given: its first rung escalates, the next waits
    [raised] = escalations(app)
    [later] = [run for run in scheduler(app).waiting() if run.timer.episode_id == ep]

    assert acknowledge(app, raised.id or 0, "staff-ans") == 1  # answered: the later rung is stopped in the store

    assert later.state == "scheduled"  # its run is released by the follow-up, after the answer
    [done] = follow_up_requests(app, dispatcher(app).queued)
    assert (done.kind, done.episode_id, done.event) == ("acknowledge", ep, str(raised.id))
    assert later.state == "cancelled"


def test_an_acknowledgement_whose_follow_up_never_comes_stands_and_the_sweep_releases_its_run(app: App) -> None:
    ep = enroll(app, "bridge-test", "P-ANS-004")
    followed_up(app)()
    advance(app, timedelta(hours=4, minutes=1))
    [raised] = escalations(app)
    [later] = [run for run in scheduler(app).waiting() if run.timer.episode_id == ep]
    dispatcher(app).fail = True

    assert acknowledge(app, raised.id or 0, "staff-ans") == 1

    assert sweep(app).cancelled == 1 and later.state == "cancelled"


def scheduler_calls(app: App) -> int:
    assert isinstance(app.scheduler, CountingScheduler)
    return app.scheduler.calls


def _inbound_ids(app: App, episode_id: str) -> list[str]:
    with Session(app.engine) as session:
        return list(session.exec(select(InboundEventRecord.id).where(InboundEventRecord.episode_id == episode_id)))


def _consent(episode_id: str) -> Consent:
    return single_tpo_consent(
        f"cn-{episode_id}", "P-ANS", discloser="Test ED", information="referral", signed_on=date(2026, 1, 1)
    )


def test_the_api_answers_coordinators_while_prefect_is_down_and_leaves_the_follow_ups_to_the_sweep(
    tmp_path: Path,
) -> None:
    """A Prefect outage must not stop coordinators recording what happened (a 10-minute one at 10,000 episodes
    refused 142,782 attempts while the sweep kept escalating the very deadlines they met): the API, on the production
    ports with a Prefect address nobody answers, answers from the store; its follow-ups give up at once, in one line
    each, and leave their work in the store for the sweep. A command, whose follow-up is its own run, still refuses,
    changing nothing."""
    import logging

    import httpx
    from test_app import PATHWAY

    from engine.api.serving import ApiServer
    from engine.app import Settings
    from engine.app.tokens import create_token
    from engine.language.loader import load_pathway_text
    from engine.orchestration.flows import dispatching_app
    from engine.orchestration.server import free_port
    from engine.store import RungRecord

    settings = Settings.from_env(
        {
            "CAREPATH_HOME": str(tmp_path),
            "CAREPATH_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}",
            "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api",
        }
    )
    app = dispatching_app(settings, deferred=True)
    spec = load_pathway_text(PATHWAY, "bridge-test.yaml").spec
    assert spec is not None
    app.service.register_pathway(spec, PATHWAY)
    token = create_token(app, "coordinator", label="desk-outage")[1]
    logged: list[logging.LogRecord] = []
    listener = logging.Handler(logging.WARNING)
    listener.emit = logged.append  # type: ignore[method-assign]
    logging.getLogger("carepath.dispatch").addHandler(listener)
    server = ApiServer(app, "127.0.0.1", 0)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as http:
            enrolled = http.post("/api/v1/episodes", json={"pathway": "bridge-test", "person": "P-ANS-DOWN"})
            assert enrolled.status_code == 201, enrolled.text
            ep = enrolled.json()["episode_id"]
            assert app.dispatcher.flush(60), "the follow-ups give up at once, not after the client's retries"
            with Session(app.engine) as session:
                naloxone = session.get(RungRecord, f"{ep}/1/s.ed.task.naloxone#r0")
            assert naloxone is not None and naloxone.status == "pending"
            assert naloxone.flow_run_id is None, "no run: the sweep fires it when due"
            met = http.post(f"/api/v1/episodes/{ep}/events", json={"name": "naloxone.given"})
            assert met.status_code in (200, 201), met.text
            assert app.dispatcher.flush(60)
    finally:
        server.stop()
        logging.getLogger("carepath.dispatch").removeHandler(listener)
    with Session(app.engine) as session:
        inbound = session.exec(select(InboundEventRecord).where(InboundEventRecord.episode_id == ep)).all()
    assert [i.status for i in inbound] == ["applied"]
    failed = [r for r in logged if "not done (the sweep will)" in r.getMessage()]
    assert failed and all(r.exc_info is None and "not answering" in r.getMessage() for r in failed)

    command = dispatching_app(settings, deferred=False)
    with pytest.raises(OrchestrationError, match="is not answering"):
        record_event(command, ep, "clinic.completed")
    assert len(_inbound_ids(app, ep)) == 1, "refused before anything was stored"
    command.close()
    app.close()
