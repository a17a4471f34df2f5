"""Pathway -> Prefect deployments. With ``flows/``, the only place that builds Prefect objects.

Each pathway gets three deployments, ``<id>-enroll/<id>``, ``<id>-event/<id>`` and ``<id>-deadline/<id>``,
versioned with the pathway version, described from its YAML and tagged ``pathway:<id>``. The event deployment's
run form offers the pathway's declared events (and the built-in ones) as a choice list. One shared
``carepath-sweep/carepath`` deployment lets an operator run the safety net by hand; it has no schedule, because
an interval schedule replays every missed interval after an outage (one process per interval, all at once):
each serving process runs the sweep on its own timer instead (:func:`engine.app.sweep.sweep_tick`).
``carepath-measures/carepath`` publishes the quality measures daily at 06:00 UTC (a cron schedule; a restart
cancels the daily runs an outage left late, so they do not all start at once, see ``up``'s catch-up).
"""

from __future__ import annotations

from prefect.deployments.runner import RunnerDeployment

from engine.language.builtins import BUILTIN_EVENTS
from engine.language.model import PathwaySpec
from engine.orchestration.flows import FLOW_PURPOSES, flow_for, measures_flow, sweep_flow

__all__ = [
    "MEASURES_CRON",
    "MEASURES_DEPLOYMENT",
    "SWEEP_DEPLOYMENT",
    "compile_deployments",
    "measures_deployment",
    "sweep_deployment",
]

SWEEP_DEPLOYMENT = "carepath-sweep/carepath"
MEASURES_DEPLOYMENT = "carepath-measures/carepath"
#: Daily, early morning UTC: before a program's day starts in the Americas and Europe.
MEASURES_CRON = "0 6 * * *"


def compile_deployments(spec: PathwaySpec) -> list[RunnerDeployment]:
    """The enroll, event and deadline deployments of one pathway."""
    out = []
    for kind in FLOW_PURPOSES:
        deployment = flow_for(spec.id, spec.version, kind, spec.title).to_deployment(
            name=spec.id,
            tags=[f"pathway:{spec.id}", kind],
            version=f"v{spec.version}",
            description=f"{spec.title} (v{spec.version}): {FLOW_PURPOSES[kind]}.\n\n{spec.description}",
        )
        if kind == "event":
            _offer_events(deployment, sorted({*spec.events, *BUILTIN_EVENTS}))
        out.append(deployment)
    return out


def _offer_events(deployment: RunnerDeployment, names: list[str]) -> None:
    """Turn the run form's free-text ``event`` into a choice of the pathway's events."""
    props = deployment._parameter_openapi_schema.properties
    props["event"] = {**props.get("event", {}), "enum": names, "title": "event", "type": "string"}


def sweep_deployment() -> RunnerDeployment:
    """The safety net shared by every pathway, to run by hand (no schedule: see the module docstring)."""
    deployment = sweep_flow.to_deployment(
        name="carepath",
        schedules=[],  # explicitly none: re-registering removes the interval schedule of older versions
        tags=["carepath", "sweep"],
        description="Fires overdue rungs whose scheduled run was lost, schedules rungs that have no run yet, "
        "delivers what was not delivered and reconciles runs left behind by crashes. Each serving process runs "
        "it every 10 s when there is work; run it here to sweep now.",
    )
    assert isinstance(deployment, RunnerDeployment)  # to_deployment is sync-compatible: called here it is sync
    return deployment


def measures_deployment() -> RunnerDeployment:
    """The daily quality measures over the whole store, published as the ``quality-measures`` artifact."""
    deployment = measures_flow.to_deployment(
        name="carepath",
        cron=MEASURES_CRON,
        tags=["carepath", "measures"],
        description="Computes the quality measures (follow-up after discharge, initiation and engagement, MOUD "
        "continuity, reentry, handoff loops, escalations, stays) over every episode in the store and publishes "
        "them as the `quality-measures` table artifact, counts under 11 suppressed. Daily at 06:00 UTC; run it "
        "here for a report now. Definitions: the README's 'Quality measures'.",
    )
    assert isinstance(deployment, RunnerDeployment)
    return deployment
