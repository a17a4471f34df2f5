"""Carepath's Prefect primitives against a real local Prefect server and a real serving subprocess.

What a deadline relies on: a scheduled run runs once, near its time, never early; one key makes one run; a
cancelled run never runs; and a run survives the serving process being killed (SIGKILL), including a run that
process had already picked up.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from carepath_harness import LOAD_ALLOWANCE
from prefect_apps.echo import DEPLOYMENT, ECHO_FILE_ENV

from engine.errors import OrchestrationError
from engine.orchestration.prefect_api import (
    DEFAULT_PREFETCH_SECONDS,
    cancel_flow_run,
    ensure_zombie_automation,
    get_run_state,
    publish_artifacts,
    publish_markdown_artifact,
    publish_table_artifact,
    reschedule_flow_run,
    run_sync,
    schedule_deployment_run,
    schedule_shared_run,
    wait_for_deployments,
)
from engine.orchestration.server import api_reachable, free_port, start_local_server

if TYPE_CHECKING:
    from prefect_harness import ServeProcess, ServeProcessFactory

pytest_plugins = ["prefect_harness"]
pytestmark = pytest.mark.prefect

#: How late a run may start on a loaded 2-core machine and still count as "on time" here.
LATE_TOLERANCE = 6.0
#: How early: the server holds runs until their time, rounding the wait to whole seconds.
EARLY_TOLERANCE = 1.0


@dataclass
class Echo:
    """The served echo deployment, its output file, and a way to crash and restart its serving process."""

    start_process: ServeProcessFactory
    out: Path
    logs: Path
    serve: ServeProcess | None = None

    def start(self) -> None:
        started = datetime.now(UTC)
        self.serve = self.start_process(
            "tests.prefect_apps.echo", log_path=self.logs, env={ECHO_FILE_ENV: str(self.out)}
        )
        run_sync(wait_for_deployments([DEPLOYMENT], timeout=60, polled_since=started))

    def kill(self) -> None:
        assert self.serve is not None
        self.serve.kill()

    def records(self, episode_id: str) -> list[dict[str, Any]]:
        if not self.out.exists():
            return []
        lines = self.out.read_text().splitlines()
        return [r for r in map(json.loads, lines) if r["episode_id"] == episode_id]

    def wait_for(self, episode_id: str, timeout: float = 45.0) -> dict[str, Any]:
        found = _poll(lambda: self.records(episode_id), timeout, f"no run of {episode_id} within {timeout:.0f} s")
        return found[0]


@pytest.fixture(scope="module")
def echo(serve_process: ServeProcessFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Echo]:
    base = tmp_path_factory.mktemp("echo")
    served = Echo(start_process=serve_process, out=base / "echo.jsonl", logs=base / "serve.log")
    served.start()
    yield served
    if served.serve is not None:
        served.serve.stop(grace=5)


def _poll(probe: Callable[[], Any], timeout: float, message: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := probe():
            return value
        time.sleep(0.2)
    raise AssertionError(message)


def _schedule(episode_id: str, at: datetime, key: str | None = None, **kwargs: Any) -> uuid.UUID:
    return run_sync(
        schedule_deployment_run(
            DEPLOYMENT, {"episode_id": episode_id}, at=at, idempotency_key=key or f"key-{episode_id}", **kwargs
        )
    )


def _episode() -> str:
    return f"ep-{uuid.uuid4().hex[:8]}"


def test_a_scheduled_run_runs_once_near_its_time_with_its_name(echo: Echo) -> None:
    episode = _episode()
    at = datetime.now(UTC) + timedelta(seconds=5)
    run_id = _schedule(episode, at, flow_run_name=f"{episode} · accept by 09:00", tags=["pathway:test"])

    record = echo.wait_for(episode)

    lateness = record["at"] - at.timestamp()
    assert -EARLY_TOLERANCE <= lateness <= LATE_TOLERANCE, f"started {lateness:+.2f} s from its time"
    assert record["run_id"] == str(run_id)
    status = _poll(lambda: (s := run_sync(get_run_state(run_id))) and s.final and s, 15, "run did not finish")
    assert (status.state_type, status.name) == ("COMPLETED", f"{episode} · accept by 09:00")
    time.sleep(1)  # a duplicate execution would show up right behind the first
    assert len(echo.records(episode)) == 1
    # A finished run is left alone.
    assert run_sync(cancel_flow_run(run_id)) is False
    assert run_sync(reschedule_flow_run(run_id, datetime.now(UTC))) is False
    assert run_sync(get_run_state(run_id)).state_type == "COMPLETED"


def test_the_same_idempotency_key_makes_one_run(echo: Echo) -> None:
    episode = _episode()
    at = datetime.now(UTC) + timedelta(seconds=2)
    first = _schedule(episode, at, key=f"rung-{episode}")
    again = _schedule(episode, at + timedelta(seconds=30), key=f"rung-{episode}")  # new time ignored
    assert again == first

    sentinel = _episode()
    _schedule(sentinel, at + timedelta(seconds=1))  # runs after: by then a duplicate would have run too
    echo.wait_for(episode)
    echo.wait_for(sentinel)
    assert len(echo.records(episode)) == 1


def test_a_shared_run_is_joined_while_waiting_and_never_once_it_ended_however_often(echo: Echo) -> None:
    """A minute's deadline run: callers join it by key while it waits; once it is cancelled or done (every rung in it
    met, again and again in a busy minute), each caller gets a run that has not started, never an ended one."""
    key, at = f"shared-{uuid.uuid4().hex[:8]}", datetime.now(UTC) + timedelta(minutes=30)

    def shared() -> uuid.UUID:
        return run_sync(schedule_shared_run(DEPLOYMENT, {"episode_id": "ep-shared"}, at=at, idempotency_key=key))

    run_id = shared()
    assert shared() == run_id, "a waiting run is joined"
    seen = {run_id}
    for _ in range(12):  # more ends than the generations a key tries
        assert run_sync(cancel_flow_run(run_id)) is True
        run_id = shared()
        assert run_id not in seen, "an ended run was handed out again"
        assert run_sync(get_run_state(run_id)).state_type == "SCHEDULED"
        assert shared() == run_id, "the new run is joined in turn"
        seen.add(run_id)
    for run in seen:  # nothing left to start a process for
        run_sync(cancel_flow_run(run))


def test_a_busy_minute_joins_its_run_from_memory_until_shortly_before_its_time(
    echo: Echo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every follow-up of a busy minute joins the minute's run: within a few seconds they reuse the run this process
    already found instead of asking the server again (each ask is a write on it), but never once the run's time is
    near (it may start), and never a run this process cancelled."""
    from engine.orchestration.prefect_api import runs

    asked: list[str] = []
    create = runs._create_scheduled

    async def counted(client: Any, deployment: str, parameters: Any, at: datetime, key: str, *rest: Any) -> Any:
        asked.append(key)
        return await create(client, deployment, parameters, at, key, *rest)

    monkeypatch.setattr(runs, "_create_scheduled", counted)
    suffix = uuid.uuid4().hex[:8]

    def shared(key: str, at: datetime) -> uuid.UUID:
        return run_sync(schedule_shared_run(DEPLOYMENT, {"episode_id": "ep-shared"}, at=at, idempotency_key=key))

    later = datetime.now(UTC) + timedelta(minutes=30)
    run_id = shared(f"busy-{suffix}", later)
    assert [shared(f"busy-{suffix}", later) for _ in range(5)] == [run_id] * 5
    assert asked == [f"busy-{suffix}"], "the joins within seconds were answered from memory"

    assert run_sync(cancel_flow_run(run_id)) is True
    again = shared(f"busy-{suffix}", later)
    assert again != run_id and len(asked) > 1, "a run this process cancelled is not handed out again"

    near = datetime.now(UTC) + runs.REUSE_UNTIL_BEFORE / 2
    asked.clear()
    near_id = shared(f"near-{suffix}", near)
    assert shared(f"near-{suffix}", near) == near_id
    assert asked == [f"near-{suffix}"] * 2, "a run whose time is near is always asked of the server"
    for run in (again, near_id):
        run_sync(cancel_flow_run(run))


