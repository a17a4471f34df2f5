"""Carepath's Prefect flows: thin wrappers that run one use case of :mod:`engine.app` and name the run after it.

Four flows, compiled per pathway into deployments by :func:`engine.orchestration.deployments.compile_deployments`:

- ``<pathway>-enroll``: follow up a new episode (schedule its timers, publish its artifact);
- ``<pathway>-event``: apply a stored inbound event once (the request normally has), then follow it up;
- ``carepath-requests``: the follow-ups of several requests a long-lived process (the API) answered while its
  previous run was busy, in one run: each listed in its table artifact, their timers scheduled together;
- ``<pathway>-deadline``: the escalation rungs of the pathway due in one wall minute, each at its time; re-checks
  the store before acting;
- ``carepath-sweep``: the safety net (lost runs, unscheduled rungs, undelivered escalations, stuck events, runs
  left behind by crashes), run by each serving process's timer when a tick finds work, or by hand from the UI;
- ``carepath-measures``: the quality measures over the whole store, published as the ``quality-measures``
  table artifact (daily, and by hand from the UI).

How a run ends is what operators see first (:mod:`engine.orchestration.names`): a run that raised escalations
ends ``Escalated`` (``Escalated: critical``), tagged ``escalated``, ``severity:<level>``, ``role:<role>``; a
refused event ends ``Rejected``, tagged ``rejected``, named for what was refused. All are Completed-type states:
Prefect's failed and crashed counts are left to runs where Carepath itself broke.

Every follow-up is :func:`engine.app.follow_up`: no flow writes one of its own. Parameters are opaque ids and
the pathway's event names only; an event's payload stays in the store (the run gets its inbound id).
The use cases are synchronous; each runs in a worker thread so the flow's event loop stays free.
"""

from __future__ import annotations

import asyncio
import csv
import io
from dataclasses import asdict
from typing import Any

from prefect import flow
from prefect.states import Completed, State

from engine.app import App, FollowUp, follow_up_enrollment, process_event, sweep
from engine.app.context import current_app
from engine.app.deadlines import Behind, DeadlineRun, all_met, run_listing
from engine.app.episodes import FollowedRequest, follow_up_requests
from engine.app.settings import Settings
from engine.orchestration.names import (
    REJECTED_TAG,
    deadline_batch_name,
    describe_event,
    episode_run_name,
    escalation_outcome,
    refused_run_name,
    requests_run_name,
    sweep_run_name,
)
from engine.orchestration.prefect_api import (
    MET,
    MET_MESSAGE,
    REJECTED,
    current_run_id,
    publish_table_artifact,
    rename_current_flow_run,
    tag_current_flow_run,
)
from engine.orchestration.wiring import production_app
from engine.store.mapper import Changes

__all__ = [
    "FLOWS",
    "FLOW_PURPOSES",
    "deadline_flow",
    "dispatching_app",
    "enroll_flow",
    "event_flow",
    "flow_app",
    "flow_for",
    "measures_flow",
    "requests_flow",
    "sweep_flow",
]


@flow(name="carepath-enroll", description="Schedule the timers of a newly enrolled episode.")
async def enroll_flow(episode_id: str) -> dict[str, Any]:
    """Schedule every pending deadline of ``episode_id`` (idempotent) and publish its artifact."""
    app = flow_app()
    done = await asyncio.to_thread(follow_up_enrollment, app, episode_id)
    await rename_current_flow_run(await asyncio.to_thread(episode_run_name, app, episode_id, "enrolled"))
    return {"episode": episode_id, "scheduled": done.scheduled}


