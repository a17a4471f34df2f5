"""Carepath as deployed: the App with its real ports (Prefect schedules, dispatches and shows the work; the
roster's contacts get the alerts). Prefect itself is imported only when a port is first used, so a command that
only reads the store never pays for it."""

from __future__ import annotations

from engine.app.context import App, current_app
from engine.app.settings import Settings
from engine.notify.delivery import RosterNotifier
from engine.orchestration.adapters import PrefectDispatcher, PrefectPublisher, PrefectScheduler

__all__ = ["flow_app", "production_app"]


def production_app(settings: Settings) -> App:
    """The App of a Carepath process configured by ``settings``."""
    return App(
        settings=settings,
        scheduler=PrefectScheduler(settings),
        notifier=RosterNotifier(settings.roster_file, settings.env),
        publisher=PrefectPublisher(settings),
        dispatcher=PrefectDispatcher(settings),
    )


def flow_app() -> App:
    """The App a running flow uses: its in-process caller's, else this process's own."""
    return current_app(production_app)