def test_a_batch_of_timers_keeps_the_runs_made_when_another_minute_is_refused(prefect_server: str) -> None:
    """A busy server refusing one minute's run must not cost the batch's other minutes theirs: the runs made are
    returned with the error, so the store links them and only the refused rungs are left for the sweep."""
    from prefect.client.orchestration import get_client

    from engine.app.ports import Timer
    from engine.app.settings import Settings
    from engine.errors import PartlyScheduled
    from engine.orchestration.adapters import PrefectScheduler

    pathway = f"partial{uuid.uuid4().hex[:6]}"

    async def deploy() -> None:  # the pathway's deadline deployment, as `carepath up` registers it
        async with get_client() as client:
            flow_id = await client.create_flow_from_name(f"{pathway}-deadline")
            await client.create_deployment(flow_id=flow_id, name=pathway)

    run_sync(deploy())
    later = datetime.now(UTC) + timedelta(minutes=30)
    timers = [
        Timer(f"ep-1/{n}#r0", "ep-1", p, later + timedelta(minutes=n), f"rung {n}", ("deadline",))
        for n, p in enumerate((pathway, "undeployed", pathway))
    ]
    with pytest.raises(PartlyScheduled, match=r"1 of 3 run\(s\) not scheduled: .*undeployed") as refused:
        PrefectScheduler(Settings.from_env({"PREFECT_API_URL": prefect_server})).schedule(timers)
    made = refused.value.scheduled
    assert sorted(made) == ["ep-1/0#r0", "ep-1/2#r0"] and len(set(made.values())) == 2
    states = [run_sync(get_run_state(run)) for run in made.values()]
    assert all(s is not None and s.state_type == "SCHEDULED" for s in states)
    for run in made.values():
        run_sync(cancel_flow_run(run))