@flow(name="carepath-event", description="Apply a recorded event to an episode and follow it up.")
async def event_flow(episode_id: str, event: str, inbound_id: str) -> Any:
    """Apply the stored event ``inbound_id`` once; a refused event ends ``Rejected`` and changes nothing."""
    app = flow_app()
    changes, done, refused = await asyncio.to_thread(process_event, app, inbound_id)
    if refused is not None or changes is None:
        await rename_current_flow_run(refused_run_name(episode_id, event, refused))
        await tag_current_flow_run([REJECTED_TAG])
        return Completed(name=REJECTED, message=f"rejected: {refused}")
    what = describe_event(event, changes.moved, changes.duplicate, changes.stage)
    await rename_current_flow_run(await asyncio.to_thread(episode_run_name, app, episode_id, what))
    message = "duplicate event: nothing changed" if changes.duplicate else "applied"
    return await _ending(done.raised if done else [], message, {"escalations": len(done.escalations) if done else 0})


@flow(
    name="carepath-requests",
    description="Follow up several coordinators' requests (enrollments, events) answered while another run was busy.",
)
async def requests_flow(requests: list[dict[str, str]]) -> Any:
    """Follow up each request as its own run would (:func:`engine.app.episodes.follow_up_requests`), list them in a
    table artifact, and end named for what happened. ``requests`` holds ids and event names only."""
    app = flow_app()
    followed = await asyncio.to_thread(follow_up_requests, app, requests)
    rows = [_request_row(one) for one in followed]
    await rename_current_flow_run(requests_run_name(rows))
    await publish_table_artifact(None, rows, description="The requests this run followed up.")
    raised = [r for one in followed if one.done for r in one.done.raised]
    return await _ending(raised, f"{len(rows)} request(s) followed up", {"requests": len(rows)})


def _request_row(one: FollowedRequest) -> dict[str, str]:
    """A row of a requests run's table: the episode, what happened, and what its follow-up did."""
    if one.kind == "enroll":
        what = "enrolled"
    elif one.kind == "acknowledge":
        what = f"acknowledged escalation {one.event}"
    elif one.refused is not None or one.changes is None:
        what = f"refused {one.event} ({one.refused or 'refused'})"
    else:
        what = describe_event(one.event, one.changes.moved, one.changes.duplicate, one.changes.stage)
    done = one.done
    return {
        "episode": one.episode_id,
        "request": what,
        "escalations": str(len(done.escalations) if done else 0),
        "problems": "; ".join(done.problems) if done else "",
    }


@flow(
    name="carepath-deadline",
    description="Escalate, as each comes due, the rungs of one pathway due in one minute if still unmet.",
)
async def deadline_flow(pathway_id: str = "", minute: str = "", episode_id: str = "", rung_id: str = "") -> Any:
    """Fire every rung linked to this run as it comes due (re-checking the store: at most one escalation per rung,
    then each episode's follow-up), list them in a table artifact, and end named for what happened.

    The parameters only label the run: its rungs are the ones the store links to its id (``episode_id`` and
    ``rung_id`` label runs scheduled one per rung by earlier versions, which run the same way). A runner may start
    the run a little early; it waits for each rung's time (a bounded wait) rather than leave it to the sweep, and
    closes itself to new rungs before it ends (:class:`engine.app.deadlines.DeadlineRun`).
    """
    app = flow_app()
    run_id = current_run_id()
    fired: list[tuple[Changes, FollowUp]] = []
    behind = Behind()  # each pass's scheduling and publishing, while the next rungs are fired
    run = DeadlineRun(app, run_id, later=behind)
    try:
        while True:
            step = await asyncio.to_thread(run.step)
            fired += step.fired
            if step.wait is None:
                break
            await asyncio.sleep(max(step.wait, 0.05))
    finally:
        await asyncio.to_thread(behind.close)
    listing = await asyncio.to_thread(run_listing, app, run_id)
    label = minute or (f"{episode_id} · {rung_id}" if rung_id else "")
    await rename_current_flow_run(deadline_batch_name(pathway_id or "carepath", label, listing))
    if listing:
        await publish_table_artifact(None, listing, description="The rungs this deadline run fired or found closed.")
    raised = [r for _changes, done in fired for r in done.raised]
    escalated = sum(bool(changes.escalations) for changes, _done in fired)
    data = {"rungs": len(listing), "escalated": escalated, "delivered": sum(len(d.delivered) for _c, d in fired)}
    message = f"{escalated} of {len(listing)} rung(s) escalated" if listing else "no rung is linked to this run"
    if not raised and all_met(listing):
        return Completed(name=MET, message=MET_MESSAGE, data=data)
    return await _ending(raised, message, data)


