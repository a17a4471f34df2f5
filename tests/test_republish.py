"""What operators see in Prefect catches up with the store: an episode whose follow-up never published its
artifacts (the publisher failed, the follow-up was dropped while Prefect was down, its process died) is published
again by the sweep, from the store as it stands, and counts as shown only once a publisher took it.

In-memory ports and a manual clock, on SQLite and PostgreSQL, with the bridge pathway written for the app tests;
the migration on both backends.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Sequence
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, text
from sqlmodel import Session
from store_fixtures import BACKENDS, downgrade_to, upgrade_to
from test_answer_first import Deferring
from test_app import advance, bridge_app

from engine import store
from engine.app import App, enroll, record_event, sweep
from engine.app.inline import MemoryPublisher
from engine.app.ports import Artifact, SweepReport
from engine.app.sweep import REPUBLISH_AFTER, has_work, sweep_tick
from engine.episode.domain.consent import single_tpo_consent
from engine.errors import OrchestrationError
from engine.store import EpisodeRecord


class FlakyPublisher(MemoryPublisher):
    """A publisher that refuses while ``down`` (Prefect not answering), counting what it was asked meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.refused: list[str] = []

    def publish(self, artifacts: Sequence[Artifact]) -> None:
        if self.down:
            self.refused += [a.key for a in artifacts]
            raise OrchestrationError("the Prefect server at http://127.0.0.1:1 is not answering")
        super().publish(artifacts)


class DownForSweeps(Deferring):
    """The API's dispatcher while Prefect is down: follow-ups never run, a sweep cannot become a flow run."""

    def __init__(self) -> None:
        super().__init__()
        self.sweeps_refused = False

    def sweep(self) -> SweepReport:
        if self.sweeps_refused:
            raise OrchestrationError("the Prefect server at http://127.0.0.1:1 is not answering")
        return super().sweep()


@pytest.fixture(params=BACKENDS)
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    with bridge_app(request.param, tmp_path) as app:
        app.publisher = FlakyPublisher()
        yield app


def publisher(app: App) -> FlakyPublisher:
    assert isinstance(app.publisher, FlakyPublisher)
    return app.publisher


def revisions(app: App, episode_id: str) -> tuple[int, int]:
    """(revision, published_revision) of the episode."""
    with Session(app.engine) as session:
        episode = session.get(EpisodeRecord, episode_id)
    assert episode is not None
    return episode.revision, episode.published_revision


def artifact(app: App, episode_id: str) -> str:
    shown = publisher(app).artifacts.get(f"episode-{episode_id}".lower())
    assert isinstance(shown, str), f"no artifact for {episode_id}"
    return shown


def _discharged(app: App, episode_id: str) -> None:
    consent = single_tpo_consent(
        f"cn-{episode_id}", "P-REP", discloser="Test ED", information="referral", signed_on=date(2026, 1, 1)
    )
    app.service.add_consent(episode_id, consent)
    assert record_event(app, episode_id, "ed.discharged").stage == "clinic"


def _publisher_failed(app: App) -> None:
    publisher(app).down = True


def _follow_up_dropped(app: App) -> None:
    deferring = Deferring()
    deferring.app = app
    app.dispatcher = deferring  # its queue is never run: the process died, or Prefect refused it


@pytest.mark.parametrize("trigger", [_publisher_failed, _follow_up_dropped], ids=["publisher-failed", "dropped"])
def test_an_episode_whose_artifacts_were_not_published_is_published_again_by_the_sweep(
    app: App, trigger: Callable[[App], None]
) -> None:
    """Whichever way the follow-up's publishing was lost, the episode stays behind in the store until a sweep pass
    publishes it, showing the store's current state; then it is caught up and the next pass has nothing to do."""
    ep = enroll(app, "bridge-test", "P-REP-001")
    assert revisions(app, ep)[1] == revisions(app, ep)[0] > 0, "a follow-up that published marks the episode shown"
    trigger(app)
    _discharged(app, ep)
    revision, shown = revisions(app, ep)
    assert shown < revision
    assert "clinic" not in artifact(app, ep).lower(), "the artifact still shows the old stage"
    publisher(app).down = False

    advance(app, REPUBLISH_AFTER - timedelta(seconds=1))
    assert not has_work(app), "within REPUBLISH_AFTER a queued follow-up may still publish it"
    assert sweep(app).republished == 0
    advance(app, timedelta(seconds=2))
    assert has_work(app)
    report = sweep(app)

    assert report.republished == 1 and not report.idle
    assert revisions(app, ep) == (revision, revision)
    assert "clinic" in artifact(app, ep).lower()
    assert not has_work(app, thorough=True) and sweep(app).republished == 0