def test_a_run_whose_deadlines_were_met_ends_met_while_waiting_and_cancelled_once_picked_up(echo: Echo) -> None:
    far, near = _episode(), _episode()
    now = datetime.now(UTC)
    far_run = _schedule(far, now + timedelta(seconds=DEFAULT_PREFETCH_SECONDS + 60))
    near_run = _schedule(near, now + timedelta(seconds=4))
    _poll(lambda: run_sync(get_run_state(near_run)).state_type == "PENDING", 10, "the near run was not picked up")
    assert run_sync(cancel_flow_run(far_run, met=True)) is True
    assert (s := run_sync(get_run_state(far_run))) and (s.state_type, s.state_name) == ("COMPLETED", "Met")
    assert run_sync(cancel_flow_run(near_run, met=True)) is True  # its process waits: only Cancelling stops it
    _poll(lambda: run_sync(get_run_state(near_run)).state_type == "CANCELLED", 30, "the picked-up run was not stopped")
    time.sleep(6)  # past the near run's time: it must not have run
    assert echo.records(near) == [] and echo.records(far) == []


def test_a_cancelled_run_never_runs_whether_scheduled_or_already_picked_up(echo: Echo) -> None:
    far, near, sentinel = _episode(), _episode(), _episode()
    now = datetime.now(UTC)
    far_run = _schedule(far, now + timedelta(seconds=DEFAULT_PREFETCH_SECONDS + 60))
    near_run = _schedule(near, now + timedelta(seconds=4))
    # Within the prefetch window the serving process takes the run (Pending) and waits for its time.
    _poll(lambda: run_sync(get_run_state(near_run)).state_type == "PENDING", 10, "the near run was not picked up")

    assert run_sync(cancel_flow_run(far_run)) is True
    assert run_sync(cancel_flow_run(near_run)) is True
    assert run_sync(cancel_flow_run(str(near_run))) is True  # already cancelled: still True
    assert run_sync(get_run_state(far_run)).state_type == "CANCELLED"
    # The serving process kills the waiting child, then marks the run Cancelled.
    _poll(lambda: run_sync(get_run_state(near_run)).state_type == "CANCELLED", 15, "the near run was not cancelled")

    _schedule(sentinel, now + timedelta(seconds=4.5))  # due after the cancelled one: once it ran, that one would have
    echo.wait_for(sentinel)
    time.sleep(1)
    assert echo.records(near) == []
    assert run_sync(get_run_state(near_run)).state_type == "CANCELLED"


