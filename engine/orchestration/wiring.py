"""Carepath as deployed: the App with its real ports (Prefect schedules, dispatches and shows the work; the
roster's contacts get the alerts). Prefect itself is imported only when a port is first used, so a command that
only reads the store never pays for it."""

from __future__ import annotations

from engine.app.context import App
from engine.app.settings import Settings
from engine.app.throttle import Throttle
from engine.notify.delivery import RosterNotifier
from engine.orchestration.adapters import FlowLookup, PrefectDispatcher, PrefectPublisher, PrefectScheduler

__all__ = ["PROGRAM_ARTIFACTS_EVERY", "production_app"]

#: A Carepath process rebuilds the program-wide artifacts at most this often (seconds; see engine.app.throttle).
PROGRAM_ARTIFACTS_EVERY = 10.0


def production_app(settings: Settings, flow_for: FlowLookup | None = None, *, deferred: bool = False) -> App:
    """The App of a Carepath process configured by ``settings``. Requests run as in-process flow runs looked up by
    ``flow_for`` (:func:`engine.orchestration.flows.dispatching_app` passes it); without it the App reads, fires
    deadlines and sweeps, but refuses to dispatch a coordinator's request. ``deferred``: requests are followed up
    after they are answered (a long-lived process: see :class:`PrefectDispatcher`)."""
    return App(
        settings=settings,
        scheduler=PrefectScheduler(settings),
        notifier=RosterNotifier(settings.roster_file, settings.env),
        publisher=PrefectPublisher(settings),
        dispatcher=PrefectDispatcher(settings, flow_for, deferred=deferred),
        throttle=Throttle(PROGRAM_ARTIFACTS_EVERY),
    )
