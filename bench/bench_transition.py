"""Benchmark: one care transition through Carepath against a hand-written Prefect flow doing the same work.

The transition is ``assessment.completed`` on ``detox-to-aftercare`` (assessment -> withdrawal-management): it
opens a handoff with its steps, a reconciliation, tasks and a check-in, and closes the assessment's work. One run
of this module, in a temporary folder:

1. starts a local Prefect server (``engine.orchestration.server``; SQLite unless ``--prefect-db postgresql``) and
   a serving process (``python -m flows.serve``, what ``carepath up`` runs against a given server) for every
   pathway's deployments; the store's clock is the wall clock, so no deadline fires during the run;
2. prepares ``2 x (N + warm-up)`` episodes the same way (enroll, a TPO consent, the three screening events, then
   their open deadlines scheduled through Carepath's scheduler), so every episode starts alike;
3. times, alternating the two (ABBA) so a busy machine hurts both alike:

   - Carepath: ``engine.app.record_event`` on the App ``engine.cli.episodes.cli_app`` builds (production wiring,
     ``engine.orchestration.wiring.production_app``), exactly what ``carepath event EP assessment.completed``
     runs: input checks, a health check of the server, the event stored, the pathway's event flow as an
     in-process flow run (apply; the follow-up: runs of closed rungs cancelled, timers scheduled as runs of the
     deadline deployment, the episode's artifact; the run renamed for what it did), then the result read back;
   - hand-written: a plain async Prefect flow doing the same Prefect work, no tasks (Carepath's flow has none):
     the same ``EpisodeService.record_event``, the rungs to schedule with one SQLAlchemy Core select (the lowest
     pending rung of each open work item without a run), the same deadline deployment's runs created one after
     the other (``--hand-concurrency`` to overlap them; idempotency key = rung id) and their ids written back in
     one UPDATE, the runs of the rungs the event closed set ``Cancelling`` (as Carepath does), one markdown
     artifact. Its parameters are the episode id and the event name: the payload stays in this process, as
     Carepath keeps it in the store;

4. prints the median and p90 wall time (and this process's CPU time) per transition, how often the Prefect
   client had to retry after an HTTP 503, the ratio, the flow run's span as the server recorded it against the
   time around it, and the HTTP calls each side made per transition; everything is stopped at the end.

Both sides must do the same Prefect work: the benchmark stops if a transition lands in another stage, or if the
two sides create a different number of deadline runs or artifacts, or cancel a different number of runs (the
runs of closed rungs are read back from the server at the end: all must be cancelled).
Exit status 1 when Carepath misses the aim (median within 10% of hand-written).

Run from the repository root::

    .venv/bin/python -m bench.bench_transition                  # 20 transitions each, after 3 warm-ups each
    .venv/bin/python -m bench.bench_transition --prefect-db postgresql --transitions 40
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from bench.transition_report import AIM, Sample, Side, flow_spans, report, run_states
from bench.transition_support import (
    ApiCalls,
    RetryCounter,
    Stopper,
    configure_environment,
    prefect_database,
    start_serving,
)

__all__ = ["Shape", "build_handwritten", "carepath_transition", "main", "prepare_episodes"]

PATHWAY = "detox-to-aftercare"
EVENT = "assessment.completed"
DATA = {"insurance": "medicaid", "needs_withdrawal_management": True}
SCREENINGS = ("medical-screening.completed", "psychiatric-screening.completed", "social-needs-screening.completed")
FROM_STAGE, TO_STAGE = "assessment", "withdrawal-management"
HAND_FLOW = "handwritten-transition"
CREATE_RUN, ARTIFACT = "POST /deployments/{id}/create_flow_run", "POST /artifacts/"


@dataclass(frozen=True)
class Shape:
    """What one transition does in Prefect: deadline runs created, runs cancelled, artifacts published."""

    scheduled: int
    cancelled: int
    artifacts: int

    def describe(self) -> str:
        return (
            f"1 event applied in the store, {self.scheduled} deadline runs created, {self.cancelled} runs cancelled, "
            f"{self.artifacts} artifact(s)"
        )


# ---------------------------------------------------------------------------------------------- episodes


def prepare_episodes(app: Any, count: int) -> list[str]:
    """``count`` episodes in ``assessment`` with the screenings done and every open deadline scheduled.

    The store work goes through the service, then the pending rungs of all the episodes are scheduled in batches
    through Carepath's own scheduling (``engine.app.schedule_timers``): the end state of running the enroll and
    screening commands one by one, in a fraction of the time.
    """
    from engine.app import schedule_timers
    from engine.episode.domain.consent import single_tpo_consent

    episodes = []
    for n in range(count):
        person = f"P-BENCH-{n + 1:03d}"  # synthetic; stays in the store
        episode_id = app.service.enroll(PATHWAY, person).episode_id
        consent = single_tpo_consent(
            f"cn-{episode_id}",
            person,
            discloser="Carepath bench program",
            information="SUD diagnosis, medications and referral details",
            signed_on=date(2026, 1, 1),
        )
        app.service.add_consent(episode_id, consent)
        for name in SCREENINGS:
            app.service.record_event(episode_id, name, {})
        stage = app.service.episode(episode_id).stage
        if stage != FROM_STAGE:
            raise RuntimeError(f"{episode_id}: expected stage {FROM_STAGE!r} after the screenings, got {stage!r}")
        episodes.append(episode_id)
    while schedule_timers(app, None, 200):
        pass
    return episodes


def rung_snapshot(app: Any, episode_id: str) -> dict[str, tuple[str, str | None]]:
    """rung id -> (status, flow run id)."""
    from sqlmodel import Session, select

    from engine.store import RungRecord

    with Session(app.engine) as s:
        rows = s.exec(
            select(RungRecord.id, RungRecord.status, RungRecord.flow_run_id).where(RungRecord.episode_id == episode_id)
        ).all()
    return {r: (status, run) for r, status, run in rows}


def store_shape(before: dict[str, tuple[str, str | None]], after: dict[str, tuple[str, str | None]]) -> Sample:
    """What a transition did to the rungs (before and after it): how many it gave a run, the runs of those it
    closed (to cancel); the timings are filled in by the caller."""
    given = sum(1 for r, (_s, run) in after.items() if run and (r not in before or before[r][1] is None))
    closed = [run for r, (s, run) in before.items() if s == "pending" and run and after[r][0] != "pending"]
    return Sample("", 0.0, 0.0, given, closed)


# ------------------------------------------------------------------------------------------ the two sides


def timed(call: Callable[[], Any]) -> tuple[Any, float, float]:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = call()
    return result, (time.perf_counter() - wall0) * 1000, (time.process_time() - cpu0) * 1000


def carepath_transition(app: Any, episode_id: str) -> Sample:
    """``carepath event EPISODE assessment.completed --data ...`` in-process (the CLI's ``_event`` without the
    print)."""
    from engine.app import record_event

    before = rung_snapshot(app, episode_id)
    result, wall, cpu = timed(lambda: record_event(app, episode_id, EVENT, dict(DATA)))
    if result.stage != TO_STAGE or result.status != "applied":
        raise RuntimeError(f"{episode_id}: Carepath's transition ended {result.status} in {result.stage!r}")
    return replace(store_shape(before, rung_snapshot(app, episode_id)), episode_id=episode_id, wall_ms=wall, cpu_ms=cpu)


def build_handwritten(app: Any, deployment_id: Any, concurrency: int = 1) -> Callable[..., Any]:
    """The same Prefect work, written directly against Prefect and SQLAlchemy (``concurrency``: API calls in flight
    at once when creating or cancelling runs; 1 is the plain loop anyone would write, Carepath overlaps 3)."""
    from prefect import flow
    from prefect.artifacts import acreate_markdown_artifact
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelling, Scheduled
    from sqlalchemy import bindparam, func, select, update
    from sqlalchemy.orm import aliased

    from engine.store import RungRecord, WorkItemRecord

    service, engine, clock = app.service, app.engine, app.clock
    rung, item = RungRecord.__table__, WorkItemRecord.__table__  # type: ignore[attr-defined]
    other = aliased(rung)
    lowest = (
        select(func.min(other.c.index))
        .where(other.c.work_item_id == rung.c.work_item_id, other.c.status == "pending")
        .scalar_subquery()
    )

    @flow(name=HAND_FLOW, flow_run_name="{episode_id} · {event}")
    async def transition(episode_id: str, event: str) -> dict[str, Any]:
        changes = service.record_event(episode_id, event, dict(DATA))
        query = (
            select(rung.c.id, rung.c.due_at)
            .join(item, item.c.id == rung.c.work_item_id)
            .where(
                rung.c.episode_id == episode_id,
                rung.c.status == "pending",
                rung.c.flow_run_id.is_(None),
                item.c.status == "open",
                rung.c.index == lowest,
            )
        )
        with engine.connect() as conn:
            rungs = [(r, due.replace(tzinfo=due.tzinfo or UTC)) for r, due in conn.execute(query)]
        limit = asyncio.Semaphore(concurrency)
        async with get_client() as client:

            async def create(rung_id: str, due: datetime) -> dict[str, str]:
                async with limit:
                    run = await client.create_flow_run_from_deployment(
                        deployment_id,
                        parameters={"episode_id": episode_id, "rung_id": rung_id},
                        state=Scheduled(scheduled_time=clock.wall_time(due)),
                        idempotency_key=rung_id,
                        tags=[f"pathway:{PATHWAY}", "deadline"],
                    )
                return {"rid": rung_id, "run": str(run.id)}

            async def cancel(run_id: str) -> None:
                async with limit:
                    await client.set_flow_run_state(run_id, Cancelling(message="cancelled by the hand-written flow"))

            rows = await asyncio.gather(*(create(r, due) for r, due in rungs))
            await asyncio.gather(*(cancel(r) for r in changes.cancel_runs))
        if rows:
            with engine.begin() as conn:
                conn.execute(
                    update(rung).where(rung.c.id == bindparam("rid")).values(flow_run_id=bindparam("run")), rows
                )
        lines = [f"# {episode_id}", f"stage: **{changes.stage}**", "", "| next deadline | due |", "|---|---|"]
        lines += [f"| {rung_id} | {due:%Y-%m-%d %H:%M} |" for rung_id, due in rungs]
        await acreate_markdown_artifact(key=f"hand-{episode_id}", markdown="\n".join(lines), description="bench")
        return {"stage": changes.stage, "cancelled": len(changes.cancel_runs)}

    return transition


def handwritten_transition(flow: Callable[..., Any], app: Any, episode_id: str) -> Sample:
    before = rung_snapshot(app, episode_id)
    state, wall, cpu = timed(lambda: asyncio.run(flow(episode_id, EVENT, return_state=True)))
    if not state.is_completed():
        raise RuntimeError(f"the hand-written flow failed on {episode_id}: {state.message}")
    done = state.result()
    if done["stage"] != TO_STAGE:
        raise RuntimeError(f"{episode_id}: the hand-written transition ended in {done['stage']!r}")
    sample = store_shape(before, rung_snapshot(app, episode_id))
    if done["cancelled"] != len(sample.to_cancel):
        raise RuntimeError(
            f"{episode_id}: the hand-written flow cancelled {done['cancelled']} runs, not {sample.to_cancel}"
        )
    return replace(sample, episode_id=episode_id, wall_ms=wall, cpu_ms=cpu)


# ------------------------------------------------------------------------------------------------ report


# --------------------------------------------------------------------------------------------------- main


def run(
    transitions: int, warmup: int, folder: Path, concurrency: int, prefect_db: str | None, stopper: Stopper
) -> float:
    from engine.orchestration.server import start_local_server, stop_process_group

    started = time.monotonic()
    stopper.cleanups.append(lambda: shutil.rmtree(folder, ignore_errors=True))
    server = start_local_server(folder / "prefect", log_path=folder / "prefect-server.log", database_url=prefect_db)
    stopper.cleanups.append(lambda: server.stop(grace=5))
    serving: subprocess.Popen[bytes] | None = None
    app: Any = None
    try:
        stopper.check()
        env = configure_environment(folder / "carepath", folder / "prefect-client", server.api_url)
        from engine.app.pathways import register_pathways
        from engine.cli.episodes import cli_app

        app = cli_app()  # what `carepath event` builds: settings from the environment, the production ports
        specs = register_pathways(app, app.settings.pathways)

        from engine.orchestration.adapters import deployment_name
        from engine.orchestration.deployments import SWEEP_DEPLOYMENT
        from engine.orchestration.flows import FLOW_PURPOSES
        from engine.orchestration.prefect_api import run_sync, wait_for_deployments

        names = [deployment_name(s.id, kind) for s in specs for kind in FLOW_PURPOSES] + [SWEEP_DEPLOYMENT]
        since = datetime.now(UTC)
        serving = start_serving(env, folder / "serve.log")
        stopper.cleanups.append(lambda: stop_process_group(serving, grace=5) if serving else None)
        ids = run_sync(wait_for_deployments(names, 180, polled_since=since))
        print(f"setup: server and serving process up in {time.monotonic() - started:.0f} s", flush=True)
        stopper.check()

        count = 2 * (transitions + warmup)
        t0 = time.monotonic()
        episodes = prepare_episodes(app, count)
        print(f"setup: {count} episodes enrolled, screened and scheduled in {time.monotonic() - t0:.0f} s", flush=True)
        stopper.check()

        handwritten = build_handwritten(app, ids[deployment_name(PATHWAY, "deadline")], concurrency)
        retries, calls = RetryCounter().install(), ApiCalls().install()
        sides = (Side("carepath"), Side("hand-written"))
        shape: Shape | None = None

        def once(index: int, episode_id: str) -> Sample:
            nonlocal shape
            before_retries, before_calls = retries.count, calls.snapshot()
            if index == 0:
                sample = carepath_transition(app, episode_id)
            else:
                sample = handwritten_transition(handwritten, app, episode_id)
            sample.retries = retries.count - before_retries
            sample.calls.update(calls.snapshot() - before_calls)
            got = Shape(sample.calls[CREATE_RUN], len(sample.to_cancel), sample.calls[ARTIFACT])
            if sample.given != got.scheduled:
                raise RuntimeError(f"{episode_id}: {got.scheduled} runs created, {sample.given} stored")
            if shape is None:
                shape = got
                print(f"each transition: {shape.describe()}", flush=True)
            elif got != shape:
                raise RuntimeError(f"{episode_id}: {sides[index].label} did other work: {got} != {shape}")
            return sample

        queue = iter(episodes)
        t0 = time.monotonic()
        for i in range(transitions + warmup):
            order = (0, 1) if i % 2 == 0 else (1, 0)  # ABBA: each side goes first half of the time
            for index in order:
                stopper.check()
                sample = once(index, next(queue))
                if i >= warmup:
                    sides[index].samples.append(sample)
        print(
            f"timed: {transitions} transitions each after {warmup} warm-ups each, alternated, "
            f"in {time.monotonic() - t0:.0f} s\n",
            flush=True,
        )
        time.sleep(2)  # flow run states reach the server as events: let the last ones land
        states = run_sync(run_states([r for side in sides for s in side.samples for r in s.to_cancel]))
        for side in sides:
            runs = [r for s in side.samples for r in s.to_cancel]
            if any(states.get(r) not in ("CANCELLED", "CANCELLING") for r in runs):
                raise RuntimeError(f"{side.label}: runs of closed rungs not cancelled: {states}")
        print(f"checked: the {len(states)} runs of the rungs the transitions closed are cancelled on the server")
        spans = run_sync(flow_spans([f"{PATHWAY}-event", HAND_FLOW]))
        return report(sides, spans)
    finally:
        if serving is not None:
            stop_process_group(serving, grace=15)
        server.stop()
        if app is not None:
            app.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_transition", description=__doc__.splitlines()[0])
    parser.add_argument("--transitions", type=int, default=20, help="timed transitions per side (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed transitions per side first (default 3)")
    parser.add_argument(
        "--hand-concurrency",
        type=int,
        default=1,
        metavar="N",
        help="API calls the hand-written flow makes at once when scheduling or cancelling (default 1: a plain loop)",
    )
    parser.add_argument(
        "--prefect-db",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="the Prefect server's database (default sqlite, as `carepath up`; the Carepath store stays SQLite)",
    )
    args = parser.parse_args(argv)
    if min(args.transitions, args.warmup, args.hand_concurrency) < 1:
        parser.error("--transitions, --warmup and --hand-concurrency must be at least 1")
    load = os.getloadavg()
    print(
        f"carepath bench: transition {FROM_STAGE} -> {TO_STAGE} ({PATHWAY}), Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at start; "
        f"Prefect server on {args.prefect_db}, store on sqlite",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="carepath-bench-", ignore_cleanup_errors=True) as folder:
        try:
            with Stopper() as stopper, prefect_database(args.prefect_db, stopper) as prefect_db:
                ratio = run(args.transitions, args.warmup, Path(folder), args.hand_concurrency, prefect_db, stopper)
        except KeyboardInterrupt:
            print("interrupted; everything stopped", file=sys.stderr)
            return 130
        except Exception as exc:  # one line for the user, never a traceback
            print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
            with contextlib.suppress(OSError):
                tail = (Path(folder) / "serve.log").read_text(errors="replace").splitlines()[-5:]
                print("serve.log (last lines):\n" + "\n".join(tail), file=sys.stderr)
            return 1
    return 0 if ratio <= AIM else 1


if __name__ == "__main__":
    sys.exit(main())