def test_a_rescheduled_run_runs_at_its_new_time(echo: Echo) -> None:
    episode = _episode()
    run_id = _schedule(episode, datetime.now(UTC) + timedelta(hours=1))
    at = datetime.now(UTC) + timedelta(seconds=8)  # room for a poll and the process start

    assert run_sync(reschedule_flow_run(run_id, at)) is True

    record = echo.wait_for(episode)
    assert -EARLY_TOLERANCE <= record["at"] - at.timestamp() <= LATE_TOLERANCE


def test_runs_survive_a_killed_serving_process_and_run_once_after_restart(echo: Echo) -> None:
    picked, while_down = _episode(), _episode()
    picked_at = datetime.now(UTC) + timedelta(seconds=5)
    picked_run = _schedule(picked, picked_at)
    _poll(lambda: run_sync(get_run_state(picked_run)).state_type == "PENDING", 10, "run was not picked up")

    echo.kill()  # SIGKILL: the picked-up run is orphaned in Pending, the next one has nobody to run it
    down_at = datetime.now(UTC) + timedelta(seconds=1)
    down_run = _schedule(while_down, down_at)
    _poll(lambda: datetime.now(UTC) > picked_at + timedelta(seconds=1), 15, "clock")
    assert run_sync(get_run_state(down_run)).state_type == "SCHEDULED"
    assert echo.records(picked) == [] and echo.records(while_down) == []

    echo.start()

    assert echo.wait_for(picked)["run_id"] == str(picked_run)
    assert echo.wait_for(while_down)["run_id"] == str(down_run)
    for run_id in (picked_run, down_run):
        _poll(lambda run_id=run_id: run_sync(get_run_state(run_id)).final, 15, "run did not finish")
    assert len(echo.records(picked)) == 1 and len(echo.records(while_down)) == 1


def test_a_run_whose_process_died_before_its_first_heartbeat_is_crashed(prefect_server: str) -> None:
    """A command killed mid-burst left runs that had never sent a heartbeat (they are sent in the background), in
    Pending or Running, and nothing ever ended them. The server's own state events now start the watch."""
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.states import Pending, Running

    @flow(name="carepath-test-killed")
    def killed() -> None:  # never run: its runs stand for a process killed before it could report
        pass

    window = run_sync(ensure_zombie_automation())
    assert window is not None, "heartbeats are on in the tests (conftest)"

    async def orphans() -> list[uuid.UUID]:
        async with get_client() as client:
            pending = await client.create_flow_run(killed, name="killed-while-pending", state=Pending())
            running = await client.create_flow_run(killed, name="killed-while-running", state=Pending())
            await client.set_flow_run_state(running.id, Running())
            return [pending.id, running.id]

    runs = run_sync(orphans())
    states = lambda: [run_sync(get_run_state(r)) for r in runs]  # noqa: E731
    _poll(
        lambda: all(s is not None and s.state_type == "CRASHED" for s in states()),
        window.total_seconds() + 60 + LOAD_ALLOWANCE,
        f"runs left non-final: {[(s.name, s.state_type) for s in states() if s]}",
    )