def test_a_pass_publishes_a_bounded_number_and_the_next_passes_the_rest(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a long outage thousands of episodes are behind: one pass publishing them all would hold the sweep (the
    safety net) for minutes, so each pass takes the longest behind, up to REPUBLISH_AT_MOST."""
    episodes = [enroll(app, "bridge-test", f"P-REP-01{n}") for n in range(3)]
    publisher(app).down = True
    for ep in episodes:
        _discharged(app, ep)
        advance(app, timedelta(seconds=10))
    publisher(app).down = False
    advance(app, REPUBLISH_AFTER)
    # engine.app re-exports the sweep function under the module's name: the module itself, by import_module
    monkeypatch.setattr(importlib.import_module("engine.app.sweep"), "REPUBLISH_AT_MOST", 2)

    first = sweep(app)

    assert first.republished == 2 and [revisions(app, ep)[1] < revisions(app, ep)[0] for ep in episodes] == [
        False,
        False,
        True,
    ], "the longest behind first"
    assert has_work(app) and sweep(app).republished == 1 and not has_work(app, thorough=True)


def test_a_pass_run_in_process_while_prefect_is_down_leaves_artifacts_for_the_first_pass_after(app: App) -> None:
    """While Prefect is down the serving process sweeps in process (rungs still fire); publishing would only fail,
    slowly, so it is not tried. The first pass that runs as a flow run again publishes what is behind."""
    ep = enroll(app, "bridge-test", "P-REP-002")
    down = DownForSweeps()
    down.app = app
    app.dispatcher = down
    publisher(app).down = down.sweeps_refused = True
    _discharged(app, ep)
    advance(app, REPUBLISH_AFTER + timedelta(seconds=1))

    report = sweep_tick(app, "test-host:1:aa", thorough=True)

    assert report is not None and report.in_process and report.republished == 0
    assert not [key for key in publisher(app).refused if key.startswith("episode-")], "not tried while Prefect is down"
    assert revisions(app, ep)[1] < revisions(app, ep)[0]
    publisher(app).down = down.sweeps_refused = False
    assert not has_work(app, stalled=True), "a stalled timer's quick look leaves artifacts: the pass would not publish"
    after = sweep_tick(app, "test-host:1:aa", thorough=True, stalled=True)
    assert after is not None and not after.in_process and after.republished == 1
    assert revisions(app, ep)[0] == revisions(app, ep)[1] and "clinic" in artifact(app, ep).lower()


def test_a_publisher_that_keeps_failing_is_reported_and_leaves_the_episode_behind(app: App) -> None:
    ep = enroll(app, "bridge-test", "P-REP-003")
    publisher(app).down = True
    _discharged(app, ep)
    advance(app, REPUBLISH_AFTER + timedelta(seconds=1))

    report = sweep(app)

    assert report.republished == 0 and any("publish artifacts" in p and "not answering" in p for p in report.problems)
    assert revisions(app, ep)[1] < revisions(app, ep)[0]
    assert not has_work(app), "a failing publisher is not retried every tick"
    assert has_work(app, thorough=True), "but every thorough one (5 min)"
    publisher(app).down = False
    assert sweep(app).republished == 1
    publisher(app).down = True  # failing again later: the failure before does not hold back the quick look
    _discharged_again(app, ep)
    advance(app, REPUBLISH_AFTER + timedelta(seconds=1))
    assert has_work(app)


def _discharged_again(app: App, episode_id: str) -> None:
    assert record_event(app, episode_id, "clinic.completed").status == "applied"


def test_published_revisions_never_move_back_and_a_change_while_publishing_stays_behind(app: App) -> None:
    """Two publishers can race (a follow-up and the sweep): the one holding an older revision must not mark a newer
    one as shown; an episode changed after its revision was read for publishing is still behind."""
    ep = enroll(app, "bridge-test", "P-REP-004")
    revision, _ = revisions(app, ep)
    with store.session_scope(app.engine) as session:
        store.mark_published(session, {ep: revision - 1})
    assert revisions(app, ep) == (revision, revision)
    with Session(app.engine) as session:
        read = store.episode_revisions(session, [ep])
    _follow_up_dropped(app)
    _discharged(app, ep)  # lands between the read and the mark
    with store.session_scope(app.engine) as session:
        store.mark_published(session, read)
    later = app.clock.now() + timedelta(seconds=1)
    with Session(app.engine) as session:
        assert store.unpublished_episodes(session, later) == [ep]


@pytest.mark.parametrize("db_url", BACKENDS, indirect=True)
def test_0009_counts_existing_episodes_as_published_and_downgrades_cleanly(empty_engine: Engine) -> None:
    """Episodes stored before the column existed were published by the follow-ups of their day: the upgrade must not
    make the first sweep republish the whole caseload."""
    upgrade_to(empty_engine, "0008")
    with empty_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO pathway_version (pathway_id, version, source_text, source_sha256, registered_at) "
                "VALUES ('p', 1, 'id: p', :sha, '2026-01-01 00:00:00.000000')"
            ),
            {"sha": "0" * 64},
        )
        conn.execute(
            text(
                "INSERT INTO episode (id, person_ref, pathway_id, pathway_version, params, stage, status, facts, visit,"
                " enrolled_at, stage_entered_at, updated_at, revision) VALUES ('ep-old', 'P-OLD', 'p', 1, '{}', 's',"
                " 'active', '{}', 1, '2026-01-01 00:00:00.000000', '2026-01-01 00:00:00.000000',"
                " '2026-01-01 00:00:00.000000', 4)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO stage_visit (episode_id, stage, entered_at) VALUES ('ep-old', 's', "
                "'2026-01-01 00:00:00.000000')"
            )
        )
    store.migrate(empty_engine)
    with Session(empty_engine) as session:
        episode = session.get(EpisodeRecord, "ep-old")
        assert episode is not None and episode.published_revision == 4
        assert store.unpublished_episodes(session, episode.updated_at + timedelta(days=1)) == []
    downgrade_to(empty_engine, "0008")  # with a row referring to the episode (a batch copy of the table failed)
    assert "published_revision" not in {c["name"] for c in inspect(empty_engine).get_columns("episode")}
    store.migrate(empty_engine)
