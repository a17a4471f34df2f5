"""What makes trouble visible in the Prefect UI: Carepath's named final states, run tags, and two automations.

Why named states: Prefect colours and counts runs by state *type*; a run that raised an escalation, a met deadline
and a refused event were all indistinguishable from routine runs. Each of them now ends in a Completed-type state
with a name of its own (the UI shows the name), and the server emits ``prefect.flow-run.<name>`` for it, which
is what an automation can trigger on. Completed-type, not Failed: the system did its job (it raised the alarm,
it refused a bad request), so Prefect's "failed or crashed runs" keep meaning "Carepath broke".

Measured on Prefect 3.8.8: a Scheduled run accepts ``Completed(name="Met")`` without ``force``; a Pending run does
too, but then still goes Running when its process asks (so a prefetched run is cancelled instead); a state named
``Escalated: critical`` emits the event ``prefect.flow-run.Escalated: critical``; an automation with the
``DoNothing`` action fires visibly (``prefect.automation.triggered``, ``...action.executed`` in the event feed)
without any block, and a proactive trigger on ``prefect.flow-run.Late`` fires once per run left Late.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING

from engine.orchestration.prefect_api.calls import _client

if TYPE_CHECKING:
    from prefect.events.schemas.automations import AutomationCore

__all__ = [
    "CARE_STATE_NAMES",
    "CRITICAL_AUTOMATION",
    "ESCALATED",
    "ESCALATED_CRITICAL",
    "LATE_ALERT_AFTER",
    "LATE_AUTOMATION",
    "MET",
    "MET_MESSAGE",
    "REJECTED",
    "ensure_operator_automations",
    "operator_automations",
    "tag_current_flow_run",
]

#: A run that raised at least one escalation (Completed-type).
ESCALATED = "Escalated"
#: A run that raised a critical one (an omitted MOUD and the like).
ESCALATED_CRITICAL = "Escalated: critical"
#: A deadline run whose work was done before its time (Completed-type, set while the run still waited).
MET = "Met"
#: The message of the state a met deadline's run is moved to (``Met``, or ``Cancelling`` for a claimed one, which
#: its claimer then ends ``Met``).
MET_MESSAGE = "deadline met before its time"
#: An event run whose event the pathway refused (Completed-type: a coordinator's mistake, not a system failure).
REJECTED = "Rejected"
#: Every final state name Carepath gives a run; the crashed-run automation must count them as an ending.
CARE_STATE_NAMES = (ESCALATED, ESCALATED_CRITICAL, MET, REJECTED)

CRITICAL_AUTOMATION = "carepath: critical escalation"
LATE_AUTOMATION = "carepath: deadline run late"
#: A deadline run left Late this long (nothing serves the deployments, or the machine cannot keep up) is an alert.
LATE_ALERT_AFTER = timedelta(minutes=5)
#: Anything a Late run can do next that shows it was picked up or ended.
_AFTER_LATE = ("Pending", "Running", "Scheduled", "Cancelling", "Cancelled", "Completed", "Crashed", "Failed", MET)


async def tag_current_flow_run(tags: Iterable[str]) -> bool:
    """Add ``tags`` to the flow run this code runs in (keeping its own); False outside a flow run.

    Tags are how operators filter the runs list (``escalated``, ``severity:critical``, ``rejected``); the server
    replaces a run's tags on update, so the current ones are read first.
    """
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return False
    run_id = context.flow_run.id
    async with _client(f"cannot tag flow run {run_id}") as client:
        current = (await client.read_flow_run(run_id)).tags or []
        wanted = list(dict.fromkeys([*current, *tags]))
        if wanted != current:
            await client.update_flow_run(run_id, tags=wanted)
        return True


def operator_automations(late_after: timedelta = LATE_ALERT_AFTER) -> list[AutomationCore]:
    """The two automations operators see on the Automations page (their action is ``DoNothing``: they mark
    the moment in the event feed; an operator may add a notification action in the UI, which is kept)."""
    from prefect.events.actions import DoNothing
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    runs = ResourceSpecification({"prefect.resource.id": "prefect.flow-run.*"})
    critical = AutomationCore(
        name=CRITICAL_AUTOMATION,
        description="A run raised a critical escalation (e.g. an MOUD omitted at a transfer): its roles were "
        "alerted; look at the open-escalations artifact and acknowledge it with `carepath ack`.",
        trigger=EventTrigger(
            expect={f"prefect.flow-run.{ESCALATED_CRITICAL}"},
            match=runs,
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[DoNothing()],
    )
    late = AutomationCore(
        name=LATE_AUTOMATION,
        description=f"A deadline run has been Late for {_minutes(late_after)}: nothing is serving the "
        "deployments, or the machine cannot keep up. The sweep fires the rung when serving resumes.",
        trigger=EventTrigger(
            after={"prefect.flow-run.Late"},
            expect={f"prefect.flow-run.{name}" for name in _AFTER_LATE},
            match=runs,
            match_related=ResourceSpecification(
                {"prefect.resource.role": "tag", "prefect.resource.id": "prefect.tag.deadline"}
            ),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=late_after,
        ),
        actions=[DoNothing()],
    )
    return [critical, late]


async def ensure_operator_automations(late_after: timedelta = LATE_ALERT_AFTER) -> list[str]:
    """Create the operators' automations that are missing (found by name); returns the names created or updated.

    One already there with the same trigger is left alone, actions included (an operator may have added a
    notification); one whose trigger changed (a new Carepath version) gets the new trigger and keeps its actions.
    """
    done: list[str] = []
    async with _client("cannot set up the operators' automations") as client:
        for wanted in operator_automations(late_after):
            found = await client.read_automations_by_name(wanted.name)
            if not found:
                await client.create_automation(wanted)
                done.append(wanted.name)
                continue
            current = found[0]
            if current.trigger != wanted.trigger:
                update = wanted.model_copy(update={"actions": current.actions or wanted.actions})
                await client.update_automation(current.id, update)
                done.append(wanted.name)
    return done


def _minutes(delta: timedelta) -> str:
    minutes = delta.total_seconds() / 60
    return f"{minutes:g} minute{'s' if minutes != 1 else ''}"
