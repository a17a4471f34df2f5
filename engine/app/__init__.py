"""The application layer: every use case, written once, that every face (CLI, flows, API, demo) calls.

It may import the store, the pure episode rules and the ports; never argparse, never Prefect (the Prefect
implementations of the ports live in :mod:`engine.orchestration.adapters`). Configuration arrives as
:class:`Settings`. Every use case first checks what was typed against :mod:`engine.app.inputs`, before Prefect is
asked or anything is stored.
"""

from engine.app.context import App
from engine.app.episodes import (
    EventResult,
    acknowledge,
    enroll,
    fire,
    follow_up_enrollment,
    process_event,
    record_event,
)
from engine.app.followup import FollowUp, follow_up, schedule_timers
from engine.app.ports import SweepReport
from engine.app.settings import Settings
from engine.app.sweep import sweep

__all__ = [
    "App",
    "EventResult",
    "FollowUp",
    "Settings",
    "SweepReport",
    "acknowledge",
    "enroll",
    "fire",
    "follow_up",
    "follow_up_enrollment",
    "process_event",
    "record_event",
    "schedule_timers",
    "sweep",
]