async def _ending(raised: list[tuple[str, str]], message: str, data: dict[str, Any]) -> State[Any]:
    """The run's final state: ``Escalated`` / ``Escalated: critical`` (with its tags) when it raised any."""
    name, tags = escalation_outcome(raised)
    if name is None:
        return Completed(message=message, data=data)
    await tag_current_flow_run(tags)
    return Completed(name=name, message=f"{message}; {len(raised)} escalation(s) raised", data=data)


@flow(
    name="carepath-sweep",
    description="Safety net: lost runs, unscheduled rungs, undelivered escalations, stuck events and runs.",
)
async def sweep_flow() -> dict[str, Any]:
    """One pass of :func:`engine.app.sweep` (the serving processes' timer runs it only when there is work)."""
    report = await asyncio.to_thread(sweep, flow_app())
    await rename_current_flow_run(sweep_run_name(report))
    return asdict(report)


#: The artifact the measures flow publishes (a new version each run; the UI shows the latest).
MEASURES_ARTIFACT = "quality-measures"


@flow(name="carepath-measures", description="Compute the quality measures from the store and publish them.")
async def measures_flow() -> dict[str, Any]:
    """Every measure over every episode in the store, as a table artifact (one row per measure and group).

    Counts only, after small-cell suppression: no episode id or person reaches the artifact."""
    from engine.app.measures import measures
    from engine.measures import render_csv

    report = await asyncio.to_thread(measures, flow_app())
    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    total = report.strata[0].episodes  # the whole cohort; None when it is itself under the smallest cell
    episodes = f"{total} episodes" if total is not None else f"fewer than {report.min_cell} episodes"
    description = (
        f"Quality measures over {episodes} (cells under {report.min_cell} people suppressed). Definitions: the "
        "README's 'Quality measures'; the same report on a terminal: `carepath measures`."
    )
    await publish_table_artifact(MEASURES_ARTIFACT, rows, description=description)
    await rename_current_flow_run(f"measures · {episodes} · {len(rows)} rows")
    return {"episodes": total, "rows": len(rows)}


#: What each per-pathway flow does, for its deployment's description.
FLOW_PURPOSES = {
    "enroll": "schedules a new episode's deadlines and check-ins",
    "event": "applies a recorded event (stage moves, handoff steps, contacts) and follows up its timers",
    "deadline": "escalates one rung of a ladder when its deadline passes unmet",
}
_FLOWS: dict[str, Any] = {"enroll": enroll_flow, "event": event_flow, "deadline": deadline_flow}


def flow_for(spec_id: str, version: int, kind: str, description: str = "") -> Any:
    """The generic flow of ``kind`` named for one pathway (``reentry-event``), as deployed and as run in-process."""
    return _FLOWS[kind].with_options(
        name=f"{spec_id}-{kind}",
        version=f"v{version}",
        description=f"{spec_id}: {FLOW_PURPOSES[kind]}. {description}".strip(),
    )


class _Flows:
    """These flows, for a dispatcher (:class:`engine.orchestration.adapters.FlowLookup`)."""

    def for_pathway(self, pathway_id: str, version: int, kind: str) -> Any:
        return flow_for(pathway_id, version, kind)

    def sweep(self) -> Any:
        return sweep_flow

    def requests(self) -> Any:
        return requests_flow


FLOWS = _Flows()


def dispatching_app(settings: Settings, *, deferred: bool = False) -> App:
    """The App of a process that runs requests and sweeps as in-process flow runs (the CLI, ``up``, the demo);
    ``deferred``: a long-lived process (the API) that answers a request first and follows it up after."""
    return production_app(settings, FLOWS, deferred=deferred)


def flow_app() -> App:
    """The App a running flow uses: its in-process caller's, else this process's own (a deadline run)."""
    return current_app(dispatching_app)