def test_bad_parameters_and_unknown_deployments_are_one_line_errors(prefect_server: str) -> None:
    at = datetime.now(UTC) + timedelta(hours=1)
    with pytest.raises(OrchestrationError) as bad:
        run_sync(schedule_deployment_run(DEPLOYMENT, {"episode_id": "ep-1", "rung": "x"}, at, "key-bad-params"))
    assert "\n" not in str(bad.value) and DEPLOYMENT in str(bad.value)

    with pytest.raises(OrchestrationError, match="no deployment named 'nope/deadline'"):
        run_sync(schedule_deployment_run("nope/deadline", {}, at, "key-unknown"))
    with pytest.raises(OrchestrationError, match="not registered within 0 s: nope/deadline"):
        run_sync(wait_for_deployments(["nope/deadline"], timeout=0))


def test_artifacts_publish_new_versions_under_one_key(prefect_server: str) -> None:
    key = f"episode-{uuid.uuid4().hex[:8]}"
    run_sync(publish_markdown_artifact(key, "# ep-1\nstage: detox", "Episode ep-1"))
    run_sync(publish_markdown_artifact(key, "# ep-1\nstage: residential", "Episode ep-1"))
    run_sync(publish_table_artifact("open-escalations-test", [{"episode": "ep-1", "rung": 1}], "Open escalations"))

    latest = httpx.post(f"{prefect_server}/artifacts/latest/filter", json={"artifacts": {"key": {"any_": [key]}}})
    latest.raise_for_status()
    assert [a["data"] for a in latest.json()] == ["# ep-1\nstage: residential"]
    with pytest.raises(OrchestrationError, match="artifact key 'Episode_1'"):
        run_sync(publish_markdown_artifact("Episode_1", "x"))


def test_a_batch_of_artifacts_is_published_each_whatever_another_does(prefect_server: str) -> None:
    episode = f"ep-{uuid.uuid4().hex[:8]}"
    batch = [
        (f"episode-{episode}", f"# {episode}\nstage: detox", "Episode"),
        ("Not_A_Key", "refused", None),
        (f"meds-{episode}", [{"kind": "omission", "critical": True}], "Meds"),
    ]
    failed = run_sync(publish_artifacts(batch, 3))

    assert len(failed) == 1 and "artifact key 'Not_A_Key'" in failed[0]
    keys = [f"episode-{episode}", f"meds-{episode}"]
    latest = httpx.post(f"{prefect_server}/artifacts/latest/filter", json={"artifacts": {"key": {"any_": keys}}})
    latest.raise_for_status()
    found = {a["key"]: (a["type"], a["data"]) for a in latest.json()}
    assert found == {
        keys[0]: ("markdown", f"# {episode}\nstage: detox"),
        keys[1]: ("table", json.dumps([{"kind": "omission", "critical": True}])),
    }


def test_calls_without_a_server_fail_with_a_clear_message(prefect_server: str) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: None}), pytest.raises(OrchestrationError, match="not set"):
        run_sync(get_run_state(uuid.uuid4()))
    dead = f"http://127.0.0.1:{free_port()}/api"
    assert not api_reachable(dead)
    assert run_sync(cancel_flow_run(uuid.uuid4())) is False
    assert run_sync(get_run_state(uuid.uuid4())) is None
    with pytest.raises(OrchestrationError, match="'not-a-run' is not a flow run id"):
        run_sync(cancel_flow_run("not-a-run"))


def test_a_server_that_does_not_come_up_is_an_error_and_leaves_no_process(tmp_path: Path) -> None:
    port = free_port()
    with pytest.raises(OrchestrationError, match="did not answer") as failed:
        start_local_server(tmp_path / "home", port, log_path=tmp_path / "server.log", timeout=0.5)
    assert "server.log" in str(failed.value)
    assert not [cmd for cmd in _command_lines() if "server" in cmd and f"--port {port}" in cmd]


def _command_lines() -> list[str]:
    lines = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            lines.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return lines
